// `layerfold check`, the seed's check-packages: imports, shared libraries,
// Python dependency consistency (pip check) and zero duplication, each reported precisely; any failure fails the check.

import { readFileSync } from "node:fs";
import type { Store } from "../store/store.ts";
import { checkDuplicates, type DupCheckResult } from "./dupcheck.ts";
import type { RuntimeImage } from "./image.ts";
import { checkLibraries, type LibCheckResult } from "./libcheck.ts";
import { auditRequirements, checkImports, type PyCheckResult, type RequirementsAudit } from "./pycheck.ts";
import { namespaceProblem } from "./sandbox.ts";
import { composeView, type ViewEntry } from "./view.ts";
import { isPrivileged, privilegedFile, type PrivilegedFile } from "../util/modes.ts";

export interface CheckOptions {
  imports?: boolean;
  libraries?: boolean;
  duplicates?: boolean;
  skipImports?: string[];
  /** Fail on host-driver and optional-transport libraries too. */
  strictLibraries?: boolean;
  /** Globs of library names that may be missing. */
  allowMissing?: string[];
  importTimeoutSec?: number;
  /** The dependency audit (what pip check checks); default on. */
  requirements?: boolean;
  /** Requirements the config drops on purpose (python.drop): notes, not failures. */
  dropped?: Map<string, string | undefined>;
}

export interface CheckReport {
  image: string;
  manifestDigest: string;
  ok: boolean;
  imports?: PyCheckResult | { skipped: string };
  libraries?: LibCheckResult;
  duplicates?: DupCheckResult;
  /** Paths under a symlink or file of another layer, or directories over one (view.ts): the image does not hold what its layers say. */
  paths: { problems: string[]; count: number };
  /** setuid/setgid files of the image (listed, not a failure: the sources' setuid policy decides). */
  setuid: PrivilegedFile[];
  requirements?: RequirementsAudit;
  warnings: string[];
  seconds: number;
}

/** Small text files of the image (metadata, configs), read from the store. */
export const readText = (e: ViewEntry): string | undefined => {
  if (!e.host || (e.size ?? 0) > 16 << 20) return undefined;
  try {
    return readFileSync(e.host, "utf8");
  } catch {
    return undefined;
  }
};

export async function checkImage(store: Store, image: RuntimeImage, opts: CheckOptions = {}): Promise<CheckReport> {
  const t0 = performance.now();
  const view = composeView(image);
  const setuid = [...view.entries.values()].filter(isPrivileged).map((e) => privilegedFile(e, e.packageId, image.layers[e.layer]?.name ?? "(parent)"));
  const report: CheckReport = { image: image.ref, manifestDigest: image.manifestDigest, ok: view.pathProblemCount === 0, paths: { problems: view.pathProblems, count: view.pathProblemCount }, setuid, warnings: [], seconds: 0 };
  if (opts.duplicates !== false) {
    report.duplicates = await checkDuplicates(store, image);
    if (report.duplicates.duplicates.length) report.ok = false;
  }
  if (opts.libraries !== false) {
    report.libraries = await checkLibraries(store, image, view, { architecture: image.config.architecture, env: image.config.config?.Env, readText, strict: opts.strictLibraries, allowMissing: opts.allowMissing });
    if (report.libraries.problems.length) report.ok = false;
  }
  if (opts.requirements !== false) {
    report.requirements = auditRequirements(view, { readText, dropped: opts.dropped, architecture: image.config.architecture, env: image.config.config?.Env });
    if (report.requirements.failures.length) report.ok = false;
  }
  if (opts.imports !== false) {
    const problem = namespaceProblem();
    if (problem) {
      report.imports = { skipped: `cannot run the image's Python here (${problem})` };
      report.ok = false;
    } else {
      report.imports = await checkImports(store, image, view, { readText, skip: opts.skipImports, timeoutSec: opts.importTimeoutSec });
      if (report.imports.failures.length) report.ok = false;
    }
  }
  report.seconds = (performance.now() - t0) / 1000;
  return report;
}
