// zstd layers as a run of independent frames, so a rebuilt layer compresses
// only what changed. The tar is cut into frames at package boundaries (a frame
// holds at least MIN_FRAME bytes, and is cut at MAX_FRAME whatever the owner);
// each frame's key hashes what decides its bytes (entry metadata, file digests,
// compressor, tar format, mtime). A
// frame whose key an earlier layer blob in the store already holds is copied
// from that blob (its bytes checked against their recorded sha256); the
// others go through one zstd process (stdin for the first, a FIFO for each
// other), which writes them to a file of its own; that file is read as it
// grows, to find where each frame ends. A frame's bytes depend only on its input, and
// concatenated zstd frames are one valid zstd stream, so the blob is the same
// whichever frames were reused.

import { execFileSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, constants, open as openFd, openSync, readSync, renameSync, writeSync } from "node:fs";
import { rm } from "node:fs/promises";
import { Socket } from "node:net";
import path from "node:path";
import type { Store } from "../store/store.ts";
import { CorruptStoreError, UnsafeArchiveError } from "../errors.ts";
import { zstdToFile } from "./compress.ts";
import { entryTarBytes, giveBackChunk, takeChunk, writeLayerTar, type ChunkSink, type LayerEntry } from "./tar-writer.ts";
import type { RecordKind } from "../store/record-kinds.ts";

/** Bump when the framing rule changes (frame keys take it; bump LAYER_FORMAT with it, for layer keys). */
export const FRAME_FORMAT = 1;
export const MIN_FRAME = 8 << 20;
export const MAX_FRAME = 64 << 20;
/** FIFOs per zstd process (two descriptors each while open; stays far below RLIMIT_NOFILE). */
const FRAMES_PER_PROCESS = 128;
const RECORD_KIND = "zstd-frames";
/** A blob's frame table stays with its blob. */
export const FRAME_RECORDS: RecordKind<{ blob?: string }> = { kind: RECORD_KIND, keep: (_key, rec, live) => !!rec?.blob && live.blobs.has(rec.blob) };

export interface FramePlan {
  /** Entries [start, end) of the layer's entry list. */
  start: number;
  end: number;
  /** Uncompressed tar bytes before this frame, and in it (the last frame holds the end-of-archive blocks). */
  offset: number;
  bytes: number;
  key: string;
}

/** Where an earlier blob holds a compressed frame. */
export interface FrameRecord {
  blob: string;
  offset: number;
  length: number;
  sha256: string;
  uncompressed: number;
}

/**
 * Cut the layer's tar into frames and key each one by what decides its bytes: `context`
 * (compressor and tar format), the mtime, and each entry's metadata and content digest.
 */
export function planFrames(entries: LayerEntry[], mtime: number, context: string): FramePlan[] {
  const frames: FramePlan[] = [];
  let hash = createHash("sha256");
  let start = 0;
  let offset = 0;
  let bytes = 0;
  let owner = "";
  const begin = () => hash.update(`layerfold-zstd-frame ${FRAME_FORMAT}\0${context}\0${mtime}\0`);
  const close = (end: number, trailer: boolean) => {
    if (trailer) { hash.update("\0end-of-archive"); bytes += 1024; }
    frames.push({ start, end, offset, bytes, key: hash.digest("hex") });
    offset += bytes;
    start = end;
    bytes = 0;
    hash = createHash("sha256");
    begin();
  };
  // Parent directories made up by withParents belong to no package: they go with the entries after
  // them (their contents), so a package added after a frame's last one leaves that frame as it was.
  const owners: string[] = new Array(entries.length);
  for (let i = entries.length - 1; i >= 0; i--) owners[i] = entries[i]!.treeKey || owners[i + 1] || "";
  begin();
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!.entry;
    if (bytes >= MAX_FRAME || (bytes >= MIN_FRAME && owners[i] !== owner)) close(i, false);
    owner = owners[i]!;
    hash.update(JSON.stringify([e.path, e.type, e.mode, e.uid, e.gid, e.size ?? 0, e.sha256 ?? "", e.target ?? "", e.xattrs ?? null]));
    bytes += entryTarBytes(e, mtime);
  }
  close(entries.length, true);
  return frames;
}

