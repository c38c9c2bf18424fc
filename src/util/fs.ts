import { mkdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { mkdir, open, rename, rm, writeFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import os from "node:os";
import path from "node:path";

/** The user's cache directory: $XDG_CACHE_HOME (when absolute, as the XDG spec requires), else ~/.cache. */
export const userCacheHome = (env: NodeJS.ProcessEnv = process.env): string =>
  env.XDG_CACHE_HOME && path.isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : path.join(os.homedir(), ".cache");

export const tempName = (target: string): string =>
  path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);

/**
 * Write a file atomically: temp file in the same directory, fsync, rename.
 * `fsync: false` keeps the atomic rename but not the durability on power loss; the
 * store uses it, since it checks what it reads and rebuilds what fails.
 */
export async function writeFileAtomic(target: string, data: string | Uint8Array, opts: { fsync?: boolean } = {}): Promise<void> {
  await mkdir(path.dirname(target), { recursive: true });
  const tmp = tempName(target);
  try {
    await writeFile(tmp, data);
    if (opts.fsync !== false) {
      const fh = await open(tmp, "r");
      try { await fh.sync(); } finally { await fh.close(); }
    }
    await rename(tmp, target);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * writeFileAtomic without fsync, synchronously: for the store's small records, where a
 * build's dozens of thread-pool round trips (mkdir, write, rename each) cost more than the writes.
 */
export function writeSmallFileAtomicSync(target: string, data: string | Uint8Array): void {
  mkdirSync(path.dirname(target), { recursive: true });
  const tmp = tempName(target);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

export async function exists(p: string): Promise<boolean> {
  try {
    await (await import("node:fs/promises")).lstat(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * The first executable file called `name` in PATH's directories, as exec would find it. Entries
 * that are relative, missing or unreadable are skipped: `su` without `-` keeps root's PATH, whose
 * directories under /root another user cannot even stat (EACCES).
 */
export function findOnPath(name: string, pathVar: string = process.env.PATH ?? ""): string | undefined {
  for (const dir of pathVar.split(path.delimiter)) {
    if (!path.isAbsolute(dir)) continue;
    const p = path.join(dir, name);
    try {
      const st = statSync(p, { throwIfNoEntry: false });
      if (st?.isFile() && st.mode & 0o111) return p;
    } catch {
      // EACCES, ENOTDIR, ELOOP: exec would go on to the next entry too.
    }
  }
  return undefined;
}
