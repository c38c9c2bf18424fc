// The variant that builds from what this kind of machine reaches: Debian
// bookworm (Python 3.11, GCC 12) and the Python indexes pip is configured
// with (torch 2.14.1 + CUDA 13 wheels). Packages those indexes don't offer are
// left out by name below, so the gap is visible rather than silent; layers
// left empty (CuPy, pak7, performance) are dropped by the fold with a notice.
// ComfyUI comes from GitHub; where GitHub is out of reach, build with
// `--override comfyui=DIR` (a checkout of the pinned commit), and give wheels
// the indexes lack as one more find-links directory (PIP_FIND_LINKS=DIR), as
// the megapak README shows with the test fixtures.
import { cuda13Runtime } from "./custom-packages.ts";
import { megapak } from "./megapak.ts";

const notOnTheConfiguredIndexes = "not offered by this machine's configured Python indexes";
const gitUnreachable = "a git requirement, and GitHub is unreachable here";

export default megapak({
  tag: "cu130-megapak-py311-local",
  debian: { suite: "bookworm", security: true },
  pythonDebs: ["python3.11", "python3.11-dev", "python3.11-venv"],
  gccDebs: ["gcc", "g++", "libc6-dev"],
  python: {
    version: "3.11",
    fullVersion: "3.11.2",
    glibc: "2.36",
    interpreter: "/usr/bin/python3.11",
    drop: {
      // torch asks for it; the CUDA runtime wheels in 02-cuda carry what torch loads.
      "cuda-bindings": notOnTheConfiguredIndexes,
      // ComfyUI's requirements.txt names it; only nodes_audio.py needs it.
      torchaudio: notOnTheConfiguredIndexes,
      // comfyui-manager's metadata names them; the manager starts without them (matrix sharing, uv as pip's alternative).
      "matrix-client": notOnTheConfiguredIndexes,
      uv: notOnTheConfiguredIndexes,
    },
  },
  torch: {
    torch: ["torch==2.14.1", "torchvision==0.29.1", "torchaudio==2.14.1"],
    cuda: cuda13Runtime,
    cupy: ["cupy-cuda13x"],
    performance: ["flash-attn", "sageattention", "nunchaku"],
  },
  // trimesh's "easy" extra needs embreex, which the configured indexes lack.
  replace: { "trimesh[easy]": "trimesh" },
  leaveOut: Object.fromEntries([
    ...[
      "cupy-cuda13x", "flash-attn", "sageattention", "nunchaku",
      "diffusers", "nvidia-ml-py", "onnxruntime-gpu", "opencv-contrib-python", "opencv-contrib-python-headless",
      "pilgram", "pygit2", "python-ffmpeg", "compel", "fairscale", "torchdiffeq",
      "addict", "albumentations", "blend-modes", "clip-interrogator", "color-matcher", "colour-science", "decord", "fvcore",
      "hydra-core", "iopath", "mss", "piexif", "pixeloe", "pymatting", "pynvml", "rembg", "requirements-parser", "rich-argparse",
      "segment-anything", "transparent-background", "ultralytics", "yacs", "yapf",
      "dlib", "facexlib", "insightface",
    ].map((n) => [n, notOnTheConfiguredIndexes]),
    ["omegaconf", "its dependency antlr4-python3-runtime is not offered by this machine's configured Python indexes"],
    ...["clip", "cozy-comfyui", "cozy-comfy", "cstr", "ffmpy", "img2texture"].map((n) => [n, gitUnreachable]),
  ]),
});
