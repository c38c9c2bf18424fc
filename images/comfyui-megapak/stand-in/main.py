"""A small stand-in for ComfyUI's main.py, used through `--override comfyui=DIR`
where GitHub (and so ComfyUI itself) is out of reach. It parses the same
flags the entrypoint passes, imports the stack ComfyUI needs at start-up,
and with --quick-test-for-ci exits 0 like ComfyUI's CI smoke test."""
import argparse
import importlib
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--listen", nargs="?", const="0.0.0.0", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8188)
parser.add_argument("--quick-test-for-ci", action="store_true")
parser.add_argument("--cpu", action="store_true")
args, unknown = parser.parse_known_args()

failed = []
for name in ["torch", "torchvision", "numpy", "PIL", "safetensors", "transformers", "yaml", "aiohttp", "scipy", "tqdm", "psutil", "sqlalchemy", "alembic", "av", "einops", "sentencepiece", "tokenizers", "pydantic"]:
    try:
        module = importlib.import_module(name)
        print(f"import {name} {getattr(module, '__version__', '')}")
    except Exception as err:  # report every failure, like ComfyUI's import of custom nodes
        failed.append(f"{name}: {err}")

import torch
print(f"torch {torch.__version__} cuda {torch.version.cuda} device {'cpu' if args.cpu or not torch.cuda.is_available() else 'cuda'}")
if failed:
    print("IMPORT FAILED:\n  " + "\n  ".join(failed), file=sys.stderr)
    sys.exit(1)
if args.quick_test_for_ci:
    print("quick test for ci: ok")
    sys.exit(0)

from http.server import HTTPServer, SimpleHTTPRequestHandler
print(f"serving on {args.listen}:{args.port}")
HTTPServer((args.listen, args.port), SimpleHTTPRequestHandler).serve_forever()
