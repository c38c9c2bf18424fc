// The image definition: a zod schema for the core fields. Source kinds add
// their own keys (per layer and per image) and validate them with their own
// schemas; see validateImage in load.ts.

import { z } from "zod";
import { COMPRESSIONS, PLATFORM_RE } from "../constants.ts";

export const imageRuntimeConfigSchema = z
  .object({
    env: z.union([z.record(z.string()), z.array(z.string().regex(/^[^=]+=/, "must look like NAME=value"))]).optional(),
    entrypoint: z.array(z.string()).optional(),
    cmd: z.array(z.string()).optional(),
    workdir: z.string().startsWith("/", "must be an absolute path").optional(),
    user: z.string().optional(),
    exposedPorts: z.array(z.union([z.number().int().min(1).max(65535), z.string().regex(/^\d+(\/(tcp|udp|sctp))?$/)])).optional(),
    labels: z.record(z.string()).optional(),
    volumes: z.array(z.string().startsWith("/", "must be an absolute path")).optional(),
    stopSignal: z.string().optional(),
  })
  .strict();

export const layerDefinitionSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "use letters, digits, '.', '_' and '-'"),
    /** Free text shown by inspect and in the image history. */
    description: z.string().optional(),
  })
  .passthrough();

export const imageDefinitionSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9]+([._/-][a-z0-9]+)*$/, "must be a lowercase OCI repository name"),
    tag: z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, "must be a valid OCI tag").default("latest"),
    platform: z.string().regex(PLATFORM_RE, "must look like linux/amd64").default("linux/amd64"),
    layers: z.array(layerDefinitionSchema).min(1, "an image needs at least one layer"),
    config: imageRuntimeConfigSchema.default({}),
    compression: z.enum(COMPRESSIONS).default("zstd"),
    compressionLevel: z.number().int().min(1).max(19).optional(),
    /** Layers over this many uncompressed bytes are split (GHCR allows 10 GB per layer). */
    layerSizeLimit: z.number().int().positive().default(10_000_000_000),
    /** Warn above 125 layers, refuse above this many (overlayfs and docker stop near 128). */
    maxLayers: z.number().int().positive().max(127).default(127),
    /**
     * Explicit owner for a path two packages both provide: { "/usr/bin/x": "deb:foo" }.
     * A key ending in "/" covers everything under that directory.
     */
    conflicts: z.record(z.string()).default({}),
    annotations: z.record(z.string()).default({}),
    /** Base image, e.g. "registry/repo:tag@sha256:..." (publishing issue). */
    from: z.string().optional(),
  })
  .passthrough();

export type ImageRuntimeConfig = z.infer<typeof imageRuntimeConfigSchema>;
export type LayerDefinition = z.infer<typeof layerDefinitionSchema>;
export type ImageDefinition = z.infer<typeof imageDefinitionSchema>;

/** What a config file writes: the input type, before defaults. Source keys stay open. */
export type ImageInput = z.input<typeof imageDefinitionSchema> & {
  layers: Array<z.input<typeof layerDefinitionSchema> & Record<string, unknown>>;
} & Record<string, unknown>;

/** Typed helper for layerfold.config.ts; returns its argument unchanged. */
export function defineImage<T extends ImageInput>(image: T): T {
  return image;
}
