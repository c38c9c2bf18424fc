import { Command } from "commander";
import { loadConfig } from "../config/load.ts";
import { resolveImage } from "../pipeline/resolve.ts";
import { LockError } from "../errors.ts";
import { lockStatus } from "../lock/lock.ts";
import { sourceKinds } from "../sources/registry.ts";
import { collect, loggerFrom, parseOverrides, printJson, storeFrom, withConfigFlags, type CommonFlags } from "./common.ts";

interface LockFlags extends CommonFlags {
  check?: boolean;
  update?: string[];
  override?: string[];
}

export function lockCommand(): Command {
  return withConfigFlags(new Command("lock"))
    .description("resolve every source and write layerfold.lock with all hashes filled in (replaces fill-all-hashes.sh)")
    .option("--check", "print each entry's hash status (ok, missing, stale); exit 9 if any is not ok")
    .option("--update <name>", "re-resolve only this package (repeatable)", collect)
    .option("--override <name=dir>", "use a local directory instead of a source (repeatable)", collect)
    .action(async (flags: LockFlags) => {
      const log = loggerFrom(flags);
      const overrides = parseOverrides(flags.override);
      const cfg = await loadConfig({ dir: flags.dir, file: flags.config }, sourceKinds);
      const res = await resolveImage(cfg, sourceKinds, {
        store: storeFrom(flags),
        log,
        update: flags.update,
        overrides,
        writeLock: !flags.check,
        // --check lists what this machine cannot resolve (an unreachable index or repository) instead of stopping at the first.
        collectUnresolvable: flags.check,
      });
      if (!flags.check) {
        if (flags.json) return printJson({ lockFile: res.lockFile, changed: res.lockChanged, packages: res.lock.packages.length });
        log.info(`${res.lockFile}: ${res.lock.packages.length} packages${res.lockChanged ? " (updated)" : " (unchanged)"}`);
        return;
      }
      const rows = lockStatus(res.previousLock, res.lock.packages);
      const counts = { ok: 0, missing: 0, stale: 0, unresolvable: res.unresolvable.length };
      for (const r of rows) counts[r.status]++;
      if (flags.json) printJson({ lockFile: res.lockFile, counts, entries: rows, unresolvable: res.unresolvable });
      else if (!flags.quiet) {
        for (const r of rows) process.stdout.write(`${r.status.padEnd(8)}${r.id} ${r.version}${r.file ? ` ${r.file}` : ""}${r.detail ? `  (${r.detail})` : ""}\n`);
        for (const u of res.unresolvable) process.stdout.write(`${"unresolvable".padEnd(13)}${u.id}  ${u.why.split("\n")[0]}\n`);
        process.stdout.write(`${counts.ok} ok, ${counts.missing} missing, ${counts.stale} stale${counts.unresolvable ? `, ${counts.unresolvable} cannot be resolved on this machine` : ""}\n`);
      }
      if (counts.missing || counts.stale || counts.unresolvable) {
        // Name what is stale (e.g. a version the archive no longer offers) and the command that takes the new one.
        const stale = rows.filter((r) => r.status === "stale" && r.detail !== "no longer in the config");
        const named = stale.slice(0, 10).map((r) => `${r.id} (${r.detail}; now ${r.version})`).join(", ") + (stale.length > 10 ? `, … ${stale.length - 10} more` : "");
        const update = [...new Set(stale.map((r) => `--update ${r.id.slice(r.id.indexOf(":") + 1)}`))].join(" ");
        const unresolvable = counts.unresolvable ? `; ${counts.unresolvable} cannot be resolved here (listed above): a machine that reaches their indexes and repositories can fill them in` : "";
        throw new LockError(
          `${res.lockFile}: ${counts.missing} missing and ${counts.stale} stale entries` +
            (stale.length ? `. Stale: ${named}. \`layerfold lock ${update}\` takes the new version${stale.length > 1 ? "s" : ""} and changes nothing else` : "") +
            `${unresolvable}; \`layerfold lock\` fills in and refreshes everything`,
        );
      }
    });
}
