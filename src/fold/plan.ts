// From folded layers and installed trees to the entries of each layer:
// file-level conflict detection across the whole image, deterministic
// splitting of layers over the size limit, and the plan of the image grown
// one layer at a time (ImagePlan). Pure: trees come in through `treeOf`, and
// plan records through a small interface the pipeline backs with the store.

import path from "node:path";
import { CorruptStoreError, PathConflictError } from "../errors.ts";
import { compressorId, type LayerCompression } from "../layer/compress.ts";
import { LAYER_FORMAT, layerKey, type LayerInput } from "../layer/layer.ts";
import type { LayerEntry } from "../layer/tar-writer.ts";
import type { RecordKind } from "../store/record-kinds.ts";
import type { TreeEntry } from "../store/tree.ts";
import { sha256Hex } from "../util/hash.ts";
import { stableJson } from "../util/json.ts";

/** What planning reads of an installed package tree. */
export interface PlanTree {
  key: string;
  rootDir: string;
  manifest: { entries: TreeEntry[] };
}

export interface PlannedLayer {
  name: string;
  packages: string[];
  entries: LayerEntry[];
  /** Sum of regular file bytes. */
  size: number;
}

const sameContent = (a: TreeEntry, b: TreeEntry) =>
  a.type === b.type && a.sha256 === b.sha256 && a.target === b.target && a.mode === b.mode && a.uid === b.uid && a.gid === b.gid;

/** How two entries at one path differ, for the conflict message: a mode or owner alone is said as such. */
function difference(a: TreeEntry, b: TreeEntry): string {
  const octal = (m: number) => `0${(m & 0o7777).toString(8)}`;
  if (a.type !== b.type) return `as a ${a.type} and a ${b.type}`;
  if (a.sha256 !== b.sha256 || a.target !== b.target) return "with different content";
  if (a.mode !== b.mode) return `with the same content but different modes (${octal(a.mode)} and ${octal(b.mode)})`;
  return `with the same content but different owners (${a.uid}:${a.gid} and ${b.uid}:${b.gid})`;
}

/** The config's `conflicts` as the map ownerOf reads: image paths without the leading "/". */
export function ownerMap(conflicts: Record<string, string>): Map<string, string> {
  return new Map(Object.entries(conflicts).map(([p, id]) => [p.replace(/^\/+/, ""), id]));
}

/**
 * The owner named for a path, or for a directory prefix of it ("/site-packages/cv2/":
 * "py:opencv-python-headless"). The one rule the planner and the runtime's view share.
 */
export function ownerOf(owners: ReadonlyMap<string, string>, p: string): string | undefined {
  const exact = owners.get(p);
  if (exact !== undefined) return exact;
  for (let i = p.lastIndexOf("/"); i > 0; i = p.lastIndexOf("/", i - 1)) {
    const o = owners.get(p.slice(0, i + 1));
    if (o !== undefined) return o;
  }
  return undefined;
}

/**
 * Assign every path to exactly one package. A path two packages both provide
 * is an error, unless the copies are identical (the later one is dropped) or
 * the config names its owner in `conflicts`. Directories may be shared; every
 * layer that holds one uses the metadata of its first provider, so an upper
 * layer never changes a directory's mode.
 */
export function planLayers(
  layers: Array<{ name: string; packages: string[] }>,
  treeOf: (id: string) => PlanTree,
  resolutions: Record<string, string>,
): PlannedLayer[] {
  const planner = new LayerPlanner(treeOf, resolutions, new Set(layers.flatMap((l) => l.packages)));
  for (const layer of layers) planner.add(layer);
  planner.check();
  return layers.map((_l, i) => planner.plan(i));
}

/**
 * planLayers one layer at a time, bottom up: a build plans each layer as soon as it
 * and the layers below are installed, and the plan of the whole image continues
 * from there instead of starting over. Adding a layer never changes a lower
 * layer's plan, except when a `conflicts` owner above takes one of its paths;
 * `changed` lists those layers.
 */
