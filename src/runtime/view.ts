// The image's final filesystem as one map, path -> entry, composed from its
// layers without touching the disk: what `run` materialises and what `check`
// reads. Files point at their content in the store; symlinks are resolved
// here, inside the image, never on the host.

import path from "node:path";
import type { EntryType, TreeEntry } from "../store/tree.ts";
import type { RuntimeImage } from "./image.ts";

export interface ViewEntry {
  path: string;
  type: Exclude<EntryType, "hardlink">;
  mode: number;
  uid: number;
  gid: number;
  /** Symlinks: the target as written. */
  target?: string;
  /** Files: where the content lives on the host (a store tree file; immutable). */
  host?: string;
  /** Files: the tree's root directory and the content's path in it (a hardlink's target differs from its path). */
  treeRoot?: string;
  treePath?: string;
  size?: number;
  sha256?: string;
  xattrs?: Record<string, string>;
  /** Index into image.layers of the layer that provides it (-1: synthesised parent). */
  layer: number;
  packageId: string;
  treeKey: string;
}

export interface ImageView {
  entries: Map<string, ViewEntry>;
  /** Paths sorted so every parent comes before its children. */
  sorted: string[];
  warnings: string[];
}

const WH = ".wh.";
const OPAQUE = ".wh..wh..opq";

function toView(e: TreeEntry, rootDir: string, layer: number, packageId: string, treeKey: string, treeEntries: () => Map<string, TreeEntry>): ViewEntry {
  const base = { path: e.path, mode: e.mode, uid: e.uid, gid: e.gid, layer, packageId, treeKey, ...(e.xattrs ? { xattrs: e.xattrs } : {}) };
  if (e.type === "hardlink") {
    // A hardlink shares its target's content; in the view it is simply another file.
    const t = treeEntries().get(e.target!);
    return { ...base, type: "file", host: path.join(rootDir, e.target!), treeRoot: rootDir, treePath: e.target!, size: t?.size, sha256: t?.sha256 };
  }
  if (e.type === "file") return { ...base, type: "file", host: path.join(rootDir, e.path), treeRoot: rootDir, treePath: e.path, size: e.size, sha256: e.sha256 };
  if (e.type === "symlink") return { ...base, type: "symlink", target: e.target };
  return { ...base, type: "dir" };
}

/** Is p, or one of its ancestors, in the set? */
function underAny(p: string, set: Set<string>, strict: boolean): boolean {
  if (!strict && set.has(p)) return true;
  for (let i = p.lastIndexOf("/"); i > 0; i = p.lastIndexOf("/", i - 1)) if (set.has(p.slice(0, i))) return true;
  return false;
}

export function composeView(image: RuntimeImage): ImageView {
  const entries = new Map<string, ViewEntry>();
  const warnings: string[] = [];
  if (image.kind === "from-build") {
    // The planner's rule: the first package to provide a path owns it, unless the
    // config names another owner; directories keep their first provider's metadata.
    const owners = new Map(Object.entries(image.conflicts).map(([p, id]) => [p.replace(/^\/+/, ""), id]));
    const seen = new Set<string>();
    image.layers.forEach((layer, li) => {
      for (const { id, tree } of layer.trees) {
        if (seen.has(id)) continue; // a package split over several layers
        seen.add(id);
        let index: Map<string, TreeEntry> | undefined;
        const treeEntries = () => (index ??= new Map(tree.manifest.entries.map((e) => [e.path, e])));
        for (const e of tree.manifest.entries) {
          const prev = entries.get(e.path);
          if (prev && (e.type === "dir" || prev.type === "dir")) continue;
          if (prev && owners.get(e.path) !== id) continue;
          entries.set(e.path, toView(e, tree.rootDir, li, id, tree.key, treeEntries));
        }
      }
    });
  } else {
    // Layer tars in order, with OCI whiteouts: .wh.NAME deletes NAME from lower
    // layers, .wh..wh..opq hides a directory's lower contents.
    image.layers.forEach((layer, li) => {
      for (const { id, tree } of layer.trees) {
        let index: Map<string, TreeEntry> | undefined;
        const treeEntries = () => (index ??= new Map(tree.manifest.entries.map((e) => [e.path, e])));
        const removed = new Set<string>(); // these paths and everything under them
        const emptied = new Set<string>(); // everything under these
        for (const e of tree.manifest.entries) {
          const base = path.posix.basename(e.path);
          const dir = path.posix.dirname(e.path);
          if (base === OPAQUE) emptied.add(dir);
          else if (base.startsWith(WH)) removed.add(dir === "." ? base.slice(WH.length) : `${dir}/${base.slice(WH.length)}`);
          else if (e.type !== "dir" && entries.get(e.path)?.type === "dir") emptied.add(e.path);
        }
        if (removed.size || emptied.size) {
          for (const p of [...entries.keys()]) if (underAny(p, removed, false) || underAny(p, emptied, true)) entries.delete(p);
        }
        for (const e of tree.manifest.entries) {
          if (path.posix.basename(e.path).startsWith(WH)) continue;
          entries.set(e.path, toView(e, tree.rootDir, li, id, tree.key, treeEntries));
        }
      }
    });
  }
  // Every entry needs a directory parent: synthesise missing ones, and drop what
  // lies under a file or symlink (it could only be reached through the host).
  const sorted = [...entries.keys()].sort();
  const dropped = new Set<string>();
  const out: string[] = [];
  const ensureDir = (dir: string): boolean => {
    if (dir === "." || dir === "") return true;
    if (dropped.has(dir)) return false;
    const e = entries.get(dir);
    if (e) return e.type === "dir";
    if (!ensureDir(path.posix.dirname(dir))) return false;
    entries.set(dir, { path: dir, type: "dir", mode: 0o755, uid: 0, gid: 0, layer: -1, packageId: "(parent)", treeKey: "" });
    out.push(dir);
    return true;
  };
  for (const p of sorted) {
    if (!ensureDir(path.posix.dirname(p))) {
      dropped.add(p);
      entries.delete(p);
      if (warnings.length < 20) warnings.push(`/${p} lies under a path that is not a directory in the image; left out`);
      continue;
    }
    out.push(p);
  }
  return { entries, sorted: out.sort(), warnings };
}

/**
 * Resolve an image path inside the view, following symlinks (absolute ones
 * from the image root), clamping ".." at the root. Returns the final path
 * (possibly of an entry that does not exist) or undefined on a loop.
 */
export function resolveInView(view: ImageView, raw: string, followLast = true): string | undefined {
  const todo = raw.split("/").filter((s) => s && s !== ".");
  const done: string[] = [];
  let links = 0;
  while (todo.length) {
    const part = todo.shift()!;
    if (part === "..") { done.pop(); continue; }
    done.push(part);
    const cur = done.join("/");
    const e = view.entries.get(cur);
    if (!e || e.type !== "symlink" || (!followLast && todo.length === 0)) continue;
    if (++links > 40) return undefined;
    done.pop();
    if (e.target!.startsWith("/")) done.length = 0;
    todo.unshift(...e.target!.split("/").filter((s) => s && s !== "."));
  }
  return done.join("/");
}

/** The entry at an image path after following symlinks, if any. */
export function lookup(view: ImageView, p: string): ViewEntry | undefined {
  const r = resolveInView(view, p);
  return r === undefined ? undefined : view.entries.get(r);
}
