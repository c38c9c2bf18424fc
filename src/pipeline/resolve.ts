// Step: resolve. Every source kind resolves its specs across all layers; the
// result is compared with and written to layerfold.lock. Then the fold.

import type { LoadedConfig } from "../config/load.ts";
import type { ImageDefinition } from "../config/schema.ts";
import { fold, type FoldResult } from "../fold/fold.ts";
import { ConfigError, LayerfoldError, LockError, ResolveError } from "../errors.ts";
import { checkNamedPackages } from "../lock/named.ts";
import { lockPathFor, makeLock, readLock, writeLock, lockText, type LockFile } from "../lock/lock.ts";
import { platformOf } from "../oci/image.ts";
import type { Store } from "../store/store.ts";
import type { LockedPackage, Platform, SourceContext, SourceKind } from "../sources/types.ts";
import { readSourceFile } from "../sources/source-file.ts";
import type { Logger } from "../util/log.ts";
import { sha256Hex } from "../util/hash.ts";
import { stableJson } from "../util/json.ts";

export interface ResolveOptions {
  store: Store;
  log: Logger;
  frozen?: boolean;
  update?: string[];
  overrides?: Record<string, string>;
  /** Write layerfold.lock when it changed (default true unless frozen). */
  writeLock?: boolean;
  /**
   * Take a kind's packages from the lock when nothing its resolution reads has changed
   * (builds). `layerfold lock` leaves it off: it resolves for real, to fill and check.
   */
  reuseLock?: boolean;
  /** lock --check: report what cannot be resolved here (Resolution.unresolvable) and resolve the rest. */
  collectUnresolvable?: boolean;
}

export interface Resolution {
  packages: Map<string, LockedPackage>;
  /** roots[i] = package ids layer i names. */
  roots: string[][];
  lock: LockFile;
  previousLock?: LockFile;
  lockChanged: boolean;
  lockFile: string;
  /** Write layerfold.lock if it changed (packages or inputs) and was not written yet; true when written. */
  saveLock(): Promise<boolean>;
  contextFor(kind: SourceKind): SourceContext;
  /** With collectUnresolvable: what could not be resolved on this machine, and why. */
  unresolvable: Array<{ id: string; why: string }>;
  optionsFor(kind: SourceKind): unknown;
}

export function sourceDateEpoch(env = process.env): number {
  const v = env.SOURCE_DATE_EPOCH;
  if (v === undefined || v === "") return 0;
  if (!/^\d+$/.test(v)) throw new ResolveError(`SOURCE_DATE_EPOCH=${JSON.stringify(v)} is not a number of seconds; unset it or give e.g. 1700000000`);
  return Number(v);
}

