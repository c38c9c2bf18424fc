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
  if (Buffer.byteLength(p, "utf8") <= 100) return { name: p, prefix: "" };
  for (let i = p.indexOf("/"); i >= 0; i = p.indexOf("/", i + 1)) {
    const prefix = p.slice(0, i);
    const name = p.slice(i + 1);
    if (Buffer.byteLength(prefix, "utf8") <= 155 && Buffer.byteLength(name, "utf8") <= 100 && name.length > 0) return { name, prefix };
  }
  return undefined;
}

const MAX_OCTAL_11 = 0o77777777777;
const MAX_OCTAL_7 = 0o7777777;

interface HeaderFields { name: string; prefix: string; mode: number; uid: number; gid: number; size: number; mtime: number; type: string; linkname: string }

/** One 512-byte ustar header, written at `at` of `b` (the layer tar writes straight into its ring buffer). */
function writeHeader(b: Buffer, at: number, opts: HeaderFields): void {
  b.fill(0, at, at + 512);
  b.write(opts.name, at, 100, "utf8");
  octal(b, at + 100, 8, opts.mode & 0o7777);
  octal(b, at + 108, 8, Math.min(opts.uid, MAX_OCTAL_7));
  octal(b, at + 116, 8, Math.min(opts.gid, MAX_OCTAL_7));
  octal(b, at + 124, 12, Math.min(opts.size, MAX_OCTAL_11));
  octal(b, at + 136, 12, Math.min(opts.mtime, MAX_OCTAL_11));
  b.fill(0x20, at + 148, at + 156);
  b.write(opts.type, at + 156, 1, "latin1");
  b.write(opts.linkname, at + 157, 100, "utf8");
  b.write("ustar\0", at + 257, 6, "latin1");
  b.write("00", at + 263, 2, "latin1");
  octal(b, at + 329, 8, 0);
  octal(b, at + 337, 8, 0);
  b.write(opts.prefix, at + 345, 155, "utf8");
  let sum = 0;
  for (let i = at; i < at + 512; i++) sum += b[i]!;
  b.write(sum.toString(8).padStart(6, "0") + "\0 ", at + 148, 8, "latin1");
}

function header(opts: HeaderFields): Buffer {
  const b = Buffer.alloc(512);
  writeHeader(b, 0, opts);
  return b;
}

const ZEROS = Buffer.alloc(1024, 0);
const pad = (n: number) => ZEROS.subarray(0, (512 - (n % 512)) % 512);

/** The pax records an entry needs (none for most), and its ustar header fields. */
function entryFields(e: TreeEntry, mtime: number): { pax: Buffer[]; fields: HeaderFields } {
  const isDir = e.type === "dir";
  const tarPath = isDir ? `${e.path}/` : e.path;
  const type = e.type === "file" ? "0" : e.type === "dir" ? "5" : e.type === "symlink" ? "2" : "1";
  const size = e.type === "file" ? e.size ?? 0 : 0;
  const linkname = e.type === "symlink" || e.type === "hardlink" ? e.target ?? "" : "";
  const pax: Buffer[] = [];
  const split = splitUstar(tarPath);
  if (!split) pax.push(paxRecord("path", Buffer.from(tarPath, "utf8")));
  if (linkname.length && Buffer.byteLength(linkname, "utf8") > 100) pax.push(paxRecord("linkpath", Buffer.from(linkname, "utf8")));
  if (size > MAX_OCTAL_11) pax.push(paxRecord("size", Buffer.from(String(size))));
  if (e.uid > MAX_OCTAL_7) pax.push(paxRecord("uid", Buffer.from(String(e.uid))));
  if (e.gid > MAX_OCTAL_7) pax.push(paxRecord("gid", Buffer.from(String(e.gid))));
  if (e.xattrs) for (const key of Object.keys(e.xattrs).sort()) pax.push(paxRecord(`SCHILY.xattr.${key}`, Buffer.from(e.xattrs[key]!, "base64")));
  const fit = split ?? { name: tarPath.slice(0, 100), prefix: "" };
  return { pax, fields: { name: fit.name, prefix: fit.prefix, mode: e.mode, uid: e.uid, gid: e.gid, size, mtime, type, linkname: linkname.slice(0, 100) } };
}

