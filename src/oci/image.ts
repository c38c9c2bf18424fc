// Assemble: image config, manifest and index from built layer descriptors.
// Deterministic: stable key order, times from SOURCE_DATE_EPOCH.

import type { ImageDefinition } from "../config/schema.ts";
import { ANNOTATION } from "../constants.ts";
import { sha256Hex } from "../util/hash.ts";
import { stableJson } from "../util/json.ts";
import { MEDIA, type Descriptor, type ImageConfigFile, type ImageIndex, type ImageManifest, type LayerDescriptor } from "./types.ts";

export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export interface AssembleInput {
  image: ImageDefinition;
  layers: Array<LayerDescriptor & { name: string; comment?: string }>;
  /** Base image config, when `from` is used; its runtime config is the starting point. */
  base?: ImageConfigFile;
  epoch: number;
}

function envList(env: ImageDefinition["config"]["env"], baseEnv: string[] = []): string[] {
  const map = new Map<string, string>();
  for (const kv of baseEnv) map.set(kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1));
  if (Array.isArray(env)) for (const kv of env) map.set(kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1));
  else if (env) for (const k of Object.keys(env).sort()) map.set(k, env[k]!);
  if (!map.has("PATH")) map.set("PATH", DEFAULT_PATH);
  return [...map].map(([k, v]) => `${k}=${v}`);
}

const asSet = (xs: string[] | undefined) => (xs && xs.length ? Object.fromEntries(xs.map((x) => [x, {}])) : undefined);

export function platformOf(image: ImageDefinition): { os: string; architecture: string; variant?: string } {
  const [os, architecture, variant] = image.platform.split("/") as [string, string, string | undefined];
  return variant ? { os, architecture, variant } : { os, architecture };
}

export function buildConfig(input: AssembleInput): ImageConfigFile {
  const { image, base } = input;
  const c = image.config;
  const created = new Date(input.epoch * 1000).toISOString();
  const platform = platformOf(image);
  const ports = c.exposedPorts?.map((p) => (typeof p === "number" || !p.includes("/") ? `${p}/tcp` : p));
  const bc = base?.config ?? {};
  const labels = { ...(bc.Labels ?? {}), ...(c.labels ?? {}) };
  const config: ImageConfigFile = {
    created,
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: {
      Env: envList(c.env, bc.Env),
      Entrypoint: c.entrypoint ?? bc.Entrypoint,
      Cmd: c.cmd ?? (c.entrypoint ? undefined : bc.Cmd),
      WorkingDir: c.workdir ?? bc.WorkingDir,
      User: c.user ?? bc.User,
      ExposedPorts: asSet(ports) ?? bc.ExposedPorts,
      Labels: Object.keys(labels).length ? labels : undefined,
      Volumes: asSet(c.volumes) ?? bc.Volumes,
      StopSignal: c.stopSignal ?? bc.StopSignal,
    },
    rootfs: { type: "layers", diff_ids: [...(base?.rootfs.diff_ids ?? []), ...input.layers.map((l) => l.diffId)] },
    history: [
      ...(base?.history ?? []),
      ...input.layers.map((l) => ({ created, created_by: `layerfold: layer ${l.name}`, ...(l.comment ? { comment: l.comment } : {}) })),
    ],
  };
  return config;
}

export function toBytes(value: unknown): Buffer {
  return Buffer.from(stableJson(value));
}

export function descriptorOf(mediaType: string, bytes: Buffer, extra: Partial<Descriptor> = {}): Descriptor {
  return { mediaType, digest: `sha256:${sha256Hex(bytes)}`, size: bytes.length, ...extra };
}

export function buildManifest(configDesc: Descriptor, layers: Array<LayerDescriptor & { name?: string }>, annotations: Record<string, string>): ImageManifest {
  return {
    schemaVersion: 2,
    mediaType: MEDIA.manifest,
    config: configDesc,
    layers: layers.map((l) => ({
      mediaType: l.mediaType,
      digest: l.digest,
      size: l.size,
      // A zstd:chunked layer's annotations locate its TOC: they travel with the descriptor.
      ...(l.name || l.annotations ? { annotations: { ...(l.name ? { [ANNOTATION.layerName]: l.name } : {}), ...l.annotations } } : {}),
    })),
    ...(Object.keys(annotations).length ? { annotations } : {}),
  };
}

export function buildIndex(manifests: Descriptor[], annotations?: Record<string, string>): ImageIndex {
  return { schemaVersion: 2, mediaType: MEDIA.index, manifests, ...(annotations && Object.keys(annotations).length ? { annotations } : {}) };
}
