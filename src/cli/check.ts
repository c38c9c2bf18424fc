import { Command } from "commander";
import { checkImage, type CheckReport } from "../runtime/check.ts";
import { printSetuid } from "./inspect.ts";
import { describeGap } from "../runtime/pycheck.ts";
import { pythonDropOf } from "../catalog/records.ts";
import { openImage } from "../runtime/image.ts";
import { CheckFailedError } from "../errors.ts";
import { formatBytes } from "../util/log.ts";
import { collect, positiveInt, printJson, storeFrom, withConfigFlags, type CommonFlags, withPlatformFlag } from "./common.ts";

interface CheckFlags extends CommonFlags {
  layout?: string;
  imports?: boolean;
  libs?: boolean;
  dups?: boolean;
  requirements?: boolean;
  skipImport?: string[];
  importTimeout: number;
  strictLibs?: boolean;
  allowMissing?: string[];
}

export function checkCommand(): Command {
  return withPlatformFlag(withConfigFlags(new Command("check")))
    .description("check the image: import every Python distribution, check their requirements are met (pip check), resolve every ELF file's libraries, audit that no path is in two layers")
    .argument("[image]", "an OCI layout dir or NAME:TAG built here (default: the config's image)")
    .option("--layout <dir>", "check the image in this OCI layout")
    .option("--no-imports", "skip the Python import check")
    .option("--no-libs", "skip the shared-library check")
    .option("--no-dups", "skip the duplication audit")
    .option("--no-requirements", "skip the Python dependency audit (what pip check checks)")
    .option("--skip-import <module>", "do not import this top-level module (repeatable)", collect)
    .option("--allow-missing <glob>", "a library name that may be missing, e.g. 'libfoo.so.*' (repeatable)", collect)
    .option("--strict-libs", "also fail on NVIDIA driver libraries and optional HPC transports (allowed by default)")
    .option("--import-timeout <seconds>", "give up on the imports after this long", positiveInt, 900)
    .action(async (image: string | undefined, flags: CheckFlags) => {
      const store = storeFrom(flags);
      const img = await openImage(store, { dir: flags.dir, config: flags.config, layout: flags.layout, image, platform: flags.platform });
      // The build's own record says what its config dropped on purpose, however the image is named.
      const dropped = await pythonDropOf(store, img.manifestDigest);
      const report = await checkImage(store, img, {
        imports: flags.imports,
        libraries: flags.libs,
        duplicates: flags.dups,
        skipImports: flags.skipImport,
        importTimeoutSec: flags.importTimeout,
        strictLibraries: flags.strictLibs,
        allowMissing: flags.allowMissing,
        requirements: flags.requirements,
        dropped,
      });
      if (!dropped && flags.requirements !== false) report.warnings.push(`the store has no build record of ${img.manifestDigest}, so requirements its config drops on purpose (python.drop) cannot be told apart and count as unmet; check it in the store that built it`);
      if (flags.json) printJson(report);
      else printReport(report);
      if (!report.ok) throw new CheckFailedError(`check of ${report.image} failed: ${failures(report).join(", ")} (${flags.json ? "the JSON report" : "the report above"} lists them)`);
    });
}

/** What failed, counted, for the error line. */
function failures(r: CheckReport): string[] {
  const out: string[] = [];
  if (r.paths.count) out.push(`${r.paths.count} paths under a symlink or file of another layer`);
  if (r.duplicates?.duplicates.length) out.push(`${r.duplicates.duplicates.length} paths in more than one layer`);
  if (r.libraries?.problems.length) out.push(`${r.libraries.problems.length} unresolved libraries`);
  if (r.imports && "skipped" in r.imports) out.push(`imports not checked (${r.imports.skipped})`);
  else if (r.imports?.failures.length) out.push(`${r.imports.failures.length} modules failed to import`);
  return out.length ? out : ["see the report"];
}

