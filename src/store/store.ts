// The content-addressed store: artifacts and layer blobs by sha256, package
// trees by key, layer records by key. Every write goes to a temp path on the
// same filesystem and is renamed into place, so a killed build never leaves a
// partial entry, and two builds racing for one entry both end with a whole one.
// Store writes skip fsync (a killed process loses nothing the page cache holds);
// after a power loss, tree.json digests and the file hashes checked while
// layering catch a torn tree, which is then rebuilt.

import { closeSync, createReadStream, createWriteStream, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { createHash } from "node:crypto";
import { mkdir, rename, rm, mkdtemp } from "node:fs/promises";
import path from "node:path";
import { Transform, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { CorruptStoreError, HashMismatchError } from "../errors.ts";
import { hashFile, HashingStream, sha256Hex } from "../util/hash.ts";
import { stableJson } from "../util/json.ts";
import { userCacheHome, writeFileAtomic, writeSmallFileAtomicSync } from "../util/fs.ts";
import { devNull } from "../util/stream.ts";
import { TreeWriter, type TreeManifest, type TreeWriterOptions } from "./tree.ts";
import type { RecordKind } from "./record-kinds.ts";

export interface StoredTree {
  key: string;
  /** Directory holding file contents by image path. */
  rootDir: string;
  manifest: TreeManifest;
}

/**
 * A whole small file, read into one buffer reused by every call (valid until the next).
 * A build reads every tree's manifest (117 files, 2.2 MB in the torch-free stack): through
 * the thread pool that is four round trips each, and fresh buffers cost a page fault per
 * 4 KiB on this kind of VM.
 */
let scratch = Buffer.allocUnsafe(1 << 16);
function readScratch(file: string): Buffer {
  const fd = openSync(file, "r");
  try {
    let n = 0;
    for (;;) {
      if (n === scratch.length) {
        const bigger = Buffer.allocUnsafe(Math.max(scratch.length * 2, fstatSync(fd).size + 1));
        scratch.copy(bigger, 0, 0, n);
        scratch = bigger;
      }
      const got = readSync(fd, scratch, n, scratch.length - n, null);
      if (got === 0) return scratch.subarray(0, n);
      n += got;
    }
  } finally {
    closeSync(fd);
  }
}

/** Manifests whose entries were checked against entriesDigest as they were read. */
const checkedEntries = new WeakSet<TreeManifest>();
const ENTRIES_START = Buffer.from('{"entries":');
const ENTRIES_END = Buffer.from(',"entriesDigest":"');

/**
 * tree.json as ensureTree writes it (stableJson: "entries" first, "entriesDigest" next):
 * the entries are checked by hashing their own bytes, not by serialising the parsed
 * entries again, and parsed from exactly those bytes. Undefined for any other layout.
 */
function readTreeManifest(bytes: Buffer): TreeManifest | undefined {
  // The last one: an xattr named "entriesDigest" inside the entries comes before it, nothing after it can.
  const cut = bytes.lastIndexOf(ENTRIES_END);
  if (cut < 0 || !bytes.subarray(0, ENTRIES_START.length).equals(ENTRIES_START)) return undefined;
  const entriesBytes = bytes.subarray(ENTRIES_START.length, cut);
  const rest = JSON.parse(`{${bytes.toString("utf8", cut + 1)}`) as Omit<TreeManifest, "entries">;
  if (sha256Hex(entriesBytes) !== rest.entriesDigest) return undefined;
  const manifest = { ...rest, entries: JSON.parse(entriesBytes.toString("utf8")) as TreeManifest["entries"] } as TreeManifest;
  checkedEntries.add(manifest);
  return manifest;
}

/** A layer blob found damaged (and removed) before it was read: what the user sees. */
export const damagedLayerError = (name: string, digest: string, then: string): CorruptStoreError =>
  new CorruptStoreError(`store: the blob of layer ${name} (${digest}) is damaged: its bytes changed since it was built. It was removed; run \`layerfold build\` to rebuild it, then ${then}`);

export function defaultStoreDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.LAYERFOLD_STORE) return path.resolve(env.LAYERFOLD_STORE);
  return path.join(userCacheHome(env), "layerfold");
}