/** The pax extended header (its ustar header, body, padding) that carries `pax`. */
function paxBlocks(e: TreeEntry, pax: Buffer[], mtime: number): Buffer[] {
  const body = Buffer.concat(pax);
  const paxName = `PaxHeaders/${path.posix.basename(e.path)}`.slice(0, 100);
  return [header({ name: paxName, prefix: "", mode: 0o644, uid: 0, gid: 0, size: body.length, mtime, type: "x", linkname: "" }), body, pad(body.length)];
}

/** Bytes an entry takes in the tar: its header blocks, and a file's content with its padding. */
export function entryTarBytes(e: TreeEntry, mtime: number): number {
  const { pax, fields } = entryFields(e, mtime);
  const headers = 512 + (pax.length ? paxBlocks(e, pax, mtime).reduce((n, b) => n + b.length, 0) : 0);
  return headers + (e.type === "file" ? fields.size + pad(fields.size).length : 0);
}

/** Header blocks (pax + ustar) for one entry. */
export function entryHeaders(e: TreeEntry, mtime: number): Buffer[] {
  const { pax, fields } = entryFields(e, mtime);
  return [...(pax.length ? paxBlocks(e, pax, mtime) : []), header(fields)];
}

/** Where the layer tar goes. `write` resolves once the chunk's memory may be reused. */
export interface ChunkSink {
  write(chunk: Buffer): Promise<void>;
}

/**
 * Ring buffers: the tar is assembled in a few fixed buffers, reused once their chunk is
 * written. Small ones: the compressor's pipe takes 64 KiB at a time anyway, and each
 * fresh page costs a fault (4 x 1 MiB took ~1,000 more faults per build than 4 x 128 KiB).
 */
const RING = 4;
export const CHUNK = 128 * 1024;

/**
 * Chunk buffers kept for the next layer of the same build: on this kind of VM fresh
 * memory costs a page fault per 4 KiB (~25 ms per MiB), more than reading the page cache.
 */
const spareChunks: Buffer[] = [];
export const takeChunk = (): Buffer => spareChunks.pop() ?? Buffer.allocUnsafe(CHUNK);
export const giveBackChunk = (b: Buffer): void => { if (spareChunks.length < RING) spareChunks.push(b); };

/**
 * Write the tar of a layer to `sink`. `entries` must be sorted with parents present
 * (see fold/plan.ts withParents). File contents are read straight into reused buffers, headers are
 * written into them too. Each file is re-hashed against its tree, unless its tree is in
 * `verified`.
 */
export async function writeLayerTar(entries: LayerEntry[], mtime: number, sink: ChunkSink, opts: { verified?: ReadonlySet<string> } = {}): Promise<void> {
  const ring = Array.from({ length: RING }, () => ({ buf: takeChunk(), free: Promise.resolve() }));
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
    const { pax, fields } = entryFields(e, mtime);
    if (pax.length) for (const b of paxBlocks(e, pax, mtime)) await put(b);
    // Every block so far is whole and CHUNK is a multiple of 512: the header fits here.
    if (off === CHUNK) await flush();
    writeHeader(ring[cur]!.buf, off, fields);
    off += 512;
    if (e.type !== "file") continue;
    const size = e.size ?? 0;
    // Trees hashed moments ago by this process are only size-checked.
    const hash = opts.verified?.has(le.treeKey) ? undefined : createHash("sha256");
    let n = 0;
    let fd: number | undefined;
    try {
      fd = openSync(path.join(le.rootDir, e.path), "r");
    } catch {
      n = -1;
    }
    try {
      // Read one byte past the recorded size, to notice a file that grew.
      while (fd !== undefined && n <= size) {
        // A failing sink (a dead compressor) is its own error, not a damaged store file.
        if (off === CHUNK) await flush();
        let got: number;
        try {
          got = readSync(fd, ring[cur]!.buf, off, Math.min(CHUNK - off, size - n + 1), null);
        } catch {
          n = -1;
          break;
        }
        if (got === 0) break;
        hash?.update(ring[cur]!.buf.subarray(off, off + got));
        off += got;
        n += got;
      }
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    if (n !== size || (hash && hash.digest("hex") !== e.sha256)) {
      throw new CorruptStoreError(`store: ${e.path} of ${le.packageId} (tree ${le.treeKey}) does not match its recorded size or sha256; the tree will be rebuilt`);
    }
    await put(pad(size));
  }
  await put(ZEROS);
  await flush();
  await Promise.all(ring.map((r) => r.free));
  // Only after every write is done (a failed layer's buffers may still be in flight, so they are dropped).
  for (const r of ring) giveBackChunk(r.buf);
}
