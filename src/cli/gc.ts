import { Command } from "commander";
import { collectGarbage } from "../catalog/gc.ts";
import { removeInUserNamespace } from "../runtime/userns.ts";
import { defaultStoreDir, Store } from "../store/store.ts";
import { formatBytes } from "../util/log.ts";
import { flagValue, positiveInt, printJson, type CommonFlags } from "./common.ts";

interface GcFlags extends CommonFlags {
  keep: number;
  olderThan?: number;
  indexes?: boolean;
  artifacts?: boolean;
  dryRun?: boolean;
}

export function gcCommand(): Command {
  return new Command("gc")
    .description("remove from the store what the newest builds of each image do not need (old trees, layer blobs, artifacts, records, temp files of killed runs)")
    .option("--keep <n>", "builds kept per image name:tag (and platform), newest first", positiveInt, 1)
    .option("--indexes", "also drop the index caches (Debian Packages, Python metadata, git mirrors); `layerfold lock` downloads them again")
    .option("--older-than <age>", "also drop builds made longer ago than this (e.g. 30d, 12h, 45m), even the newest of their image", parseAge)
    .option("--artifacts", "also drop the downloaded wheels, .debs and archives of kept packages (their trees stay installed; reinstalling one downloads it again)")
    .option("-n, --dry-run", "say what would be removed, remove nothing")
    .option("--store <dir>", "store directory (default $LAYERFOLD_STORE or $XDG_CACHE_HOME/layerfold)")
    .option("--json", "machine-readable output on stdout")
    .option("--debug", "show stack traces")
    .action(async (flags: GcFlags) => {
      // Not storeFrom: gc holds the store's lock instead of registering as a user, and registering would
      // create a mistyped store's directory.
      const r = await collectGarbage(new Store(flags.store ?? defaultStoreDir()), {
        keep: flags.keep, olderThanMs: flags.olderThan, indexes: flags.indexes, artifacts: flags.artifacts, dryRun: flags.dryRun,
        // Rootless runs leave files of the user's subordinate ids in cached root filesystems.
        ...(process.getuid?.() !== 0 ? { removeTree: removeInUserNamespace } : {}),
      });
      if (flags.json) return printJson(r);
      const out = (s: string) => process.stdout.write(`${s}\n`);
      const verb = r.dryRun ? "would remove" : "removed";
      out(`store ${r.store}: keeping ${r.kept.length} build${r.kept.length === 1 ? "" : "s"}, dropping ${r.dropped.length}`);
      for (const b of r.kept) out(`  keep  ${b.image.padEnd(40)} ${b.manifestDigest.slice(0, 19)}…`);
      for (const b of r.dropped) out(`  drop  ${b.image.padEnd(40)} ${b.manifestDigest.slice(0, 19)}…`);
      for (const p of r.parts) out(`  ${verb} ${String(p.removed).padStart(6)} ${p.kind.padEnd(15)} ${formatBytes(p.bytes).padStart(10)}`);
      out(`${r.dryRun ? "would free" : "freed"} ${formatBytes(r.freedBytes)} in ${r.seconds.toFixed(1)}s; the store ${r.dryRun ? "holds" : "now holds"} ${formatBytes(r.storeBytes)}`);
    });
}

const AGE_UNITS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/** "30d", "12h", "45m", "2w" in milliseconds. */
const parseAge = flagValue((text) => {
  const m = /^(\d+(?:\.\d+)?)([mhdw])$/.exec(text.trim());
  if (!m) throw new Error("give a number and a unit, m, h, d or w (e.g. 30d)");
  return Number(m[1]) * AGE_UNITS[m[2]!]!;
});
