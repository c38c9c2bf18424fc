// The ComfyUI CUDA 13 megapak: 12 folded layers, a runner like upstream's,
// port 8188 and upstream's volumes. Variants choose Debian suite, Python,
// GCC and the torch set; see seed.config.ts and local.config.ts.

import { defineImage } from "layerfold";
import { layers, type Variant } from "./package-lists.ts";

export function megapak(v: Variant) {
  const site = `/opt/venv/lib/python${v.python.version}/site-packages`;
  return defineImage({
    name: "comfyui-boot",
    tag: v.tag,
    debian: {
      sources: [
        { uri: "http://deb.debian.org/debian", suites: [v.debian.suite], components: ["main"] },
        ...(v.debian.security ? [{ uri: "http://deb.debian.org/debian-security", suites: [`${v.debian.suite}-security`], components: ["main"] }] : []),
      ],
    },
    python: {
      version: v.python.version,
      ...(v.python.fullVersion ? { fullVersion: v.python.fullVersion } : {}),
      platform: { glibc: v.python.glibc },
      prefix: "/opt/venv",
      interpreter: v.python.interpreter,
      indexes: v.python.indexes ?? [],
      drop: v.python.drop ?? {},
      // The venv also sees ~/.local, so what users pip install at run time lands there (see pip.conf in 04-python).
      systemSitePackages: true,
    },
    layers: layers(v),
    // Upstream installs all four opencv flavours, which overwrite each other's cv2/;
    // here one owns it, explicitly.
    conflicts: { [`${site}/cv2/`]: "py:opencv-python" },
    // Layers stay well under GHCR's 10 GB; upstream aims for < 500 MiB but torch's CUDA wheels alone exceed that.
    layerSizeLimit: 4_000_000_000,
    config: {
      env: {
        PATH: "/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        VIRTUAL_ENV: "/opt/venv",
        LANG: "C.UTF-8",
        HOME: "/root",
        CLI_ARGS: "",
        // Upstream's: no warning about pip running as root (the container's only user).
        PIP_ROOT_USER_ACTION: "ignore",
      },
      entrypoint: ["/bin/bash", "/runner-scripts/entrypoint.sh"],
      workdir: "/root",
      exposedPorts: [8188],
      volumes: ["/root", "/root/.cache", "/root/.local"],
      labels: {
        "org.opencontainers.image.title": "ComfyUI megapak (CUDA 13)",
        "org.opencontainers.image.source": "https://github.com/comfyanonymous/ComfyUI",
      },
    },
  });
}
