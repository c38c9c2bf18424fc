// Garbage collection of the store: keep the newest builds of each image (name:tag and
// platform) and everything they reach, remove the rest. A store only grows otherwise:
// every build adds trees, layer blobs and records, and nothing removes what old builds
// needed (a torch stack's store reached 12 GB). It runs under the store's gc lock
// (src/store/users.ts), so nothing a running command is about to use goes.

import { lstatSync, readdirSync, statSync, type Stats } from "node:fs";
import { chmod, readdir, rename, rm } from "node:fs/promises";
import path from "node:path";
import { hexOf } from "../constants.ts";
import { NotFoundError } from "../errors.ts";
import { PLAN_RECORDS } from "../fold/plan.ts";
import { LAYER_RECORDS } from "../layer/layer.ts";
import { FRAME_RECORDS } from "../layer/frames.ts";
import { CHUNKED_SEGMENT_RECORDS } from "../layer/chunked.ts";
import { REGISTRY_BLOB_RECORDS } from "../registry/push.ts";
import { ELF_SCAN_RECORDS } from "../runtime/libcheck.ts";
import { DEBIAN_CONTROL_RECORDS } from "../sources/debian/index.ts";
import { DEBIAN_INDEX_RECORDS } from "../sources/debian/index-file.ts";
import { PY_BUILD_RECORDS } from "../sources/python/build.ts";
import { PY_METADATA_RECORDS } from "../sources/python/finder.ts";
import type { RecordKind, Reachable } from "../store/record-kinds.ts";
import { BLOB_SIGNATURE_RECORDS, type Store } from "../store/store.ts";
import { lockForGc, safeList } from "../store/users.ts";
import { BUILD_RECORDS, platformOf, type BuildRecord } from "./records.ts";

/** Every kind of record in the store but builds, with the lifetime its owner declares. */
const RECORD_KINDS: RecordKind<never>[] = [
  LAYER_RECORDS,
  FRAME_RECORDS,
  CHUNKED_SEGMENT_RECORDS,
  PLAN_RECORDS,
  ELF_SCAN_RECORDS,
  DEBIAN_CONTROL_RECORDS,
  REGISTRY_BLOB_RECORDS,
  BLOB_SIGNATURE_RECORDS,
  PY_BUILD_RECORDS,
  DEBIAN_INDEX_RECORDS,
  PY_METADATA_RECORDS,
];

// ---- what to keep -------------------------------------------------------------

export interface GcOptions {
  /** Builds kept per image name:tag and platform, newest first (at least 1). */
  keep?: number;
  /** Builds made longer ago than this (ms) go too, even the newest of their image. */
  olderThanMs?: number;
  /** Also drop the index caches (Debian Packages indexes, Python metadata, git mirrors). */
  indexes?: boolean;
  /** Also drop the downloaded artifacts (wheels, .debs, archives) of packages whose installed trees are kept. */
  artifacts?: boolean;
  /** Report what would go; remove nothing. */
  dryRun?: boolean;
  /**
   * Removes a directory this user cannot: a rootless run's cached root filesystem holds
   * files of the user's subordinate ids (the runtime passes one that works in its user namespace).
   */
  removeTree?: (dir: string) => Promise<void>;
}

export interface GcPart { kind: string; removed: number; bytes: number }

export interface GcReport {
  store: string;
  dryRun: boolean;
  kept: Array<{ image: string; manifestDigest: string }>;
  dropped: Array<{ image: string; manifestDigest: string }>;
  parts: GcPart[];
  /** Bytes the removed entries held on disk (hard-linked files counted where their last link goes). */
  freedBytes: number;
  /** Bytes the store holds afterwards (before, with dryRun). */
  storeBytes: number;
  seconds: number;
}


