// PyTorch, CuPy, the performance wheels and the app (the seed's
// custom-packages.nix), per variant.

export interface TorchSet {
  /** The PyTorch wheels, exact pins so torch/torchvision never drift apart. */
  torch: string[];
  /** CUDA 13 runtime libraries as NVIDIA's wheels (layer 02, below torch). */
  cuda: string[];
  cupy: string[];
  /** Prebuilt wheels from release URLs (flash-attn, sageattention, nunchaku). */
  performance: string[];
}

/** torch's CUDA 13 runtime wheels: cuBLAS, cuDNN, cuFFT, cuRAND, cuSOLVER, cuSPARSE, NCCL, NVRTC, ... */
export const cuda13Runtime = [
  "nvidia-cublas",
  "nvidia-cuda-cupti",
  "nvidia-cuda-nvrtc",
  "nvidia-cudnn-cu13",
  "nvidia-cufft",
  "nvidia-cufile",
  "nvidia-curand",
  "nvidia-cusolver",
  "nvidia-cusparse",
  "nvidia-cusparselt-cu13",
  "nvidia-nccl-cu13",
  "nvidia-nvjitlink",
  "nvidia-nvshmem-cu13",
  "nvidia-nvtx",
];

export const seedTorch: TorchSet = {
  torch: ["torch==2.14.1", "torchvision==0.29.1", "torchaudio==2.14.1"],
  cuda: cuda13Runtime,
  cupy: ["cupy-cuda13x"],
  performance: [
    // Prebuilt for cp314/cu130 where upstream publishes them; `layerfold lock` records their sha256.
    "flash-attn",
    "sageattention",
    "nunchaku",
  ],
};

/** ComfyUI, pinned to a commit whose comfyui_version.py says 0.3.41. */
export const comfyui = {
  url: "https://github.com/comfyanonymous/ComfyUI.git",
  rev: "4e95c0c104240dcef27927617756e21ebab2173e",
  dest: "/default-comfyui-bundle/ComfyUI",
  name: "comfyui",
};

/** ComfyUI's own Python requirements at that commit (frontend = the web root). */
export const comfyuiRequirements = [
  "comfyui-frontend-package==1.22.2",
  "comfyui-workflow-templates==0.1.29",
  "comfyui-embedded-docs==0.2.2",
  "torchsde",
  "numpy>=1.25.0",
  "einops",
  "transformers>=4.28.1",
  "tokenizers>=0.13.3",
  "sentencepiece",
  "safetensors>=0.4.2",
  "aiohttp>=3.11.8",
  "yarl>=1.18.0",
  "pyyaml",
  "Pillow",
  "scipy",
  "tqdm",
  "psutil",
  "alembic",
  "SQLAlchemy",
  "kornia>=0.7.1",
  "spandrel",
  "soundfile",
  "av>=14.2.0",
  "pydantic~=2.0",
  "pydantic-settings~=2.0",
];