/** Finds where zstd frames end in a stream of chunks (frame header, block headers, optional checksum). */
export class ZstdFrameCutter {
  private head = Buffer.alloc(5);
  private have = 0;
  private need = 5;
  private skip = 0;
  private phase: "frame" | "rest" | "block" | "body" | "checksum" = "frame";
  private checksum = false;
  private last = false;

  /** Offsets in `chunk` just past each frame that ends in it. */
  cut(chunk: Buffer): number[] {
    const ends: number[] = [];
    let i = 0;
    while (i < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        this.skip -= n;
        i += n;
        if (this.skip === 0) this.afterSkip(ends, i);
        continue;
      }
      this.head[this.have++] = chunk[i++]!;
      if (this.have === this.need) this.onHead(ends, i);
    }
    return ends;
  }

  /** True between frames: the stream may end here. */
  get atBoundary(): boolean { return this.phase === "frame" && this.have === 0; }

  private collect(n: number, phase: "frame" | "block") { this.phase = phase; this.need = n; this.have = 0; }
  private skipThen(n: number, phase: "rest" | "body" | "checksum", ends: number[], at: number) {
    this.phase = phase;
    this.skip = n;
    if (n === 0) this.afterSkip(ends, at);
  }

  private onHead(ends: number[], at: number) {
    const h = this.head;
    if (this.phase === "frame") {
      if (h.readUInt32LE(0) !== 0xfd2fb528) throw new UnsafeArchiveError("zstd output: not a zstd frame where one should start");
      const fhd = h[4]!;
      const fcsFlag = fhd >> 6;
      const single = (fhd >> 5) & 1;
      this.checksum = ((fhd >> 2) & 1) === 1;
      const rest = (single ? 0 : 1) + [0, 1, 2, 4][fhd & 3]! + [single ? 1 : 0, 2, 4, 8][fcsFlag]!;
      this.skipThen(rest, "rest", ends, at);
    } else {
      const b = h[0]! | (h[1]! << 8) | (h[2]! << 16);
      this.last = (b & 1) === 1;
      const type = (b >> 1) & 3;
      if (type === 3) throw new UnsafeArchiveError("zstd output: reserved block type");
      this.skipThen(type === 1 ? 1 : b >>> 3, "body", ends, at);
    }
  }

  private afterSkip(ends: number[], at: number) {
    if (this.phase === "rest") return this.collect(3, "block");
    if (this.phase === "body" && !this.last) return this.collect(3, "block");
    if (this.phase === "body" && this.checksum) return this.skipThen(4, "checksum", ends, at);
    ends.push(at);
    this.collect(5, "frame");
  }
}

