// From folded layers and installed trees to the entries of each layer:
// file-level conflict detection across the whole image, and deterministic
// splitting of layers over the size limit.

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
function ownerOf(owners: Map<string, string>, p: string): string | undefined {
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
  const owners = new Map(Object.entries(resolutions).map(([p, id]) => [p.replace(/^\/+/, ""), id]));
  const claims = new Map<string, { id: string; entry: TreeEntry }>();
  const firstDir = new Map<string, TreeEntry>();
  // Pass 1: decide who owns each non-directory path.
  for (const layer of layers) {
    for (const id of layer.packages) {
      for (const entry of treeOf(id).manifest.entries) {
        if (entry.type === "dir") {
          if (!firstDir.has(entry.path)) firstDir.set(entry.path, entry);
          continue;
        }
        const prev = claims.get(entry.path);
        if (!prev) { claims.set(entry.path, { id, entry }); continue; }
        if (prev.id === id) continue;
        const owner = ownerOf(owners, entry.path);
        if (owner === id) { claims.set(entry.path, { id, entry }); continue; }
        if (owner === prev.id || sameContent(prev.entry, entry)) continue;
        throw new PathConflictError(
          `/${entry.path} is provided by both ${prev.id} and ${id} with different content.\n` +
            `Pick an owner in the config, e.g. conflicts: { "/${entry.path}": "${prev.id}" }, or remove one of the packages.`,
        );
      }
    }
  }
  for (const [p, entry] of firstDir) {
    const c = claims.get(p);
    if (c) throw new PathConflictError(`/${p} is a directory in one package and a ${c.entry.type} in ${c.id}; remove one of them`);
    void entry;
  }
  // Pass 2: each layer keeps the entries its packages own.
  return layers.map((layer) => {
    const entries: LayerEntry[] = [];
    const dirsHere = new Set<string>();
    let size = 0;
    for (const id of layer.packages) {
      const tree = treeOf(id);
      for (const entry of tree.manifest.entries) {
        if (entry.type === "dir") {
          if (dirsHere.has(entry.path)) continue;
          dirsHere.add(entry.path);
          entries.push({ entry: firstDir.get(entry.path)!, rootDir: tree.rootDir, packageId: id, treeKey: tree.key });
          continue;
        }
        const c = claims.get(entry.path);
        if (!c || c.id !== id || c.entry !== entry) continue;
        if (entry.type === "file") size += entry.size ?? 0;
        entries.push({ entry, rootDir: tree.rootDir, packageId: id, treeKey: tree.key });
      }
    }
    return { name: layer.name, packages: layer.packages, entries, size };
  });
}

/** Directory metadata for synthesised parents: the image-wide first provider's. */
export function directoryIndex(planned: PlannedLayer[]): Map<string, TreeEntry> {
  const dirs = new Map<string, TreeEntry>();
  for (const l of planned) for (const e of l.entries) if (e.entry.type === "dir" && !dirs.has(e.entry.path)) dirs.set(e.entry.path, e.entry);
  return dirs;
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