/** The build records in the store, newest first per image, as [kept, dropped]. */
function pickBuilds(store: Store, keep: number, notBefore: number): { kept: BuildRecord[]; dropped: BuildRecord[] } {
  const byImage = new Map<string, Array<{ rec: BuildRecord; mtime: number }>>();
  for (const name of safeList(path.join(store.root, BUILD_RECORDS))) {
    if (!name.endsWith(".json")) continue;
    const file = path.join(store.root, BUILD_RECORDS, name);
    const rec = store.readRecord<BuildRecord>(BUILD_RECORDS, name.slice(0, -".json".length));
    // Each build has two records, by manifest digest and by name:tag ("the latest", rewritten
    // by every build of the tag): the first tells when this build was last made.
    if (!rec || typeof rec.manifestDigest !== "string" || !Array.isArray(rec.layers) || name !== `${hexOf(rec.manifestDigest)}.json`) continue;
    // One image per platform: an arm64 build must not push out the amd64 one of the same tag.
    const image = `${rec.name}:${rec.tag} ${platformOf(rec)}`;
    byImage.set(image, [...(byImage.get(image) ?? []), { rec, mtime: statSync(file).mtimeMs }]);
  }
  const kept: BuildRecord[] = [];
  const dropped: BuildRecord[] = [];
  for (const builds of byImage.values()) {
    builds.sort((a, b) => b.mtime - a.mtime);
    builds.forEach((b, i) => (i < keep && b.mtime >= notBefore ? kept : dropped).push(b.rec));
  }
  return { kept, dropped };
}

/** Everything the kept builds reach: their blobs (manifest, config, layers, artifacts), trees and layer records. */
function liveSet(kept: BuildRecord[], artifacts: boolean): Reachable {
  const live: Reachable = { blobs: new Set(), trees: new Set(), layerKeys: new Set(), manifests: new Set(), artifacts: new Set() };
  for (const rec of kept) {
    live.manifests.add(hexOf(rec.manifestDigest));
    live.blobs.add(hexOf(rec.manifestDigest));
    try {
      const m = JSON.parse(rec.manifest) as { config?: { digest?: string }; layers?: Array<{ digest?: string }> };
      live.blobs.add(hexOf(m.config?.digest ?? ""));
      for (const l of m.layers ?? []) live.blobs.add(hexOf(l.digest ?? "")); // base-image layers too
    } catch { /* a record without a readable manifest keeps what its layers name */ }
    for (const l of rec.layers) {
      live.blobs.add(hexOf(l.digest));
      live.layerKeys.add(l.key);
      for (const t of l.trees ?? []) live.trees.add(t.key);
    }
    // A package's artifact is needed again only to reinstall its tree.
    const installed = new Set(rec.layers.flatMap((l) => (l.trees ?? []).map((t) => t.id)));
    for (const p of rec.packages ?? []) {
      if (!p.artifact?.sha256) continue;
      live.artifacts.add(p.artifact.sha256);
      if (!(artifacts && installed.has(p.id))) live.blobs.add(p.artifact.sha256);
    }
  }
  return live;
}

// ---- sizes and removal -------------------------------------------------------

/** Disk bytes of a file or directory tree; a file with other links counts once, by inode, in `seen`. */
function diskBytes(p: string, seen: Set<string>): number {
  let st: Stats;
  try {
    st = lstatSync(p);
  } catch {
    return 0;
  }
  let n = 0;
  if (st.nlink > 1 && !st.isDirectory()) {
    const id = `${st.dev}:${st.ino}`;
    if (seen.has(id)) return 0;
    seen.add(id);
  }
  n += st.blocks * 512;
  if (st.isDirectory()) for (const name of safeList(p)) n += diskBytes(path.join(p, name), seen);
  return n;
}

/** Remove a file or a whole directory; a directory is first renamed aside, so no half-removed entry ever looks whole. */
async function removeEntry(store: Store, p: string, removeTree?: (dir: string) => Promise<void>): Promise<void> {
  const st = lstatSync(p, { throwIfNoEntry: false });
  if (!st) return;
  if (!st.isDirectory()) return rm(p, { force: true });
  const trash = path.join(store.tmpDir, `gc-${path.basename(p)}-${process.pid}-${Math.random().toString(36).slice(2)}`);
  await rename(p, trash);
  try {
    await rm(trash, { recursive: true, force: true });
  } catch (err) {
    // An image's read-only directories (0555) stop a non-root rm: open them up and go again.
    if ((err as NodeJS.ErrnoException).code !== "EACCES" && (err as NodeJS.ErrnoException).code !== "EPERM") throw err;
    await openUp(trash);
    try {
      await rm(trash, { recursive: true, force: true });
    } catch (again) {
      const code = (again as NodeJS.ErrnoException).code;
      if (!removeTree || (code !== "EACCES" && code !== "EPERM")) throw again;
      await removeTree(trash);
    }
  }
}