const HEX64 = /^[0-9a-f]{64}$/;
/** Record kind of blob stat signatures. */
export const BLOB_SIGNATURES = "blob-signatures";
/** A blob's stat signature stays with the blob. */
export const BLOB_SIGNATURE_RECORDS: RecordKind = { kind: BLOB_SIGNATURES, keep: (key, _rec, live) => live.blobs.has(key) };
interface BlobSignature { size: string; ino: string; mtime: string; ctime: string }

export class Store {
  constructor(readonly root: string) {}

  get tmpDir(): string { return path.join(this.root, "tmp"); }

  blobPath(hex: string): string {
    if (!HEX64.test(hex)) throw new Error(`not a sha256 hex digest: ${hex}`);
    return path.join(this.root, "blobs", "sha256", hex);
  }

  /** The blob's file when the store holds it (to hard-link into a layout), else undefined. */
  localBlobPath(hex: string): string | undefined {
    const p = this.blobPath(hex);
    return existsSync(p) ? p : undefined;
  }

  async blobSize(hex: string): Promise<number | undefined> {
    return statSync(this.blobPath(hex), { throwIfNoEntry: false })?.size;
  }

  async hasBlob(hex: string): Promise<boolean> {
    return (await this.blobSize(hex)) !== undefined;
  }

  openBlob(hex: string): Readable {
    return createReadStream(this.blobPath(hex), { highWaterMark: 1 << 20 });
  }

  /** Re-hash a stored blob; a blob that fails is removed so it gets fetched or built again. */
  async verifyBlob(hex: string): Promise<boolean> {
    let got: string;
    try {
      got = await hashFile(this.blobPath(hex));
    } catch {
      return false;
    }
    if (got === hex) {
      this.recordBlob(hex);
      return true;
    }
    await this.dropBlob(hex);
    return false;
  }

  // ---- blob signatures: a cheap check before every reuse ---------------------
  // As git's index does: the size, inode, mtime and ctime of a blob are recorded when
  // it is written (or last hashed). A blob whose stat still matches is the blob that
  // was hashed; any write to it (even one that restores its mtime) moves its ctime,
  // and then it is hashed in full again.

  private signature(hex: string): BlobSignature | undefined {
    const st = statSync(this.blobPath(hex), { bigint: true, throwIfNoEntry: false });
    return st && { size: String(st.size), ino: String(st.ino), mtime: String(st.mtimeNs), ctime: String(st.ctimeNs) };
  }

  /** Remember the stat signature of a blob just written or hashed. */
  recordBlob(hex: string): void {
    const sig = this.signature(hex);
    if (sig) writeSmallFileAtomicSync(this.recordPath(BLOB_SIGNATURES, hex), stableJson(sig));
  }

  /** Remove a blob that failed its hash, and its signature. */
  async dropBlob(hex: string): Promise<void> {
    await rm(this.blobPath(hex), { force: true });
    await rm(this.recordPath(BLOB_SIGNATURES, hex), { force: true });
  }

  /**
   * Is the stored blob intact? Its stat signature is compared with the one recorded
   * (no read); when they differ, or none was recorded, it is hashed in full. A blob that
   * fails is removed (so it is rebuilt or fetched again) and "damaged" returned.
   */
  async checkBlob(hex: string): Promise<"ok" | "missing" | "damaged"> {
    const sig = this.signature(hex);
    if (!sig) return "missing";
    const known = this.readRecord<BlobSignature>(BLOB_SIGNATURES, hex);
    if (known && known.size === sig.size && known.ino === sig.ino && known.mtime === sig.mtime && known.ctime === sig.ctime) return "ok";
    return (await this.verifyBlob(hex)) ? "ok" : "damaged";
  }

