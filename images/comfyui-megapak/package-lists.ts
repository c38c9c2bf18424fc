// Composes the paks into the image's 12 layers (the seed's package-lists.nix).
// Layer i holds only what layers before it don't, so pak5 names like numpy
// that pak3 already pulled in cost nothing twice.

import { fileURLToPath } from "node:url";
import { comfyui, comfyuiRequirementFiles, type TorchSet } from "./custom-packages.ts";
import { pak3 } from "./pak3.ts";
import { pak5 } from "./pak5.ts";
import { pak7 } from "./pak7.ts";

export interface Variant {
  /** Image tag. */
  tag: string;
  debian: { suite: string; security: boolean };
  /** Debian package names for the interpreter and the compiler. */
  pythonDebs: string[];
  gccDebs: string[];
  python: {
    version: string;
    fullVersion?: string;
    glibc: string;
    interpreter: string;
    indexes?: Array<{ url: string }>;
    /** Requirements left out wherever they come from (ComfyUI's requirements.txt, a dependency's metadata), each with the reason. */
    drop?: Record<string, string>;
  };
  torch: TorchSet;
  /** Requirements this variant leaves out, each with the reason (never silently). */
  leaveOut: Record<string, string>;
  /** Requirements this variant takes in another form, e.g. without an extra it can't satisfy. */
  replace?: Record<string, string>;
}

const normalize = (req: string) => req.split(/[\s<>=!~;@[]/)[0]!.toLowerCase().replace(/[-_.]+/g, "-");

/** The requirements of a list minus the variant's leave-outs. */
export function keep(list: string[], v: Variant): string[] {
  return list.map((r) => v.replace?.[r] ?? r).filter((r) => !(normalize(r) in v.leaveOut));
}

export const base = {
  // What debootstrap --variant=minbase gives, plus what ComfyUI and opencv need at run time.
  essential: ["usr-is-merged", "ca-certificates", "bash", "coreutils", "findutils", "procps", "less", "tzdata", "libgl1", "libglib2.0-0", "ffmpeg",
    // Found missing by `layerfold check`: opencv's Qt plugin (libSM, libICE), numba's TBB pool, libcaca's GL plugin.
    "libsm6", "libice6", "libtbb12", "libglu1-mesa", "libglut3.12",
    // Upstream's tools (its Dockerfile installs aria2, fish, fd, vim, which, ffmpeg, x264, x265; its entrypoint uses rsync),
    // plus curl and a font: what megapak users expect in the container's shell.
    "aria2", "curl", "rsync", "vim", "fish", "fd-find", "x264", "x265", "fonts-dejavu-core"],
  buildTools: ["make", "cmake", "ninja-build", "git", "pkg-config", "patch"],
};

export function layers(v: Variant) {
  return [
    { name: "01-base", description: "base utilities", debian: { packages: base.essential, essential: true } },
    { name: "02-cuda", description: "CUDA 13 runtime libraries (NVIDIA wheels)", python: keep(v.torch.cuda, v) },
    { name: "03-build-tools", description: "make, cmake, ninja, git, pkg-config", debian: base.buildTools },
    {
      name: "04-python",
      description: "the interpreter, pip",
      debian: v.pythonDebs,
      python: ["pip", "setuptools", "wheel"],
      // pip install goes to ~/.local (a volume), as upstream's PIP_USER=true does, but only for
      // `install`: pip list/freeze/check still see the image's packages, and these stay as built.
      inline: [{ path: "/opt/venv/pip.conf", text: "[install]\nuser = true\n" }],
    },
    { name: "05-gcc", description: "compiler for packages that build at run time", debian: v.gccDebs },
    { name: "06-pytorch", description: "torch, torchvision, torchaudio", python: keep(v.torch.torch, v) },
    { name: "07-pak3", description: "core ML", python: keep(pak3, v) },
    { name: "08-cupy", description: "CuPy for CUDA 13", python: keep(v.torch.cupy, v) },
    { name: "09-pak5", description: "extended libraries", python: keep(pak5, v) },
    { name: "10-pak7", description: "face analysis and git packages", python: keep(pak7, v) },
    { name: "11-performance", description: "flash-attn, sageattention, nunchaku", python: keep(v.torch.performance, v) },
    {
      name: "12-app",
      description: "ComfyUI, its frontend and the runner scripts",
      // ComfyUI's own requirement files at the pinned commit (python.drop removes what a variant can't have).
      python: { requirements: [], files: comfyuiRequirementFiles },
      git: [comfyui],
      // Resolved from this file, so the root layerfold.config.ts can re-export the image.
      files: [{ src: fileURLToPath(new URL("./runner-scripts", import.meta.url)), dest: "/runner-scripts", mode: 0o755, name: "runner-scripts" }],
      // custom_nodes/ is git-ignored upstream, and ComfyUI fails at start without it; upstream's image creates it.
      inline: [{ path: "/default-comfyui-bundle/ComfyUI/custom_nodes/README.txt", text: "Custom nodes go here (each in its own folder). This folder is copied to ~/ComfyUI/custom_nodes on the first start only.\n" }],
    },
  ].map((l) => {
    // A layer whose list is empty after leave-outs keeps its name; the fold drops it with a notice.
    const out: Record<string, unknown> = { ...l };
    if (Array.isArray(out.python) && (out.python as string[]).length === 0) delete out.python;
    if (!out.python && !out.debian && !out.git && !out.files) out.inline = [];
    return out as { name: string } & Record<string, unknown>;
  });
}