export class LayerPlanner {
  private readonly owners: Map<string, string>;
  private readonly claims = new Map<string, { id: string; entry: TreeEntry }>();
  /** Each directory's first provider: the metadata every layer uses for it. */
  readonly firstDir = new Map<string, TreeEntry>();
  private readonly layers: Array<{ name: string; packages: string[] }> = [];
  private readonly layerOf = new Map<string, number>();
  /** Paths claimed, and directories seen, since the last check(). */
  private newClaims: string[] = [];
  private newDirs: string[] = [];
  /** Layers that lost a path to a layer added after them. */
  readonly changed = new Set<number>();
  /** Packages whose entries were read. */
  private readonly added = new Set<string>();
  /** Paths two packages provide whose named owner (a third one) was not read yet: path -> owner. */
  private readonly awaitingOwner = new Map<string, string>();
  /** Every directory some entry lies under (named or implied), with the first package to put something there. */
  private readonly under = new Map<string, string>();

  /** `imageIds`: every package of the image, when known, so an owner that is in none is an error at once. */
  constructor(private readonly treeOf: (id: string) => PlanTree, resolutions: Record<string, string>, private readonly imageIds?: ReadonlySet<string>) {
    this.owners = ownerMap(resolutions);
  }

  get size(): number { return this.layers.length; }

  /** Decide who owns each non-directory path of the next layer (pass 1). */
  add(layer: { name: string; packages: string[] }): void {
    const li = this.layers.length;
    this.layers.push(layer);
    for (const id of layer.packages) this.layerOf.set(id, li);
    for (const id of layer.packages) {
      for (const entry of this.treeOf(id).manifest.entries) {
        this.checkAncestors(entry, id);
        if (entry.type === "dir") {
          if (!this.firstDir.has(entry.path)) { this.firstDir.set(entry.path, entry); this.newDirs.push(entry.path); }
          continue;
        }
        const prev = this.claims.get(entry.path);
        if (!prev) { this.claims.set(entry.path, { id, entry }); this.newClaims.push(entry.path); continue; }
        if (prev.id === id) continue;
        const owner = ownerOf(this.owners, entry.path);
        if (owner === id) {
          const lower = this.layerOf.get(prev.id)!;
          if (lower < li) this.changed.add(lower);
          this.claims.set(entry.path, { id, entry });
          this.awaitingOwner.delete(entry.path);
          continue;
        }
        if (owner === prev.id || sameContent(prev.entry, entry)) continue;
        // A third package owns it (four opencv flavours share cv2/): it takes the path when it comes.
        if (owner !== undefined && !this.added.has(owner) && (this.imageIds?.has(owner) ?? true)) {
          this.awaitingOwner.set(entry.path, owner);
          continue;
        }
        throw new PathConflictError(
          `/${entry.path} is provided by both ${prev.id} and ${id} ${difference(prev.entry, entry)}` +
            (owner === undefined ? ".\n" : `, and its owner in conflicts, ${owner}, ${this.added.has(owner) ? "does not provide it" : "is not in the image"}.\n`) +
            `Pick an owner in the config, e.g. conflicts: { "/${entry.path}": "${prev.id}" }, or remove one of the packages.`,
        );
      }
      this.added.add(id);
    }
  }

  /**
   * A path under a symlink or file of another package cannot be in the image as planned:
   * unpacked onto a symlink, a runtime replaces it with a directory (usr-is-merged's /bin ->
   * usr/bin becomes a /bin holding one file, and /bin/sh is gone), onto a file it fails.
   * Either order is refused: the symlink or file below, or the one above.
   */
  private checkAncestors(entry: TreeEntry, id: string): void {
    const p = entry.path;
    if (entry.type !== "dir") {
      const below = this.under.get(p);
      if (below !== undefined && below !== id) {
        const child = this.someEntryUnder(p, below);
        throw this.underError(child ?? `${p}/…`, below, p, { id, entry });
      }
    }
    for (let i = p.lastIndexOf("/"); i > 0; i = p.lastIndexOf("/", i - 1)) {
      const a = p.slice(0, i);
      const c = this.claims.get(a);
      if (c && c.id !== id) throw this.underError(p, id, a, c);
      if (this.under.has(a)) break; // it and its ancestors were checked when first seen
      this.under.set(a, id);
    }
  }

