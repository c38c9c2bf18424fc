// PyTorch 2.14.1 with its CUDA 13 wheels on Debian bookworm's Python 3.11,
// resolved from whatever Python indexes pip is configured with (plus the
// image's own `indexes`), in folded layers:
//   base      Debian's Essential set
//   python    python3.11 from bookworm (the interpreter the venv points at)
//             and libstdc++6, which manylinux wheels expect from the system
//   torch     torch + triton + the nvidia-* CUDA 13 wheels
//   imaging   numpy, pillow
//   hf        transformers, safetensors (from a requirements file)
// Python packages go into the venv /opt/venv; one global resolution covers
// all three Python layers, so the image holds one consistent set.
import { defineImage } from "layerfold";

export default defineImage({
  name: "layerfold-examples/torch-cuda",
  tag: "2.14.1-cu130",
  debian: {
    sources: [
      { uri: "http://deb.debian.org/debian", suites: ["bookworm", "bookworm-updates"], components: ["main"] },
      "deb http://deb.debian.org/debian-security bookworm-security main",
    ],
  },
  python: {
    version: "3.11",
    fullVersion: "3.11.2",
    platform: { glibc: "2.36" },
    prefix: "/opt/venv",
    interpreter: "/usr/bin/python3.11",
    // For the PyTorch cu130 index, add: indexes: [{ url: "https://download.pytorch.org/whl/cu130" }],
    // torch names cuda-bindings, which only its optional torch.cuda._utils paths use.
    drop: ["cuda-bindings"],
  },
  layers: [
    { name: "base", debian: { packages: ["usr-is-merged", "ca-certificates"], essential: true } },
    // libstdc++6: manylinux wheels (torch) expect it from the system, like libc.
    { name: "python", debian: ["python3.11", "libstdc++6"] },
    { name: "torch", python: ["torch==2.14.1"] },
    { name: "imaging", python: ["numpy", "pillow"] },
    { name: "hf", python: { files: ["./requirements-hf.txt"] } },
  ],
  config: {
    env: { PATH: "/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", VIRTUAL_ENV: "/opt/venv", LANG: "C.UTF-8" },
    cmd: ["python"],
  },
});
