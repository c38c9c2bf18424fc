// The deterministic layer tar: entries sorted by path, explicit parent
// directories, uid/gid from the tree (0 unless overridden), one fixed mtime,
// no user or group names, pax records for long names, big sizes and xattrs
// (byte-exact). File contents are re-hashed while streaming and checked
// against the tree manifest, so a corrupted store entry is never published.

import { createHash } from "node:crypto";
import { closeSync, openSync, readSync } from "node:fs";
import path from "node:path";
import { CorruptStoreError } from "../errors.ts";
import type { TreeEntry } from "../store/tree.ts";

/** One entry of a layer and where its content lives. */
export interface LayerEntry {
  entry: TreeEntry;
  /** The tree's root/ directory (for file contents). */
  rootDir: string;
  /** Package id, for error messages. */
  packageId: string;
  /** Store key of the tree, so a corrupt one can be dropped. */
  treeKey: string;
}

const enc = new TextEncoder();

function octal(buf: Buffer, off: number, len: number, value: number): void {
  const s = value.toString(8).padStart(len - 1, "0");
  buf.write(s + "\0", off, len, "latin1");
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, "utf8"), value, Buffer.from("\n")]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len), "latin1"), body]);
}

/** Split a path into ustar name/prefix, or undefined when it does not fit. */
function splitUstar(p: string): { name: string; prefix: string } | undefined {
  const bytes = enc.encode(p).length;
  if (bytes <= 100) return { name: p, prefix: "" };
  for (let i = p.indexOf("/"); i >= 0; i = p.indexOf("/", i + 1)) {
    const prefix = p.slice(0, i);
    const name = p.slice(i + 1);
    if (enc.encode(prefix).length <= 155 && enc.encode(name).length <= 100 && name.length > 0) return { name, prefix };
  }
  return undefined;
}

const MAX_OCTAL_11 = 0o77777777777;
const MAX_OCTAL_7 = 0o7777777;

function header(opts: { name: string; prefix: string; mode: number; uid: number; gid: number; size: number; mtime: number; type: string; linkname: string }): Buffer {
  const b = Buffer.alloc(512, 0);
  b.write(opts.name, 0, 100, "utf8");
  octal(b, 100, 8, opts.mode & 0o7777);
  octal(b, 108, 8, Math.min(opts.uid, MAX_OCTAL_7));
  octal(b, 116, 8, Math.min(opts.gid, MAX_OCTAL_7));
  octal(b, 124, 12, Math.min(opts.size, MAX_OCTAL_11));
  octal(b, 136, 12, Math.min(opts.mtime, MAX_OCTAL_11));
  b.fill(0x20, 148, 156);
  b.write(opts.type, 156, 1, "latin1");
  b.write(opts.linkname, 157, 100, "utf8");
  b.write("ustar\0", 257, 6, "latin1");
  b.write("00", 263, 2, "latin1");
  octal(b, 329, 8, 0);
  octal(b, 337, 8, 0);
  b.write(opts.prefix, 345, 155, "utf8");
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += b[i]!;
  b.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8, "latin1");
  return b;
}

const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512, 0);

/** Header blocks (pax + ustar) for one entry. */
export function entryHeaders(e: TreeEntry, mtime: number): Buffer[] {
  const isDir = e.type === "dir";
  const tarPath = isDir ? `${e.path}/` : e.path;
  const type = e.type === "file" ? "0" : e.type === "dir" ? "5" : e.type === "symlink" ? "2" : "1";
  const size = e.type === "file" ? e.size ?? 0 : 0;
  const linkname = e.type === "symlink" || e.type === "hardlink" ? e.target ?? "" : "";
  const pax: Buffer[] = [];
  const split = splitUstar(tarPath);
  if (!split) pax.push(paxRecord("path", Buffer.from(tarPath, "utf8")));
  if (enc.encode(linkname).length > 100) pax.push(paxRecord("linkpath", Buffer.from(linkname, "utf8")));
  if (size > MAX_OCTAL_11) pax.push(paxRecord("size", Buffer.from(String(size))));
  if (e.uid > MAX_OCTAL_7) pax.push(paxRecord("uid", Buffer.from(String(e.uid))));
  if (e.gid > MAX_OCTAL_7) pax.push(paxRecord("gid", Buffer.from(String(e.gid))));
  for (const key of Object.keys(e.xattrs ?? {}).sort()) pax.push(paxRecord(`SCHILY.xattr.${key}`, Buffer.from(e.xattrs![key]!, "base64")));
  const out: Buffer[] = [];
  if (pax.length) {
    const body = Buffer.concat(pax);
    const paxName = `PaxHeaders/${path.posix.basename(e.path)}`.slice(0, 100);
    out.push(header({ name: paxName, prefix: "", mode: 0o644, uid: 0, gid: 0, size: body.length, mtime, type: "x", linkname: "" }), body, pad(body.length));
  }
  const fit = split ?? { name: tarPath.slice(0, 100), prefix: "" };
  out.push(header({ name: fit.name, prefix: fit.prefix, mode: e.mode, uid: e.uid, gid: e.gid, size, mtime, type, linkname: linkname.slice(0, 100) }));
  return out;
}

