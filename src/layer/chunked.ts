// zstd:chunked layers (containers/storage's format, read by podman, CRI-O and
// buildah for partial pulls; any zstd reader sees a plain tar+zstd layer):
//   [frames of the tar][skippable: zstd(TOC)][skippable: zstd(tar-split)][skippable: footer]
// Each regular file's content is its own zstd frame (files over FILE_CHUNK bytes are
// cut into chunks, a frame each), so a client fetches one file by an HTTP range and
// decompresses it alone; the tar headers and padding between contents are frames of
// their own. The TOC (JSON) gives each entry's metadata, sha256 and frame offsets; the
// tar-split (JSON lines: raw header bytes, and each file's name, size and CRC-64) lets
// the client rebuild the exact tar, so the diffID is the plain tar's. Annotations on
// the layer descriptor locate both (the io.github.containers.* keys that containers/storage
// reads since it added the tar-split, and the io.containers.* keys older ones read,
// podman 4.x among them).
//
// Frames come from zstd itself: pieces up to SMALL_PIECE bytes as files of a batch
// (zstd --filelist), bigger ones through two FIFOs taken in turn (one zstd for the
// layer), so every byte zstd compresses is one this process read and hashed. As for
// plain zstd layers, the tar is cut at package boundaries into segments (frames.ts's
// planFrames); a segment whose key an earlier blob holds is copied from it, with its
// recorded frame sizes, so the blob is the same whichever were reused.

