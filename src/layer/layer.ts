// Builds one layer blob: tar -> sha256 (diffID) -> compressor -> temp file,
// streaming; then sha256 of that file (digest) -> store. A layer record maps the layer's input key
// to its descriptor; an unchanged key costs one file read.

import { mkdirSync, renameSync, rmSync } from "node:fs";
import path from "node:path";
import { createHash } from "node:crypto";
import type { Store } from "../store/store.ts";
import { CorruptStoreError } from "../errors.ts";
import { sha256Hex } from "../util/hash.ts";
import { stableJson } from "../util/json.ts";
import { compressToFile, compressorId, DEFAULT_LEVEL, layerMediaType, type LayerCompression } from "./compress.ts";
import { readGrowingFile, recordFrames, writeFramedZstd, type FramedBlob } from "./frames.ts";
import { recordSegments, writeChunkedZstd } from "./chunked.ts";
import { giveBackChunk, takeChunk, writeLayerTar, type ChunkSink, type LayerEntry } from "./tar-writer.ts";
import { hexOf } from "../constants.ts";
import type { RecordKind } from "../store/record-kinds.ts";

/** Bump when the tar format or zstd framing changes, so old records are not reused. */
export const LAYER_FORMAT = 2;

/** Layer records stay while a kept build names their key or their blob is kept. */
export const LAYER_RECORDS: RecordKind<LayerRecord> = {
  kind: "layers",
  keep: (key, rec, live) => live.layerKeys.has(key) || (!!rec && typeof rec.digest === "string" && live.blobs.has(hexOf(rec.digest))),
};

export interface LayerRecord {
  key: string;
  name: string;
  mediaType: string;
  /** "sha256:<hex>" of the compressed blob. */
  digest: string;
  size: number;
  diffId: string;
  uncompressedSize: number;
  compressor: string;
  packages: string[];
  fileCount: number;
  /** zstd: frames in the blob, and how many were copied from earlier blobs when it was built (zstd:chunked: segments). */
  frames?: number;
  framesReused?: number;
  /** zstd:chunked: the descriptor annotations that locate the TOC and tar-split. */
  annotations?: Record<string, string>;
  /** zstd:chunked: frames of file content, each fetchable alone. */
  contentFrames?: number;
}

export interface LayerInput {
  name: string;
  packages: string[];
  /** Sorted, parents included (fold/plan.ts withParents). */
  entries: LayerEntry[];
  compression: LayerCompression;
  level?: number;
  mtime: number;
}

/** The key that decides whether a layer must be rebuilt: everything its bytes depend on. */
export function layerKey(input: LayerInput): string {
  const trees = [...new Set(input.entries.map((e) => e.treeKey))].sort();
  // Entries are a subset of their trees when conflicts or splits drop paths, and synthesised
  // parent directories take metadata from lower layers, so hash the entry list too: one
  // line per entry, joined by "\n", fed to the hash in pieces (no string of the whole list).
  const h = createHash("sha256");
  let piece = "";
  input.entries.forEach((e, i) => {
    piece += `${i ? "\n" : ""}${e.treeKey}\0${e.entry.path}${e.entry.type === "dir" ? `\0${e.entry.mode}\0${e.entry.uid}\0${e.entry.gid}` : ""}`;
    if (piece.length > 1 << 16) { h.update(piece); piece = ""; }
  });
  const paths = h.update(piece).digest("hex");
  return sha256Hex(stableJson({ format: LAYER_FORMAT, trees, paths, compressor: compressorId(input.compression, input.level), mtime: input.mtime }));
}

