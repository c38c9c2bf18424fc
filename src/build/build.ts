// The pipeline, and the one place that knows the order of the stages:
// config -> resolve -> lock -> install (fetch + unpack) -> fold -> plan ->
// layers -> assemble -> export.

import { loadConfig, type LoadedConfig } from "../config/load.ts";
import { ConfigError, CorruptStoreError, ImageLimitError } from "../errors.ts";
import { fold, type FoldResult } from "../fold/fold.ts";
import { LayerPlanner, splitLayer, type PlannedLayer } from "../fold/plan.ts";
import { buildLayer, LAYER_FORMAT, layerKey, reusableLayer, type LayerInput, type LayerRecord } from "../layer/layer.ts";
import { withParents } from "../layer/tar-writer.ts";
import { chunkedSummary } from "../layer/chunked.ts";
import { compressorId, LAYER_COMPRESSIONS, layerMediaType, prepareCompressor, type LayerCompression } from "../layer/compress.ts";
import { buildConfig, buildManifest, descriptorOf, toBytes } from "../oci/image.ts";
import { hexOf, MEDIA, type BlobSource, type BuiltImage, type Descriptor, type LayerDescriptor } from "../oci/types.ts";
import { loadBaseImage } from "../registry/base.ts";
import { sourceKinds } from "../sources/registry.ts";
import type { InstallContext, LockedPackage, SourceKind } from "../sources/types.ts";
import { Store, type StoredTree } from "../store/store.ts";
import { sha256Hex } from "../util/hash.ts";
import { stableJson } from "../util/json.ts";
import { formatBytes, silentLogger, type Logger } from "../util/log.ts";
import { mapPool } from "../util/pool.ts";
import { resolveImage, sourceDateEpoch, type Resolution } from "./resolve.ts";
import { checkOutput, exportImage } from "./export.ts";

/** Bump when install output changes for the same inputs. */
/** ", 9 of 11 zstd frames reused" when a rebuilt layer took frames from an earlier blob. */
const framesNote = (r: LayerRecord) => (r.framesReused ? `, ${r.framesReused} of ${r.frames} zstd frames reused` : "");

export const INSTALL_FORMAT = 1;
const GENERATED_LAYER = "generated";

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

export interface BuiltLayer extends LayerRecord {
  reused: boolean;
  /** The cache repository the layer came from, when it did. */
  cached?: string;
  seconds: number;
}

/** A shared layer cache (src/cache): records by input key, for runners that start empty. */
export interface BuildCache {
  location: string;
  lookupLayer(key: string, expect: { compressor: string; mediaType: string }): Promise<{ hit: LayerRecord[] } | { miss: string }>;
  putLayer(key: string, parts: LayerRecord[]): Promise<void>;
  blobSource(): BlobSource;
}

/** Bump when the cache key's recipe changes. */
export const CACHE_FORMAT = 1;

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

/**
 * Store-backed blob source: layouts copy from it, pushes and archives stream from it. Every
 * blob is checked before it is read (its stat signature, else a rehash) and hashed as it streams.
 */
export function storeBlobs(store: Store, extra?: BlobSource): BlobSource {
  return {
    async open(d: Descriptor) {
      const hex = d.digest.replace(/^sha256:/, "");
      const state = await store.checkBlob(hex);
      if (state === "ok") return store.openVerified(hex, `blob ${d.digest}`);
      // A base-image or shared-cache layer: kept in the store as it streams, so it is read from the registry once.
      if (extra) return store.teeBlob(await extra.open(d), hex);
      throw new CorruptStoreError(`store: blob ${d.digest} is ${state === "missing" ? "missing from" : "damaged (removed) in"} ${store.root}; run \`layerfold build\` again to rebuild it`);
    },
    localPath: (d: Descriptor) => store.localBlobPath(d.digest.replace(/^sha256:/, "")),
    damaged: (d: Descriptor) => store.dropBlob(d.digest.replace(/^sha256:/, "")),
    async verify(d: Descriptor) {
      if (!(await store.verifyBlob(hexOf(d.digest)))) throw new CorruptStoreError(`store: blob ${d.digest} is damaged: its bytes no longer hash to its digest. It was removed from ${store.root}; run \`layerfold build\` again to rebuild it`);
    },
    remoteRepository: extra?.remoteRepository?.bind(extra),
  };
}

