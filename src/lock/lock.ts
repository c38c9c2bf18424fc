// layerfold.lock: JSON, packages sorted by id, stable key order, so diffs
// stay small. Entries do not depend on which index served them: a wheel or
// .deb is found again by file name and verified by sha256.

import { readFile } from "node:fs/promises";
import path from "node:path";
import { LockError } from "../errors.ts";
import type { LockedPackage } from "../sources/types.ts";
import { stableJson } from "../util/json.ts";
import { writeFileAtomic } from "../util/fs.ts";

export const LOCK_NAME = "layerfold.lock";

export interface LockFile {
  version: 1;
  image: string;
  /**
   * Per source kind, a digest of what its resolution read from the project (specs,
   * options, requirement files; not pip's configuration, which differs between
   * machines). While it is unchanged, a build takes that kind's packages from the
   * lock without resolving.
   */
  inputs?: Record<string, string>;
  packages: LockedPackage[];
}

/**
 * The lock sits next to its config: layerfold.config.ts -> layerfold.lock,
 * NAME.config.ts -> NAME.lock, so several configs can share a directory.
 */
export function lockPathFor(configFile: string): string {
  const base = path.basename(configFile);
  if (/^layerfold\.config\.[cm]?[jt]s$/.test(base)) return path.join(path.dirname(configFile), LOCK_NAME);
  return path.join(path.dirname(configFile), `${base.replace(/(\.config)?\.[cm]?[jt]s$/, "")}.lock`);
}

export async function readLock(file: string): Promise<LockFile | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    return undefined;
  }
  try {
    const lock = JSON.parse(text) as LockFile;
    if (lock.version !== 1 || !Array.isArray(lock.packages)) throw new Error("unknown lock version");
    return lock;
  } catch (err) {
    throw new LockError(`${file}: not a valid layerfold lock (${(err as Error).message}); delete it and run \`layerfold lock\``);
  }
}

export function makeLock(image: string, packages: LockedPackage[], inputs?: Record<string, string>): LockFile {
  const sorted = [...packages].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map((p) => ({ ...p, deps: [...p.deps].sort() }));
  return { version: 1, image, ...(inputs && Object.keys(inputs).length ? { inputs } : {}), packages: sorted };
}

export const lockText = (lock: LockFile): string => stableJson(lock, 2) + "\n";

export async function writeLock(file: string, lock: LockFile): Promise<void> {
  await writeFileAtomic(file, lockText(lock));
}

export type HashStatus = "ok" | "missing" | "stale";

export interface LockStatusRow {
  id: string;
  version: string;
  file?: string;
  status: HashStatus;
  detail?: string;
}

/**
 * Hash status of each entry: "missing" when a fetched artifact has no
 * sha256, "stale" when the lock disagrees with what the config resolves to
 * now (or names a package the config no longer has), otherwise "ok".
 */
export function lockStatus(lock: LockFile | undefined, current: LockedPackage[]): LockStatusRow[] {
  const locked = new Map((lock?.packages ?? []).map((p) => [p.id, p]));
  const rows: LockStatusRow[] = [];
  const seen = new Set<string>();
  for (const p of current) {
    seen.add(p.id);
    const l = locked.get(p.id);
    const row: LockStatusRow = { id: p.id, version: p.version, file: p.artifact?.file, status: "ok" };
    if (p.artifact && !p.artifact.sha256) row.status = "missing";
    else if (!l) { row.status = "missing"; row.detail = "not in the lock"; }
    else if (l.version !== p.version || l.artifact?.sha256 !== p.artifact?.sha256) {
      row.status = "stale";
      row.detail = `lock has ${l.version}${l.artifact?.sha256 ? ` (${l.artifact.sha256.slice(0, 12)})` : ""}`;
    } else if (l.artifact && !l.artifact.sha256) row.status = "missing";
    rows.push(row);
  }
  for (const l of lock?.packages ?? []) {
    if (!seen.has(l.id)) rows.push({ id: l.id, version: l.version, file: l.artifact?.file, status: "stale", detail: "no longer in the config" });
  }
  return rows.sort((a, b) => (a.id < b.id ? -1 : 1));
}