export async function buildLayer(store: Store, input: LayerInput, key: string, onProgress?: (bytes: number) => void): Promise<LayerRecord> {
  mkdirSync(store.tmpDir, { recursive: true });
  const tmp = path.join(store.tmpDir, `layer-${key.slice(0, 12)}-${process.pid}-${Math.random().toString(36).slice(2)}`);
  try {
    const level = input.level ?? DEFAULT_LEVEL[input.compression];
    const context = `${compressorId(input.compression, input.level)} layer ${LAYER_FORMAT}`;
    const chunked = input.compression === "zstd:chunked" ? await writeChunkedZstd(store, input.entries, input.mtime, level, context, tmp, { verified: store.writtenHere, onProgress }) : undefined;
    const built: Omit<FramedBlob, "frames" | "reused"> & Partial<Pick<FramedBlob, "frames" | "reused">> = chunked
      ? { ...chunked, frames: undefined }
      : input.compression === "zstd"
        ? await writeFramedZstd(store, input.entries, input.mtime, level, context, tmp, { verified: store.writtenHere, onProgress })
        : await writeCompressed(store, { ...input, compression: input.compression as "gzip" | "none" }, tmp, onProgress);
    const dest = store.blobPath(built.blobHex);
    mkdirSync(path.dirname(dest), { recursive: true });
    renameSync(tmp, dest);
    store.recordBlob(built.blobHex);
    if (built.frames) await recordFrames(store, built.blobHex, built.frames);
    if (chunked) await recordSegments(store, built.blobHex, chunked.segments);
    const record: LayerRecord = {
      key,
      name: input.name,
      mediaType: layerMediaType(input.compression),
      digest: `sha256:${built.blobHex}`,
      size: built.blobBytes,
      diffId: `sha256:${built.diffHex}`,
      uncompressedSize: built.diffBytes,
      compressor: compressorId(input.compression, input.level),
      packages: input.packages,
      fileCount: input.entries.length,
      ...(built.frames ? { frames: built.frames.length, framesReused: built.reused } : {}),
      ...(chunked ? { frames: chunked.segments.length, framesReused: chunked.reused, annotations: chunked.annotations, contentFrames: chunked.contentFrames } : {}),
    };
    await store.putRecord("layers", key, record);
    return record;
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** gzip or no compression: the tar through one compressor into `tmp`. */
async function writeCompressed(store: Store, input: LayerInput & { compression: "gzip" | "none" }, tmp: string, onProgress?: (bytes: number) => void): Promise<Omit<FramedBlob, "frames" | "reused">> {
  const diff = createHash("sha256");
  let diffBytes = 0;
  const comp = compressToFile(input.compression, input.level, tmp);
  comp.done.catch(() => {});
  const sink: ChunkSink = {
    write(chunk) {
      diff.update(chunk);
      diffBytes += chunk.length;
      onProgress?.(diffBytes);
      return new Promise((resolve, reject) => comp.input.write(chunk, (err) => (err ? reject(err) : resolve())));
    },
  };
  try {
    await writeLayerTar(input.entries, input.mtime, sink, { verified: store.writtenHere });
    comp.input.end();
  } catch (err) {
    comp.abort();
    // A dead compressor fails the writes with EPIPE; its own error says more.
    const compressorErr = await comp.done.then(() => undefined, (e: unknown) => e);
    throw err instanceof CorruptStoreError || !compressorErr ? err : compressorErr;
  }
  // The compressed digest, read back from the page cache (cheaper than the blob passing through
  // this process) while the compressor finishes its last blocks.
  const h = createHash("sha256");
  const buf = takeChunk();
  try {
    const size = await readGrowingFile(tmp, comp.done, buf, (c) => h.update(c));
    return { diffHex: diff.digest("hex"), diffBytes, blobHex: h.digest("hex"), blobBytes: size };
  } finally {
    giveBackChunk(buf);
  }
}

/**
 * A stored record whose blob is still intact (the recorded size, and the stat signature
 * recorded when it was written, else a full rehash), else undefined. A damaged blob is
 * removed with its record, and `onDamaged` told, so the layer is built again.
 */
export async function reusableLayer(store: Store, key: string, onDamaged?: (message: string) => void): Promise<LayerRecord | undefined> {
  const rec = await store.getRecord<LayerRecord>("layers", key);
  if (!rec || rec.key !== key || typeof rec.digest !== "string" || !/^sha256:[0-9a-f]{64}$/.test(rec.digest)) return undefined;
  const hex = rec.digest.slice(7);
  const size = await store.blobSize(hex);
  const state = size === undefined ? "missing" : size !== rec.size ? "damaged" : await store.checkBlob(hex);
  if (state === "ok") return rec;
  if (state === "damaged") {
    await store.dropBlob(hex);
    onDamaged?.(`layer ${rec.name}: the stored blob ${hex.slice(0, 12)} is damaged (its bytes changed since it was built); building it again`);
  }
  await store.dropRecord("layers", key);
  return undefined;
}
