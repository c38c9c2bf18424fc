// Materialise an image's root filesystem from the store, once per manifest
// digest: directories and symlinks are created, files are hardlinked to the
// immutable store files (copied, with a reflink where possible, only across
// filesystems). The result is only ever used as the read-only lower layer of
// an overlay mount, so a container's writes go to its own upper directory and
// never through a hardlink into the store.
//
// Entries are created in parent-first order below a fresh directory, and every
// parent is a directory this code made, so no symlink from the image is ever
// followed on the host.

import { chmod, copyFile, constants as fsc, lchown, link, mkdir, mkdtemp, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { RuntimeError } from "../errors.ts";
import { hexOf } from "../oci/types.ts";
import type { Store } from "../store/store.ts";
import { mapPool } from "../util/pool.ts";
import type { RuntimeImage } from "./image.ts";
import { composeView, type ImageView } from "./view.ts";

/** Bump when materialisation changes, so old cached root filesystems are not reused. */
const ROOTFS_FORMAT = 2; // 2: a build's base-image layers are part of it

export interface Rootfs {
  /** The materialised root directory (use read-only, as an overlay lower dir). */
  dir: string;
  /** True when it was already in the store. */
  cached: boolean;
  seconds: number;
  stats?: { dirs: number; files: number; symlinks: number; linked: number; copied: number; xattrsSkipped: number };
}

/**
 * Who owns the materialised files on the host, so that the container, whose
 * ids stand for other host ids (idmap.ts), sees the image's owners.
 */
export interface RootfsOwnership {
  /** Names the mapping in the cached directory's name: a rootfs is only reused with the same one. */
  tag: string;
  /** As root: the host ids for an image owner (shifted into the subordinate range). */
  host?(uid: number, gid: number): { uid: number; gid: number };
  /**
   * Rootless: the current user is the container's root; other owners can only
   * be set inside the user namespace. Such files are copied, not linked, so
   * the store keeps files its user can read.
   */
  inNamespace?(entries: Array<{ file: string; uid: number; gid: number; mode: number; symlink: boolean }>): Promise<void>;
}

export const rootfsDir = (store: Store, manifestDigest: string, tag?: string) =>
  path.join(store.root, "rootfs", `${hexOf(manifestDigest)}-v${ROOTFS_FORMAT}${tag ? `-${tag}` : ""}`);

export async function materialise(store: Store, image: RuntimeImage, view?: ImageView, owners?: RootfsOwnership): Promise<Rootfs> {
  const t0 = performance.now();
  const final = rootfsDir(store, image.manifestDigest, owners?.tag);
  const ready = path.join(final, "ready");
  try {
    await stat(ready);
    return { dir: path.join(final, "root"), cached: true, seconds: (performance.now() - t0) / 1000 };
  } catch { /* build it */ }
  view ??= composeView(image);
  await mkdir(store.tmpDir, { recursive: true });
  await mkdir(path.dirname(final), { recursive: true });
  // 0700 (mkdtemp's mode, kept by the rename): the tree holds the image's setuid files.
  const tmp = await mkdtemp(path.join(store.tmpDir, "rootfs-"));
  const root = path.join(tmp, "root");
  const stats = { dirs: 0, files: 0, symlinks: 0, linked: 0, copied: 0, xattrsSkipped: 0 };
  const deferred: Array<{ file: string; uid: number; gid: number; mode: number; symlink: boolean }> = [];
  const defer = (p: string, e: { uid: number; gid: number; mode: number }, symlink = false) =>
    !!owners?.inNamespace && (e.uid !== 0 || e.gid !== 0) && deferred.push({ file: p, uid: e.uid, gid: e.gid, mode: e.mode, symlink }) > 0;
  const own = async (p: string, uid: number, gid: number) => {
    if (owners?.inNamespace) return; // rootless: the user's own files are the container root's
    const o = owners?.host ? owners.host(uid, gid) : { uid, gid };
    await lchown(p, o.uid, o.gid);
  };
  try {
    await mkdir(root, { mode: 0o755 });
    const at = (p: string) => path.join(root, p);
    // Directories first (parents before children), then leaves in parallel.
    const leaves: string[] = [];
    for (const p of view.sorted) {
      const e = view.entries.get(p)!;
      if (e.type === "dir") {
        await mkdir(at(p), { mode: 0o755 });
        stats.dirs++;
      } else leaves.push(p);
    }
    await mapPool(leaves, 32, async (p) => {
      const e = view!.entries.get(p)!;
      if (e.type === "symlink") {
        await symlink(e.target!, at(p));
        if (!defer(at(p), e, true)) await own(at(p), e.uid, e.gid);
        stats.symlinks++;
        return;
      }
      stats.files++;
      const later = defer(at(p), e);
      let linked = false;
      if (!later) {
        try {
          await link(e.host!, at(p));
          linked = true;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code !== "EXDEV" && code !== "EMLINK" && code !== "EPERM") {
            throw new RuntimeError(`cannot link ${e.host} into the root filesystem of ${image.ref} (${code}); run \`layerfold build\` again if the store lost it`, { cause: err });
          }
        }
      }
      if (linked) stats.linked++;
      else {
        await copyFile(e.host!, at(p), fsc.COPYFILE_FICLONE);
        stats.copied++;
      }
      // Owner and mode live in the inode the store shares: they are the tree's
      // own metadata (same tree key, same entries) shifted by the store's one
      // mapping, so setting them is stable.
      if (!later) await own(at(p), e.uid, e.gid);
      await chmod(at(p), e.mode);
      if (e.xattrs) stats.xattrsSkipped++;
    });
    // Directory owners and modes last: a read-only directory must not stop its children.
    await mapPool(view.sorted.filter((p) => view!.entries.get(p)!.type === "dir"), 32, async (p) => {
      const e = view!.entries.get(p)!;
      if (!defer(at(p), e)) await own(at(p), e.uid, e.gid);
      await chmod(at(p), e.mode);
    });
    if (deferred.length) await owners!.inNamespace!(deferred);
    await writeFile(path.join(tmp, "ready"), `${image.manifestDigest}\n`);
    try {
      await rename(tmp, final);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOTEMPTY" && code !== "EEXIST") throw err;
      // Another run materialised it first; use theirs.
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return { dir: path.join(final, "root"), cached: false, seconds: (performance.now() - t0) / 1000, stats };
}