/** Bytes [offset, offset + length) of `file` (or to its end, with `toEnd`), through `buf`, to `each`. */
export function readRange(file: string, offset: number, length: number, buf: Buffer, each: (chunk: Buffer) => void, toEnd = false): void {
  const fd = openSync(file, "r");
  try {
    for (let at = 0; at < length;) {
      const got = readSync(fd, buf, 0, Math.min(buf.length, length - at), offset + at);
      if (got === 0 && toEnd) return;
      if (got === 0) throw new Error(`${file} ended at byte ${offset + at}, inside a zstd frame`);
      each(buf.subarray(0, got));
      at += got;
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Read `file` while a writer appends to it, through `buf`, to `each`; to its end once `done`
 * settles (rejecting with its error). The bytes come from the page cache as they are written.
 */
export async function readGrowingFile(file: string, done: Promise<void>, buf: Buffer, each: (chunk: Buffer) => void): Promise<number> {
  let finished = false;
  const settled = done.then(() => { finished = true; }, () => { finished = true; });
  const fd = openSync(file, "r");
  let size = 0;
  try {
    for (;;) {
      const last = finished;
      for (let got; (got = readSync(fd, buf, 0, buf.length, size)) > 0; size += got) each(buf.subarray(0, got));
      if (last) break;
      await Promise.race([settled, new Promise((resolve) => setTimeout(resolve, 5))]);
    }
  } finally {
    closeSync(fd);
  }
  await done;
  return size;
}

interface CompressedFrame { file: string; offset: number; length: number; sha256: string }

/** Where zstd's frames end in a batch's file, their sha256 and the whole file's, found as zstd writes it. */
async function scanBatch(b: ZstdBatch): Promise<{ frames: CompressedFrame[]; hex: string; size: number }> {
  const frames: CompressedFrame[] = [];
  const cutter = new ZstdFrameCutter();
  const whole = createHash("sha256");
  let pos = 0;
  let start = 0;
  let h = createHash("sha256");
  const buf = takeChunk();
  try {
    await readGrowingFile(b.output, b.exit, buf, (chunk) => {
      whole.update(chunk);
      let from = 0;
      for (const end of cutter.cut(chunk)) {
        h.update(chunk.subarray(from, end));
        frames.push({ file: b.output, offset: start, length: pos + end - start, sha256: h.digest("hex") });
        start = pos + end;
        from = end;
        h = createHash("sha256");
      }
      h.update(chunk.subarray(from));
      pos += chunk.length;
    });
  } finally {
    giveBackChunk(buf);
  }
  if (!cutter.atBoundary || start !== pos) throw new Error(`zstd compression: ${b.output} ends inside a frame`);
  return { frames, hex: whole.digest("hex"), size: pos };
}

/** The frames of earlier blobs this layer can reuse, each checked against its recorded sha256. */
function reusableFrames(store: Store, frames: FramePlan[], records: Array<FrameRecord | undefined>, buf: Buffer): Map<number, FrameRecord> {
  const hits = new Map<number, FrameRecord>();
  for (let i = 0; i < frames.length; i++) {
    const rec = records[i];
    // A record names a blob by its hex digest: anything else (a damaged record) is never opened.
    if (!rec || typeof rec.blob !== "string" || !/^[0-9a-f]{64}$/.test(rec.blob) || rec.uncompressed !== frames[i]!.bytes) continue;
    try {
      const h = createHash("sha256");
      readRange(store.blobPath(rec.blob), rec.offset, rec.length, buf, (c) => h.update(c));
      if (h.digest("hex") === rec.sha256) hits.set(i, rec);
    } catch {
      // Its blob is gone or short: compress the frame again.
    }
  }
  return hits;
}

/**
 * One zstd process compressing a run of frames in order into `output`: the first from its
 * stdin, each other from its own FIFO (so a layer with one changed frame needs no FIFO).
 */
interface ZstdBatch { child: ChildProcess; inputs: string[]; output: string; exit: Promise<void> }
const STDIN = "-";

function startBatch(base: string, index: number, count: number, level: number): ZstdBatch {
  const fifos = Array.from({ length: count - 1 }, (_, i) => `${base}.fifo-${index}-${i + 1}`);
  if (fifos.length) execFileSync("mkfifo", fifos);
  const inputs = [STDIN, ...fifos];
  const output = `${base}.zst-${index}`;
  const { child, done } = zstdToFile(level, inputs, output);
  return { child, inputs, output, exit: done };
}

/**
 * The write end of a FIFO, written through the event loop. The open waits (on a libuv worker) until
 * zstd opens the FIFO to read it: a writer that came and went before that would take its bytes with it.
 */
export async function fifoWriter(file: string): Promise<Socket> {
  // A raw fd, not a FileHandle: the socket owns and closes it.
  const fd = await new Promise<number>((resolve, reject) => openFd(file, constants.O_WRONLY, (err, fd) => (err ? reject(err) : resolve(fd))));
  const s = new Socket({ fd, readable: false, writable: true });
  s.on("error", () => { /* reported through zstd's exit or the write callbacks */ });
  return s;
}

/** Let a writer's open that waits for a reader go (zstd died): open the FIFO to read, and close it. */
export function releaseFifo(file: string): void {
  try { closeSync(openSync(file, constants.O_RDONLY | constants.O_NONBLOCK)); } catch { /* gone already */ }
}

export interface FramedBlob {
  diffHex: string;
  diffBytes: number;
  blobHex: string;
  blobBytes: number;
  /** Where each frame sits in this blob (recordFrames stores them once the blob is in place). */
  frames: Array<{ key: string; record: Omit<FrameRecord, "blob"> }>;
  reused: number;
}

/**
 * Write the layer's tar (its diffID hashed on the way) as a framed zstd blob to `file`.
 * `context` names the compressor and tar format (part of every frame key); `verified`:
 * trees whose files need no re-hash (see writeLayerTar).
 */
export async function writeFramedZstd(store: Store, entries: LayerEntry[], mtime: number, level: number, context: string, file: string, opts: { verified?: ReadonlySet<string>; onProgress?: (bytes: number) => void }): Promise<FramedBlob> {
  const frames = planFrames(entries, mtime, context);
  const buf = takeChunk();
  const batches: ZstdBatch[] = [];
  try {
    const known = await Promise.all(frames.map((f) => store.getRecord<FrameRecord>(RECORD_KIND, f.key)));
    const hits = reusableFrames(store, frames, known, buf);
    const misses = frames.map((_, i) => i).filter((i) => !hits.has(i));
    for (let b = 0; b * FRAMES_PER_PROCESS < misses.length; b++) batches.push(startBatch(file, b, Math.min(FRAMES_PER_PROCESS, misses.length - b * FRAMES_PER_PROCESS), level));
    const inputOf = new Map(misses.map((frame, k) => [frame, { batch: batches[Math.floor(k / FRAMES_PER_PROCESS)]!, input: k % FRAMES_PER_PROCESS }]));
    // zstd's files are read while it writes them (page cache), for the frame ends and hashes.
    const scans = batches.map((b) => scanBatch(b));
    for (const scan of scans) scan.catch(() => {});
    const { diffHex, diffBytes } = await feedFrames(entries, mtime, frames, inputOf, batches, opts);
    const scanned = await Promise.all(scans);
    const compressed = scanned.flatMap((r) => r.frames);
    if (compressed.length !== misses.length) throw new Error(`zstd compression: ${compressed.length} frames written for ${misses.length}`);

    // The blob: zstd's one file as it is (already hashed while it grew), or the frames in order
    // from zstd's files and earlier blobs.
    const missIndex = new Map(misses.map((frame, k) => [frame, k]));
    const parts = frames.map((_, i) => {
      const hit = hits.get(i);
      return hit ? { file: store.blobPath(hit.blob), ...hit } : compressed[missIndex.get(i)!]!;
    });
    const records = parts.map((p, i) => ({ offset: 0, length: p.length, sha256: p.sha256, uncompressed: frames[i]!.bytes }));
    let blobBytes = 0;
    for (const r of records) { r.offset = blobBytes; blobBytes += r.length; }
    let blobHex: string;
    if (hits.size === 0 && batches.length === 1) {
      renameSync(batches[0]!.output, file);
      blobHex = scanned[0]!.hex;
    } else {
      const blobHash = createHash("sha256");
      const out = openSync(file, "w");
      try {
        for (const p of parts) readRange(p.file, p.offset, p.length, buf, (chunk) => { blobHash.update(chunk); writeSync(out, chunk); });
      } finally {
        closeSync(out);
      }
      blobHex = blobHash.digest("hex");
    }
    return { diffHex, diffBytes, blobHex, blobBytes, frames: frames.map((f, i) => ({ key: f.key, record: records[i]! })), reused: hits.size };
  } finally {
    giveBackChunk(buf);
    for (const b of batches) await rm(b.output, { force: true });
    for (const b of batches) for (const f of b.inputs.slice(1)) await rm(f, { force: true });
  }
}

/** The tar, cut at frame offsets: missing frames go to their zstd input, every byte to the diffID. */
async function feedFrames(
  entries: LayerEntry[],
  mtime: number,
  frames: FramePlan[],
  inputOf: Map<number, { batch: ZstdBatch; input: number }>,
  batches: ZstdBatch[],
  opts: { verified?: ReadonlySet<string>; onProgress?: (bytes: number) => void },
): Promise<{ diffHex: string; diffBytes: number }> {
  const diff = createHash("sha256");
  let diffBytes = 0;
  let failed: Error | undefined;
  let frame = 0;
  let writer: { input: string; socket: Promise<Socket> } | undefined;
  const endWriter = () => {
    const w = writer;
    writer = undefined;
    // 'close', not end's callback: a FIFO has no shutdown(), the fd is simply closed.
    if (w) return w.socket.then((s) => new Promise<void>((resolve) => { s.once("close", () => resolve()); s.end(); }));
  };
  const sink: ChunkSink = {
    async write(chunk) {
      diff.update(chunk);
      diffBytes += chunk.length;
      opts.onProgress?.(diffBytes);
      const pending: Promise<void>[] = [];
      for (let at = 0; at < chunk.length;) {
        if (failed) throw failed;
        const f = frames[frame];
        if (!f) throw new Error("layer framing: the tar is longer than its frames");
        const end = f.offset + f.bytes;
        const pos = diffBytes - chunk.length + at;
        const n = Math.min(chunk.length - at, end - pos);
        const to = inputOf.get(frame);
        if (to) {
          const input = to.batch.inputs[to.input]!;
          writer ??= { input, socket: input === STDIN ? Promise.resolve(to.batch.child.stdin as Socket) : fifoWriter(input) };
          // Pieces are handed to the socket in order: each .then runs in the order it was added.
          const piece = chunk.subarray(at, at + n);
          pending.push(writer.socket.then((s) => new Promise((resolve, reject) => s.write(piece, (err) => (err ? reject(err) : resolve())))));
        }
        at += n;
        if (pos + n === end) {
          const ended = endWriter();
          if (ended) pending.push(ended);
          frame++;
        }
      }
      await Promise.all(pending);
    },
  };
  const fail = (err: Error) => {
    failed ??= err;
    for (const b of batches) b.child.kill();
    if (writer) {
      if (writer.input !== STDIN) releaseFifo(writer.input);
      writer.socket.then((s) => s.destroy(), () => {});
    }
  };
  for (const b of batches) b.exit.catch(fail);
  try {
    await writeLayerTar(entries, mtime, sink, { verified: opts.verified });
    if (frame !== frames.length) throw new Error(`layer framing: wrote ${frame} of ${frames.length} frames`);
    await Promise.all(batches.map((b) => b.exit));
  } catch (err) {
    fail(err as Error);
    // A zstd that died on its own fails our writes with EPIPE; its own message says more.
    const died = (await Promise.allSettled(batches.map((b) => b.exit))).find((r) => r.status === "rejected" && !(r.reason as { signal?: string }).signal);
    throw err instanceof CorruptStoreError || !died ? err : (died as PromiseRejectedResult).reason;
  }
  return { diffHex: diff.digest("hex"), diffBytes };
}

/** After the blob `blobHex` was stored: remember where each of its frames is, for the next build. */
export async function recordFrames(store: Store, blobHex: string, frames: FramedBlob["frames"]): Promise<void> {
  await Promise.all(frames.map((f) => store.putRecord(RECORD_KIND, f.key, { ...f.record, blob: blobHex } satisfies FrameRecord)));
}
