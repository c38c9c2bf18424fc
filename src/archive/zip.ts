// A zip reader over a file on disk: reads the central directory (zip64
// included), then streams single members (stored or deflate) on demand. Only
// the members asked for are read, so a wheel's METADATA costs two small reads.
//
// Bomb defences: a member may not inflate past its declared size, members may
// not overlap (the "overlapping files" quine bomb), the sum of declared sizes is
// capped, and names that are absolute or contain ".." are refused.

import { createReadStream } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { Transform, type Readable, type TransformCallback } from "node:stream";
import zlib from "node:zlib";
import { MalformedArchiveError, UnsafeArchiveError } from "../errors.ts";
import { normalizeImagePath } from "../store/tree.ts";
import { DEFAULT_MAX_UNPACKED_BYTES, decodeName, EntrySet } from "./names.ts";

export interface ZipEntry {
  /** Member name as stored (forward slashes). Directories end with "/". */
  name: string;
  isDir: boolean;
  /** 0 = stored, 8 = deflate. */
  method: number;
  compressedSize: number;
  size: number;
  crc32: number;
  /** Unix permission bits when the archive was made on Unix, else undefined. */
  mode?: number;
  /** Offset of the member's local header. */
  offset: number;
}

export interface ZipOptions {
  /** Names the archive in errors. */
  what?: string;
  /** Refuse archives whose declared uncompressed total exceeds this (default DEFAULT_MAX_UNPACKED_BYTES, 16 GiB). */
  maxTotalBytes?: number;
}

const EOCD_SIG = 0x06054b50;
const EOCD64_LOC_SIG = 0x07064b50;
const EOCD64_SIG = 0x06064b50;
const CDH_SIG = 0x02014b50;
const LFH_SIG = 0x04034b50;
const MAX_COMMENT = 0xffff;

/** Check a member name: relative, no "..", no NUL, no backslash-rooted or drive paths. */
export function checkZipName(name: string, what: string): void {
  const bad = (why: string) => new UnsafeArchiveError(`${what}: member ${JSON.stringify(name)} ${why}; refusing the archive`);
  if (name.includes("\0")) throw bad("contains a NUL byte");
  if (name.startsWith("/") || name.startsWith("\\") || /^[A-Za-z]:/.test(name)) throw bad("is an absolute path");
  for (const part of name.split(/[/\\]/)) if (part === "..") throw bad('contains ".." and would escape its directory');
}

export class ZipFile {
  private constructor(
    private readonly fh: FileHandle,
    readonly path: string,
    readonly entries: ZipEntry[],
    /** Each member's data must end at or before this offset (next header or central directory). */
    private readonly limits: Map<ZipEntry, number>,
    readonly what: string,
  ) {}

