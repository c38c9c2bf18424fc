// Compressors for layer blobs. Output must be byte-for-byte reproducible, so
// each compressed digest is recorded with the compressor and its version.

import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { closeSync, createWriteStream, openSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { Writable } from "node:stream";
import { finished, pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { MEDIA } from "../oci/types.ts";
import { findOnPath, writeFileAtomic } from "../util/fs.ts";

/** "zstd:chunked": zstd in containers/storage's chunked format (see chunked.ts), for partial pulls. */
export type { LayerCompression } from "../constants.ts";
import type { LayerCompression } from "../constants.ts";
/** Compressions that run the zstd program. */
export const usesZstd = (kind: LayerCompression): boolean => kind === "zstd" || kind === "zstd:chunked";

export const zstdMissing = () => new Error("zstd compression needs the zstd program; install it (apt-get install -y zstd) or set compression: \"gzip\"");
const parseZstdVersion = (out: string) => /v(\d+\.\d+\.\d+)/.exec(out)?.[1] ?? out.trim();

/** The zstd program as exec finds it on PATH (its absolute path, run for -V and for compression alike), or "zstd". */
let zstdProgram: string | undefined;
export function zstdPath(): string {
  zstdProgram ??= findOnPath("zstd") ?? "zstd";
  return zstdProgram;
}

let zstdVersion: string | undefined;
function zstdVersionString(): string {
  if (!zstdVersion) {
    try {
      zstdVersion = parseZstdVersion(execFileSync(zstdPath(), ["-V"], { encoding: "utf8" }));
    } catch {
      throw zstdMissing();
    }
  }
  return zstdVersion;
}

/**
 * Learn the compressor's version before compressorId (part of every layer key) needs it.
 * Running `zstd -V` forks this process (~20 ms, then a copy-on-write fault on each page
 * it writes), so the version is kept in `cacheFile` by the program's identity (path,
 * inode, size, mtime, ctime): an upgraded or replaced zstd is asked again.
 */
export async function prepareCompressor(kind: LayerCompression, cacheFile?: string): Promise<void> {
  if (!usesZstd(kind) || zstdVersion) return;
  const program = zstdPath();
  const st = path.isAbsolute(program) ? statSync(program, { throwIfNoEntry: false }) : undefined;
  const identity = st && `${program}\0${st.ino}\0${st.size}\0${st.mtimeMs}\0${st.ctimeMs}`;
  if (identity && cacheFile) {
    const cached = await readFile(cacheFile, "utf8").then((t) => JSON.parse(t) as { identity?: string; version?: string }, () => undefined);
    if (cached?.identity === identity && typeof cached.version === "string") {
      zstdVersion = cached.version;
      return;
    }
  }
  const out = await new Promise<string | undefined>((resolve) => execFile(program, ["-V"], { encoding: "utf8" }, (err, stdout) => resolve(err ? undefined : stdout)));
  if (out === undefined) return; // compressorId reports it
  zstdVersion ??= parseZstdVersion(out);
  if (identity && cacheFile) await writeFileAtomic(cacheFile, JSON.stringify({ identity, version: zstdVersion }), { fsync: false }).catch(() => {});
}

export const DEFAULT_LEVEL: Record<LayerCompression, number> = { zstd: 3, "zstd:chunked": 3, gzip: 6, none: 0 };

/** "zstd 1.5.4 -3": what produced a compressed digest. Part of every layer key. */
export function compressorId(kind: LayerCompression, level = DEFAULT_LEVEL[kind]): string {
  switch (kind) {
    case "zstd": return `zstd ${zstdVersionString()} -${level}`;
    case "zstd:chunked": return `zstd ${zstdVersionString()} -${level} chunked`;
    case "gzip": return `zlib ${process.versions.zlib} -${level}`;
    case "none": return "none";
  }
}

export function layerMediaType(kind: LayerCompression): string {
  return usesZstd(kind) ? MEDIA.layerZstd : kind === "gzip" ? MEDIA.layerGzip : MEDIA.layerTar;
}

/**
 * zstd's buffers (~50 MB at -T0) on transparent huge pages where the kernel offers them
 * on request: glibc's malloc then asks for them. Each 4 KiB page otherwise costs a fault
 * on first touch, which on a VM made up about half of zstd's CPU time (13k faults for a
 * 78 MB layer, 0.8 -> 0.5 CPU-s). The output does not change; other libcs ignore it.
 */
export function zstdEnv(): NodeJS.ProcessEnv {
  const tunables = process.env.GLIBC_TUNABLES;
  if (tunables?.includes("glibc.malloc.hugetlb=")) return process.env;
  return { ...process.env, GLIBC_TUNABLES: tunables ? `${tunables}:glibc.malloc.hugetlb=1` : "glibc.malloc.hugetlb=1" };
}

/** A compressor writing into a file: write to `input` (its callback means the chunk may be reused), end it, await `done`. */
export interface FileCompressor {
  input: Writable;
  /** Settles once the file is complete, or with the compressor's own error. */
  done: Promise<void>;
  abort(): void;
}

/** zstd writing `file` itself from `inputs` ("-" for stdin, or FIFOs): one frame per input, in order. */
export interface ZstdToFile {
  child: ChildProcess;
  /** Settles once zstd exits; its own failure carries its message, a kill carries `signal`. */
  done: Promise<void>;
}

/**
 * Spawn zstd compressing into `file`. Its output never passes through this process, which
 * would cost a pipe read, fresh buffers and a file write per 64 KiB.
 */
export function zstdToFile(level: number, inputs: string[], file: string): ZstdToFile {
  const fd = openSync(file, "w");
  let child: ChildProcess;
  try {
    // Multi-threaded zstd output does not depend on the thread count, so -T0 is reproducible.
    child = spawn(zstdPath(), [`-${level}`, "-T0", "-q", "-c", "--no-progress", ...inputs], { stdio: ["pipe", fd, "pipe"], env: zstdEnv() });
  } finally {
    closeSync(fd); // the child has its own
  }
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => { if (stderr.length < 4000) stderr += d.toString(); });
  child.stdin!.on("error", () => { /* reported through the exit status */ });
  const done = new Promise<void>((resolve, reject) => {
    child.on("error", (err) => reject((err as NodeJS.ErrnoException).code === "ENOENT" ? zstdMissing() : err));
    child.on("close", (code, signal) =>
      code === 0 ? resolve() : reject(signal ? Object.assign(new Error(`zstd compression stopped (${signal})`), { signal }) : new Error(`zstd compression failed (exit ${code}): ${stderr.trim() || "no message"}`)));
  });
  done.catch(() => {});
  return { child, done };
}

/**
 * Compress into `file` with gzip or nothing (zstd layers are framed: see frames.ts).
 * An fs write stream calls back once the chunk is written, so "none" needs no copy.
 */
export function compressToFile(kind: "gzip" | "none", level: number | undefined, file: string): FileCompressor {
  // Opened here, not by the stream (which opens on a later tick): the caller reads the file
  // back as it grows and must find it even when the whole tar was written before that tick.
  const out = createWriteStream(file, { fd: openSync(file, "w"), highWaterMark: 1 << 20 });
  if (kind === "none") return { input: out, done: finished(out), abort: () => out.destroy() };
  // Node's gzip header has mtime 0 and no file name: reproducible for a given zlib.
  const gz = createGzip({ level: level ?? DEFAULT_LEVEL.gzip, chunkSize: 1 << 17 });
  return { input: gz, done: pipeline(gz, out), abort: () => gz.destroy() };
}
