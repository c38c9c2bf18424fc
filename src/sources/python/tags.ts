// Wheel file names and compatibility tags (PEP 425, PEP 600), computed for the
// image's target interpreter and glibc, in the priority order pip uses.

import { normalizeName } from "./pep508.ts";

export interface Target {
  /** "3.11" */
  version: string;
  /** "cp" or "pp" */
  implementation: string;
  /** "cp311" */
  abi: string;
  /** "2.36" */
  glibc: string;
  /** "x86_64" | "aarch64" */
  arch: string;
}

export interface WheelName {
  file: string;
  /** Normalised project name. */
  key: string;
  version: string;
  build?: string;
  /** Every tag triple the file name expands to, "py-abi-plat". */
  tags: string[];
}

/** Parse "name-ver(-build)?-py-abi-plat.whl"; undefined when not a wheel name. */
export function parseWheelName(file: string): WheelName | undefined {
  if (!file.endsWith(".whl")) return undefined;
  const parts = file.slice(0, -4).split("-");
  if (parts.length !== 5 && parts.length !== 6) return undefined;
  const [name, version] = parts as [string, string];
  const build = parts.length === 6 ? parts[2] : undefined;
  const [py, abi, plat] = parts.slice(-3) as [string, string, string];
  const tags: string[] = [];
  for (const a of py.split(".")) for (const b of abi.split(".")) for (const c of plat.split(".")) tags.push(`${a}-${b}-${c}`);
  return { file, key: normalizeName(name), version, build, tags };
}

/** Source distribution file name: "name-version.tar.gz" / ".zip". */
export function parseSdistName(file: string, key: string): { version: string } | undefined {
  const m = /^(.*)\.(tar\.gz|zip|tar\.bz2|tgz)$/.exec(file);
  if (!m) return undefined;
  const stem = m[1]!;
  // The name part may contain "-", so match by the normalised project name.
  for (let i = stem.indexOf("-"); i > 0; i = stem.indexOf("-", i + 1)) {
    if (normalizeName(stem.slice(0, i)) === key) return { version: stem.slice(i + 1) };
  }
  return undefined;
}

const LEGACY: Record<string, [number, number]> = { manylinux1: [2, 5], manylinux2010: [2, 12], manylinux2014: [2, 17] };

/** Platform tags from best to worst: manylinux_2_N down to 2_5 with legacy aliases, then linux_ARCH. */
export function platformTags(t: Target): string[] {
  const [maj, min] = t.glibc.split(".").map(Number) as [number, number];
  const out: string[] = [];
  for (let m = min; m >= (maj === 2 ? 5 : 0); m--) {
    out.push(`manylinux_${maj}_${m}_${t.arch}`);
    for (const [legacy, [lm, ln]] of Object.entries(LEGACY)) {
      if (lm === maj && ln === m && (legacy === "manylinux2014" || t.arch === "x86_64" || t.arch === "i686")) out.push(`${legacy}_${t.arch}`);
    }
  }
  out.push(`linux_${t.arch}`);
  return out;
}

/** All supported "py-abi-plat" tags with their rank (0 = best), like packaging.tags.sys_tags. */
export function supportedTags(t: Target): Map<string, number> {
  const plats = platformTags(t);
  const [maj, min] = t.version.split(".").map(Number) as [number, number];
  const impl = t.implementation;
  const nodot = `${maj}${min}`;
  const ordered: string[] = [];
  const interp = `${impl}${nodot}`;
  for (const p of plats) ordered.push(`${interp}-${t.abi}-${p}`);
  if (impl === "cp") {
    for (const p of plats) ordered.push(`${interp}-abi3-${p}`);
    for (const p of plats) ordered.push(`${interp}-none-${p}`);
    for (let m = min - 1; m >= 2; m--) for (const p of plats) ordered.push(`cp${maj}${m}-abi3-${p}`);
  } else {
    for (const p of plats) ordered.push(`${interp}-none-${p}`);
  }
  const pyVersions = [`py${nodot}`, `py${maj}`];
  for (let m = min - 1; m >= 0; m--) pyVersions.push(`py${maj}${m}`);
  for (const py of pyVersions) for (const p of plats) ordered.push(`${py}-none-${p}`);
  ordered.push(`${interp}-none-any`);
  for (const py of pyVersions) ordered.push(`${py}-none-any`);
  const rank = new Map<string, number>();
  ordered.forEach((tag, i) => { if (!rank.has(tag)) rank.set(tag, i); });
  return rank;
}

/** Best (lowest) rank of a wheel for the target, or undefined when it does not fit. */
export function wheelRank(w: WheelName, supported: Map<string, number>): number | undefined {
  let best: number | undefined;
  for (const tag of w.tags) {
    const r = supported.get(tag);
    if (r !== undefined && (best === undefined || r < best)) best = r;
  }
  return best;
}
