// Garbage collection of the store, and the register of processes using it.
//
// A store only grows: every build adds trees, layer blobs and records, and nothing
// removes what old builds needed (a torch stack's store reached 12 GB). `gc` keeps the
// newest builds of each image (name:tag) and everything they reach, and removes the rest.
//
// gc must never remove what a running command is about to use, so commands that open
// the store register in `users/` and gc runs only when no other user is alive:
//   user: write users/<pid>, then look for gc.lock (and wait while its owner lives);
//   gc:   create gc.lock exclusively, then look at users/ (and give up if one lives).
// Each side writes before it looks, so at least one of them sees the other.

import { linkSync, lstatSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, type Stats } from "node:fs";
import { chmod, readdir, rename, rm } from "node:fs/promises";
import path from "node:path";
import type { BuildRecord } from "../build/build.ts";
import type { LayerRecord } from "../layer/layer.ts";
import { NotFoundError, StoreBusyError } from "../errors.ts";
import { hexOf } from "../oci/types.ts";
import { writeSmallFileAtomicSync } from "../util/fs.ts";
import { BLOB_SIGNATURES, type Store } from "./store.ts";

// ---- who uses the store -------------------------------------------------------

/** "pid starttime": the start time (from /proc) tells a live process from a reused pid. */
function processId(pid: number): string | undefined {
  try {
    // Field 22 of /proc/PID/stat, counted after the ")" that ends the command name.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return `${pid} ${stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]}`;
  } catch {
    try {
      process.kill(pid, 0);
      return `${pid} ?`; // alive; no /proc to say since when
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === "EPERM" ? `${pid} ?` : undefined;
    }
  }
}

/** Whether the process a users/ or gc.lock file names is still running. */
function alive(owner: string): boolean {
  const [pidText, start] = owner.trim().split(" ");
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const now = processId(pid);
  return now !== undefined && (start === "?" || now.endsWith(" ?") || now === `${pid} ${start}`);
}

const usersDir = (store: Store) => path.join(store.root, "users");
const gcLockPath = (store: Store) => path.join(store.root, "gc.lock");
/** This process's users/ files, by store root; removed when it exits. */
const registered = new Map<string, string>();

const readOwner = (file: string): string | undefined => {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
};

/** Sleep without returning to the event loop (the CLI opens its store synchronously). */
const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * Register this process as a user of the store, once per store; the entry goes when the
 * process exits (a killed one leaves it, and gc sees its pid is gone). While a gc runs on
 * the store, wait for it, saying so once on stderr.
 */
export function registerStoreUser(store: Store, opts: { waitMs?: number } = {}): void {
  if (registered.has(store.root)) return;
  const me = processId(process.pid) ?? `${process.pid} ?`;
  const file = path.join(usersDir(store), String(process.pid));
  try {
    writeSmallFileAtomicSync(file, me);
  } catch {
    return; // a store we cannot write to cannot be collected by us either; commands report their own errors
  }
  if (!registered.size) process.once("exit", () => { for (const f of registered.values()) rmSync(f, { force: true }); });
  registered.set(store.root, file);
  const deadline = Date.now() + (opts.waitMs ?? 30 * 60_000);
  let said = false;
  for (;;) {
    const owner = readOwner(gcLockPath(store));
    if (owner === undefined || !alive(owner)) return;
    if (Date.now() > deadline) throw new StoreBusyError(`store ${store.root}: layerfold gc (pid ${owner.split(" ")[0]}) is still cleaning it; run again once it ends`);
    if (!said) process.stderr.write(`waiting for layerfold gc (pid ${owner.split(" ")[0]}) to finish with ${store.root}\n`);
    said = true;
    sleepSync(200);
  }
}

