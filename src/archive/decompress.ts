// Decompression by format: gzip through node:zlib, xz and zstd through the
// system's xz and zstd programs (Node 20 has neither). All stream.

import { spawn } from "node:child_process";
import { Duplex, PassThrough, type Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { UnsafeArchiveError } from "../errors.ts";

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

/** A duplex over a child process's stdin/stdout; the process's failure fails the stream. */
export function processStream(cmd: string, args: string[], what: string): Duplex {
  const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => { if (stderr.length < 4000) stderr += d.toString(); });
  const out = new PassThrough();
  const duplex = Duplex.from({ writable: child.stdin, readable: out });
  child.stdout.pipe(out, { end: false });
  let exited: number | null | undefined;
  let stdoutEnded = false;
  const finish = () => {
    if (exited === undefined || !stdoutEnded) return;
    if (exited === 0) out.end();
    else out.destroy(new UnsafeArchiveError(`${what}: ${cmd} failed (exit ${exited}): ${stderr.trim() || "corrupt or truncated data"}`));
  };
  child.stdout.on("end", () => { stdoutEnded = true; finish(); });
  child.on("close", (code) => { exited = code; finish(); });
  child.on("error", (err) => {
    out.destroy(new UnsafeArchiveError(`${what}: cannot run ${cmd} (${(err as Error).message}); install it (apt-get install -y ${cmd === "xz" ? "xz-utils" : cmd})`));
  });
  child.stdin.on("error", () => { /* reported through exit status */ });
  duplex.on("close", () => { if (exited === undefined) child.kill(); });
  return duplex;
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
