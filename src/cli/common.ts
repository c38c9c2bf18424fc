// Flags and helpers every command shares.

import { existsSync, statfsSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { InvalidArgumentError, type Command } from "commander";
import { PLATFORM_RE } from "../constants.ts";
import { parseReference } from "../registry/reference.ts";
import { DiskFullError, LayerfoldError, UsageError } from "../errors.ts";
import { defaultStoreDir, Store } from "../store/store.ts";
import { registerStoreUser } from "../store/users.ts";
import { createLogger, formatBytes, type Logger } from "../util/log.ts";
import { downloads } from "../util/progress.ts";
import { redact } from "../util/redact.ts";

export interface CommonFlags {
  dir?: string;
  config?: string;
  store?: string;
  json?: boolean;
  debug?: boolean;
  quiet?: boolean;
  /** Commands that read a build: which platform's (withPlatformFlag). */
  platform?: string;
}

/** The flags of commands that read the config and the store; `json: false` for commands whose output is not theirs (run, shell). */
export function withConfigFlags(cmd: Command, opts: { json?: boolean } = {}): Command {
  cmd
    .option("-C, --dir <dir>", "directory holding layerfold.config.ts")
    .option("-c, --config <file>", "config file")
    .option("--store <dir>", "store directory (default $LAYERFOLD_STORE or $XDG_CACHE_HOME/layerfold)");
  if (opts.json !== false) cmd.option("--json", "machine-readable output on stdout");
  return cmd.option("--debug", "show debug output and stack traces").option("-q, --quiet", "only errors");
}

/** The store a command uses, registered as in use so that `layerfold gc` leaves it alone meanwhile. */
export function storeFrom(flags: CommonFlags, opts: { existing?: boolean } = {}): Store {
  const store = new Store(flags.store ?? defaultStoreDir());
  // Commands that only read builds leave a store that is not there alone (a mistyped --store is
  // not created empty); their lookup then fails naming it.
  if (opts.existing && !statSync(store.root, { throwIfNoEntry: false })?.isDirectory()) return store;
  storeInUse = store.root;
  registerStoreUser(store);
  return store;
}

/** The store this run writes to: named when a disk fills up. */
let storeInUse: string | undefined;

/**
 * A commander option parser from a check that throws on a bad value: commander then
 * reports `option '--x <v>' argument 'bad' is invalid. <why>` before any work (exit 2).
 */
export function flagValue<T>(check: (value: string) => T): (value: string) => T {
  return (value) => {
    try {
      return check(value);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };
}

/** --concurrency and other counts: a whole number, 1 or more. */
export const positiveInt = flagValue((v) => {
  if (!/^\d+$/.test(v.trim()) || Number(v) < 1 || !Number.isSafeInteger(Number(v))) throw new Error("give a whole number, 1 or more");
  return Number(v);
});

/** A number of seconds or MiB: 0 or more. */
export const nonNegativeNumber = flagValue((v) => {
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || n < 0) throw new Error("give a number, 0 or more");
  return n;
});

/** One of a fixed set of words. */
export const oneOf = <T extends string>(...words: T[]) =>
  flagValue((v): T => {
    if (!(words as string[]).includes(v)) throw new Error(`use ${words.slice(0, -1).join(", ")} or ${words.at(-1)}`);
    return v as T;
  });

/** A registry reference (an argument or flag), checked as the command line is read. */
export const referenceArg = (what: string) =>
  flagValue((v) => {
    parseReference(v, what);
    return v;
  });

/** A variadic argument of registry references, each checked. */
export const referencesArg = (what: string) => (v: string, prev: string[] = []) => [...prev, referenceArg(what)(v)];

/** --platform os/arch. */
export const platformFlag = flagValue((v) => {
  if (!PLATFORM_RE.test(v)) throw new Error("give os/arch, e.g. linux/amd64 or linux/arm64");
  return v;
});

/** --platform for commands that read a build: required when the store has the tag for several platforms. */
export const withPlatformFlag = (cmd: Command): Command =>
  cmd.option("--platform <os/arch>", "the build for this platform, when the store has the image's tag for several (e.g. linux/arm64)", platformFlag);

/** The command's logger; downloads anywhere in the run report their progress to it. */
export function loggerFrom(flags: CommonFlags): Logger {
  const log = createLogger({ json: flags.json, debug: flags.debug, quiet: flags.quiet });
  downloads.attach(log);
  return log;
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + "\n");
}

/** Parse repeated NAME=DIR flags into a map. */
export function parseOverrides(values: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values ?? []) {
    const i = v.indexOf("=");
    if (i <= 0) throw new UsageError(`--override ${JSON.stringify(v)} must look like NAME=DIR`);
    const dir = v.slice(i + 1);
    if (!existsSync(dir)) throw new UsageError(`--override ${v}: ${path.resolve(dir)} does not exist; give the directory (or file) to use instead of ${v.slice(0, i)}`);
    out[v.slice(0, i)] = dir;
  }
  return out;
}

export const collect = (v: string, prev: string[] = []) => [...prev, v];

/** Print an error the way the CLI promises: message and code, stack only with --debug. */
export function reportError(err: unknown, debug: boolean): number {
  if ((err as NodeJS.ErrnoException)?.code === "ENOSPC") err = diskFull(err as NodeJS.ErrnoException);
  // redact(): a registered secret (registry password, index URL credentials) is never printed.
  if (err instanceof LayerfoldError) {
    process.stderr.write(`error[${err.code}]: ${redact(err.message)}\n`);
    if (debug && err.stack) process.stderr.write(redact(err.stack) + "\n");
    return err.exitCode;
  }
  const e = err as Error;
  process.stderr.write(`error: ${redact(e?.message ?? String(err))}\n`);
  if (debug && e?.stack) process.stderr.write(redact(e.stack) + "\n");
  else process.stderr.write("(run with --debug for details)\n");
  return 1;
}

/**
 * ENOSPC names no path when it comes from a write on an open file, so the places this run
 * writes to (the store, the temp dir, the working directory) are looked at, and the ones whose
 * filesystem is (nearly) full are named.
 */
function diskFull(err: NodeJS.ErrnoException): DiskFullError {
  const store = storeInUse ?? defaultStoreDir();
  const places: Array<[string, string]> = [["the store", store], ["the temp dir", os.tmpdir()], ["the working directory", process.cwd()]];
  const full: string[] = [];
  for (const [label, p] of places) {
    const free = freeBytes(p);
    if (free !== undefined && free < 64 * 1024 * 1024) full.push(`${label} ${p} (${formatBytes(free)} free)`);
  }
  // copyFile names its source as path and what it was writing as dest.
  const where = (err as { dest?: string }).dest ?? err.path;
  return new DiskFullError(
    `no space left on device${where ? ` writing ${where}` : ""}${full.length ? `; nearly full: ${full.join(", ")}` : ""}; free some space (\`layerfold gc\` trims the store), or use a bigger disk: --store DIR for the store, -o for outputs, TMPDIR for temp files; then run again`,
    { cause: err },
  );
}

/** Free bytes on the filesystem holding p (or its nearest existing parent). */
function freeBytes(p: string): number | undefined {
  for (let dir = path.resolve(p); ; dir = path.dirname(dir)) {
    try {
      const st = statfsSync(dir);
      return st.bavail * st.bsize;
    } catch {
      if (dir === path.dirname(dir)) return undefined;
    }
  }
}