  private layerName(id: string): string {
    const li = this.layerOf.get(id);
    return li === undefined ? "?" : this.layers[li]!.name;
  }

  /** A path of package `id` under `dir` (for messages only). */
  private someEntryUnder(dir: string, id: string): string | undefined {
    return this.treeOf(id).manifest.entries.find((e) => e.path.startsWith(`${dir}/`))?.path;
  }

  private underError(p: string, id: string, ancestor: string, holder: { id: string; entry: TreeEntry }): PathConflictError {
    const what = holder.entry.type === "symlink" ? `a symlink to ${holder.entry.target}` : `a ${holder.entry.type}`;
    let advice = `A path cannot be both; remove one of them.`;
    if (holder.entry.type === "symlink") {
      const t = holder.entry.target!;
      const real = path.posix.join(t.startsWith("/") ? t : path.posix.join("/", path.posix.dirname(ancestor), t), p.slice(ancestor.length + 1));
      advice = `A runtime would replace the symlink with a directory holding only that path, hiding what /${ancestor} points to. Put it at the real path ${real} instead.`;
    }
    return new PathConflictError(
      `/${p} (${id}, layer ${this.layerName(id)}) lies under /${ancestor}, which is ${what} in ${holder.id} (layer ${this.layerName(holder.id)}). ${advice}`,
    );
  }

  /** A path that is a directory in one package and something else in another is an error. */
  check(): void {
    for (const [p, owner] of this.awaitingOwner) {
      if (!this.added.has(owner) && (this.imageIds?.has(owner) ?? false)) continue;
      const c = this.claims.get(p)!;
      throw new PathConflictError(
        `/${p} is provided by ${c.id} and another package with different content, and its owner in conflicts, ${owner}, ${this.added.has(owner) ? "does not provide it" : "is not in the image"}.\n` +
          `Pick an owner that provides it, e.g. conflicts: { "/${p}": "${c.id}" }, or remove one of the packages.`,
      );
    }
    for (const p of this.newDirs) {
      const c = this.claims.get(p);
      if (c) throw this.dirError(p, c);
    }
    for (const p of this.newClaims) {
      if (!this.firstDir.has(p)) continue;
      throw this.dirError(p, this.claims.get(p)!);
    }
    this.newDirs = [];
    this.newClaims = [];
  }

  private dirError(p: string, c: { id: string; entry: TreeEntry }): PathConflictError {
    const dirOwner = this.layers.flatMap((l) => l.packages).find((id) => this.treeOf(id).manifest.entries.some((e) => e.path === p && e.type === "dir"));
    const where = dirOwner ? `${dirOwner} (layer ${this.layerName(dirOwner)})` : "one package";
    if (c.entry.type === "symlink") {
      const t = c.entry.target!;
      const real = t.startsWith("/") ? t : path.posix.join("/", path.posix.dirname(p), t);
      return new PathConflictError(`/${p} is a directory in ${where} and a symlink to ${t} in ${c.id} (layer ${this.layerName(c.id)}); a runtime keeps only one of them. Put the directory's contents under the real path ${real} instead.`);
    }
    return new PathConflictError(`/${p} is a directory in ${where} and a ${c.entry.type} in ${c.id} (layer ${this.layerName(c.id)}); remove one of them`);
  }

