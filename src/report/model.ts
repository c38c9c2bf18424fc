// What every view of a built image reads: the build record, each package's
// installed size (from its tree manifest in the store) and the lock entries
// (for versions, artifacts, dependency edges and kind-specific meta).
// `why`, `report` and `sbom` all start from this one model.

import { layerSummary, type BuildRecord } from "../catalog/records.ts";
import { lockPathFor, readLock } from "../lock/lock.ts";
import type { LockedPackage } from "../sources/types.ts";
import type { Store } from "../store/store.ts";

export interface ModelPackage {
  id: string;
  kind: string;
  name: string;
  version: string;
  layer: string;
  /** The package that pulled this one into its layer (undefined for a layer root). */
  via?: string;
  /** Bytes of regular files in the installed tree; undefined when the tree is gone from the store. */
  bytes?: number;
  files?: number;
  artifact?: LockedPackage["artifact"];
  deps: string[];
  meta?: Record<string, unknown>;
}

export type ModelLayer = ReturnType<typeof layerSummary>;

export interface DuplicationFigures {
  /** Folded: every package in exactly one layer (what the image is). */
  folded: number;
  /** Cumulative: layer i holds everything in layers 0..i (sum over i of sizes up to i). */
  cumulative: number;
  /** cumulative - folded */
  avoided: number;
}

export interface ImageModel {
  image: string;
  name: string;
  tag: string;
  manifestDigest: string;
  layers: ModelLayer[];
  /** Sorted by id. Includes generated:* trees of the final layer. */
  packages: ModelPackage[];
  droppedLayers: string[];
  totals: { size: number; uncompressedSize: number; packages: number };
  duplication: { compressed: DuplicationFigures; uncompressed: DuplicationFigures };
  /** True when a lock file was found next to the config (versions, deps and meta come from it). */
  haveLock: boolean;
}

/** Split "deb:libc6" into kind and name; ids without a kind prefix get kind "". */
export function splitId(id: string): { kind: string; name: string } {
  const i = id.indexOf(":");
  return i < 0 ? { kind: "", name: id } : { kind: id.slice(0, i), name: id.slice(i + 1) };
}

/** Folded vs cumulative bytes for a list of per-layer sizes, in image order. */
export function duplication(sizes: number[]): DuplicationFigures {
  let prefix = 0;
  let cumulative = 0;
  for (const s of sizes) {
    prefix += s;
    cumulative += prefix;
  }
  return { folded: prefix, cumulative, avoided: cumulative - prefix };
}

/** The lock next to the build's config, if it is still there. */
async function lockFor(rec: BuildRecord): Promise<Map<string, LockedPackage>> {
  if (!rec.configFile) return new Map();
  const lock = await readLock(lockPathFor(rec.configFile)).catch(() => undefined);
  return new Map((lock?.packages ?? []).map((p) => [p.id, p]));
}

export async function loadImageModel(store: Store, rec: BuildRecord, opts: { lock?: Map<string, LockedPackage> } = {}): Promise<ImageModel> {
  const locked = opts.lock ?? (await lockFor(rec));
  const recorded = new Map(rec.packages.map((p) => [p.id, p]));
  const packages: ModelPackage[] = [];
  for (const layer of rec.layers) {
    for (const t of layer.trees ?? layer.packages.map((id) => ({ id, key: "" }))) {
      const tree = t.key ? await store.getTree(t.key) : undefined;
      const r = recorded.get(t.id);
      const l = locked.get(t.id);
      const { kind, name } = splitId(t.id);
      // A lock entry is only trusted for this build when it names the same version.
      const lockOk = l && (!r || l.version === r.version);
      const artifact = r?.artifact ?? (lockOk ? l.artifact : undefined);
      packages.push({
        id: t.id,
        kind: lockOk ? l.kind : kind,
        name: lockOk ? l.name : name,
        version: r?.version ?? (lockOk ? l.version : ""),
        layer: layer.name,
        ...(r?.via ? { via: r.via } : {}),
        ...(tree ? { bytes: tree.manifest.size, files: tree.manifest.entries.filter((e) => e.type === "file").length } : {}),
        ...(artifact ? { artifact } : {}),
        deps: lockOk ? [...l.deps].sort() : [],
        ...(lockOk && l.meta ? { meta: l.meta } : {}),
      });
    }
  }
  // A split layer lists the same package in several parts; keep the first.
  const seen = new Set<string>();
  const unique = packages.filter((p) => (seen.has(p.id) ? false : (seen.add(p.id), true))).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const layers: ModelLayer[] = rec.layers.map(layerSummary);
  return {
    image: `${rec.name}:${rec.tag}`,
    name: rec.name,
    tag: rec.tag,
    manifestDigest: rec.manifestDigest,
    layers,
    packages: unique,
    droppedLayers: rec.droppedLayers ?? [],
    totals: {
      size: layers.reduce((n, l) => n + l.size, 0),
      uncompressedSize: layers.reduce((n, l) => n + l.uncompressedSize, 0),
      packages: unique.length,
    },
    duplication: {
      compressed: duplication(layers.map((l) => l.size)),
      uncompressed: duplication(layers.map((l) => l.uncompressedSize)),
    },
    haveLock: locked.size > 0,
  };
}
