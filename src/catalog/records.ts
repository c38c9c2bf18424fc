// Build records: what a build leaves in the store for the commands that read it
// back without rebuilding (inspect, push, load, run, check, why, report, sbom,
// diff, gc). One record per build, under its manifest digest, under its
// NAME:TAG (the latest build of the tag) and under NAME:TAG and its platform (the
// latest build of the tag for that platform: which platforms a tag has).

import { hexOf } from "../constants.ts";
import { chunkedSummary } from "../layer/chunked.ts";
import type { LayerRecord } from "../layer/layer.ts";
import type { BuiltImage, ImageConfigFile, ImageManifest } from "../oci/types.ts";
import type { LockedPackage } from "../sources/types.ts";
import type { Store } from "../store/store.ts";
import { sha256Hex } from "../util/hash.ts";

/** The store's record kind of build records. */
export const BUILD_RECORDS = "builds";

export interface BuiltLayer extends LayerRecord {
  reused: boolean;
  /** The cache repository the layer came from, when it did. */
  cached?: string;
  seconds: number;
}

/** What `inspect`, `push`, `run` and `why` read back without rebuilding. */
export interface BuildRecord {
  name: string;
  tag: string;
  configFile: string;
  manifestDigest: string;
  manifest: string;
  config: string;
  layers: Array<BuiltLayer & { trees: Array<{ id: string; key: string }> }>;
  droppedLayers: string[];
  packages: Array<{ id: string; version: string; layer: string; via?: string; artifact?: LockedPackage["artifact"] }>;
  /** The config's path owners (`conflicts`), which decide the image's files; absent in records of older versions. */
  conflicts?: Record<string, string>;
  /** The base image (`from`), whose layers the store may not hold. */
  from?: string;
  /** Python requirements the config leaves out on purpose (python.drop), name -> reason ("" for none): `check` reports them as notes. */
  pythonDrop?: Record<string, string>;
}

/**
 * What the config of the build that made this manifest leaves out on purpose (python.drop),
 * from its record in this store; undefined when the store has no record of it (an image
 * built elsewhere).
 */
export async function pythonDropOf(store: Store, manifestDigest: string): Promise<Map<string, string | undefined> | undefined> {
  const rec = await store.getRecord<BuildRecord>(BUILD_RECORDS, hexOf(manifestDigest));
  if (!rec) return undefined;
  return new Map(Object.entries(rec.pythonDrop ?? {}).map(([n, why]) => [n, why || undefined]));
}

export const buildRecordKey = (name: string, tag: string) => sha256Hex(`${name}:${tag}`);

/** The key of the latest build of NAME:TAG for a platform: the tag's key, "-", the platform with "_" for "/". */
export const platformRecordKey = (name: string, tag: string, platform: string) => `${buildRecordKey(name, tag)}-${platform.replaceAll("/", "_")}`;

/** os/arch[/variant] of a build, from its image config. */
export function platformOf(rec: Pick<BuildRecord, "config">): string {
  try {
    const c = JSON.parse(rec.config) as { os?: string; architecture?: string; variant?: string };
    return [c.os, c.architecture, c.variant].filter(Boolean).join("/");
  } catch {
    return "";
  }
}

/** One layer as build --json, inspect --json and the report show it. */
export function layerSummary(l: Pick<BuiltLayer, "name" | "digest" | "diffId" | "size" | "uncompressedSize" | "mediaType" | "reused" | "cached" | "packages" | "annotations" | "contentFrames">) {
  return {
    name: l.name,
    digest: l.digest,
    diffId: l.diffId,
    size: l.size,
    uncompressedSize: l.uncompressedSize,
    mediaType: l.mediaType,
    ...chunkedSummary(l),
    reused: l.reused,
    ...(l.cached ? { cached: l.cached } : {}),
    packages: l.packages,
  };
}

export interface BuildRecordInput {
  image: BuiltImage;
  configFile: string;
  layers: BuiltLayer[];
  /** Tree key of every package id the layers list. */
  treeKeys: ReadonlyMap<string, string>;
  droppedLayers: string[];
  packages: BuildRecord["packages"];
  conflicts: Record<string, string>;
  from?: string;
  pythonDrop?: Record<string, string>;
}

export async function writeBuildRecord(store: Store, b: BuildRecordInput): Promise<void> {
  const record: BuildRecord = {
    name: b.image.name,
    tag: b.image.tag,
    configFile: b.configFile,
    manifestDigest: b.image.manifestDescriptor.digest,
    manifest: b.image.manifest.toString("utf8"),
    config: b.image.config.toString("utf8"),
    layers: b.layers.map((l) => ({ ...l, trees: l.packages.map((id) => ({ id, key: b.treeKeys.get(id)! })) })),
    droppedLayers: b.droppedLayers,
    packages: [...b.packages].sort((x, y) => (x.id < y.id ? -1 : 1)),
    conflicts: b.conflicts,
    ...(b.from ? { from: b.from } : {}),
    ...(b.pythonDrop && Object.keys(b.pythonDrop).length ? { pythonDrop: b.pythonDrop } : {}),
  };
  const keys = [hexOf(b.image.manifestDescriptor.digest), buildRecordKey(b.image.name, b.image.tag), platformRecordKey(b.image.name, b.image.tag, platformOf(record))];
  await store.putRecord(BUILD_RECORDS, keys, record);
}

/** Every layer of the image in manifest order: the base image's (from the manifest; sizes uncompressed unknown) and the build's. */
export function imageLayers(rec: BuildRecord): Array<ReturnType<typeof layerSummary> & { base?: true }> {
  const manifest = JSON.parse(rec.manifest) as ImageManifest;
  const diffIds = (JSON.parse(rec.config) as ImageConfigFile).rootfs.diff_ids;
  const own = new Map(rec.layers.map((l) => [l.digest, l]));
  return manifest.layers.map((d, i) => {
    const l = own.get(d.digest);
    if (l) return layerSummary(l);
    return { name: `base ${i + 1}`, digest: d.digest, diffId: diffIds[i] ?? "", size: d.size, uncompressedSize: -1, mediaType: d.mediaType, reused: true, packages: [], base: true as const };
  });
}