import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { accessSync, closeSync, constants, mkdirSync, openSync, readSync, statSync, writeFileSync, writeSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import path from "node:path";
import type { Socket } from "node:net";
import type { Store } from "../store/store.ts";
import { CorruptStoreError } from "../errors.ts";
import { zstdMissing, zstdPath, zstdEnv, zstdToFile } from "./compress.ts";
import { Crc64 } from "./crc64.ts";
import { fifoWriter, planFrames, readRange, releaseFifo, ZstdFrameCutter, type FramePlan } from "./frames.ts";
import { entryHeaders, entryTarBytes, giveBackChunk, takeChunk, writeLayerTar, type ChunkSink, type LayerEntry } from "./tar-writer.ts";
import type { RecordKind } from "../store/record-kinds.ts";

/** Bump when the chunked layout changes (segment keys take it). */
export const CHUNKED_FORMAT = 1;
/** Files over this many bytes are cut into chunks of this size, each its own frame. */
export const FILE_CHUNK = 16 << 20;
/** Pieces up to this size go to zstd as files of a batch, bigger ones through a FIFO. */
const SMALL_PIECE = 1 << 20;
const BATCH_FILES = 4096;
const BATCH_BYTES = 32 << 20;
const RECORD_KIND = "zstd-chunked-segments";
/** Where a segment lies in a blob: kept with the blob. */
export const CHUNKED_SEGMENT_RECORDS: RecordKind<{ blob?: string }> = { kind: RECORD_KIND, keep: (_key, rec, live) => !!rec?.blob && live.blobs.has(rec.blob) };

/** Layer descriptor annotations: the current keys, and the ones containers/storage read before the tar-split. */
export const CHUNKED_ANNOTATIONS = {
  tocChecksum: "io.github.containers.zstd-chunked.manifest-checksum",
  tocPosition: "io.github.containers.zstd-chunked.manifest-position",
  tarSplitPosition: "io.github.containers.zstd-chunked.tarsplit-position",
  legacyTocChecksum: "io.containers.zstd-chunked.manifest-checksum",
  legacyTocPosition: "io.containers.zstd-chunked.manifest-position",
} as const;

/** The zstd:chunked annotations of a descriptor (both key sets, well formed), or undefined. */
export function chunkedAnnotationsOf(annotations: Record<string, string> | undefined): Record<string, string> | undefined {
  if (!annotations) return undefined;
  const out: Record<string, string> = {};
  for (const k of Object.values(CHUNKED_ANNOTATIONS)) {
    const v = annotations[k];
    if (typeof v !== "string") return undefined;
    out[k] = v;
  }
  const pos = /^\d+:\d+:\d+:1$/;
  const ok = /^sha256:[0-9a-f]{64}$/.test(out[CHUNKED_ANNOTATIONS.tocChecksum]!) && pos.test(out[CHUNKED_ANNOTATIONS.tocPosition]!) && /^\d+:\d+:\d+$/.test(out[CHUNKED_ANNOTATIONS.tarSplitPosition]!)
    && out[CHUNKED_ANNOTATIONS.legacyTocChecksum] === out[CHUNKED_ANNOTATIONS.tocChecksum] && out[CHUNKED_ANNOTATIONS.legacyTocPosition] === out[CHUNKED_ANNOTATIONS.tocPosition];
  return ok ? out : undefined;
}

/** What inspect and the report say of a zstd:chunked layer: its TOC and how many file frames a partial pull can fetch. */
export function chunkedSummary(l: { annotations?: Record<string, string>; contentFrames?: number }): { chunked?: { toc: string; tocBytes: number; contentFrames?: number } } {
  const a = chunkedAnnotationsOf(l.annotations);
  if (!a) return {};
  return { chunked: { toc: a[CHUNKED_ANNOTATIONS.tocChecksum]!, tocBytes: Number(a[CHUNKED_ANNOTATIONS.tocPosition]!.split(":")[1]), ...(l.contentFrames !== undefined ? { contentFrames: l.contentFrames } : {}) } };
}

const SKIPPABLE_MAGIC = 0x184d2a50;
/** The footer's magic since the 64-byte footer (the 40-byte one had "GnUlInUx"). */
const FOOTER_MAGIC = Buffer.from("GNUlInUx", "latin1");
const TOC_TYPE_CRFS = 1;

/**
 * Where the small pieces wait for zstd: a tmpfs (/dev/shm) when there is one, since creating
 * thousands of small files on a disk file system cost most of a layer's time (10 s of 20 for
 * the torch-free stack under load); else the store's temp directory. A batch's files go once
 * its zstd is done, so at most three batches (96 MiB) are there at once. zstd's outputs (the
 * compressed layer) go to the store's temp directory, on disk.
 */
function scratchDir(store: Store): string {
  try {
    if (statSync("/dev/shm").isDirectory()) { accessSync("/dev/shm", constants.W_OK); return "/dev/shm"; }
  } catch { /* no tmpfs */ }
  mkdirSync(store.tmpDir, { recursive: true });
  return store.tmpDir;
}

/** One frame's worth of the tar: a run of headers and padding, or (a chunk of) one file's content. */
interface Piece {
  start: number;
  length: number;
  /** Index in the layer's entries, for content pieces. */
  entry?: number;
  chunk?: number;
}

/**
 * Where an earlier blob holds a segment, and its frames' sizes (the TOC's offsets). The
 * files' CRCs and chunk digests are not kept: they come from the tar as it streams, so a
 * damaged record can only cost a recompression, never a wrong TOC or tar-split.
 */
export interface SegmentRecord {
  blob: string;
  offset: number;
  length: number;
  sha256: string;
  uncompressed: number;
  /** Compressed size of each piece's frame, in order. */
  frames: number[];
}

export interface ChunkedBlob {
  diffHex: string;
  diffBytes: number;
  blobHex: string;
  blobBytes: number;
  segments: Array<{ key: string; record: Omit<SegmentRecord, "blob"> }>;
  reused: number;
  annotations: Record<string, string>;
  /** Frames of file content (what a partial pull can fetch one by one). */
  contentFrames: number;
}

const padLen = (n: number) => (512 - (n % 512)) % 512;
const fileSize = (e: LayerEntry) => (e.entry.type === "file" ? e.entry.size ?? 0 : 0);
const chunkCount = (size: number) => Math.max(1, Math.ceil(size / FILE_CHUNK));

/** The pieces of one segment (entries [start, end) at tar offset `offset`); `last` adds the end-of-archive blocks. */
function segmentPieces(entries: LayerEntry[], mtime: number, seg: FramePlan, last: boolean): Piece[] {
  const pieces: Piece[] = [];
  let pos = seg.offset;
  let run = pos;
  for (let i = seg.start; i < seg.end; i++) {
    const size = fileSize(entries[i]!);
    pos += entryTarBytes(entries[i]!.entry, mtime) - size - padLen(size);
    if (size === 0) continue;
    if (pos > run) pieces.push({ start: run, length: pos - run });
    for (let c = 0; c * FILE_CHUNK < size; c++) pieces.push({ start: pos + c * FILE_CHUNK, length: Math.min(FILE_CHUNK, size - c * FILE_CHUNK), entry: i, chunk: c });
    pos += size;
    run = pos;
    pos += padLen(size);
  }
  if (last) pos += 1024;
  if (pos > run) pieces.push({ start: run, length: pos - run });
  if (pos !== seg.offset + seg.bytes) throw new Error(`zstd:chunked: segment at ${seg.offset} has ${pos - seg.offset} bytes, planned ${seg.bytes}`);
  return pieces;
}

/** Where a compressed frame is: a zstd output file, at offset, of length. */
interface FrameAt { file: string; offset: number; length: number }

/** zstd over a list of inputs (files, or FIFOs), one frame each, into `output`. */
interface Job { output: string; pieces: number; exit: Promise<void>; kill(): void }

function startJob(level: number, listFile: string, inputs: string[], output: string): Job {
  writeFileSync(listFile, inputs.join("\n") + "\n");
  const { child, done } = zstdToFile(level, ["--filelist", listFile], output);
  return { output, pieces: inputs.length, exit: done, kill: () => child.kill() };
}

/** The compressed frames of a finished job's output, checked against its piece count. */
function framesOf(job: Job, buf: Buffer): FrameAt[] {
  const cutter = new ZstdFrameCutter();
  const frames: FrameAt[] = [];
  let pos = 0;
  let start = 0;
  readRange(job.output, 0, Number.MAX_SAFE_INTEGER, buf, (chunk) => {
    for (const end of cutter.cut(chunk)) {
      frames.push({ file: job.output, offset: start, length: pos + end - start });
      start = pos + end;
    }
    pos += chunk.length;
  }, true);
  if (!cutter.atBoundary || start !== pos || frames.length !== job.pieces) throw new Error(`zstd:chunked: ${job.output} holds ${frames.length} frames for ${job.pieces} pieces`);
  return frames;
}

/**
 * Earlier segments this layer can reuse: the recorded range's bytes checked against the
 * recorded sha256, and its zstd frames found again where the record says they end.
 */
function reusableSegments(store: Store, segs: FramePlan[], pieces: Piece[][], records: Array<SegmentRecord | undefined>, buf: Buffer): Map<number, SegmentRecord> {
  const hits = new Map<number, SegmentRecord>();
  segs.forEach((seg, s) => {
    const rec = records[s];
    if (!rec || typeof rec.blob !== "string" || !/^[0-9a-f]{64}$/.test(rec.blob) || rec.uncompressed !== seg.bytes) return;
    if (!Array.isArray(rec.frames) || rec.frames.length !== pieces[s]!.length || !rec.frames.every((n) => Number.isSafeInteger(n) && n > 0) || rec.frames.reduce((a, b) => a + b, 0) !== rec.length) return;
    try {
      const h = createHash("sha256");
      const cutter = new ZstdFrameCutter();
      const ends: number[] = [];
      let pos = 0;
      readRange(store.blobPath(rec.blob), rec.offset, rec.length, buf, (c) => {
        h.update(c);
        for (const e of cutter.cut(c)) ends.push(pos + e);
        pos += c.length;
      });
      let at = 0;
      const expected = rec.frames.map((n) => (at += n));
      if (h.digest("hex") === rec.sha256 && cutter.atBoundary && ends.length === expected.length && ends.every((e, i) => e === expected[i])) hits.set(s, rec);
    } catch {
      // Its blob is gone or short, or not zstd where the record says: compress the segment again.
    }
  });
  return hits;
}

/** Compress `lines` (written in order, with backpressure) with zstd into memory: TOC and tar-split are metadata, megabytes at most. */
async function zstdLines(level: number, lines: Iterable<string>): Promise<{ compressed: Buffer; bytes: number }> {
  const child = spawn(zstdPath(), [`-${level}`, "-q", "-c"], { stdio: ["pipe", "pipe", "pipe"], env: zstdEnv() });
  const out: Buffer[] = [];
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => out.push(d));
  child.stderr.on("data", (d: Buffer) => { stderr += d.toString(); });
  child.stdin.on("error", () => { /* reported through the exit status */ });
  const done = new Promise<void>((resolve, reject) => {
    child.on("error", (err) => reject((err as NodeJS.ErrnoException).code === "ENOENT" ? zstdMissing() : err));
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`zstd compression failed (exit ${code}): ${stderr.trim() || "no message"}`))));
  });
  done.catch(() => {});
  const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
  let bytes = 0;
  let batch = "";
  const flush = async () => {
    const b = Buffer.from(batch, "utf8");
    bytes += b.length;
    batch = "";
    // One 'close' listener for all flushes (one per flush piled up past Node's listener warning).
    if (!child.stdin.write(b)) await Promise.race([new Promise<void>((resolve) => child.stdin.once("drain", resolve)), closed]);
  };
  for (const line of lines) {
    batch += line;
    if (batch.length >= 1 << 20) await flush();
  }
  await flush();
  child.stdin.end();
  await done;
  return { compressed: Buffer.concat(out), bytes };
}