/**
 * Add parent directories that no entry provides, with the metadata the image
 * already gives them (`knownDirs`) so an upper layer never changes a
 * directory's mode; sort by path.
 */
export function withParents(entries: LayerEntry[], knownDirs?: Map<string, TreeEntry>): LayerEntry[] {
  const byPath = new Map<string, LayerEntry>();
  for (const e of entries) byPath.set(e.entry.path, e);
  for (const e of entries) {
    let p = path.posix.dirname(e.entry.path);
    while (p !== "." && p !== "/" && !byPath.has(p)) {
      byPath.set(p, { entry: knownDirs?.get(p) ?? { path: p, type: "dir", mode: 0o755, uid: 0, gid: 0 }, rootDir: "", packageId: "(parent directory)", treeKey: "" });
      p = path.posix.dirname(p);
    }
  }
  return [...byPath.values()].sort((a, b) => (a.entry.path < b.entry.path ? -1 : a.entry.path > b.entry.path ? 1 : 0));
}

/** Where the layer tar goes. `write` resolves once the chunk's memory may be reused. */
export interface ChunkSink {
  write(chunk: Buffer): Promise<void>;
}

/** Ring buffers: the tar is assembled in a few fixed buffers, reused once their chunk is written. */
const RING = 4;
const CHUNK = 1 << 20;

/**
 * Write the tar of a layer to `sink`. `entries` must be sorted with parents present
 * (see withParents). File contents are read straight into reused buffers: on this kind
 * of VM a fresh buffer costs a page fault per 4 KiB, more than reading the page cache.
 * Each file is re-hashed against its tree, unless its tree is in `verified`.
 */
export async function writeLayerTar(entries: LayerEntry[], mtime: number, sink: ChunkSink, opts: { verified?: ReadonlySet<string> } = {}): Promise<void> {
  const ring = Array.from({ length: RING }, () => ({ buf: Buffer.allocUnsafe(CHUNK), free: Promise.resolve() }));
  let cur = 0;
  let off = 0;
  const flush = async () => {
    if (off === 0) return;
    const slot = ring[cur]!;
    slot.free = sink.write(slot.buf.subarray(0, off));
    // A failed write is reported when its slot comes round again, or at the end.
    slot.free.catch(() => {});
    cur = (cur + 1) % RING;
    off = 0;
    await ring[cur]!.free;
  };
  const put = async (b: Buffer) => {
    for (let at = 0; at < b.length;) {
      const n = b.copy(ring[cur]!.buf, off, at);
      off += n;
      at += n;
      if (off === CHUNK) await flush();
    }
  };
  for (const le of entries) {
    const e = le.entry;
    for (const h of entryHeaders(e, mtime)) await put(h);
    if (e.type !== "file") continue;
    const size = e.size ?? 0;
    // Trees hashed moments ago by this process are only size-checked.
    const hash = opts.verified?.has(le.treeKey) ? undefined : createHash("sha256");
    let n = 0;
    let fd: number | undefined;
    try {
      fd = openSync(path.join(le.rootDir, e.path), "r");
      // Read one byte past the recorded size, to notice a file that grew.
      while (n <= size) {
        if (off === CHUNK) await flush();
        const want = Math.min(CHUNK - off, size - n + 1);
        const got = readSync(fd, ring[cur]!.buf, off, want, null);
        if (got === 0) break;
        hash?.update(ring[cur]!.buf.subarray(off, off + got));
        off += got;
        n += got;
      }
    } catch {
      n = -1;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    if (n !== size || (hash && hash.digest("hex") !== e.sha256)) {
      throw new CorruptStoreError(`store: ${e.path} of ${le.packageId} (tree ${le.treeKey}) does not match its recorded size or sha256; the tree will be rebuilt`);
    }
    await put(pad(size));
  }
  await put(Buffer.alloc(1024, 0));
  await flush();
  await Promise.all(ring.map((r) => r.free));
}
