// The register of processes using the store, and the lock gc takes on it
// (src/catalog/gc.ts decides what gc removes).
//
// gc must never remove what a running command is about to use, so commands that open
// the store register in `users/` and gc runs only when no other user is alive:
//   user: write users/<pid>, then look for gc.lock (and wait while its owner lives);
//   gc:   create gc.lock exclusively, then look at users/ (and give up if one lives).
// Each side writes before it looks, so at least one of them sees the other.

import { linkSync, lstatSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, type Stats } from "node:fs";
import path from "node:path";
import { StoreBusyError } from "../errors.ts";
import { writeSmallFileAtomicSync } from "../util/fs.ts";
import type { Store } from "./store.ts";

// ---- who uses the store -------------------------------------------------------

/** "pid starttime": the start time (from /proc) tells a live process from a reused pid. */
function processId(pid: number): string | undefined {
  try {
    // Field 22 of /proc/PID/stat, counted after the ")" that ends the command name.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return `${pid} ${stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]}`;
  } catch {
    try {
      process.kill(pid, 0);
      return `${pid} ?`; // alive; no /proc to say since when
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === "EPERM" ? `${pid} ?` : undefined;
    }
  }
}

/** Whether the process a users/ or gc.lock file names is still running. */
function alive(owner: string): boolean {
  const [pidText, start] = owner.trim().split(" ");
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const now = processId(pid);
  return now !== undefined && (start === "?" || now.endsWith(" ?") || now === `${pid} ${start}`);
}

const usersDir = (store: Store) => path.join(store.root, "users");
const gcLockPath = (store: Store) => path.join(store.root, "gc.lock");
/** This process's users/ files, by store root; removed when it exits. */
const registered = new Map<string, string>();

const readOwner = (file: string): string | undefined => {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
};

/** Sleep without returning to the event loop (the CLI opens its store synchronously). */
const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * Register this process as a user of the store, once per store; the entry goes when the
 * process exits (a killed one leaves it, and gc sees its pid is gone). While a gc runs on
 * the store, wait for it, saying so once on stderr.
 */
export function registerStoreUser(store: Store, opts: { waitMs?: number } = {}): void {
  if (registered.has(store.root)) return;
  const me = processId(process.pid) ?? `${process.pid} ?`;
  const file = path.join(usersDir(store), String(process.pid));
  try {
    writeSmallFileAtomicSync(file, me);
  } catch {
    return; // a store we cannot write to cannot be collected by us either; commands report their own errors
  }
  if (!registered.size) process.once("exit", () => { for (const f of registered.values()) rmSync(f, { force: true }); });
  registered.set(store.root, file);
  const deadline = Date.now() + (opts.waitMs ?? 30 * 60_000);
  let said = false;
  for (;;) {
    const owner = readOwner(gcLockPath(store));
    if (owner === undefined || !alive(owner)) return;
    if (Date.now() > deadline) throw new StoreBusyError(`store ${store.root}: layerfold gc (pid ${owner.split(" ")[0]}) is still cleaning it; run again once it ends`);
    if (!said) process.stderr.write(`waiting for layerfold gc (pid ${owner.split(" ")[0]}) to finish with ${store.root}\n`);
    said = true;
    sleepSync(200);
  }
}

/** Take the store for gc: exclusive of other gcs and of every other live user; returns the release. */
export function lockForGc(store: Store): () => void {
  const lock = gcLockPath(store);
  const me = processId(process.pid) ?? `${process.pid} ?`;
  // The lock appears with its owner in it (written aside, then hard-linked into place, which
  // fails if it exists): another gc or a user never reads an empty lock as one left by a dead gc.
  const mine = `${lock}.${process.pid}`;
  writeFileSync(mine, me);
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(mine, lock);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 2) throw err;
        const owner = readOwner(lock);
        if (owner !== undefined && alive(owner)) throw new StoreBusyError(`store ${store.root}: another layerfold gc (pid ${owner.split(" ")[0]}) is running`);
        // Left by a gc that was killed. Moved aside first and checked: if another gc took the
        // lock in between, what was moved is its lock, and it goes back.
        const stale = `${lock}.stale-${process.pid}`;
        try {
          renameSync(lock, stale);
        } catch {
          continue;
        }
        if (readOwner(stale) !== owner) {
          try { linkSync(stale, lock); } catch { /* taken again meanwhile */ }
          rmSync(stale, { force: true });
          throw new StoreBusyError(`store ${store.root}: another layerfold gc is running`);
        }
        rmSync(stale, { force: true });
      }
    }
  } finally {
    rmSync(mine, { force: true });
  }
  const release = () => rmSync(lock, { force: true });
  const busy: string[] = [];
  for (const name of safeList(usersDir(store))) {
    if (name === String(process.pid)) continue;
    const file = path.join(usersDir(store), name);
    // A user's entry being written (temp + rename): that user looks for this lock once it is
    // in place, and waits. Only a killed writer's old temp file goes.
    if (name.startsWith(".") && Date.now() - (statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? 0) < 60_000) continue;
    const owner = readOwner(file);
    if (owner !== undefined && alive(owner)) busy.push(name);
    else rmSync(file, { force: true });
  }
  if (busy.length) {
    release();
    throw new StoreBusyError(`store ${store.root} is in use by layerfold process${busy.length > 1 ? "es" : ""} ${busy.join(", ")}; run gc once ${busy.length > 1 ? "they end" : "it ends"} (nothing was removed)`);
  }
  return release;
}

/** A directory's names; none when it does not exist. */
export function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
