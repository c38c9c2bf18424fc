// pak7: face analysis and git packages (the seed's pak7.nix). CLIP is pinned
// to a commit; the ltdrdata/cozy repositories name a branch, which the seed
// locked with a fixed hash that broke whenever the branch moved. Pin them to
// commits here once GitHub is reachable (`layerfold lock` builds them with
// PEP 517 and records the wheels' hashes).
export const pak7 = [
  "dlib",
  "facexlib",
  "insightface",
  "clip @ git+https://github.com/openai/CLIP.git@fa20ebf554d1e77513171174124b1cd271497253",
  "cozy_comfyui @ git+https://github.com/cozy-comfyui/cozy_comfyui@main",
  "cozy_comfy @ git+https://github.com/cozy-comfyui/cozy_comfy@main",
  "cstr @ git+https://github.com/ltdrdata/cstr.git",
  "ffmpy @ git+https://github.com/ltdrdata/ffmpy.git",
  "img2texture @ git+https://github.com/ltdrdata/img2texture.git",
];
