// What a partial pull of image B costs a podman/CRI-O that already has image A,
// when B's new layers are zstd:chunked: per new layer, its TOC and tar-split,
// and the frames of the files whose sha256 no zstd:chunked layer of A holds
// (containers/storage finds files in its other layers by digest, from their
// TOCs). Read from local blobs (a layout or the store); a layer whose blob is
// not here, or that is not zstd:chunked, leaves the estimate undefined.

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, openSync, readSync } from "node:fs";
import { chunkedAnnotationsOf, CHUNKED_ANNOTATIONS } from "../layer/chunked.ts";

export interface LocalLayer {
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  /** A local file holding the blob, when there is one. */
  blob?: string;
}

interface TocFile { type: string; size?: number; digest?: string; offset?: number; endOffset?: number }

/** Read a zstd:chunked layer's TOC from its local blob (its compressed bytes are checked against the annotation). */
function readToc(layer: LocalLayer): { entries: TocFile[]; tocBytes: number; tarSplitBytes: number } | undefined {
  const a = chunkedAnnotationsOf(layer.annotations);
  if (!a || !layer.blob) return undefined;
  const [off, len] = a[CHUNKED_ANNOTATIONS.tocPosition]!.split(":").map(Number) as [number, number];
  const tarSplitBytes = Number(a[CHUNKED_ANNOTATIONS.tarSplitPosition]!.split(":")[1]);
  if (len > 150 << 20) return undefined;
  let fd: number;
  try {
    fd = openSync(layer.blob, "r");
  } catch {
    return undefined;
  }
  try {
    const buf = Buffer.alloc(len);
    if (readSync(fd, buf, 0, len, off) !== len) return undefined;
    if (`sha256:${createHash("sha256").update(buf).digest("hex")}` !== a[CHUNKED_ANNOTATIONS.tocChecksum]) return undefined;
    const json = execFileSync("zstd", ["-dcq"], { input: buf, maxBuffer: 512 << 20 });
    return { entries: (JSON.parse(json.toString("utf8")) as { entries: TocFile[] }).entries, tocBytes: len, tarSplitBytes };
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * Bytes a partial pull of B fetches where A is present: for each layer of B whose digest A
 * lacks, its TOC and tar-split plus the frames of files no chunked layer of A holds.
 * Undefined when a new layer of B is not zstd:chunked or its blob is not local.
 */
export function partialPullBytes(a: LocalLayer[], b: LocalLayer[]): { bytes: number; byLayer: Map<string, number> } | undefined {
  const aDigests = new Set(a.map((l) => l.digest));
  const known = new Set<string>();
  for (const l of a) for (const e of readToc(l)?.entries ?? []) if (e.type === "reg" && e.digest) known.add(e.digest);
  const byLayer = new Map<string, number>();
  for (const l of b) {
    if (aDigests.has(l.digest) || byLayer.has(l.digest)) continue;
    const toc = readToc(l);
    if (!toc) return undefined;
    let bytes = toc.tocBytes + toc.tarSplitBytes;
    for (const e of toc.entries) {
      if (e.type !== "reg" || !e.size || !e.digest || known.has(e.digest)) continue;
      bytes += (e.endOffset ?? 0) - (e.offset ?? 0);
      // The same content twice in B is fetched once.
      known.add(e.digest);
    }
    byLayer.set(l.digest, bytes);
  }
  return { bytes: [...byLayer.values()].reduce((n, x) => n + x, 0), byLayer };
}
