// Step: layers. One LayerJob per folded layer (plus the generated one): its
// shared-cache key and hit, its planned parts, and what was built. A layer is
// taken from the shared cache, reused from the store by its content key, or
// streamed tar -> compressor -> store; layers whose packages are in are built
// while the installs above them go on (build-ahead).

import { rmSync } from "node:fs";
import { CorruptStoreError, ImageLimitError } from "../errors.ts";
import type { ImageDefinition } from "../config/schema.ts";
import type { FoldResult } from "../fold/fold.ts";
import { PLAN_RECORDS, type ImagePlan, type LayerPart, type PlanRecords } from "../fold/plan.ts";
import type { LayerCompression } from "../layer/compress.ts";
import { buildLayer, reusableLayer, type LayerRecord } from "../layer/layer.ts";
import type { BuiltLayer } from "../catalog/records.ts";
import type { BlobSource } from "../oci/types.ts";
import type { Store } from "../store/store.ts";
import { formatBytes, type Logger } from "../util/log.ts";
import { mapPool } from "../util/pool.ts";
import { cacheKeyOf } from "./keys.ts";
import { isGenerated, type Installer } from "./install.ts";

const GENERATED_LAYER = "generated";
const now = () => performance.now() / 1000;

/** A shared layer cache (src/cache): records by input key, for runners that start empty. */
export interface BuildCache {
  location: string;
  lookupLayer(key: string, expect: { compressor: string; mediaType: string }): Promise<{ hit: LayerRecord[] } | { miss: string }>;
  putLayer(key: string, parts: LayerRecord[]): Promise<void>;
  blobSource(): BlobSource;
}

/** One layer of the image on its way through the build. */
export interface LayerJob {
  name: string;
  packages: string[];
  /** Its key in the shared cache, from tree keys alone. */
  cacheKey: string;
  /** What the shared cache holds for it (one record per part). */
  cached?: LayerRecord[];
  /** Its parts as planned (split when over the size limit); set for layers up to the last one to build. */
  parts?: LayerPart[];
}

export interface LayerOptions { compression: LayerCompression; level?: number; epoch: number; conflicts: Record<string, string>; limit: number }

export const layerOptions = (image: ImageDefinition, epoch: number): LayerOptions =>
  ({ compression: image.compression as LayerCompression, level: image.compressionLevel, epoch, conflicts: image.conflicts, limit: image.layerSizeLimit });

/** The jobs of the folded layers, and of one small last layer of generated files when a kind generates any. */
export function layerJobs(folded: FoldResult, installer: Installer, o: LayerOptions): LayerJob[] {
  const layers = folded.layers.map((l) => ({ name: l.name, packages: l.packages }));
  if (installer.generators.length) layers.push({ name: GENERATED_LAYER, packages: installer.generators.map((g) => g.id) });
  const keys = (l: { packages: string[] }) => l.packages.map((id) => installer.treeKeys.get(id)!);
  return layers.map((l, i) => ({ ...l, cacheKey: cacheKeyOf(keys(l), layers.slice(0, i).flatMap(keys), o) }));
}

/** Ask the shared cache for every layer (a layer whose inputs some runner already built is taken from it). */
export async function lookupCache(jobs: LayerJob[], cache: BuildCache | undefined, expect: { compressor: string; mediaType: string }, log: Logger): Promise<void> {
  if (!cache) return;
  await mapPool(jobs, 4, async (job) => {
    const found = await cache.lookupLayer(job.cacheKey, expect);
    if ("hit" in found) job.cached = found.hit;
    else if (!found.miss.includes("unreachable")) log.info(`cache: layer ${job.name}: ${found.miss}; building it`);
  });
}

/** Index of the last layer the cache does not hold: layers up to it are planned, and their packages installed. */
export function lastToBuild(jobs: LayerJob[]): number {
  let last = -1;
  jobs.forEach((j, i) => { if (j.cached === undefined) last = i; });
  return last;
}

/** Plan records in the store, by the inputs of the layer and the layers below. */
export function storePlanRecords(store: Store): PlanRecords {
  return {
    read: (key) => store.readRecord(PLAN_RECORDS.kind, key),
    write: (key, rec) => void store.putRecord(PLAN_RECORDS.kind, key, rec).catch(() => {}),
    // At once: a record found wrong must be gone before the error that says so is reported.
    drop: (key) => rmSync(store.recordPath(PLAN_RECORDS.kind, key), { force: true }),
  };
}

/**
 * Layers built while the installs go on. `installed(i)` reports one package of layer i
 * done; a layer starts once it and every layer below are complete, planned from itself
 * and the layers below. Failures are left to the final pass, which builds and reports
 * for real; a layer an upper layer changes (a path owned higher up) is built again there.
 */