function skippableHeader(size: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(SKIPPABLE_MAGIC, 0);
  b.writeUInt32LE(size, 4);
  return b;
}

/** Go's RFC 3339 form of a Unix time, as the TOC carries it. */
const goTime = (seconds: number) => new Date(seconds * 1000).toISOString().replace(/\.000Z$/, "Z");
const tarName = (e: LayerEntry) => (e.entry.type === "dir" ? `${e.entry.path}/` : e.entry.path);
const TOC_TYPE = { file: "reg", dir: "dir", symlink: "symlink", hardlink: "hardlink" } as const;

/**
 * Write the layer's tar (diffID hashed on the way) as a zstd:chunked blob to `file`.
 * `context` names the compressor and tar format (part of every segment key).
 */
export async function writeChunkedZstd(store: Store, entries: LayerEntry[], mtime: number, level: number, context: string, file: string, opts: { verified?: ReadonlySet<string>; onProgress?: (bytes: number) => void }): Promise<ChunkedBlob> {
  const segs = planFrames(entries, mtime, `${context} zstd:chunked ${CHUNKED_FORMAT}`);
  const pieces = segs.map((seg, s) => segmentPieces(entries, mtime, seg, s === segs.length - 1));
  const buf = takeChunk();
  const work = await mkdtemp(path.join(scratchDir(store), `layerfold-chunked-${process.pid}-`));
  mkdirSync(store.tmpDir, { recursive: true });
  const outDir = await mkdtemp(path.join(store.tmpDir, `chunked-${process.pid}-`));
  const jobs: Job[] = [];
  try {
    const known = await Promise.all(segs.map((seg) => store.getRecord<SegmentRecord>(RECORD_KIND, seg.key)));
    const hits = reusableSegments(store, segs, pieces, known, buf);

    // Per file a CRC-64, per chunk of a cut file a sha256: from the tar itself, reused segments too.
    const crcs = new Map<number, Crc64>();
    const chunkHashes = new Map<string, ReturnType<typeof createHash>>();
    // Where each compressed piece's frame will be: [job, index in job].
    const frameOf = new Map<Piece, { job: () => Job; index: number }>();
    const fresh = segs.flatMap((_, s) => (hits.has(s) ? [] : pieces[s]!));
    const large = fresh.filter((p) => p.length > SMALL_PIECE);
    const fifos = [path.join(work, "fifo-a"), path.join(work, "fifo-b")];
    let largeJob: Job | undefined;
    large.forEach((p, k) => frameOf.set(p, { job: () => largeJob!, index: k }));
    if (large.length) {
      execFileSync("mkfifo", fifos);
      largeJob = startJob(level, path.join(work, "large.list"), large.map((_, k) => fifos[k % 2]!), path.join(outDir, "large.zst"));
      jobs.push(largeJob);
    }
    let failed: Error | undefined;
    let smallFd: number | undefined;
    let fifo: Promise<Socket> | undefined;
    const fail = (err: Error) => {
      failed ??= err;
      for (const j of jobs) j.kill();
      for (const f of fifos) releaseFifo(f);
      fifo?.then((s) => s.destroy(), () => {});
    };
    if (largeJob) largeJob.exit.catch(fail);

    // Small pieces: files of the current batch, handed to a zstd of their own when it is full.
    let batch: string[] = [];
    let batchBytes = 0;
    const running: Job[] = [];
    // Starts zstd at once; the promise is the wait for a free slot (at most two batches at a time).
    const startBatch = async () => {
      if (!batch.length) return;
      const j = startJob(level, path.join(work, `b${jobs.length}.list`), batch, path.join(outDir, `b${jobs.length}.zst`));
      j.exit.catch(fail);
      const inputs = batch;
      // Compressed: the batch's files are not needed any more.
      j.exit.then(() => Promise.all(inputs.map((f) => rm(f, { force: true })))).catch(() => {});
      jobs.push(j);
      running.push(j);
      batch = [];
      batchBytes = 0;
      // Two batches at a time: zstd keeps up, and the temp files stay few.
      while (running.length > 2) await running.shift()!.exit;
    };

    // The tar, cut at piece boundaries.
    const all = segs.flatMap((_, s) => pieces[s]!.map((p) => ({ p, reused: hits.has(s) })));
    const diff = createHash("sha256");
    let diffBytes = 0;
    let at = 0; // index in `all`
    const sink: ChunkSink = {
      async write(chunk) {
        diff.update(chunk);
        const base = diffBytes;
        diffBytes += chunk.length;
        opts.onProgress?.(diffBytes);
        const pending: Promise<void>[] = [];
        for (let off = 0; off < chunk.length;) {
          if (failed) throw failed;
          const cur = all[at];
          if (!cur) throw new Error("zstd:chunked: the tar is longer than its pieces");
          const { p, reused } = cur;
          const pos = base + off;
          const n = Math.min(chunk.length - off, p.start + p.length - pos);
          if (pos < p.start || n <= 0) throw new Error(`zstd:chunked: tar byte ${pos} is not in piece ${at} [${p.start}, ${p.start + p.length})`);
          const part = chunk.subarray(off, off + n);
          if (p.entry !== undefined) {
            let crc = crcs.get(p.entry);
            if (!crc) crcs.set(p.entry, (crc = new Crc64()));
            crc.update(part);
            if (chunkCount(fileSize(entries[p.entry]!)) > 1) {
              const k = `${p.entry}:${p.chunk}`;
              let h = chunkHashes.get(k);
              if (!h) chunkHashes.set(k, (h = createHash("sha256")));
              h.update(part);
            }
          }
          if (!reused) {
            if (p.length > SMALL_PIECE) {
              if (!fifo) {
                const target = fifos[frameOf.get(p)!.index % 2]!;
                fifo = fifoWriter(target);
              }
              // Handed to the socket in order (each .then runs in the order it was added); awaited
              // below, so the ring buffer is not reused before the bytes are in the pipe.
              pending.push(fifo.then((s) => new Promise<void>((resolve, reject) => s.write(part, (err) => (err ? reject(err) : resolve())))));
            } else {
              smallFd ??= openSync(path.join(work, `p${at}`), "w");
              writeSync(smallFd, part);
            }
          }
          off += n;
          if (pos + n === p.start + p.length) {
            if (!reused && p.length > SMALL_PIECE) {
              const w = fifo!;
              fifo = undefined;
              // 'close', not end's callback: a FIFO has no shutdown(), the fd is simply closed.
              pending.push(w.then((s) => new Promise<void>((resolve) => { s.once("close", () => resolve()); s.end(); })));
            } else if (!reused) {
              closeSync(smallFd!);
              smallFd = undefined;
              const name = path.join(work, `p${at}`);
              // This batch becomes jobs[jobs.length] when it starts: no other job is added before.
              const bIndex = jobs.length;
              frameOf.set(p, { job: () => jobs[bIndex]!, index: batch.length });
              batch.push(name);
              batchBytes += p.length;
              // No await inside this loop: writeLayerTar has up to four writes in flight, and a
              // later one must not run before this chunk is cut. The slot wait joins `pending`.
              if (batch.length >= BATCH_FILES || batchBytes >= BATCH_BYTES) pending.push(startBatch());
            }
            at++;
          }
        }
        await Promise.all(pending);
      },
    };
    try {
      await writeLayerTar(entries, mtime, sink, { verified: opts.verified });
      if (at !== all.length) throw new Error(`zstd:chunked: wrote ${at} of ${all.length} pieces`);
      await startBatch();
      await Promise.all(jobs.map((j) => j.exit));
    } catch (err) {
      fail(err as Error);
      if (smallFd !== undefined) closeSync(smallFd);
      // A zstd that died on its own fails our writes with EPIPE; its own message says more.
      const died = (await Promise.allSettled(jobs.map((j) => j.exit))).find((r) => r.status === "rejected" && !(r.reason as { signal?: string }).signal);
      throw err instanceof CorruptStoreError || !died ? err : (died as PromiseRejectedResult).reason;
    }

    // Where every fresh piece's frame is.
    const jobFrames = new Map(jobs.map((j) => [j, framesOf(j, buf)]));
    const frameAt = (p: Piece) => { const f = frameOf.get(p)!; return jobFrames.get(f.job())![f.index]!; };

    // The blob: segments in order (fresh frames, or an earlier blob's range), then TOC, tar-split, footer.
    // zstd's output files stay open while their frames are copied (one open each, not one per frame).
    const outputs = new Map<string, number>();
    const out = openSync(file, "w");
    const blobHash = createHash("sha256");
    let blobBytes = 0;
    const put = (chunk: Buffer, seg?: ReturnType<typeof createHash>) => { blobHash.update(chunk); seg?.update(chunk); writeSync(out, chunk); blobBytes += chunk.length; };
    const records: Array<Omit<SegmentRecord, "blob">> = [];
    // Absolute [start, end) of each content piece's frame, by entry: the TOC's offsets.
    const contentAt = new Map<number, Array<[number, number]>>();
    const crcOf = new Map<number, string>();
    const chunkDigestOf = new Map<string, string>();
    try {
      segs.forEach((seg, s) => {
        const start = blobBytes;
        const h = createHash("sha256");
        const hit = hits.get(s);
        let frames: number[];
        if (hit) {
          readRange(store.blobPath(hit.blob), hit.offset, hit.length, buf, (c) => put(c, h));
          frames = hit.frames;
        } else {
          frames = pieces[s]!.map((p) => {
            const f = frameAt(p);
            let fd = outputs.get(f.file);
            if (fd === undefined) outputs.set(f.file, (fd = openSync(f.file, "r")));
            for (let at = 0; at < f.length;) {
              const got = readSync(fd, buf, 0, Math.min(buf.length, f.length - at), f.offset + at);
              if (got === 0) throw new Error(`zstd:chunked: ${f.file} ended inside a frame`);
              put(buf.subarray(0, got), h);
              at += got;
            }
            return f.length;
          });
        }
        for (const p of pieces[s]!) {
          if (p.chunk === 0) crcOf.set(p.entry!, crcs.get(p.entry!)!.digest().toString("hex"));
          const k = `${p.entry}:${p.chunk}`;
          if (chunkHashes.has(k)) chunkDigestOf.set(k, chunkHashes.get(k)!.digest("hex"));
        }
        let cursor = start;
        pieces[s]!.forEach((p, i) => {
          if (p.entry !== undefined) {
            const list = contentAt.get(p.entry) ?? [];
            list.push([cursor, cursor + frames[i]!]);
            contentAt.set(p.entry, list);
          }
          cursor += frames[i]!;
        });
        records.push({ offset: start, length: blobBytes - start, sha256: h.digest("hex"), uncompressed: seg.bytes, frames });
      });

      // tar-split: each entry's raw header bytes (with the padding before them), then its name, size and CRC-64.
      const tarSplit = await zstdLines(level, (function* () {
        let position = 0;
        let padding = 0;
        for (let i = 0; i < entries.length; i++) {
          const e = entries[i]!;
          const raw = Buffer.concat([Buffer.alloc(padding), ...entryHeaders(e.entry, mtime)]);
          yield `${JSON.stringify({ type: 2, payload: raw.toString("base64"), position: position++ })}\n`;
          const size = fileSize(e);
          const crc = crcOf.get(i);
          yield `${JSON.stringify({ type: 1, name: tarName(e), ...(size ? { size } : {}), payload: crc ? Buffer.from(crc, "hex").toString("base64") : null, position: position++ })}\n`;
          padding = padLen(size);
        }
        yield `${JSON.stringify({ type: 2, payload: Buffer.alloc(padding + 1024).toString("base64"), position: position++ })}\n`;
      })());
      const tarSplitDigest = `sha256:${createHash("sha256").update(tarSplit.compressed).digest("hex")}`;

      // The TOC: one entry per tar entry (plus one per further chunk of a cut file), offsets into this blob.
      let contentFrames = 0;
      const toc = await zstdLines(level, (function* () {
        yield '{"version":1,"entries":[';
        const modtime = goTime(mtime);
        for (let i = 0; i < entries.length; i++) {
          const e = entries[i]!.entry;
          const size = fileSize(entries[i]!);
          const frames = contentAt.get(i) ?? [];
          contentFrames += frames.length;
          const cut = frames.length > 1;
          const main = {
            type: TOC_TYPE[e.type as keyof typeof TOC_TYPE] ?? "hardlink",
            name: tarName(entries[i]!),
            ...(e.type === "symlink" || e.type === "hardlink" ? { linkName: e.target ?? "" } : {}),
            ...(e.mode & 0o7777 ? { mode: e.mode & 0o7777 } : {}),
            ...(size ? { size } : {}),
            ...(e.uid ? { uid: e.uid } : {}),
            ...(e.gid ? { gid: e.gid } : {}),
            modtime,
            ...(e.xattrs && Object.keys(e.xattrs).length ? { xattrs: Object.fromEntries(Object.keys(e.xattrs).sort().map((k) => [k, e.xattrs![k]!])) } : {}),
            ...(size ? { digest: `sha256:${e.sha256}`, offset: frames[0]![0], endOffset: frames[frames.length - 1]![1] } : {}),
            ...(cut ? { chunkSize: Math.min(FILE_CHUNK, size), chunkDigest: `sha256:${chunkDigestOf.get(`${i}:0`)}` } : {}),
          };
          yield `${i ? "," : ""}${JSON.stringify(main)}`;
          for (let c = 1; cut && c < frames.length; c++) {
            yield `,${JSON.stringify({ type: "chunk", name: main.name, offset: frames[c]![0], endOffset: frames[c]![1], chunkSize: Math.min(FILE_CHUNK, size - c * FILE_CHUNK), chunkOffset: c * FILE_CHUNK, chunkDigest: `sha256:${chunkDigestOf.get(`${i}:${c}`)}` })}`;
          }
        }
        yield `],"tarSplitDigest":${JSON.stringify(tarSplitDigest)}}`;
      })());

      put(skippableHeader(toc.compressed.length));
      const tocOffset = blobBytes;
      put(toc.compressed);
      put(skippableHeader(tarSplit.compressed.length));
      const tarSplitOffset = blobBytes;
      put(tarSplit.compressed);
      const footer = Buffer.alloc(64);
      [tocOffset, toc.compressed.length, toc.bytes, TOC_TYPE_CRFS, tarSplitOffset, tarSplit.compressed.length, tarSplit.bytes].forEach((v, i) => footer.writeBigUInt64LE(BigInt(v), i * 8));
      FOOTER_MAGIC.copy(footer, 56);
      put(skippableHeader(footer.length));
      put(footer);

      const tocChecksum = `sha256:${createHash("sha256").update(toc.compressed).digest("hex")}`;
      const tocPosition = `${tocOffset}:${toc.compressed.length}:${toc.bytes}:${TOC_TYPE_CRFS}`;
      const annotations = {
        [CHUNKED_ANNOTATIONS.tocChecksum]: tocChecksum,
        [CHUNKED_ANNOTATIONS.tocPosition]: tocPosition,
        [CHUNKED_ANNOTATIONS.tarSplitPosition]: `${tarSplitOffset}:${tarSplit.compressed.length}:${tarSplit.bytes}`,
        [CHUNKED_ANNOTATIONS.legacyTocChecksum]: tocChecksum,
        [CHUNKED_ANNOTATIONS.legacyTocPosition]: tocPosition,
      };
      return {
        diffHex: diff.digest("hex"),
        diffBytes,
        blobHex: blobHash.digest("hex"),
        blobBytes,
        segments: segs.map((seg, s) => ({ key: seg.key, record: records[s]! })),
        reused: hits.size,
        annotations,
        contentFrames,
      };
    } finally {
      closeSync(out);
      for (const fd of outputs.values()) closeSync(fd);
    }
  } finally {
    giveBackChunk(buf);
    await rm(work, { recursive: true, force: true });
    await rm(outDir, { recursive: true, force: true });
  }
}

/** After the blob `blobHex` was stored: remember where each of its segments is, for the next build. */
export async function recordSegments(store: Store, blobHex: string, segments: ChunkedBlob["segments"]): Promise<void> {
  await Promise.all(segments.map((s) => store.putRecord(RECORD_KIND, s.key, { ...s.record, blob: blobHex } satisfies SegmentRecord)));
}
