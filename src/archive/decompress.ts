// Decompression by format: gzip through node:zlib, xz and zstd through the
// system's xz and zstd programs (Node 20 has neither). All stream.

import { spawn } from "node:child_process";
import { Duplex, PassThrough, Writable, type Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { MalformedArchiveError, RuntimeError } from "../errors.ts";

export type Compression = "gzip" | "xz" | "zstd" | "bzip2" | "none";

/** Guess the compression from a file name. */
export function compressionFromName(name: string): Compression {
  if (/\.(tgz|gz)$/.test(name)) return "gzip";
  if (/\.(txz|xz)$/.test(name)) return "xz";
  if (/\.(tzst|zst|zstd)$/.test(name)) return "zstd";
  if (/\.(tbz2?|bz2)$/.test(name)) return "bzip2";
  return "none";
}

/** Sniff the compression from the first bytes. */
export function compressionFromMagic(head: Uint8Array): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head[0] === 0xfd && head[1] === 0x37 && head[2] === 0x7a && head[3] === 0x58 && head[4] === 0x5a) return "xz";
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return "zstd";
  if (head[0] === 0x42 && head[1] === 0x5a && head[2] === 0x68) return "bzip2";
  return "none";
}

/**
 * A duplex over a child process's stdin/stdout; the process's failure fails the stream.
 * `input` is the process's stdin itself: its write callback fires once the bytes are in
 * the pipe, so a writer may reuse its buffer then (the duplex's may fire before that).
 */
export function processStream(cmd: string, args: string[], what: string): Duplex & { input: Writable } {
  const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => { if (stderr.length < 4000) stderr += d.toString(); });
  const out = new PassThrough();
  // A process that dies on bad input closes its stdin: the writes that follow fail with
  // EPIPE, which says nothing. They are dropped, and the exit status reports the failure.
  const stdin = new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (child.stdin.destroyed) return cb();
      child.stdin.write(chunk, (err) => cb(err && (err as NodeJS.ErrnoException).code !== "EPIPE" ? err : undefined));
    },
    final(cb) {
      if (child.stdin.destroyed) return cb();
      child.stdin.end(() => cb());
    },
  });
  const duplex = Duplex.from({ writable: stdin, readable: out });
  child.stdout.pipe(out, { end: false });
  let exited: number | null | undefined;
  let stdoutEnded = false;
  const finish = () => {
    if (exited === undefined || !stdoutEnded) return;
    if (exited === 0) out.end();
    else out.destroy(new MalformedArchiveError(`${what}: ${cmd} cannot decompress it (exit ${exited}: ${stderr.trim() || "corrupt or truncated data"}); the archive is truncated or corrupt`));
  };
  child.stdout.on("end", () => { stdoutEnded = true; finish(); });
  child.on("close", (code) => { exited = code; finish(); });
  child.on("error", (err) => {
    out.destroy(new RuntimeError(`${what}: cannot run ${cmd} (${(err as Error).message}); install it (apt-get install -y ${cmd === "xz" ? "xz-utils" : cmd})`));
  });
  child.stdin.on("error", () => { /* reported through exit status */ });
  duplex.on("close", () => { if (exited === undefined) child.kill(); });
  return Object.assign(duplex, { input: child.stdin });
}

export function decompressor(kind: Compression, what: string): Duplex {
  switch (kind) {
    case "gzip": return createGunzip();
    case "xz": return processStream("xz", ["-d", "-c", "-T1"], what);
    case "zstd": return processStream("zstd", ["-d", "-c", "-q", "--long=31"], what);
    case "bzip2": return processStream("bzip2", ["-d", "-c"], what);
    case "none": return new PassThrough();
  }
}

/** Open a file decompressed, the compression sniffed from its first bytes. */
export async function openDecompressed(file: string, what: string): Promise<Readable> {
  const fh = await open(file, "r");
  const head = Buffer.alloc(6);
  try { await fh.read(head, 0, 6, 0); } finally { await fh.close(); }
  const dec = decompressor(compressionFromMagic(head), what);
  const src = createReadStream(file, { highWaterMark: 1 << 20 });
  src.on("error", (e) => dec.destroy(e));
  return src.pipe(dec);
}

/**
 * The uncompressed size of a whole single-stream .xz file, from its index, or
 * undefined when the bytes are not exactly one well-formed stream. xz checks the
 * index against the data it decodes, so a lying index fails the decompression.
 */
export function xzUncompressedSize(xz: Uint8Array): number | undefined {
  let end = xz.length;
  while (end >= 4 && xz[end - 1] === 0 && xz[end - 2] === 0 && xz[end - 3] === 0 && xz[end - 4] === 0) end -= 4; // stream padding
  if (end < 24 || compressionFromMagic(xz) !== "xz" || xz[end - 2] !== 0x59 || xz[end - 1] !== 0x5a) return undefined;
  const view = new DataView(xz.buffer, xz.byteOffset, xz.byteLength);
  const indexSize = (view.getUint32(end - 8, true) + 1) * 4;
  let at = end - 12 - indexSize;
  if (at < 12 || xz[at] !== 0) return undefined;
  at++;
  const varint = (): number | undefined => {
    let v = 0;
    for (let i = 0; i < 9 && at < end; i++) {
      const b = xz[at++]!;
      v += (b & 0x7f) * 2 ** (7 * i);
      if (!(b & 0x80)) return v;
    }
    return undefined;
  };
  const records = varint();
  if (records === undefined || records > 1 << 20) return undefined;
  let blocks = 0;
  let size = 0;
  for (let i = 0; i < records; i++) {
    const unpadded = varint();
    const uncompressed = varint();
    if (unpadded === undefined || uncompressed === undefined) return undefined;
    blocks += Math.ceil(unpadded / 4) * 4;
    size += uncompressed;
  }
  // Exactly one stream: header, blocks, index, footer, nothing else.
  return 12 + blocks + indexSize + 12 === end ? size : undefined;
}