  /** The entries layer `i` keeps: those its packages own (pass 2). */
  plan(i: number): PlannedLayer {
    const layer = this.layers[i]!;
    const entries: LayerEntry[] = [];
    const dirsHere = new Set<string>();
    let size = 0;
    for (const id of layer.packages) {
      const tree = this.treeOf(id);
      for (const entry of tree.manifest.entries) {
        if (entry.type === "dir") {
          if (dirsHere.has(entry.path)) continue;
          dirsHere.add(entry.path);
          entries.push({ entry: this.firstDir.get(entry.path)!, rootDir: tree.rootDir, packageId: id, treeKey: tree.key });
          continue;
        }
        const c = this.claims.get(entry.path);
        if (!c || c.id !== id || c.entry !== entry) continue;
        if (entry.type === "file") size += entry.size ?? 0;
        entries.push({ entry, rootDir: tree.rootDir, packageId: id, treeKey: tree.key });
      }
    }
    return { name: layer.name, packages: layer.packages, entries, size };
  }
}

/**
 * Split a layer over `limit` bytes: whole packages in order while they fit,
 * then a package that alone is too big by path order. Hardlinks stay with
 * their target. Same input, same parts.
 */
export function splitLayer(layer: PlannedLayer, limit: number): PlannedLayer[] {
  if (layer.size <= limit) return [layer];
  const byPackage = new Map<string, LayerEntry[]>();
  for (const e of layer.entries) {
    const list = byPackage.get(e.packageId) ?? [];
    list.push(e);
    byPackage.set(e.packageId, list);
  }
  const parts: PlannedLayer[] = [];
  let cur: PlannedLayer | undefined;
  const newPart = () => {
    cur = { name: parts.length === 0 ? layer.name : `${layer.name}.${parts.length + 1}`, packages: [], entries: [], size: 0 };
    parts.push(cur);
    return cur;
  };
  const sizeOf = (es: LayerEntry[]) => es.reduce((n, e) => n + (e.entry.type === "file" ? e.entry.size ?? 0 : 0), 0);
  for (const id of layer.packages) {
    const es = byPackage.get(id) ?? [];
    const s = sizeOf(es);
    if (s <= limit) {
      let part = cur ?? newPart();
      if (part.size + s > limit && part.entries.length) part = newPart();
      part.packages.push(id);
      part.entries.push(...es);
      part.size += s;
      continue;
    }
    // One package bigger than the limit: split its files by path order.
    const linkTargetPart = new Map<string, PlannedLayer>();
    const hardlinks: LayerEntry[] = [];
    let part = cur && cur.entries.length ? newPart() : cur ?? newPart();
    for (const e of es) {
      if (e.entry.type === "hardlink") { hardlinks.push(e); continue; }
      const es2 = e.entry.type === "file" ? e.entry.size ?? 0 : 0;
      if (part.size + es2 > limit && part.entries.length) part = newPart();
      if (!part.packages.includes(id)) part.packages.push(id);
      part.entries.push(e);
      part.size += es2;
      linkTargetPart.set(e.entry.path, part);
    }
    for (const h of hardlinks) (linkTargetPart.get(h.entry.target!) ?? part).entries.push(h);
  }
  return parts;
}

/**
 * Add parent directories that no entry provides, with the metadata the image
 * already gives them (`knownDirs`) so an upper layer never changes a
 * directory's mode; sort by path.
 */
export function withParents(entries: LayerEntry[], knownDirs?: ReadonlyMap<string, TreeEntry>, unknown?: string[]): LayerEntry[] {
  const byPath = new Map<string, LayerEntry>();
  for (const e of entries) byPath.set(e.entry.path, e);
  // Image paths are normalised (no leading, trailing or double slashes): a parent is the part before the last "/".
  const parentOf = (p: string) => p.slice(0, Math.max(p.lastIndexOf("/"), 0));
  for (const e of entries) {
    let p = parentOf(e.entry.path);
    while (p !== "" && !byPath.has(p)) {
      const known = knownDirs?.get(p);
      // Parents no layer provides get defaults; `unknown` collects them (a layer added later may provide one).
      if (!known) unknown?.push(p);
      byPath.set(p, { entry: known ?? { path: p, type: "dir", mode: 0o755, uid: 0, gid: 0 }, rootDir: "", packageId: "(parent directory)", treeKey: "" });
      p = parentOf(p);
    }
  }
  return [...byPath.values()].sort((a, b) => (a.entry.path < b.entry.path ? -1 : a.entry.path > b.entry.path ? 1 : 0));
}

