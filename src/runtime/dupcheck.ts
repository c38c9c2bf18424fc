// Zero duplication: no path (other than a shared directory) may ship in two
// layers. Audited on what the layers really hold: the layer tars' headers,
// streamed from the store (bodies skipped), not on the plan that made them.

import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { compressionFromMagic, decompressor } from "../archive/decompress.ts";
import { readTar } from "../archive/tar.ts";
import { hexOf } from "../oci/types.ts";
import { damagedLayerError, type Store } from "../store/store.ts";
import { mapPool } from "../util/pool.ts";
import type { RuntimeImage } from "./image.ts";

export interface Duplicate {
  path: string;
  layers: string[];
  /** Bytes shipped more than once. */
  wastedBytes: number;
}

export interface DupCheckResult {
  layers: Array<{ name: string; entries: number; source: "tar" | "tree" }>;
  duplicates: Duplicate[];
  wastedBytes: number;
  seconds: number;
}

type Listing = Array<{ path: string; size: number }>;

async function listTar(file: string, what: string): Promise<Listing> {
  const head = Buffer.alloc(6);
  const fh = await open(file, "r");
  try { await fh.read(head, 0, 6, 0); } finally { await fh.close(); }
  const src = createReadStream(file, { highWaterMark: 1 << 20 });
  const input = src.pipe(decompressor(compressionFromMagic(head), what));
  src.on("error", (e) => input.destroy(e));
  const out: Listing = [];
  for await (const { header } of readTar(input, what)) {
    if (header.type === "5") continue;
    out.push({ path: header.name.replace(/^\.?\/+/, "").replace(/\/+$/, ""), size: header.size });
  }
  return out;
}

export async function checkDuplicates(store: Store, image: RuntimeImage): Promise<DupCheckResult> {
  const t0 = performance.now();
  const layers: DupCheckResult["layers"] = [];
  const listings = await mapPool(image.layers, 2, async (l, i): Promise<Listing> => {
    const hex = hexOf(l.digest);
    const state = l.source === "trees" ? await store.checkBlob(hex) : "missing";
    if (state === "damaged") throw damagedLayerError(l.name, l.digest, "check again");
    if (state === "ok") {
      layers[i] = { name: l.name, entries: 0, source: "tar" };
      return listTar(store.blobPath(hex), `layer ${l.name} (${l.digest})`);
    }
    // Layers read from their blobs were unpacked into trees that hold exactly the tar's entries.
    layers[i] = { name: l.name, entries: 0, source: "tree" };
    return l.trees.flatMap(({ tree }) => tree.manifest.entries.filter((e) => e.type !== "dir").map((e) => ({ path: e.path, size: e.size ?? 0 })));
  });
  const first = new Map<string, number>();
  const dups = new Map<string, Duplicate>();
  listings.forEach((list, i) => {
    layers[i]!.entries = list.length;
    for (const { path, size } of list) {
      const prev = first.get(path);
      if (prev === undefined) { first.set(path, i); continue; }
      if (prev === i) continue;
      const d = dups.get(path) ?? { path: `/${path}`, layers: [image.layers[prev]!.name], wastedBytes: 0 };
      d.layers.push(image.layers[i]!.name);
      d.wastedBytes += size;
      dups.set(path, d);
    }
  });
  const duplicates = [...dups.values()].sort((a, b) => (a.path < b.path ? -1 : 1));
  return { layers, duplicates, wastedBytes: duplicates.reduce((n, d) => n + d.wastedBytes, 0), seconds: (performance.now() - t0) / 1000 };
}