const now = () => performance.now() / 1000;

/** Base-image blobs from the base registry, cached layers from the cache repository. */
function joinSources(base: BlobSource | undefined, cache: BlobSource | undefined, cached: Set<string>): BlobSource | undefined {
  if (!cache || cached.size === 0) return base;
  return {
    open: (d) => (cached.has(d.digest) || !base ? cache.open(d) : base.open(d)),
    remoteRepository: (d) => (cached.has(d.digest) ? cache.remoteRepository?.(d) : base?.remoteRepository?.(d)),
  };
}

/** One layer (or part of a split layer) as planned: its key, and its entries with parents when it must be built. */
interface LayerPart { name: string; packages: string[]; size: number; key: string; input(): LayerInput }

/** Bump when planning (fold/plan.ts, withParents, splitLayer) gives other entries for the same trees. */
const PLAN_FORMAT = 1;

/** What a plan record keeps of a layer planned from itself and the layers below. */
interface PlanRecord { parts: Array<{ name: string; packages: string[]; size: number; key: string }>; unknownParents: string[] }

/**
 * The plan of the image, grown one layer at a time: build-ahead plans each layer as its
 * packages come in, and the final pass takes those plans unless a layer added later
 * changed them (a `conflicts` owner above took a path, or now provides a parent
 * directory that was given defaults). A layer planned from itself and the layers below
 * is also recorded in the store by those inputs, so the next build learns its key
 * without planning its entries again (it still reads its trees: the layers above are
 * planned against them), and plans them only if it has to build the layer.
 */
export class ImagePlan {
  private planner: LayerPlanner;
  private readonly parts = new Map<number, { parts: LayerPart[]; unknownParents: string[] }>();
  constructor(
    private readonly layers: Array<{ name: string; packages: string[] }>,
    private readonly treeOf: (id: string) => StoredTree,
    private readonly o: { compression: LayerCompression; level?: number; epoch: number; conflicts: Record<string, string>; limit: number },
    private readonly store?: Store,
  ) {
    this.planner = new LayerPlanner(treeOf, o.conflicts);
  }

  /** The parts of layer i, planned from the layers up to `through` (and any added before). */
  partsOf(i: number, through = i): LayerPart[] {
    while (this.planner.size <= through) this.planner.add(this.layers[this.planner.size]!);
    this.planner.check();
    const valid = (m: { unknownParents: string[] }) => !this.planner.changed.has(i) && !m.unknownParents.some((p) => this.planner.firstDir.has(p));
    const memo = this.parts.get(i);
    if (memo && valid(memo)) return memo.parts;
    // Only what layers 0..i decide goes into a record, and only such a plan is taken from one.
    const alone = this.planner.size === i + 1;
    const recordKey = this.store && alone ? this.recordKey(i) : undefined;
    const recorded = recordKey ? this.store!.readRecord<PlanRecord>("plans", recordKey) : undefined;
    if (recorded && Array.isArray(recorded.parts) && Array.isArray(recorded.unknownParents) && valid(recorded)) {
      const parts = recorded.parts.map((p, pi) => ({ ...p, input: () => this.plannedInput(i, pi, p.key, recordKey!) }));
      this.parts.set(i, { parts, unknownParents: recorded.unknownParents });
      return parts;
    }
    const { parts, unknownParents } = this.plan(i);
    this.parts.set(i, { parts, unknownParents });
    if (recordKey) this.store!.putRecord("plans", recordKey, { parts: parts.map(({ name, packages, size, key }) => ({ name, packages, size, key })), unknownParents } satisfies PlanRecord).catch(() => {});
    return parts;
  }

