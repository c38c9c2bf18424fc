// The image's final filesystem as one map, path -> entry, composed from its
// layers without touching the disk: what `run` materialises and what `check`
// reads. Files point at their content in the store; symlinks are resolved
// here, inside the image, never on the host.

import path from "node:path";
import { ownerMap, ownerOf } from "../fold/plan.ts";
import type { EntryType, TreeEntry } from "../store/tree.ts";
import type { RuntimeImage, RuntimeLayer } from "./image.ts";

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
  /**
   * Paths the layers put where the image cannot hold them: under a symlink or file of
   * another layer (left out here), or a directory unpacked over a lower symlink or file
   * (which hides what it pointed to). The first 20, and how many in all; `check` fails on them.
   */
  pathProblems: string[];
  pathProblemCount: number;
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
  const pathProblems: string[] = [];
  let pathProblemCount = 0;
  const problem = (text: () => string) => { if (pathProblemCount++ < 20) pathProblems.push(text()); };
  // A layout's layers are named "layer N <digest>" and hold no packages.
  const where = (e: ViewEntry) => (e.packageId.startsWith("layer:") ? "" : `${e.packageId}, `) + (image.kind === "from-layout" ? "" : "layer ") + (image.layers[e.layer]?.name ?? "?");
  // Package trees: the planner's rule. The first package to provide a path owns it, unless
  // the config names another owner; directories keep their first provider's metadata.
  // Over a base-image layer's path, the upper layer wins, as a runtime unpacks it.
  const owners = ownerMap(image.conflicts);
  const seen = new Set<string>();
  const fromBase = (e: ViewEntry) => e.layer >= 0 && image.layers[e.layer]!.base === true;
  const applyTrees = (layer: RuntimeLayer, li: number) => {
    for (const { id, tree } of layer.trees) {
      if (seen.has(id)) continue; // a package split over several layers
      seen.add(id);
      let index: Map<string, TreeEntry> | undefined;
      const treeEntries = () => (index ??= new Map(tree.manifest.entries.map((e) => [e.path, e])));
      for (const e of tree.manifest.entries) {
        const prev = entries.get(e.path);
        if (prev && !fromBase(prev)) {
          if (e.type === "dir" || prev.type === "dir") continue;
          if (ownerOf(owners, e.path) !== id) continue; // as the planner: an owner named for the path or a directory above it
        }
        entries.set(e.path, toView(e, tree.rootDir, li, id, tree.key, treeEntries));
      }
    }
  };
  // Layer tars in order, with OCI whiteouts: .wh.NAME deletes NAME from lower
  // layers, .wh..wh..opq hides a directory's lower contents.
  const applyBlob = (layer: RuntimeLayer, li: number) => {
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
        const prev = entries.get(e.path);
        const next = toView(e, tree.rootDir, li, id, tree.key, treeEntries);
        if (e.type === "dir" && prev && prev.type !== "dir") {
          problem(() => `/${e.path}: a directory in ${where(next)} replaces the ${prev.type}${prev.target ? ` to ${prev.target}` : ""} of ${where(prev)}, hiding what was there`);
        }
        entries.set(e.path, next);
      }
    }
  };
  image.layers.forEach((layer, li) => (layer.source === "trees" ? applyTrees(layer, li) : applyBlob(layer, li)));
  // Every entry needs a directory parent: synthesise missing ones, and drop what
  // lies under a file or symlink (it could only be reached through the host).
  const sorted = [...entries.keys()].sort();
  /** Dropped paths, each with the symlink or file it lies under. */
  const dropped = new Map<string, string>();
  const out: string[] = [];
  /** Make `dir` a directory (synthesising missing parents); else the path of the non-directory in the way. */
  const ensureDir = (dir: string): string | undefined => {
    if (dir === "." || dir === "") return undefined;
    const blocked = dropped.get(dir);
    if (blocked !== undefined) return blocked;
    const e = entries.get(dir);
    if (e) return e.type === "dir" ? undefined : dir;
    const up = ensureDir(path.posix.dirname(dir));
    if (up !== undefined) return up;
    entries.set(dir, { path: dir, type: "dir", mode: 0o755, uid: 0, gid: 0, layer: -1, packageId: "(parent)", treeKey: "" });
    out.push(dir);
    return undefined;
  };
  for (const p of sorted) {
    const blocker = ensureDir(path.posix.dirname(p));
    if (blocker !== undefined) {
      const e = entries.get(p)!;
      const b = entries.get(blocker)!;
      dropped.set(p, blocker);
      entries.delete(p);
      problem(() => `/${p} (${where(e)}) lies under /${blocker}, a ${b.type}${b.target ? ` to ${b.target}` : ""} in ${where(b)}; left out`);
      continue;
    }
    out.push(p);
  }
  return { entries, sorted: out.sort(), pathProblems, pathProblemCount };
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