function printReport(r: CheckReport): void {
  const w = (s: string) => process.stdout.write(s + "\n");
  w(`check ${r.image} ${r.manifestDigest}`);
  for (const warning of r.warnings) w(`  warning: ${warning}`);
  if (r.paths.count) {
    w(`FAIL  paths: ${r.paths.count} paths lie under a symlink or file of another layer, or hide one (the image does not hold what its layers say)`);
    for (const p of r.paths.problems) w(`      ${p}`);
    if (r.paths.count > r.paths.problems.length) w(`      … and ${r.paths.count - r.paths.problems.length} more`);
  }
  printSetuid(w, r.setuid);
  if (r.duplicates) {
    const d = r.duplicates;
    const total = d.layers.reduce((n, l) => n + l.entries, 0);
    if (d.duplicates.length === 0) w(`ok    duplication: ${total} paths in ${d.layers.length} layers, none in two (${d.seconds.toFixed(1)}s)`);
    else {
      w(`FAIL  duplication: ${d.duplicates.length} paths are in more than one layer (${formatBytes(d.wastedBytes)} shipped twice)`);
      for (const x of d.duplicates.slice(0, 50)) w(`      ${x.path}  in layers ${x.layers.join(", ")}`);
      if (d.duplicates.length > 50) w(`      … and ${d.duplicates.length - 50} more (--json lists all)`);
    }
  }
  if (r.libraries) {
    const l = r.libraries;
    if (l.problems.length === 0) w(`ok    libraries: ${l.elfFiles} ELF files, ${l.checkedNeeds} DT_NEEDED entries resolved (${l.seconds.toFixed(1)}s)`);
    else {
      w(`FAIL  libraries: ${l.problems.length} unresolved in ${new Set(l.problems.map((p) => p.file)).size} of ${l.elfFiles} ELF files`);
      for (const p of l.problems.slice(0, 100)) w(`      ${p.file} (${p.packageId}) needs ${p.kind === "interpreter" ? "the interpreter " : ""}${p.missing}: not found`);
      if (l.problems.length > 100) w(`      … and ${l.problems.length - 100} more (--json lists all)`);
      w(`      searched: DT_RPATH/DT_RUNPATH, then ${l.searchDirs.join(":")}`);
    }
    if (l.allowed.length) {
      const byReason = new Map<string, Set<string>>();
      for (const a of l.allowed) byReason.set(a.reason, (byReason.get(a.reason) ?? new Set()).add(a.missing));
      for (const [reason, libs] of byReason) w(`      allowed: ${[...libs].sort().join(", ")}: ${reason} (--strict-libs fails on these)`);
    }
    if (l.preloaded.length) w(`      note: ${l.preloaded.length} needs of Python extension modules are met by libraries their package loads first (e.g. ${l.preloaded[0]!.library} from ${l.preloaded[0]!.providedBy})`);
    if (l.unparsable.length) w(`      note: ${l.unparsable.length} files look like ELF but did not parse (e.g. ${l.unparsable[0]!.file}: ${l.unparsable[0]!.error})`);
    if (l.foreignArch) w(`      note: ${l.foreignArch} ELF files for another architecture were not checked`);
  }
  if (r.requirements) {
    const q = r.requirements;
    if (q.failures.length === 0) w(`ok    requirements: ${q.requirements} requirements of ${q.distributions} distributions met (${q.seconds.toFixed(1)}s)`);
    else {
      w(`FAIL  requirements: ${q.failures.length} of ${q.requirements} requirements of ${q.distributions} distributions not met (pip would refuse to install on top)`);
      for (const g of q.failures) w(`      ${describeGap(g)}`);
    }
    for (const g of q.notes) w(`      note: ${describeGap(g)}`);
  }
  if (r.imports) {
    const i = r.imports;
    if ("skipped" in i) w(`FAIL  imports: ${i.skipped}`);
    else if (i.failures.length === 0) w(`ok    imports: ${i.imported} modules of ${i.distributions} distributions imported (${i.seconds.toFixed(1)}s)`);
    else {
      w(`FAIL  imports: ${i.failures.length} of ${i.modules} modules failed to import`);
      for (const f of i.failures) {
        w(`      ${f.module} (${f.distributions.join(", ")}): ${f.error}`);
      }
    }
    if (!("skipped" in i)) for (const n of i.notes) w(`      note: ${n}`);
  }
  w(`${r.ok ? "passed" : "FAILED"} in ${r.seconds.toFixed(1)}s`);
}