  private plan(i: number): { parts: LayerPart[]; unknownParents: string[] } {
    const unknownParents: string[] = [];
    const parts = splitLayer(this.planner.plan(i), this.o.limit).map((planned) => {
      const input: LayerInput = { name: planned.name, packages: planned.packages, entries: withParents(planned.entries, this.planner.firstDir, unknownParents), compression: this.o.compression, level: this.o.level, mtime: this.o.epoch };
      return { name: planned.name, packages: planned.packages, size: planned.size, key: layerKey(input), input: () => input };
    });
    this.planner.changed.delete(i);
    return { parts, unknownParents };
  }

  /** The entries of a part taken from a plan record, planned now that the layer must be built. */
  private plannedInput(i: number, pi: number, key: string, recordKey: string): LayerInput {
    const part = this.plan(i).parts[pi];
    if (part?.key !== key) {
      this.store!.dropRecord("plans", recordKey).catch(() => {});
      throw new CorruptStoreError(`store: the plan record ${recordKey} of layer ${this.layers[i]!.name} does not match its trees; it was removed, run the build again`);
    }
    return part.input();
  }

  /** Everything the plan of layer i depends on when planned from layers 0..i. */
  private recordKey(i: number): string {
    return sha256Hex(stableJson({
      format: PLAN_FORMAT,
      layer: LAYER_FORMAT,
      layers: this.layers.slice(0, i + 1).map((l) => [l.name, l.packages.map((id) => [id, this.treeOf(id).key])]),
      compressor: compressorId(this.o.compression, this.o.level),
      epoch: this.o.epoch,
      conflicts: this.o.conflicts,
      limit: this.o.limit,
    }));
  }

  /** Plan from scratch on the next partsOf (a failure left the state half-updated, or trees were reinstalled). */
  restart(): void {
    this.planner = new LayerPlanner(this.treeOf, this.o.conflicts);
    this.parts.clear();
  }
}

/**
 * Layers built while the installs go on. `installed(i)` reports one package of layer i
 * done; a layer starts once it and every layer below are complete. Failures are left
 * to the final pass, which builds and reports for real.
 */
