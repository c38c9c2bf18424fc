// From folded layers and installed trees to the entries of each layer:
// file-level conflict detection across the whole image, and deterministic
// splitting of layers over the size limit.

import path from "node:path";
import { PathConflictError } from "../errors.ts";
import type { StoredTree } from "../store/store.ts";
import type { TreeEntry } from "../store/tree.ts";
import type { LayerEntry } from "../layer/tar-writer.ts";

export interface PlannedLayer {
  name: string;
  packages: string[];
  entries: LayerEntry[];
  /** Sum of regular file bytes. */
  size: number;
}

const sameContent = (a: TreeEntry, b: TreeEntry) =>
  a.type === b.type && a.sha256 === b.sha256 && a.target === b.target && a.mode === b.mode && a.uid === b.uid && a.gid === b.gid;

/** The owner named for a path, or for a directory prefix of it ("/site-packages/cv2/": "py:opencv-python-headless"). */
export function ownerOf(owners: Map<string, string>, p: string): string | undefined {
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
  treeOf: (id: string) => StoredTree,
  resolutions: Record<string, string>,
): PlannedLayer[] {
  const planner = new LayerPlanner(treeOf, resolutions);
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
  /** Every directory some entry lies under (named or implied), with the first package to put something there. */
  private readonly under = new Map<string, string>();

  constructor(private readonly treeOf: (id: string) => StoredTree, resolutions: Record<string, string>) {
    this.owners = new Map(Object.entries(resolutions).map(([p, id]) => [p.replace(/^\/+/, ""), id]));
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
          continue;
        }
        if (owner === prev.id || sameContent(prev.entry, entry)) continue;
        throw new PathConflictError(
          `/${entry.path} is provided by both ${prev.id} and ${id} with different content.\n` +
            `Pick an owner in the config, e.g. conflicts: { "/${entry.path}": "${prev.id}" }, or remove one of the packages.`,
        );
      }
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