  static async open(file: string, opts: ZipOptions = {}): Promise<ZipFile> {
    const what = opts.what ?? file;
    const fh = await open(file, "r");
    try {
      const { entries, cdOffset } = await readCentralDirectory(fileReadAt(fh), (await fh.stat()).size, what);
      const max = opts.maxTotalBytes ?? DEFAULT_MAX_UNPACKED_BYTES;
      let total = 0;
      // The same duplicate rule as tar (archive/names.ts), on normalised names: "a//b" is "a/b".
      const seen = new EntrySet(what);
      for (const e of entries) {
        checkZipName(e.name, what);
        const norm = normalizeImagePath(e.name, what);
        if (norm !== "") seen.claim(norm, { dir: e.isDir, mode: e.mode }, e.name);
        total += e.size;
        if (total > max) throw new UnsafeArchiveError(`${what}: declares more than ${max} uncompressed bytes; refusing it as a possible zip bomb`);
      }
      const limits = computeLimits(entries, cdOffset, what);
      return new ZipFile(fh, file, entries, limits, what);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  get(name: string): ZipEntry | undefined {
    return this.entries.find((e) => e.name === name);
  }

  /** Check a member's local header (first 30 bytes in hdr); returns where its data starts and ends. */
  private checkHeader(hdr: Buffer, e: ZipEntry): { start: number; end: number } {
    if (hdr.length < 30 || hdr.readUInt32LE(0) !== LFH_SIG) throw new MalformedArchiveError(`${this.what}: member ${JSON.stringify(e.name)} has no valid local header; the archive is corrupt`);
    if (hdr.readUInt16LE(6) & 1) throw new MalformedArchiveError(`${this.what}: member ${JSON.stringify(e.name)} is encrypted; encrypted archives are not supported`);
    const start = e.offset + 30 + hdr.readUInt16LE(26) + hdr.readUInt16LE(28);
    const end = start + e.compressedSize;
    if (end > this.limits.get(e)!) throw new UnsafeArchiveError(`${this.what}: member ${JSON.stringify(e.name)} overlaps the next member or the central directory; refusing a possible zip bomb`);
    return { start, end };
  }

  private async dataRange(e: ZipEntry): Promise<{ start: number; end: number }> {
    const hdr = Buffer.alloc(30);
    const { bytesRead } = await this.fh.read(hdr, 0, 30, e.offset);
    return this.checkHeader(hdr.subarray(0, bytesRead), e);
  }

  /** Stream a member's content; fails if it inflates to more or less than declared or its CRC is wrong. */
  async stream(e: ZipEntry): Promise<Readable> {
    if (e.method !== 0 && e.method !== 8) throw new MalformedArchiveError(`${this.what}: member ${JSON.stringify(e.name)} uses compression method ${e.method}; only stored and deflate are supported`);
    const { start, end } = await this.dataRange(e);
    const raw = e.compressedSize === 0 ? emptyStream() : createReadStream(this.path, { start, end: end - 1, highWaterMark: 1 << 20 });
    const check = new SizeCrcCheck(e, this.what);
    if (e.method === 0) {
      if (e.compressedSize !== e.size) throw new MalformedArchiveError(`${this.what}: stored member ${JSON.stringify(e.name)} has differing sizes`);
      return raw.on("error", (err: Error) => check.destroy(err)).pipe(check);
    }
    const inflate = zlib.createInflateRaw({ chunkSize: 1 << 16 });
    raw.on("error", (err: Error) => inflate.destroy(err));
    inflate.on("error", (err) => check.destroy(new MalformedArchiveError(`${this.what}: member ${JSON.stringify(e.name)} does not inflate: ${err.message}`)));
    return raw.pipe(inflate).pipe(check);
  }

  /**
   * A member's content: a Buffer for small members (one read, inflate on the
   * thread pool, no stream set-up), a stream for large ones. Same checks as stream().
   */
  async content(e: ZipEntry, smallBytes = 1 << 20): Promise<Buffer | Readable> {
    if (e.size > smallBytes || e.compressedSize > smallBytes || (e.method !== 0 && e.method !== 8)) return this.stream(e);
    const slack = 30 + 0xffff * 2;
    const want = Math.min(30 + 512 + e.compressedSize, slack + e.compressedSize);
    let buf = Buffer.allocUnsafe(want);
    const { bytesRead } = await this.fh.read(buf, 0, want, e.offset);
    buf = buf.subarray(0, bytesRead);
    const { start, end } = this.checkHeader(buf, e);
    if (end - e.offset > buf.length) return this.stream(e); // unusually long local extra field
    const data = buf.subarray(start - e.offset, end - e.offset);
    let out: Buffer;
    if (e.method === 0) out = data;
    else {
      try {
        out = await new Promise<Buffer>((res, rej) => zlib.inflateRaw(data, { maxOutputLength: Math.max(1, e.size) }, (err, b) => (err ? rej(err) : res(b))));
      } catch (err) {
        throw inflateError(err, e, this.what);
      }
    }
    if (out.length !== e.size) throw new MalformedArchiveError(`${this.what}: member ${JSON.stringify(e.name)} has ${out.length} bytes but declares ${e.size}; the archive is corrupt`);
    if (zlib.crc32(out) >>> 0 !== e.crc32 >>> 0) throw new MalformedArchiveError(`${this.what}: member ${JSON.stringify(e.name)} fails its CRC-32 check; the archive is corrupt`);
    return out;
  }

  /** Read a small member whole (METADATA, RECORD, WHEEL). */
  async read(e: ZipEntry, maxBytes = 64 * 1024 * 1024): Promise<Buffer> {
    if (e.size > maxBytes) throw new UnsafeArchiveError(`${this.what}: member ${JSON.stringify(e.name)} is ${e.size} bytes, more than the ${maxBytes} allowed for it`);
    const chunks: Buffer[] = [];
    for await (const c of await this.stream(e)) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/** A one-shot inflate that failed: past the declared size is a bomb (unsafe), anything else is corruption. */
function inflateError(err: unknown, e: ZipEntry, what: string): Error {
  if ((err as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") {
    return new UnsafeArchiveError(`${what}: member ${JSON.stringify(e.name)} inflates past its declared ${e.size} bytes; refusing a possible zip bomb`);
  }
  return new MalformedArchiveError(`${what}: member ${JSON.stringify(e.name)} does not inflate (${(err as Error).message}); the archive is corrupt`, { cause: err });
}

export const openZip = (file: string, opts?: ZipOptions): Promise<ZipFile> => ZipFile.open(file, opts);

function emptyStream(): Readable {
  const t = new Transform({ transform: (_c, _e, cb) => cb() });
  t.end();
  return t;
}

/** Counts, CRCs and caps a member's inflated bytes. */
class SizeCrcCheck extends Transform {
  private n = 0;
  private crc = 0;
  constructor(private readonly e: ZipEntry, private readonly what: string) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.n += chunk.length;
    if (this.n > this.e.size) return cb(new UnsafeArchiveError(`${this.what}: member ${JSON.stringify(this.e.name)} inflates past its declared ${this.e.size} bytes; refusing a possible zip bomb`));
    this.crc = zlib.crc32(chunk, this.crc);
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    if (this.n !== this.e.size) return cb(new MalformedArchiveError(`${this.what}: member ${JSON.stringify(this.e.name)} has ${this.n} bytes but declares ${this.e.size}; the archive is corrupt`));
    if (this.crc >>> 0 !== this.e.crc32 >>> 0) return cb(new MalformedArchiveError(`${this.what}: member ${JSON.stringify(this.e.name)} fails its CRC-32 check; the archive is corrupt`));
    cb();
  }
}

/** Random access to the archive's bytes: a file here, HTTP Range requests for remote wheels. */
export type ReadAt = (pos: number, len: number) => Promise<Buffer>;

const fileReadAt = (fh: FileHandle): ReadAt => async (pos, len) => {
  const buf = Buffer.alloc(len);
  const { bytesRead } = await fh.read(buf, 0, len, pos);
  return buf.subarray(0, bytesRead);
};

/** Parse the central directory of an archive of `size` bytes through `readAt`. */
export async function readCentralDirectory(readAt: ReadAt, size: number, what: string): Promise<{ entries: ZipEntry[]; cdOffset: number }> {
  const corrupt = (why: string) => new MalformedArchiveError(`${what}: not a valid zip archive (${why})`);
  if (size < 22) throw corrupt("too short");
  const tailLen = Math.min(size, 22 + MAX_COMMENT + 20);
  const tailPos = size - tailLen;
  const tail = await readAt(tailPos, tailLen);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD_SIG && i + 22 + tail.readUInt16LE(i + 20) <= tail.length) { eocd = i; break; }
  }
  if (eocd < 0) throw corrupt("no end of central directory record");
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  if ((count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) && eocd >= 20 && tail.readUInt32LE(eocd - 20) === EOCD64_LOC_SIG) {
    const pos64 = Number(tail.readBigUInt64LE(eocd - 20 + 8));
    const rec = await readAt(pos64, 56);
    if (rec.length < 56 || rec.readUInt32LE(0) !== EOCD64_SIG) throw corrupt("bad zip64 end record");
    count = Number(rec.readBigUInt64LE(32));
    cdSize = Number(rec.readBigUInt64LE(40));
    cdOffset = Number(rec.readBigUInt64LE(48));
  }
  if (cdOffset + cdSize > size) throw corrupt("central directory lies past the end of the file");
  if (cdSize > 512 * 1024 * 1024) throw corrupt("central directory is implausibly large");
  const cd = await readAt(cdOffset, cdSize);
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== CDH_SIG) throw corrupt(`central directory entry ${i} is damaged`);
    const madeBy = cd.readUInt16LE(p + 4) >> 8;
    const method = cd.readUInt16LE(p + 10);
    const crc32 = cd.readUInt32LE(p + 16);
    let compressedSize = cd.readUInt32LE(p + 20);
    let usize = cd.readUInt32LE(p + 24);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    const external = cd.readUInt32LE(p + 38);
    let offset = cd.readUInt32LE(p + 42);
    if (p + 46 + nameLen + extraLen + commentLen > cd.length) throw corrupt(`central directory entry ${i} runs past the directory's end`);
    const nameBuf = cd.subarray(p + 46, p + 46 + nameLen);
    // UTF-8 whether or not flag bit 11 says so (most tools write UTF-8 without it); anything
    // else is refused, never decoded leniently (archive/names.ts).
    const name = decodeName(nameBuf, what, `name (central directory entry ${i})`);
    // zip64 extra field (0x0001): the 64-bit values appear only for fields that are saturated.
    let x = p + 46 + nameLen;
    const xEnd = x + extraLen;
    while (x + 4 <= xEnd) {
      const id = cd.readUInt16LE(x);
      const len = cd.readUInt16LE(x + 2);
      if (x + 4 + len > xEnd) throw corrupt(`central directory entry ${i} has a damaged extra field`);
      if (id === 0x0001) {
        let q = x + 4;
        const need = 8 * [usize, compressedSize, offset].filter((v) => v === 0xffffffff).length;
        if (need > len) throw corrupt(`central directory entry ${i} has a short zip64 extra field`);
        if (usize === 0xffffffff) { usize = Number(cd.readBigUInt64LE(q)); q += 8; }
        if (compressedSize === 0xffffffff) { compressedSize = Number(cd.readBigUInt64LE(q)); q += 8; }
        if (offset === 0xffffffff) { offset = Number(cd.readBigUInt64LE(q)); q += 8; }
      }
      x += 4 + len;
    }
    const unixMode = madeBy === 3 ? (external >>> 16) & 0xffff : 0;
    entries.push({
      name,
      isDir: name.endsWith("/"),
      method,
      compressedSize,
      size: usize,
      crc32,
      mode: unixMode ? unixMode & 0o7777 : undefined,
      offset,
    });
    p += 46 + nameLen + extraLen + commentLen;
  }
  // Members live before the central directory.
  for (const e of entries) if (e.offset + 30 > cdOffset) throw corrupt(`member ${JSON.stringify(e.name)} starts inside the central directory`);
  return { entries, cdOffset };
}

