// Small rules the whole program shares, written once (vite keeps a constants.ts too).
// Imports nothing of the project: any module at any level may use it.

import { readFileSync } from "node:fs";

/**
 * layerfold's version (CLI --version, the SBOM's tool entry), read from package.json, the one
 * place it is written. This file and the built dist/layerfold.js both sit one directory below
 * the package root.
 */
export const VERSION: string = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;

/** Platforms an image can be built for: linux/ARCH with an optional /vN variant. */
export const PLATFORM_RE = /^linux\/(amd64|arm64|arm|ppc64le|s390x|riscv64|386)(\/v\d)?$/;

/** Layer compressions, the config's default first. "zstd:chunked": containers/storage's chunked format (layer/chunked.ts), for partial pulls. */
export const COMPRESSIONS = ["zstd", "zstd:chunked", "gzip", "none"] as const;
export type LayerCompression = (typeof COMPRESSIONS)[number];

/** Annotation keys layerfold writes or reads. */
export const ANNOTATION = {
  /** On each layer descriptor of our manifests: the layer's name in the config. */
  layerName: "dev.layerfold.layer",
  refName: "org.opencontainers.image.ref.name",
  title: "org.opencontainers.image.title",
  created: "org.opencontainers.image.created",
} as const;

/** "sha256:<hex>" -> "<hex>". */
export const hexOf = (digest: string): string => digest.replace(/^sha256:/, "");
