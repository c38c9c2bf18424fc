// Stage 1: every source kind resolves its specs across all layers; the
// result is compared with and written to layerfold.lock.

import type { LoadedConfig } from "../config/load.ts";
import { LockError, ResolveError } from "../errors.ts";
import { lockPathFor, makeLock, readLock, writeLock, lockText, type LockFile } from "../lock/lock.ts";
import { platformOf } from "../oci/image.ts";
import type { Store } from "../store/store.ts";
import type { LockedPackage, Platform, SourceContext, SourceKind } from "../sources/types.ts";
import type { Logger } from "../util/log.ts";

export interface ResolveOptions {
  store: Store;
  log: Logger;
  frozen?: boolean;
  update?: string[];
  overrides?: Record<string, string>;
  /** Write layerfold.lock when it changed (default true unless frozen). */
  writeLock?: boolean;
}

export interface Resolution {
  packages: Map<string, LockedPackage>;
  /** roots[i] = package ids layer i names. */
  roots: string[][];
  lock: LockFile;
  previousLock?: LockFile;
  lockChanged: boolean;
  lockFile: string;
  contextFor(kind: SourceKind): SourceContext;
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
  });
  const optionsFor = (kind: SourceKind) => (cfg.image as Record<string, unknown>)[kind.layerKey];

  const packages = new Map<string, LockedPackage>();
  const roots: string[][] = cfg.image.layers.map(() => []);
  for (const kind of kinds) {
    const specs = cfg.image.layers.map((l) => (l as Record<string, unknown>)[kind.layerKey]);
    if (specs.every((s) => s === undefined) && optionsFor(kind) === undefined) continue;
    const result = await kind.resolve(specs, optionsFor(kind), contextFor(kind));
    for (const p of result.packages) {
      if (packages.has(p.id)) throw new ResolveError(`two packages resolve to the same id ${p.id}; give one of them a distinct name`);
      packages.set(p.id, p);
    }
    result.roots.forEach((r, i) => roots[i]!.push(...r));
  }

  const lockable = [...packages.values()].filter((p) => !kinds.find((k) => k.kind === p.kind)?.local);
  const lock = makeLock(`${cfg.image.name}:${cfg.image.tag}`, lockable);
  const lockChanged = !previousLock || lockText(previousLock) !== lockText(lock);
  if (lockChanged && opts.frozen) {
    throw new LockError(`${lockFile} is ${previousLock ? "out of date with the config" : "missing"} and --frozen forbids changing it; run \`layerfold lock\` and commit the result`);
  }
  if (lockChanged && (opts.writeLock ?? true)) await writeLock(lockFile, lock);
  return { packages, roots, lock, previousLock, lockChanged, lockFile, contextFor, optionsFor };
}