function buildAhead(
  store: Store,
  plan: ImagePlan,
  layers: Array<{ name: string; packages: string[] }>,
  cacheHits: Array<unknown>,
  log: Logger,
): { installed(i: number): void; done(): Promise<void>; built: Map<string, number> } {
  const left = layers.map((l) => l.packages.length);
  const built = new Map<string, number>();
  let next = 0;
  let chain = Promise.resolve();
  let lastPlanned = Promise.resolve();
  const startReady = () => {
    while (next < layers.length && left[next] === 0) {
      const i = next++;
      if (cacheHits[i] !== undefined) continue;
      if (i === layers.length - 1) {
        // The last one has no installs left to overlap with, but its plan can be made while a
        // layer below compresses (this thread mostly waits on zstd then); the final pass builds it.
        lastPlanned = new Promise((resolve) => setImmediate(() => {
          try {
            plan.partsOf(i);
          } catch (err) {
            plan.restart();
            log.debug(`layer ${layers[i]!.name} planned ahead: ${(err as Error).message}`);
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
          log.debug(`layer ${layers[i]!.name} ahead of the installs: ${(err as Error).message}`);
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

export async function treeKeyOf(kind: SourceKind, pkg: LockedPackage, options: unknown, ctx: InstallContext): Promise<string> {
  const extra = kind.installKey ? await kind.installKey(pkg, options, ctx) : "";
  return sha256Hex(stableJson({ format: INSTALL_FORMAT, code: kind.version ?? null, id: pkg.id, version: pkg.version, sha256: pkg.artifact?.sha256 ?? null, meta: pkg.meta ?? null, extra }));
}

export async function build(opts: BuildOptions): Promise<BuildResult> {
  const log = opts.log ?? silentLogger;
  const kinds = opts.kinds ?? sourceKinds;
  const store = opts.store;
  const timings: Record<string, number> = {};
  let t = now();
  const cfg = await loadConfig({ dir: opts.dir, file: opts.file }, kinds);
  const image = cfg.image;
  if (opts.platform) {
    if (!/^linux\/(amd64|arm64|arm|ppc64le|s390x|riscv64|386)(\/v\d)?$/.test(opts.platform)) throw new ConfigError(`--platform ${JSON.stringify(opts.platform)} must look like linux/amd64 or linux/arm64`);
    image.platform = opts.platform;
  }
  if (opts.compression) {
    if (!LAYER_COMPRESSIONS.includes(opts.compression)) throw new ConfigError(`compression ${JSON.stringify(opts.compression)} is not one of ${LAYER_COMPRESSIONS.join(", ")}`);
    image.compression = opts.compression;
  }
  const output = opts.output ?? `oci:${cfg.dir}/out/${image.name.replace(/\//g, "_")}`;
  if (output !== "none") await checkOutput(output);
  timings.config = now() - t;
  // The compressor's version (every layer key holds it): remembered in the store, or asked while the lock is read.
  const compressorReady = prepareCompressor(image.compression as LayerCompression, store.recordPath("tools", "zstd"));

  // Resolve and lock.
  t = now();
  // The lock is written once the image is built: a build that fails before leaves the old one.
  const res = await resolveImage(cfg, kinds, { store, log, frozen: opts.frozen, update: opts.update, overrides: opts.overrides, reuseLock: true, writeLock: false });
  timings.resolve = now() - t;

  // Fold.
  const folded = fold(
    image.layers.map((l, i) => ({ name: l.name, roots: res.roots[i]! })),
    (id) => res.packages.get(id)?.deps,
  );
  for (const name of folded.dropped) {
    const i = image.layers.findIndex((l) => l.name === name);
    const why = res.roots[i]!.length ? "everything it names is in earlier layers" : "it names no packages";
    log.info(`layer ${name}: empty (${why}); dropped`);
  }

  // Tree keys come from the lock alone, so a shared cache can be asked before anything is installed.
  t = now();
  const kindOf = (p: LockedPackage) => kinds.find((k) => k.kind === p.kind)!;
  const trees = new Map<string, StoredTree>();
  const treeKeys = new Map<string, string>();
  const installed: string[] = [];
  const ctxFor = (kind: SourceKind): InstallContext => ({ ...res.contextFor(kind), treeOf: (id) => trees.get(id) });
  const allIds = folded.layers.flatMap((l) => l.packages);
  for (const id of allIds) {
    const pkg = res.packages.get(id)!;
    const kind = kindOf(pkg);
    treeKeys.set(id, await treeKeyOf(kind, pkg, res.optionsFor(kind), ctxFor(kind)));
  }
  const installOne = async (id: string, force = false) => {
    const pkg = res.packages.get(id)!;
    const kind = kindOf(pkg);
    const key = treeKeys.get(id)!;
    if (force) await store.dropTree(key);
    const { tree, built } = await store.ensureTree(key, id, (w) => kind.install(pkg, w, res.optionsFor(kind), ctxFor(kind)), kind.treeOptions);
    if (built) {
      installed.push(id);
      log.info(`install ${id} ${pkg.version}: ${tree.manifest.entries.length} entries, ${formatBytes(tree.manifest.size)}`);
    }
    trees.set(id, tree);
  };

  // Files computed from the whole set (dpkg status, users, ld.so.cache): one small last layer.
  const layerInputs = folded.layers.map((l) => ({ name: l.name, packages: l.packages }));
  const generators: Array<{ id: string; key: string; kind: SourceKind; mine: LockedPackage[] }> = [];
  for (const kind of kinds) {
    if (!kind.generate) continue;
    const mine = allIds.map((id) => res.packages.get(id)!).filter((p) => p.kind === kind.kind);
    if (mine.length === 0 && res.optionsFor(kind) === undefined) continue;
    const id = `generated:${kind.kind}`;
    const key = sha256Hex(stableJson({ format: INSTALL_FORMAT, code: kind.version ?? null, id, packages: mine.map((p) => [p.id, p.version, p.artifact?.sha256 ?? null]), options: res.optionsFor(kind) ?? null, image: image.config }));
    generators.push({ id, key, kind, mine });
    treeKeys.set(id, key);
  }
  if (generators.length) layerInputs.push({ name: GENERATED_LAYER, packages: generators.map((g) => g.id) });

  // Shared cache: a layer whose inputs some runner already built is taken from it.
  const compression = image.compression as LayerCompression;
  await compressorReady;
  const epoch = sourceDateEpoch();
  const cacheKeys = layerInputs.map((l, i) =>
    sha256Hex(stableJson({
      format: CACHE_FORMAT,
      // The blob's bytes depend on the tar format and zstd framing too.
      layerFormat: LAYER_FORMAT,
      own: l.packages.map((id) => treeKeys.get(id)!).sort(),
      // Lower layers decide conflicts and directory metadata here, so they are part of the key.
      lower: sha256Hex(layerInputs.slice(0, i).flatMap((x) => x.packages.map((id) => treeKeys.get(id)!)).sort().join("\n")),
      compressor: compressorId(compression, image.compressionLevel),
      epoch,
      conflicts: image.conflicts,
      limit: image.layerSizeLimit,
    })),
  );
  const cacheHits: Array<LayerRecord[] | undefined> = layerInputs.map(() => undefined);
  if (opts.cache) {
    const expect = { compressor: compressorId(compression, image.compressionLevel), mediaType: layerMediaType(compression) };
    await mapPool(layerInputs, 4, async (l, i) => {
      const found = await opts.cache!.lookupLayer(cacheKeys[i]!, expect);
      if ("hit" in found) cacheHits[i] = found.hit;
      else if (!found.miss.includes("unreachable")) log.info(`cache: layer ${l.name}: ${found.miss}; building it`);
    });
  }
  // Install what the layers that must be built need: themselves and every layer below them.
  let lastMiss = -1;
  cacheHits.forEach((h, i) => { if (h === undefined) lastMiss = i; });
  const packageLayers = layerInputs.slice(0, lastMiss + 1).filter((l) => !l.packages.some((id) => id.startsWith("generated:")));
  // While later layers install, each layer whose packages and lower layers are in
  // is built ahead, one at a time, from a plan of itself and the layers below.
  // The final pass below plans the whole image and reuses such a layer by its key;
  // when an upper layer changes it (a path owned higher up), it is built again.
  const treeOf = (id: string) => trees.get(id)!;
  const plan = new ImagePlan(layerInputs, treeOf, { compression, level: image.compressionLevel, epoch, conflicts: image.conflicts, limit: image.layerSizeLimit }, store);
  const ahead = buildAhead(store, plan, packageLayers, cacheHits, log);
  const layerOf = new Map(packageLayers.flatMap((l, i) => l.packages.map((id) => [id, i] as const)));
  await mapPool(packageLayers.flatMap((l) => l.packages), opts.concurrency ?? 2, async (id) => {
    await installOne(id);
    ahead.installed(layerOf.get(id)!);
  });
  await ahead.done();
  if (generators.length && cacheHits[layerInputs.length - 1] === undefined) {
    for (const g of generators) {
      const { tree } = await store.ensureTree(g.key, g.id, (w) => g.kind.generate!(g.mine, w, res.optionsFor(g.kind), ctxFor(g.kind)), { symlinks: "image" });
      trees.set(g.id, tree);
    }
    // Nothing generated: no empty last layer.
    if (generators.every((g) => trees.get(g.id)!.manifest.entries.length === 0)) {
      layerInputs.pop();
      cacheHits.pop();
      lastMiss = Math.min(lastMiss, layerInputs.length - 1);
    }
  }
  timings.install = now() - t;

  // Base image (`from`): manifest and config pulled and verified; its layers stay by reference.
  const base = image.from ? await loadBaseImage(image.from, { platform: image.platform, logger: log }) : undefined;
  if (base) log.info(`base ${image.from}: ${base.layers.length} layers (${base.manifestDigest})`);

  // Plan the layers to build (file-level conflicts, oversized layers split), from where build-ahead left off.
  const plannedByLayer = layerInputs.slice(0, lastMiss + 1).map((_l, i) => plan.partsOf(i, lastMiss));
  const total = layerInputs.reduce((n, _l, i) => n + (cacheHits[i]?.length ?? plannedByLayer[i]?.length ?? 1), 0) + (base?.layers.length ?? 0);
  if (total > image.maxLayers) {
    throw new ImageLimitError(`the image would have ${total} layers; runtimes fail above ${image.maxLayers} (overlayfs/docker stop near 128). Merge some layers or raise layerSizeLimit`);
  }
  if (total > 125) log.warn(`the image has ${total} layers; Docker and some registries stop at about 125`);

  // Layers: cache hit, or local reuse by content key, else stream tar -> compressor -> store.
  t = now();
  const layers: BuiltLayer[] = [];
  let n = 0;
  for (const [li, l] of layerInputs.entries()) {
    const hit = cacheHits[li];
    if (hit) {
      for (const rec of hit) {
        layers.push({ ...rec, reused: true, cached: opts.cache!.location, seconds: 0 });
        log.info(`layer ${++n}/${total} ${rec.name}: from cache ${rec.digest.slice(7, 19)} ${formatBytes(rec.size)}`);
      }
      continue;
    }
    const parts: BuiltLayer[] = [];
    for (const [pi, pl] of plannedByLayer[li]!.entries()) {
      const key = pl.key;
      const t0 = now();
      const reused = await reusableLayer(store, key, (m) => log.warn(m));
      const aheadSeconds = ahead.built.get(key);
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
        record = await buildLayer(store, pl.input(), key, progress);
      } catch (err) {
        if (!(err instanceof CorruptStoreError)) throw err;
        // A tree failed verification while streaming: reinstall this layer's packages once and retry.
        log.warn(err.message);
        for (const id of pl.packages) if (!id.startsWith("generated:")) await installOne(id, true);
        plan.restart();
        record = await buildLayer(store, plan.partsOf(li, lastMiss)[pi]!.input(), key, progress);
      }
      const seconds = now() - t0;
      parts.push({ ...record, reused: false, seconds });
      log.info(`layer ${++n}/${total} ${pl.name}: built ${record.digest.slice(7, 19)} ${formatBytes(record.size)} (${formatBytes(record.uncompressedSize)} uncompressed${framesNote(record)}) in ${seconds.toFixed(1)}s`);
    }
    if (opts.cache) await opts.cache.putLayer(cacheKeys[li]!, parts);
    layers.push(...parts);
  }
  timings.layers = now() - t;

  // Assemble config and manifest into the store.
  const layerDescs: Array<LayerDescriptor & { name: string; comment: string }> = layers.map((l) => ({
    mediaType: l.mediaType,
    digest: l.digest,
    size: l.size,
    diffId: l.diffId,
    uncompressedSize: l.uncompressedSize,
    name: l.name,
    comment: `${l.packages.length} packages`,
    ...(l.annotations ? { annotations: l.annotations } : {}),
  }));
  const configFile = buildConfig({ image, layers: layerDescs, base: base?.config, epoch });
  const configBytes = toBytes(configFile);
  const configDescriptor = descriptorOf(MEDIA.config, configBytes);
  const allLayers: LayerDescriptor[] = [...(base?.layers ?? []), ...layerDescs];
  // Base-image and cached layers the store keeps: a damaged copy is dropped here, and read from its registry again.
  for (const d of allLayers) {
    if (layers.some((l) => l.digest === d.digest && !l.cached)) continue;
    if ((await store.checkBlob(hexOf(d.digest))) === "damaged") log.warn(`layer ${d.digest.slice(7, 19)}: the stored copy is damaged; it is fetched again`);
  }
  const manifestBytes = toBytes(buildManifest(configDescriptor, allLayers, image.annotations));
  const manifestDescriptor = descriptorOf(MEDIA.manifest, manifestBytes);
  await store.putBlobBytes(configBytes);
  await store.putBlobBytes(manifestBytes);
  const built: BuiltImage = {
    name: image.name,
    tag: image.tag,
    manifest: manifestBytes,
    manifestDescriptor,
    config: configBytes,
    configDescriptor,
    layers: allLayers,
    blobs: storeBlobs(store, joinSources(base?.blobs, opts.cache?.blobSource(), new Set(layers.filter((l) => l.cached).map((l) => l.digest)))),
  };
  const result: BuildResult = { config: cfg, image: built, layers, droppedLayers: folded.dropped, lockChanged: res.lockChanged, fold: folded, resolution: res, timings, installed };
  await saveBuildRecord(store, result, treeKeys);

  if ((await res.saveLock()) && res.lockChanged) log.info(`lock: wrote ${res.lockFile} (${res.lock.packages.length} packages)`);

  t = now();
  if (opts.output !== "none") {
    try {
      result.output = await exportImage(built, output);
    } catch (err) {
      if (res.lockChanged && err instanceof Error) err.message += `\n(the image was built, so ${res.lockFile} was updated before the output failed)`;
      throw err;
    }
    log.info(`wrote ${result.output}`);
  }
  timings.export = now() - t;
  return result;
}

/** One layer as build --json, inspect --json and the report show it. */
export function layerSummary(l: Pick<BuiltLayer, "name" | "digest" | "diffId" | "size" | "uncompressedSize" | "mediaType" | "reused" | "cached" | "packages" | "annotations" | "contentFrames">) {
  return {
    name: l.name,
    digest: l.digest,
    diffId: l.diffId,
    size: l.size,
    uncompressedSize: l.uncompressedSize,
    mediaType: l.mediaType,
    ...chunkedSummary(l),
    reused: l.reused,
    ...(l.cached ? { cached: l.cached } : {}),
    packages: l.packages,
  };
}

/** What `inspect`, `push`, `run` and `why` read back without rebuilding. */
export interface BuildRecord {
  name: string;
  tag: string;
  configFile: string;
  manifestDigest: string;
  manifest: string;
  config: string;
  layers: Array<Omit<BuiltLayer, "seconds"> & { seconds: number; trees: Array<{ id: string; key: string }> }>;
  droppedLayers: string[];
  packages: Array<{ id: string; version: string; layer: string; via?: string; artifact?: LockedPackage["artifact"] }>;
}

export const buildRecordKey = (name: string, tag: string) => sha256Hex(`${name}:${tag}`);

async function saveBuildRecord(store: Store, r: BuildResult, keys: Map<string, string>): Promise<void> {
  const treeKeys = (l: BuiltLayer) => l.packages.map((id) => ({ id, key: keys.get(id)! }));
  const record: BuildRecord = {
    name: r.image.name,
    tag: r.image.tag,
    configFile: r.config.file,
    manifestDigest: r.image.manifestDescriptor.digest,
    manifest: r.image.manifest.toString("utf8"),
    config: r.image.config.toString("utf8"),
    layers: r.layers.map((l) => ({ ...l, trees: treeKeys(l) })),
    droppedLayers: r.droppedLayers,
    packages: [...r.fold.layerOf].map(([id, layer]) => {
      const p = r.resolution.packages.get(id)!;
      return { id, version: p.version, layer, via: r.fold.via.get(id), ...(p.artifact ? { artifact: p.artifact } : {}) };
    }).sort((a, b) => (a.id < b.id ? -1 : 1)),
  };
  await store.putRecord("builds", [r.image.manifestDescriptor.digest.replace(/^sha256:/, ""), buildRecordKey(r.image.name, r.image.tag)], record);
}