async function openUp(dir: string): Promise<void> {
  await chmod(dir, 0o700).catch(() => {});
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) if (e.isDirectory()) await openUp(path.join(dir, e.name));
}

/**
 * Remove what the newest `keep` builds of each image do not reach. Index caches stay
 * unless `indexes` (a build with an unchanged lock reads none of them, but `layerfold lock`
 * would download them again), and so do the artifacts of kept packages unless `artifacts`
 * (their trees are installed; a tree that is lost or must be reinstalled downloads its
 * artifact again). The store's tmp/ is emptied: no other user is alive.
 */
export async function collectGarbage(store: Store, opts: GcOptions = {}): Promise<GcReport> {
  const t0 = performance.now();
  const keep = Math.max(1, Math.floor(opts.keep ?? 1));
  if (!statSync(store.root, { throwIfNoEntry: false })?.isDirectory()) {
    throw new NotFoundError(`no store at ${store.root}; pass --store DIR or set LAYERFOLD_STORE`);
  }
  const release = lockForGc(store);
  try {
    const { kept, dropped } = pickBuilds(store, keep, opts.olderThanMs === undefined ? -Infinity : Date.now() - opts.olderThanMs);
    const live = liveSet(kept, !!opts.artifacts);
    const seen = new Set<string>();
    const parts = new Map<string, GcPart>();
    const remove = async (kind: string, p: string) => {
      const part = parts.get(kind) ?? { kind, removed: 0, bytes: 0 };
      parts.set(kind, part);
      part.removed++;
      part.bytes += diskBytes(p, seen);
      if (!opts.dryRun) await removeEntry(store, p, opts.removeTree);
    };
    /** Records of `kind` (one JSON file per key) kept when `keepIt(key, record)` says so. */
    const sweepRecords = async <T>(kind: string, keepIt: (key: string, rec: T | undefined) => boolean) => {
      for (const name of safeList(path.join(store.root, kind))) {
        const file = path.join(store.root, kind, name);
        const key = name.replace(/\.json$/, "");
        if (!name.endsWith(".json") || !keepIt(key, store.readRecord<T>(kind, key))) await remove(kind, file);
      }
    };

    // Index caches are named by the Packages blobs they were parsed from.
    if (!opts.indexes) for (const name of safeList(path.join(store.root, DEBIAN_INDEX_RECORDS.kind))) live.blobs.add(name.replace(/\.json$/, ""));

    const keptDigests = new Set(kept.map((r) => r.manifestDigest));
    await sweepRecords<BuildRecord>(BUILD_RECORDS, (_key, rec) => !!rec && keptDigests.has(rec.manifestDigest));
    for (const name of safeList(path.join(store.root, "trees"))) if (!live.trees.has(name)) await remove("trees", path.join(store.root, "trees", name));
    for (const name of safeList(path.join(store.root, "rootfs"))) if (!live.manifests.has(name.split("-")[0]!)) await remove("rootfs", path.join(store.root, "rootfs", name));
    const blobDir = path.join(store.root, "blobs", "sha256");
    for (const name of safeList(blobDir)) if (!live.blobs.has(name)) await remove("blobs", path.join(blobDir, name));

    // Records that only make sense beside a kept blob, tree, layer or artifact; index caches only with --indexes.
    for (const k of RECORD_KINDS) {
      if (k.index) { if (opts.indexes) await sweepRecords(k.kind, () => false); }
      else await sweepRecords(k.kind, (key, rec) => (k as RecordKind<unknown>).keep(key, rec, live));
    }
    if (opts.indexes) for (const name of safeList(path.join(store.root, "git"))) await remove("git", path.join(store.root, "git", name));
    // Temp files of killed runs (nobody else is using the store now).
    for (const name of safeList(store.tmpDir)) await remove("tmp", path.join(store.tmpDir, name));

    const all = [...parts.values()];
    return {
      store: store.root,
      dryRun: !!opts.dryRun,
      kept: kept.map((r) => ({ image: `${r.name}:${r.tag}`, manifestDigest: r.manifestDigest })),
      dropped: dropped.map((r) => ({ image: `${r.name}:${r.tag}`, manifestDigest: r.manifestDigest })),
      parts: all,
      freedBytes: all.reduce((n, p) => n + p.bytes, 0),
      storeBytes: diskBytes(store.root, new Set()),
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    release();
  }
}