/** The end each member's data may reach: the next local header by offset, or the central directory. */
function computeLimits(entries: ZipEntry[], cdOffset: number, what: string): Map<ZipEntry, number> {
  const sorted = [...entries].sort((a, b) => a.offset - b.offset);
  const limits = new Map<ZipEntry, number>();
  for (let i = 0; i < sorted.length; i++) {
    const e = sorted[i]!;
    const next = sorted[i + 1];
    if (next && next.offset === e.offset) throw new UnsafeArchiveError(`${what}: members ${JSON.stringify(e.name)} and ${JSON.stringify(next.name)} share their data; refusing a possible zip bomb`);
    if (next && e.offset + 30 + e.compressedSize > next.offset) throw new UnsafeArchiveError(`${what}: member ${JSON.stringify(e.name)} overlaps ${JSON.stringify(next.name)}; refusing a possible zip bomb`);
    limits.set(e, next ? next.offset : cdOffset);
  }
  return limits;
}

/**
 * Extract one member from bytes that start at its local header (ranged reads of
 * remote archives). `buf` must hold the header and all compressed data.
 */
export function memberFromBuffer(buf: Buffer, e: ZipEntry, what: string): Buffer {
  if (buf.length < 30 || buf.readUInt32LE(0) !== LFH_SIG) throw new MalformedArchiveError(`${what}: member ${JSON.stringify(e.name)} has no valid local header`);
  const start = 30 + buf.readUInt16LE(26) + buf.readUInt16LE(28);
  const data = buf.subarray(start, start + e.compressedSize);
  if (data.length < e.compressedSize) throw new MalformedArchiveError(`${what}: member ${JSON.stringify(e.name)} is truncated`);
  let out: Buffer;
  if (e.method === 0) out = Buffer.from(data);
  else if (e.method === 8) {
    try {
      out = zlib.inflateRawSync(data, { maxOutputLength: Math.max(1, e.size) });
    } catch (err) {
      throw inflateError(err, e, what);
    }
  } else throw new MalformedArchiveError(`${what}: member ${JSON.stringify(e.name)} uses compression method ${e.method}`);
  if (out.length !== e.size || zlib.crc32(out) >>> 0 !== e.crc32 >>> 0) throw new MalformedArchiveError(`${what}: member ${JSON.stringify(e.name)} fails its size or CRC-32 check`);
  return out;
}