export async function resolveImage(cfg: LoadedConfig, kinds: SourceKind[], opts: ResolveOptions): Promise<Resolution> {
  const lockFile = lockPathFor(cfg.file);
  const previousLock = await readLock(lockFile);
  const platformParts = platformOf(cfg.image);
  const platform: Platform = { os: "linux", architecture: platformParts.architecture, ...(platformParts.variant ? { variant: platformParts.variant } : {}) };
  const epoch = sourceDateEpoch();
  const contextFor = (kind: SourceKind): SourceContext => ({
    store: opts.store,
    image: cfg.image,
    configDir: cfg.dir,
    platform,
    log: opts.log,
    locked: (previousLock?.packages ?? []).filter((p) => p.kind === kind.kind),
    frozen: opts.frozen ?? false,
    update: opts.update ?? [],
    overrides: opts.overrides ?? {},
    sourceDateEpoch: epoch,
    sourceFile: (source, file, what) => readSourceFile(packages, kinds, contextFor, source, file, what),
    // Requirement files are read twice (inputs digest, then resolve): one report each.
    ...(opts.collectUnresolvable ? { unresolvable: (id: string, why: string) => void (unresolvable.some((u) => u.id === id) || unresolvable.push({ id, why })) } : {}),
  });
  const unresolvable: Array<{ id: string; why: string }> = [];
  const optionsFor = (kind: SourceKind) => (cfg.image as Record<string, unknown>)[kind.layerKey];

  const packages = new Map<string, LockedPackage>();
  const roots: string[][] = cfg.image.layers.map(() => []);
  const inputs: Record<string, string> = {};
  for (const kind of kinds) {
    const specs = cfg.image.layers.map((l) => (l as Record<string, unknown>)[kind.layerKey]);
    if (specs.every((s) => s === undefined) && optionsFor(kind) === undefined) continue;
    const ctx = contextFor(kind);
    let result: Awaited<ReturnType<SourceKind["resolve"]>> | undefined;
    if (!kind.local) {
      inputs[kind.kind] = sha256Hex(stableJson({ code: kind.version ?? null, platform, specs, options: optionsFor(kind) ?? null, extra: (await kind.resolveInputs?.(specs, optionsFor(kind), ctx)) ?? null }));
      // Nothing it reads changed since the lock was written: take the lock as the resolution.
      if (opts.reuseLock && !opts.frozen && !opts.update?.length && ctx.locked.length && previousLock?.inputs?.[kind.kind] === inputs[kind.kind]) {
        try {
          result = await kind.resolve(specs, optionsFor(kind), { ...ctx, frozen: true });
        } catch (err) {
          if (!(err instanceof LockError)) throw err;
        }
      }
    }
    try {
      result ??= await kind.resolve(specs, optionsFor(kind), ctx);
    } catch (err) {
      // A config error stays an error; anything this machine cannot reach is reported.
      if (!opts.collectUnresolvable || !(err instanceof LayerfoldError) || err instanceof ConfigError) throw err;
      unresolvable.push({ id: `${kind.kind}:*`, why: err.message });
      continue;
    }
    for (const p of result.packages) {
      if (packages.has(p.id)) throw new ResolveError(`two packages resolve to the same id ${p.id}; give one of them a distinct name`);
      packages.set(p.id, p);
    }
    result.roots.forEach((r, i) => roots[i]!.push(...r));
  }

  checkNamedPackages(packages.values(), kinds, { update: opts.update, overrides: opts.overrides });
  const lockable = [...packages.values()].filter((p) => !kinds.find((k) => k.kind === p.kind)?.local);
  const lock = makeLock(`${cfg.image.name}:${cfg.image.tag}`, lockable, inputs);
  // What changed: the packages (an error under --frozen), or only the inputs digests.
  const lockChanged = !previousLock || lockText({ ...previousLock, inputs: undefined }) !== lockText({ ...lock, inputs: undefined });
  if (lockChanged && opts.frozen) {
    throw new LockError(`${lockFile} is ${previousLock ? "out of date with the config" : "missing"} and --frozen forbids changing it; run \`layerfold lock\` and commit the result`);
  }
  const inputsChanged = !opts.frozen && previousLock !== undefined && stableJson(previousLock.inputs ?? {}) !== stableJson(lock.inputs ?? {});
  let unsaved = lockChanged || inputsChanged;
  const saveLock = async () => {
    if (!unsaved) return false;
    await writeLock(lockFile, lock);
    unsaved = false;
    return true;
  };
  if (opts.writeLock ?? true) await saveLock();
  return { packages, roots, lock, previousLock, lockChanged, lockFile, saveLock, contextFor, optionsFor, unresolvable };
}

/** Fold: every package into exactly one layer; a layer left empty is dropped, and the log says why. */
export function foldImage(image: ImageDefinition, res: Resolution, log: Logger): FoldResult {
  const folded = fold(image.layers.map((l, i) => ({ name: l.name, roots: res.roots[i]! })), (id) => res.packages.get(id)?.deps);
  for (const name of folded.dropped) {
    const i = image.layers.findIndex((l) => l.name === name);
    const why = res.roots[i]!.length ? "everything it names is in earlier layers" : "it names no packages";
    log.info(`layer ${name}: empty (${why}); dropped`);
  }
  return folded;
}
