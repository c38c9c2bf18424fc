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

/**
 * ComfyUI, pinned to a commit whose comfyui_version.py says 0.3.41, bundled as a shallow git
 * clone on master (as upstream's image bundles a clone), so ComfyUI-Manager can tell its
 * revision. Its Python requirements are read from the pinned source itself (package-lists.ts).
 */
export const comfyui = {
  url: "https://github.com/comfyanonymous/ComfyUI.git",
  rev: "4e95c0c104240dcef27927617756e21ebab2173e",
  dest: "/default-comfyui-bundle/ComfyUI",
  name: "comfyui",
  gitDir: { branch: "master" },
};

/** The app's requirement files, read at the pinned commit; later commits move the manager to manager_requirements.txt. */
export const comfyuiRequirementFiles = [
  { source: "git:comfyui", path: "requirements.txt" },
  { source: "git:comfyui", path: "manager_requirements.txt", optional: true },
];
