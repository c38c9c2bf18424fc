// The flag the report commands (why, report, sbom) share to name a build in the
// store without a config; src/catalog/find.ts reads it.

export type { BuildSelector as RecordFlags } from "../catalog/find.ts";

export const IMAGE_FLAG = ["--image <name:tag>", "a build in the store by NAME:TAG or manifest digest (no config needed)"] as const;
