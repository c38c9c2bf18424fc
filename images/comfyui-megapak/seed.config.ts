// The seed's variant: Python 3.14 and GCC 15 from Debian forky, torch 2.14.1
// cu130 wheels from PyTorch's index. Needs download.pytorch.org, PyPI and
// GitHub: on machines that can't reach them, `layerfold lock --check` lists
// what is missing and the build names the unreachable source.
import { seedTorch } from "./custom-packages.ts";
import { megapak } from "./megapak.ts";

export default megapak({
  tag: "cu130-megapak-py314",
  debian: { suite: "forky", security: false },
  pythonDebs: ["python3.14", "python3.14-dev", "python3.14-venv"],
  gccDebs: ["gcc-15", "g++-15", "libc6-dev"],
  python: {
    version: "3.14",
    glibc: "2.41",
    interpreter: "/usr/bin/python3.14",
    indexes: [{ url: "https://download.pytorch.org/whl/cu130" }],
  },
  torch: seedTorch,
  leaveOut: {},
});