/** Take the store for gc: exclusive of other gcs and of every other live user. */
function lockForGc(store: Store): () => void {
  const lock = gcLockPath(store);
  const me = processId(process.pid) ?? `${process.pid} ?`;
  // The lock appears with its owner in it (written aside, then hard-linked into place, which
  // fails if it exists): another gc or a user never reads an empty lock as one left by a dead gc.
  const mine = `${lock}.${process.pid}`;
  writeFileSync(mine, me);
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(mine, lock);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 2) throw err;
        const owner = readOwner(lock);
        if (owner !== undefined && alive(owner)) throw new StoreBusyError(`store ${store.root}: another layerfold gc (pid ${owner.split(" ")[0]}) is running`);
        // Left by a gc that was killed. Moved aside first and checked: if another gc took the
        // lock in between, what was moved is its lock, and it goes back.
        const stale = `${lock}.stale-${process.pid}`;
        try {
          renameSync(lock, stale);
        } catch {
          continue;
        }
        if (readOwner(stale) !== owner) {
          try { linkSync(stale, lock); } catch { /* taken again meanwhile */ }
          rmSync(stale, { force: true });
          throw new StoreBusyError(`store ${store.root}: another layerfold gc is running`);
        }
        rmSync(stale, { force: true });
      }
    }
  } finally {
    rmSync(mine, { force: true });
  }
  const release = () => rmSync(lock, { force: true });
  const busy: string[] = [];
  for (const name of safeList(usersDir(store))) {
    if (name === String(process.pid)) continue;
    const file = path.join(usersDir(store), name);
    // A user's entry being written (temp + rename): that user looks for this lock once it is
    // in place, and waits. Only a killed writer's old temp file goes.
    if (name.startsWith(".") && Date.now() - (statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? 0) < 60_000) continue;
    const owner = readOwner(file);
    if (owner !== undefined && alive(owner)) busy.push(name);
    else rmSync(file, { force: true });
  }
  if (busy.length) {
    release();
    throw new StoreBusyError(`store ${store.root} is in use by layerfold process${busy.length > 1 ? "es" : ""} ${busy.join(", ")}; run gc once ${busy.length > 1 ? "they end" : "it ends"} (nothing was removed)`);
  }
  return release;
}

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

interface Live {
  blobs: Set<string>;
  trees: Set<string>;
  layerKeys: Set<string>;
  manifests: Set<string>;
  /** sha256 of every kept package's artifact, kept or not (records about it stay). */
  artifacts: Set<string>;
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function platformOf(rec: BuildRecord): string {
  try {
    const c = JSON.parse(rec.config) as { os?: string; architecture?: string; variant?: string };
    return [c.os, c.architecture, c.variant].filter(Boolean).join("/");
  } catch {
    return "";
  }
}

/** The build records in the store, newest first per image, as [kept, dropped]. */
function pickBuilds(store: Store, keep: number, notBefore: number): { kept: BuildRecord[]; dropped: BuildRecord[] } {
  const byImage = new Map<string, Array<{ rec: BuildRecord; mtime: number }>>();
  for (const name of safeList(path.join(store.root, "builds"))) {
    if (!name.endsWith(".json")) continue;
    const file = path.join(store.root, "builds", name);
    const rec = store.readRecord<BuildRecord>("builds", name.slice(0, -".json".length));
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
function liveSet(kept: BuildRecord[], artifacts: boolean): Live {
  const live: Live = { blobs: new Set(), trees: new Set(), layerKeys: new Set(), manifests: new Set(), artifacts: new Set() };
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
    if (!opts.indexes) for (const name of safeList(path.join(store.root, "debian-index"))) live.blobs.add(name.replace(/\.json$/, ""));

    const keptDigests = new Set(kept.map((r) => r.manifestDigest));
    await sweepRecords<BuildRecord>("builds", (_key, rec) => !!rec && keptDigests.has(rec.manifestDigest));
    for (const name of safeList(path.join(store.root, "trees"))) if (!live.trees.has(name)) await remove("trees", path.join(store.root, "trees", name));
    for (const name of safeList(path.join(store.root, "rootfs"))) if (!live.manifests.has(name.split("-")[0]!)) await remove("rootfs", path.join(store.root, "rootfs", name));
    const blobDir = path.join(store.root, "blobs", "sha256");
    for (const name of safeList(blobDir)) if (!live.blobs.has(name)) await remove("blobs", path.join(blobDir, name));

    // Records that only make sense beside a kept blob, tree or layer.
    await sweepRecords<LayerRecord>("layers", (key, rec) => live.layerKeys.has(key) || (!!rec && typeof rec.digest === "string" && live.blobs.has(hexOf(rec.digest))));
    await sweepRecords<{ blob?: string }>("zstd-frames", (_key, rec) => !!rec?.blob && live.blobs.has(rec.blob));
    await sweepRecords<{ parts?: Array<{ key: string }> }>("plans", (_key, rec) => Array.isArray(rec?.parts) && rec.parts.every((p) => live.layerKeys.has(p.key)));
    await sweepRecords("elf-scan", (key) => live.trees.has(key));
    await sweepRecords("debian-control", (key) => live.artifacts.has(key));
    await sweepRecords("registry-blobs", (key) => live.blobs.has(key));
    await sweepRecords(BLOB_SIGNATURES, (key) => live.blobs.has(key));
    await sweepRecords<{ sha256?: string }>("py-build", (_key, rec) => !!rec?.sha256 && live.artifacts.has(rec.sha256));
    if (opts.indexes) {
      await sweepRecords("debian-index", () => false);
      await sweepRecords("py-metadata", () => false);
      for (const name of safeList(path.join(store.root, "git"))) await remove("git", path.join(store.root, "git", name));
    }
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
