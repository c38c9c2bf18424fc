// The repository's default image: the ComfyUI CUDA 13 megapak, seed variant.
// On a machine that reaches only Debian and a local wheel mirror, build the
// local variant: layerfold build -c images/comfyui-megapak/local.config.ts
export { default } from "./images/comfyui-megapak/seed.config.ts";
