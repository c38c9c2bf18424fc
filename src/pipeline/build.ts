// The pipeline, and the one place that knows the order of the stages:
// config (and the base image) -> resolve and lock -> fold -> keys and shared cache
// -> install (layers built ahead as their packages come in) -> plan -> layers
// -> assemble -> record -> export. Each step is its own module beside this one.

import type { LoadedConfig } from "../config/load.ts";
import type { BuiltLayer } from "../catalog/records.ts";
import { ImagePlan } from "../fold/plan.ts";
import type { FoldResult } from "../fold/fold.ts";
import { compressorId, layerMediaType, prepareCompressor, type LayerCompression } from "../layer/compress.ts";
import type { BuiltImage } from "../oci/types.ts";
import { sourceKinds } from "../sources/registry.ts";
import type { SourceKind } from "../sources/types.ts";
import type { Store } from "../store/store.ts";
import { silentLogger, type Logger } from "../util/log.ts";
import { assembleImage } from "./assemble.ts";
import { loadBuildConfig, pullBase } from "./config.ts";
import { checkOutput, defaultOutput, exportImage } from "./export.ts";
import { Installer, isGenerated } from "./install.ts";
import { buildAhead, buildLayers, lastToBuild, layerJobs, layerOptions, lookupCache, planJobs, storePlanRecords, type BuildCache } from "./layers.ts";
import { recordBuild } from "./record.ts";
import { foldImage, resolveImage, sourceDateEpoch, type Resolution } from "./resolve.ts";

export type { BuildCache } from "./layers.ts";
export type { BuiltLayer } from "../catalog/records.ts";

export interface BuildOptions {
  dir?: string;
  file?: string;
  /** Store directory (default: $LAYERFOLD_STORE or $XDG_CACHE_HOME/layerfold). */
  store: Store;
  /** Output spec: "oci:DIR", "oci-archive:FILE", "docker-archive:FILE", or "none". */
  output?: string;
  frozen?: boolean;
  update?: string[];
  overrides?: Record<string, string>;
  log?: Logger;
  concurrency?: number;
  /** Build for this platform instead of the config's (e.g. "linux/arm64"). */
  platform?: string;
  /** Shared layer cache (--cache REF). */
  cache?: BuildCache;
  /** Overrides the config's compression. */
  compression?: LayerCompression;
  kinds?: SourceKind[];
}

export interface BuildResult {
  config: LoadedConfig;
  image: BuiltImage;
  layers: BuiltLayer[];
  droppedLayers: string[];
  lockChanged: boolean;
  output?: string;
  fold: FoldResult;
  resolution: Resolution;
  /** Seconds per stage. */
  timings: Record<string, number>;
  /** Packages whose trees were installed in this run (not reused). */
  installed: string[];
}

const now = () => performance.now() / 1000;

export async function build(opts: BuildOptions): Promise<BuildResult> {
  const { store, log = silentLogger, kinds = sourceKinds } = opts;
  const timings: Record<string, number> = {};
  const timed = async <T>(stage: string, step: () => Promise<T>): Promise<T> => {
    const t = now();
    try { return await step(); } finally { timings[stage] = now() - t; }
  };
  const cfg = await timed("config", () => loadBuildConfig({ dir: opts.dir, file: opts.file, platform: opts.platform, compression: opts.compression }, kinds));
  const { image } = cfg;
  const output = opts.output ?? defaultOutput(cfg);
  if (output !== "none") await checkOutput(output);
  // The compressor's version (every layer key holds it): remembered in the store, or asked while the lock is read.
  const compressorReady = prepareCompressor(image.compression as LayerCompression, store.recordPath("tools", "zstd"));
  const basePull = pullBase(image, log);
  // The lock is written once the image is built: a build that fails before leaves the old one.
  const [res, base] = await timed("resolve", () => Promise.all([resolveImage(cfg, kinds, { store, log, frozen: opts.frozen, update: opts.update, overrides: opts.overrides, reuseLock: true, writeLock: false }), basePull]));
  const folded = foldImage(image, res, log);

  const t = now();
  const installer = new Installer(store, res, kinds, log);
  await installer.computeKeys(folded.layers.flatMap((l) => l.packages), image);
  await compressorReady;
  const epoch = sourceDateEpoch();
  const lo = layerOptions(image, epoch);
  const jobs = layerJobs(folded, installer, lo);
  await lookupCache(jobs, opts.cache, { compressor: compressorId(lo.compression, lo.level), mediaType: layerMediaType(lo.compression) }, log);
  // Install what the layers to build need (themselves and every layer below), building layers ahead.
  let last = lastToBuild(jobs);
  const plan = new ImagePlan(jobs, installer.treeOf, lo, storePlanRecords(store));
  const toInstall = jobs.slice(0, last + 1).filter((j) => !j.packages.some(isGenerated));
  const ahead = buildAhead(store, plan, toInstall, log);
  const layerOf = new Map(toInstall.flatMap((j, i) => j.packages.map((id) => [id, i] as const)));
  await installer.installAll(toInstall.flatMap((j) => j.packages), opts.concurrency ?? 2, (id) => ahead.installed(layerOf.get(id)!));
  await ahead.done();
  if (installer.generators.length && !jobs.at(-1)!.cached && !(await installer.generate())) {
    jobs.pop(); // nothing generated: no empty last layer
    last = Math.min(last, jobs.length - 1);
  }
  timings.install = now() - t;

  const total = planJobs(jobs, last, plan, base?.layers.length ?? 0, image, log);
  const layers = await timed("layers", () => buildLayers(jobs, last, total, { store, plan, installer, cache: opts.cache, builtAhead: ahead.built, log }));
  const built = await assembleImage({ store, image, layers, base, cache: opts.cache, epoch, log });
  const result: BuildResult = { config: cfg, image: built, layers, droppedLayers: folded.dropped, lockChanged: res.lockChanged, fold: folded, resolution: res, timings, installed: installer.installed };
  await recordBuild(store, result, installer);
  if ((await res.saveLock()) && res.lockChanged) log.info(`lock: wrote ${res.lockFile} (${res.lock.packages.length} packages)`);
  await timed("export", async () => {
    if (output === "none") return;
    result.output = await exportImage(built, output).catch((err: unknown) => {
      if (res.lockChanged && err instanceof Error) err.message += `\n(the image was built, so ${res.lockFile} was updated before the output failed)`;
      throw err;
    });
    log.info(`wrote ${result.output}`);
  });
  return result;
}
