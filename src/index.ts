// The public API: what a config file or another program imports.

export { defineImage } from "./config/schema.ts";
export type { ImageDefinition, ImageInput, LayerDefinition, ImageRuntimeConfig } from "./config/schema.ts";
export { build, type BuildOptions, type BuildResult } from "./pipeline/build.ts";
export { findBuildRecord, type BuildSelector } from "./catalog/find.ts";
export { imageFromRecord, localImages } from "./catalog/image.ts";
export type { BuildRecord } from "./catalog/records.ts";
export { Store, defaultStoreDir } from "./store/store.ts";
export type { SourceKind, LockedPackage } from "./sources/types.ts";
export * from "./errors.ts";
