// Flags and helpers every command shares.

import type { Command } from "commander";
import { LayerfoldError } from "../errors.ts";
import { defaultStoreDir, Store } from "../store/store.ts";
import { registerStoreUser } from "../store/gc.ts";
import { createLogger, type Logger } from "../util/log.ts";
import { redact } from "../util/redact.ts";

export interface CommonFlags {
  dir?: string;
  config?: string;
  store?: string;
  json?: boolean;
  debug?: boolean;
  quiet?: boolean;
}

export function withConfigFlags(cmd: Command): Command {
  return cmd
    .option("-C, --dir <dir>", "directory holding layerfold.config.ts")
    .option("-c, --config <file>", "config file")
    .option("--store <dir>", "store directory (default $LAYERFOLD_STORE or $XDG_CACHE_HOME/layerfold)")
    .option("--json", "machine-readable output on stdout")
    .option("--debug", "show debug output and stack traces")
    .option("-q, --quiet", "only errors");
}

/** The store a command uses, registered as in use so that `layerfold gc` leaves it alone meanwhile. */
export function storeFrom(flags: CommonFlags): Store {
  const store = new Store(flags.store ?? defaultStoreDir());
  registerStoreUser(store);
  return store;
}

export const loggerFrom = (flags: CommonFlags): Logger => createLogger({ json: flags.json, debug: flags.debug, quiet: flags.quiet });

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + "\n");
}

/** Parse repeated NAME=DIR flags into a map. */
export function parseOverrides(values: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values ?? []) {
    const i = v.indexOf("=");
    if (i <= 0) throw new LayerfoldError("E_USAGE", `--override ${JSON.stringify(v)} must look like NAME=DIR`, { exitCode: 2 });
    out[v.slice(0, i)] = v.slice(i + 1);
  }
  return out;
}

export const collect = (v: string, prev: string[] = []) => [...prev, v];

/** Print an error the way the CLI promises: message and code, stack only with --debug. */
export function reportError(err: unknown, debug: boolean): number {
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