export function buildAhead(store: Store, plan: ImagePlan, jobs: LayerJob[], log: Logger): { installed(i: number): void; done(): Promise<void>; built: Map<string, number> } {
  const left = jobs.map((l) => l.packages.length);
  const built = new Map<string, number>();
  let next = 0;
  let chain = Promise.resolve();
  let lastPlanned = Promise.resolve();
  const startReady = () => {
    while (next < jobs.length && left[next] === 0) {
      const i = next++;
      if (jobs[i]!.cached !== undefined) continue;
      if (i === jobs.length - 1) {
        // The last one has no installs left to overlap with, but its plan can be made while a
        // layer below compresses (this thread mostly waits on zstd then); the final pass builds it.
        lastPlanned = new Promise((resolve) => setImmediate(() => {
          try {
            plan.partsOf(i);
          } catch (err) {
            plan.restart();
            log.debug(`layer ${jobs[i]!.name} planned ahead: ${(err as Error).message}`);
          }
          resolve();
        }));
        continue;
      }
      chain = chain.then(async () => {
        try {
          for (const part of plan.partsOf(i)) {
            if (await reusableLayer(store, part.key, (m) => log.warn(m))) continue;
            const t0 = now();
            await buildLayer(store, part.input(), part.key);
            built.set(part.key, now() - t0);
          }
        } catch (err) {
          plan.restart();
          log.debug(`layer ${jobs[i]!.name} ahead of the installs: ${(err as Error).message}`);
        }
      });
    }
  };
  startReady();
  return {
    installed(i) { left[i]!--; startReady(); },
    done: () => Promise.all([chain, lastPlanned]).then(() => undefined),
    built,
  };
}

/** Plan every layer up to the last to build (file-level conflicts, oversized layers split), and check the layer count. */
export function planJobs(jobs: LayerJob[], last: number, plan: ImagePlan, baseLayers: number, image: ImageDefinition, log: Logger): number {
  jobs.slice(0, last + 1).forEach((job, i) => (job.parts = plan.partsOf(i, last)));
  const total = jobs.reduce((n, j) => n + (j.cached?.length ?? j.parts?.length ?? 1), 0) + baseLayers;
  if (total > image.maxLayers) {
    throw new ImageLimitError(`the image would have ${total} layers; runtimes fail above ${image.maxLayers} (overlayfs/docker stop near 128). Merge some layers or raise layerSizeLimit`);
  }
  if (total > 125) log.warn(`the image has ${total} layers; Docker and some registries stop at about 125`);
  return total;
}

/** ", 9 of 11 zstd frames reused" when a rebuilt layer took frames from an earlier blob. */
const framesNote = (r: LayerRecord) => (r.framesReused ? `, ${r.framesReused} of ${r.frames} zstd frames reused` : "");

export interface LayerBuildContext {
  store: Store;
  plan: ImagePlan;
  installer: Installer;
  cache?: BuildCache;
  /** Seconds each layer built ahead took, by key. */
  builtAhead: Map<string, number>;
  log: Logger;
}

/** Every layer of the image in order: from the cache, reused, or built. */
export async function buildLayers(jobs: LayerJob[], last: number, total: number, c: LayerBuildContext): Promise<BuiltLayer[]> {
  const { store, log } = c;
  const layers: BuiltLayer[] = [];
  let n = 0;
  for (const [li, job] of jobs.entries()) {
    if (job.cached) {
      for (const rec of job.cached) {
        layers.push({ ...rec, reused: true, cached: c.cache!.location, seconds: 0 });
        log.info(`layer ${++n}/${total} ${rec.name}: from cache ${rec.digest.slice(7, 19)} ${formatBytes(rec.size)}`);
      }
      continue;
    }
    const parts: BuiltLayer[] = [];
    for (const [pi, pl] of job.parts!.entries()) {
      const t0 = now();
      const reused = await reusableLayer(store, pl.key, (m) => log.warn(m));
      const aheadSeconds = c.builtAhead.get(pl.key);
      if (reused && aheadSeconds !== undefined) {
        parts.push({ ...reused, name: pl.name, packages: pl.packages, reused: false, seconds: aheadSeconds });
        log.info(`layer ${++n}/${total} ${pl.name}: built ${reused.digest.slice(7, 19)} ${formatBytes(reused.size)} (${formatBytes(reused.uncompressedSize)} uncompressed${framesNote(reused)}) in ${aheadSeconds.toFixed(1)}s, while installing`);
        continue;
      }
      if (reused) {
        parts.push({ ...reused, name: pl.name, packages: pl.packages, reused: true, seconds: now() - t0 });
        log.info(`layer ${++n}/${total} ${pl.name}: reused ${reused.digest.slice(7, 19)} ${formatBytes(reused.size)}`);
        continue;
      }
      let record: LayerRecord;
      const progress = (bytes: number) => log.progress(`layer ${pl.name}`, `${formatBytes(bytes)} / ${formatBytes(pl.size)}`);
      try {
        record = await buildLayer(store, pl.input(), pl.key, progress);
      } catch (err) {
        if (!(err instanceof CorruptStoreError)) throw err;
        // A tree failed verification while streaming: reinstall this layer's packages once and retry.
        log.warn(err.message);
        for (const id of pl.packages) if (!isGenerated(id)) await c.installer.install(id, true);
        c.plan.restart();
        record = await buildLayer(store, c.plan.partsOf(li, last)[pi]!.input(), pl.key, progress);
      }
      const seconds = now() - t0;
      parts.push({ ...record, reused: false, seconds });
      log.info(`layer ${++n}/${total} ${pl.name}: built ${record.digest.slice(7, 19)} ${formatBytes(record.size)} (${formatBytes(record.uncompressedSize)} uncompressed${framesNote(record)}) in ${seconds.toFixed(1)}s`);
    }
    if (c.cache) await c.cache.putLayer(job.cacheKey, parts);
    layers.push(...parts);
  }
  return layers;
}