/** One layer (or part of a split layer) as planned: its key, and its entries with parents when it must be built. */
export interface LayerPart { name: string; packages: string[]; size: number; key: string; input(): LayerInput }

/** Bump when planning (LayerPlanner, withParents, splitLayer) gives other entries for the same trees. */
const PLAN_FORMAT = 1;

/** What a plan record keeps of a layer planned from itself and the layers below. */
export interface PlanRecord { parts: Array<{ name: string; packages: string[]; size: number; key: string }>; unknownParents: string[] }

/** Plan records stay while every part they name is a kept layer. */
export const PLAN_RECORDS: RecordKind<Partial<PlanRecord>> = { kind: "plans", keep: (_key, rec, live) => Array.isArray(rec?.parts) && rec.parts.every((p) => live.layerKeys.has(p.key)) };

/** Where plan records are kept (the pipeline backs it with the store). */
export interface PlanRecords {
  read(key: string): PlanRecord | undefined;
  write(key: string, record: PlanRecord): void;
  drop(key: string): void;
}

export interface ImagePlanOptions { compression: LayerCompression; level?: number; epoch: number; conflicts: Record<string, string>; limit: number }

/**
 * The plan of the image, grown one layer at a time: build-ahead plans each layer as its
 * packages come in, and the final pass takes those plans unless a layer added later
 * changed them (a `conflicts` owner above took a path, or now provides a parent
 * directory that was given defaults). A layer planned from itself and the layers below
 * is also recorded by those inputs, so the next build learns its key without planning
 * its entries again (it still reads its trees: the layers above are planned against
 * them), and plans them only if it has to build the layer.
 */
export class ImagePlan {
  private planner: LayerPlanner;
  private readonly parts = new Map<number, { parts: LayerPart[]; unknownParents: string[] }>();
  private readonly imageIds: ReadonlySet<string>;
  constructor(
    private readonly layers: ReadonlyArray<{ name: string; packages: string[] }>,
    private readonly treeOf: (id: string) => PlanTree,
    private readonly o: ImagePlanOptions,
    private readonly records?: PlanRecords,
  ) {
    this.imageIds = new Set(layers.flatMap((l) => l.packages));
    this.planner = new LayerPlanner(treeOf, o.conflicts, this.imageIds);
  }

  /** The parts of layer i, planned from the layers up to `through` (and any added before). */
  partsOf(i: number, through = i): LayerPart[] {
    while (this.planner.size <= through) this.planner.add(this.layers[this.planner.size]!);
    this.planner.check();
    const valid = (m: { unknownParents: string[] }) => !this.planner.changed.has(i) && !m.unknownParents.some((p) => this.planner.firstDir.has(p));
    const memo = this.parts.get(i);
    if (memo && valid(memo)) return memo.parts;
    // Only what layers 0..i decide goes into a record, and only such a plan is taken from one.
    const recordKey = this.records && this.planner.size === i + 1 ? this.recordKey(i) : undefined;
    const recorded = recordKey ? this.records!.read(recordKey) : undefined;
    if (recorded && Array.isArray(recorded.parts) && Array.isArray(recorded.unknownParents) && valid(recorded)) {
      const parts = recorded.parts.map((p, pi) => ({ ...p, input: () => this.plannedInput(i, pi, p.key, recordKey!) }));
      this.parts.set(i, { parts, unknownParents: recorded.unknownParents });
      return parts;
    }
    const { parts, unknownParents } = this.plan(i);
    this.parts.set(i, { parts, unknownParents });
    if (recordKey) this.records!.write(recordKey, { parts: parts.map(({ name, packages, size, key }) => ({ name, packages, size, key })), unknownParents });
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
      this.records!.drop(recordKey);
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
    this.planner = new LayerPlanner(this.treeOf, this.o.conflicts, this.imageIds);
    this.parts.clear();
  }
}