  /**
   * A blob's bytes as they stream, hashed on the way: a stream whose bytes do not hash to
   * `hex` fails at its end (before a reader sees it end) with a CorruptStoreError naming
   * `what`, and the blob is removed from the store.
   */
  openVerified(hex: string, what: string): Readable {
    const h = createHash("sha256");
    const store = this;
    const source = this.openBlob(hex);
    const out = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        h.update(chunk);
        cb(null, chunk);
      },
      flush(cb) {
        const got = h.digest("hex");
        if (got === hex) return cb();
        store.dropBlob(hex).then(
          () => cb(new CorruptStoreError(`store: ${what} is damaged: its bytes hash to sha256:${got}. It was removed from ${store.root}; run \`layerfold build\` again to rebuild it (or fetch it again)`)),
          cb,
        );
      },
    });
    source.on("error", (err) => out.destroy(err));
    return source.pipe(out);
  }

  /**
   * Stream into the store by digest. With `expected`, a mismatch is refused and
   * nothing is kept. `what` names the thing in errors.
   */
  async putBlob(source: Readable, opts: { expected?: string; what?: string } = {}): Promise<{ hex: string; size: number }> {
    await mkdir(this.tmpDir, { recursive: true });
    const tmp = path.join(this.tmpDir, `blob-${process.pid}-${Math.random().toString(36).slice(2)}`);
    const h = new HashingStream();
    try {
      await pipeline(source, h, createWriteStream(tmp));
      const hex = h.hex();
      if (opts.expected && opts.expected !== hex) {
        throw new HashMismatchError(
          `${opts.what ?? "download"}: sha256 is ${hex} but ${opts.expected} was expected. ` +
            `The file changed upstream or was tampered with; if the new file is trusted, update the hash (layerfold lock --update).`,
        );
      }
      const dest = this.blobPath(hex);
      await mkdir(path.dirname(dest), { recursive: true });
      await rename(tmp, dest);
      this.recordBlob(hex);
      return { hex, size: h.bytes };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /**
   * Pass a blob through while keeping a copy: the bytes go on to the reader and into a temp
   * file, which becomes the blob once the whole stream hashed to `hex`. A reader that stops
   * early, or a source that fails, leaves nothing behind. For blobs read from a registry
   * (base-image and shared-cache layers), so a second local build reads none of them again.
   */
  teeBlob(source: Readable, hex: string): Readable {
    const dest = this.blobPath(hex);
    mkdirSync(this.tmpDir, { recursive: true });
    const tmp = path.join(this.tmpDir, `blob-${process.pid}-${Math.random().toString(36).slice(2)}`);
    const fd = openSync(tmp, "w");
    const h = createHash("sha256");
    let open = true;
    const close = (keep: boolean) => {
      if (!open) return;
      open = false;
      closeSync(fd);
      if (keep && h.digest("hex") === hex) {
        mkdirSync(path.dirname(dest), { recursive: true });
        renameSync(tmp, dest);
        this.recordBlob(hex);
      } else rmSync(tmp, { force: true });
    };
    const out = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        h.update(chunk);
        // Synchronous: the reader's pace already bounds this, and the page cache takes it.
        for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off);
        cb(null, chunk);
      },
      flush(cb) {
        close(true);
        cb();
      },
    });
    out.on("close", () => close(false));
    source.on("error", (err) => out.destroy(err));
    return source.pipe(out);
  }

  async putBlobBytes(data: string | Uint8Array): Promise<{ hex: string; size: number }> {
    const buf = Buffer.from(data);
    const hex = sha256Hex(buf);
    const dest = this.blobPath(hex);
    if ((await this.checkBlob(hex)) !== "ok") {
      writeSmallFileAtomicSync(dest, buf);
      this.recordBlob(hex);
    }
    return { hex, size: buf.length };
  }

  // ---- package trees ---------------------------------------------------------

  /**
   * Trees this process wrote, hashing every file as it went: a layer built from them
   * in the same run need not hash their files again to catch a damaged store.
   */
  readonly writtenHere = new Set<string>();

  treeDir(key: string): string {
    return path.join(this.root, "trees", key);
  }

  /** A stored tree, or undefined when absent or corrupt (a corrupt one is removed). */
  async getTree(key: string): Promise<StoredTree | undefined> {
    const dir = this.treeDir(key);
    let manifest: TreeManifest | undefined;
    try {
      const bytes = readScratch(path.join(dir, "tree.json"));
      manifest = readTreeManifest(bytes) ?? (JSON.parse(bytes.toString("utf8")) as TreeManifest);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      await this.dropTree(key);
      return undefined;
    }
    if (manifest.key !== key || !Array.isArray(manifest.entries) || (!checkedEntries.has(manifest) && sha256Hex(stableJson(manifest.entries)) !== manifest.entriesDigest)) {
      await this.dropTree(key);
      return undefined;
    }
    return { key, rootDir: path.join(dir, "root"), manifest };
  }

  async dropTree(key: string): Promise<void> {
    const dir = this.treeDir(key);
    const trash = path.join(this.tmpDir, `trash-${key}-${process.pid}-${Date.now()}`);
    await mkdir(this.tmpDir, { recursive: true });
    try {
      await rename(dir, trash);
    } catch {
      return;
    }
    await rm(trash, { recursive: true, force: true });
  }

  /**
   * Return the tree for key, building it with `fill` when missing. The tree is
   * assembled in a temp dir and renamed in whole; if another build got there
   * first, its tree is used and ours discarded.
   */
  async ensureTree(
    key: string,
    packageId: string,
    fill: (w: TreeWriter) => Promise<void>,
    opts: TreeWriterOptions = {},
  ): Promise<{ tree: StoredTree; built: boolean }> {
    const existing = await this.getTree(key);
    if (existing) return { tree: existing, built: false };
    await mkdir(this.tmpDir, { recursive: true });
    await mkdir(path.join(this.root, "trees"), { recursive: true });
    const tmp = await mkdtemp(path.join(this.tmpDir, `tree-${key.slice(0, 12)}-`));
    try {
      const writer = new TreeWriter(path.join(tmp, "root"), packageId, opts);
      await mkdir(writer.rootDir, { recursive: true });
      await fill(writer);
      const manifest = writer.manifest(key, packageId);
      await writeFileAtomic(path.join(tmp, "tree.json"), stableJson(manifest), { fsync: false });
      try {
        await rename(tmp, this.treeDir(key));
        this.writtenHere.add(key);
        return { tree: { key, rootDir: path.join(this.treeDir(key), "root"), manifest }, built: true };
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== "ENOTEMPTY" && code !== "EEXIST") throw err;
      }
      // Another build got there first: use its tree.
      const tree = await this.getTree(key);
      if (!tree) throw new CorruptStoreError(`store: tree ${key} for ${packageId} vanished right after it was written; is another process cleaning ${this.root}?`);
      return { tree, built: true };
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }

  // ---- small JSON records (layer records, metadata caches) -------------------

  recordPath(kind: string, key: string): string {
    return path.join(this.root, kind, `${key}.json`);
  }

  async getRecord<T>(kind: string, key: string): Promise<T | undefined> {
    return this.readRecord<T>(kind, key);
  }

  /** getRecord, synchronously (records are small). */
  readRecord<T>(kind: string, key: string): T | undefined {
    try {
      return JSON.parse(readFileSync(this.recordPath(kind, key), "utf8")) as T;
    } catch {
      return undefined;
    }
  }

  /** Store `value` under one or more keys (serialised once). */
  async putRecord(kind: string, key: string | string[], value: unknown): Promise<void> {
    const text = stableJson(value, 2);
    for (const k of typeof key === "string" ? [key] : key) writeSmallFileAtomicSync(this.recordPath(kind, k), text);
  }

  async dropRecord(kind: string, key: string): Promise<void> {
    await rm(this.recordPath(kind, key), { force: true });
  }
}

