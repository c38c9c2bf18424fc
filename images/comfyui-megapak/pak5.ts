// pak5: extended libraries (the seed's pak5.nix / upstream pak5.txt).
export const pak5 = [
  "addict", "aiohttp", "albumentations", "alembic", "av", "black", "blend-modes", "cachetools", "chardet",
  "clip-interrogator", "color-matcher", "colour-science", "decord", "deepdiff", "dill", "einops", "filelock",
  "fvcore", "gguf", "GitPython", "hydra-core", "imageio-ffmpeg", "importlib-metadata", "iopath", "loguru", "mss",
  "numba", "numexpr", "peft", "piexif", "pixeloe", "protobuf", "psutil", "py-cpuinfo", "pycocotools",
  "pydantic-settings", "pydantic", "pydub", "PyGithub", "pymatting", "pynvml", "python-dateutil", "pyyaml",
  "qrcode[pil]", "rembg", "requirements-parser", "rich", "rich-argparse", "rotary-embedding-torch", "safetensors",
  "segment-anything", "sentencepiece", "shapely", "simpleeval", "spandrel", "SQLAlchemy", "tokenizers", "toml",
  "tomli", "torchsde", "tqdm", "transparent-background", "trimesh[easy]", "typer", "typing-extensions",
  "ultralytics", "uv", "webcolors", "yacs", "yapf", "yarl",
];
