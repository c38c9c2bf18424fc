// Compressors for layer blobs. Output must be byte-for-byte reproducible, so
// each compressed digest is recorded with the compressor and its version.

import { execFileSync } from "node:child_process";
import type { Duplex } from "node:stream";
import { PassThrough } from "node:stream";
import { createGzip } from "node:zlib";
import { processStream } from "../archive/decompress.ts";
import { MEDIA } from "../oci/types.ts";

export type LayerCompression = "zstd" | "gzip" | "none";

let zstdVersion: string | undefined;
function zstdVersionString(): string {
  if (!zstdVersion) {
    try {
      const out = execFileSync("zstd", ["-V"], { encoding: "utf8" });
      zstdVersion = /v(\d+\.\d+\.\d+)/.exec(out)?.[1] ?? out.trim();
    } catch {
      throw new Error("zstd compression needs the zstd program; install it (apt-get install -y zstd) or set compression: \"gzip\"");
    }
  }
  return zstdVersion;
}

export const DEFAULT_LEVEL: Record<LayerCompression, number> = { zstd: 3, gzip: 6, none: 0 };

/** "zstd 1.5.4 -3": what produced a compressed digest. Part of every layer key. */
export function compressorId(kind: LayerCompression, level = DEFAULT_LEVEL[kind]): string {
  switch (kind) {
    case "zstd": return `zstd ${zstdVersionString()} -${level}`;
    case "gzip": return `zlib ${process.versions.zlib} -${level}`;
    case "none": return "none";
  }
}

export function layerMediaType(kind: LayerCompression): string {
  return kind === "zstd" ? MEDIA.layerZstd : kind === "gzip" ? MEDIA.layerGzip : MEDIA.layerTar;
}

export function compressor(kind: LayerCompression, level = DEFAULT_LEVEL[kind]): Duplex {
  switch (kind) {
    // Multi-threaded zstd output does not depend on the thread count, so -T0 is reproducible.
    case "zstd": return processStream("zstd", [`-${level}`, "-T0", "-q", "-c", "--no-progress"], "zstd compression");
    // Node's gzip header has mtime 0 and no file name: reproducible for a given zlib.
    case "gzip": return createGzip({ level, chunkSize: 1 << 17 });
    case "none": return new PassThrough();
  }
}
