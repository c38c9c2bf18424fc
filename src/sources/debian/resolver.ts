// Dependency resolution over Packages indexes, without apt. One version per
// package name (single architecture plus "all"), chosen greedily in a fixed
// order so the same indexes and config always give the same set:
//   - layers in order, roots in the order written, then breadth-first;
//   - for each Depends/Pre-Depends group, an alternative already selected wins,
//     else the first alternative that has a candidate (like apt);
//   - among versions the locked one wins if it fits, else the highest;
//   - among providers of a virtual package: locked, then by Priority, then name.
// Conflicts and Breaks between selected packages are reported as errors.

import { ResolveError } from "../../errors.ts";
import { archRestrictionAllows, formatDependency, parseDependency, parseDependencyList, type Dependency } from "./deb822.ts";
import type { IndexEntry } from "./index-file.ts";
import { compareVersions, satisfiesRelation } from "./version.ts";

export interface Candidate extends IndexEntry {
  /** Index of the repository it came from (earlier repositories win ties). */
  repo: number;
}

export interface LayerRequest {
  packages: string[];
  /** Add every Essential: yes package. */
  essential?: boolean;
  /** Add every package of this priority or a more important one. */
  priority?: "required" | "important" | "standard";
}

export interface ResolveInput {
  arch: string;
  candidates: Candidate[];
  /** One entry per image layer; undefined where the layer has no Debian packages. */
  layers: (LayerRequest | undefined)[];
  /** name -> version to keep when it still fits (from the lock file). */
  prefer?: Map<string, string>;
  /** Layer names for messages. */
  layerNames?: string[];
  /** Names tried first within an OR-group (e.g. usr-is-merged over usrmerge). */
  preferAlternatives?: string[];
}

export interface Resolved {
  pkg: Candidate;
  /** Names of the selected packages this one depends on, sorted. */
  deps: string[];
}

export interface ResolveOutput {
  selected: Map<string, Resolved>;
  /** roots[i] = package names rooted in layer i. */
  roots: string[][];
}

const PRIORITY_RANK: Record<string, number> = { required: 0, important: 1, standard: 2, optional: 3, extra: 4 };
const rank = (p: string | undefined) => PRIORITY_RANK[p ?? "optional"] ?? 5;

interface Provision { pkg: Candidate; version?: string }

/** Parse a root spec: "name", "name=version", "name (>= 1.0)", "name:any". */
export function parseRootSpec(spec: string): Dependency {
  const eq = /^([a-z0-9][a-z0-9+.-]*(?::[a-z0-9-]+)?)=(\S+)$/.exec(spec.trim());
  try {
    return eq ? { ...parseDependency(eq[1]!), relation: "=", version: eq[2]! } : parseDependency(spec);
  } catch {
    throw new ResolveError(`debian package spec ${JSON.stringify(spec)} is not valid; write "name", "name=version" or "name (>= version)"`);
  }
}

export class Universe {
  readonly byName = new Map<string, Candidate[]>();
  readonly providers = new Map<string, Provision[]>();
  private readonly parsed = new Map<Candidate, { deps: Dependency[][]; conflicts: Dependency[][]; breaks: Dependency[][] }>();

  constructor(readonly arch: string, candidates: Candidate[]) {
    for (const c of [...candidates].sort((a, b) => a.repo - b.repo)) {
      if (c.arch !== arch && c.arch !== "all") continue;
      let list = this.byName.get(c.name);
      if (!list) this.byName.set(c.name, (list = []));
      // The same version from a later repository adds nothing.
      if (list.some((o) => o.version === c.version)) continue;
      list.push(c);
    }
    for (const list of this.byName.values()) list.sort((a, b) => compareVersions(b.version, a.version) || a.repo - b.repo);
    for (const list of this.byName.values()) {
      for (const c of list) {
        for (const group of safeList(c.provides, c)) {
          for (const p of group) {
            let arr = this.providers.get(p.name);
            if (!arr) this.providers.set(p.name, (arr = []));
            arr.push({ pkg: c, version: p.relation === "=" ? p.version : undefined });
          }
        }
      }
    }
  }

  fields(c: Candidate) {
    let f = this.parsed.get(c);
    if (!f) {
      f = {
        deps: [...safeList(c.preDepends, c), ...safeList(c.depends, c)],
        conflicts: safeList(c.conflicts, c),
        breaks: safeList(c.breaks, c),
      };
      this.parsed.set(c, f);
    }
    return f;
  }

  /** Does candidate c satisfy dependency d, directly or through Provides? */
  satisfies(c: Candidate, d: Dependency): boolean {
    if (!this.archOk(c, d)) return false;
    if (c.name === d.name) return !d.relation || satisfiesRelation(c.version, d.relation, d.version!);
    for (const group of safeList(c.provides, c)) {
      for (const p of group) {
        if (p.name !== d.name) continue;
        if (!d.relation) return true;
        if (p.relation === "=" && satisfiesRelation(p.version!, d.relation, d.version!)) return true;
      }
    }
    return false;
  }

  private archOk(c: Candidate, d: Dependency): boolean {
    const q = d.archQualifier;
    if (!q) return true;
    if (q === "any") return c.multiArch === "allowed" || c.multiArch === "foreign" || c.arch === "all";
    if (q === "native" || q === this.arch) return c.arch === this.arch || c.arch === "all";
    return false;
  }
}

function safeList(text: string | undefined, c: Candidate) {
  try {
    return parseDependencyList(text);
  } catch (err) {
    throw new ResolveError(`debian package ${c.name} ${c.version}: ${(err as Error).message}; the index is malformed`);
  }
}

export function resolve(input: ResolveInput): ResolveOutput {
  const u = new Universe(input.arch, input.candidates);
  const prefer = input.prefer ?? new Map<string, string>();
  const preferred = new Set(input.preferAlternatives ?? []);
  const selected = new Map<string, Candidate>();
  const edges = new Map<string, Set<string>>();
  const why = new Map<string, { parent?: string; dep: string; layer: number }>();
  const layerName = (i: number) => input.layerNames?.[i] ?? `#${i}`;

  const chainOf = (name: string): string => {
    const parts: string[] = [];
    let cur: string | undefined = name;
    const seen = new Set<string>();
    while (cur && !seen.has(cur)) {
      seen.add(cur);
      const w = why.get(cur);
      if (!w) break;
      parts.unshift(w.parent ? `${w.parent} → ${w.dep}` : `layer ${layerName(w.layer)} → ${w.dep}`);
      cur = w.parent;
    }
    return parts.join("; ") || name;
  };

  const conflictsWithSelected = (c: Candidate): boolean => {
    const f = u.fields(c);
    for (const d of [...f.conflicts, ...f.breaks].flat()) {
      for (const s of selected.values()) if (s.name !== c.name && u.satisfies(s, d)) return true;
    }
    for (const s of selected.values()) {
      const sf = u.fields(s);
      for (const d of [...sf.conflicts, ...sf.breaks].flat()) if (s.name !== c.name && u.satisfies(c, d)) return true;
    }
    return false;
  };

  const bestVersion = (list: Candidate[], ok: (c: Candidate) => boolean): Candidate | undefined => {
    const fits = list.filter(ok);
    if (!fits.length) return undefined;
    const want = prefer.get(fits[0]!.name);
    return (want && fits.find((c) => c.version === want)) || fits[0];
  };

  /** Candidates for one alternative, best first; none when it cannot be met. */
  const candidatesFor = (d: Dependency): Candidate[] => {
    const out: Candidate[] = [];
    const direct = u.byName.get(d.name);
    if (direct && !selected.has(d.name)) {
      const c = bestVersion(direct, (x) => u.satisfies(x, d));
      if (c) out.push(c);
    }
    const provs = (u.providers.get(d.name) ?? []).filter((p) => !selected.has(p.pkg.name) && u.satisfies(p.pkg, d));
    const byProvider = new Map<string, Candidate>();
    for (const p of provs) {
      if (byProvider.has(p.pkg.name)) continue;
      const c = bestVersion(u.byName.get(p.pkg.name)!, (x) => u.satisfies(x, d));
      if (c) byProvider.set(p.pkg.name, c);
    }
    const sorted = [...byProvider.values()].sort(
      (a, b) => Number(prefer.has(b.name)) - Number(prefer.has(a.name)) || rank(a.priority) - rank(b.priority) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
    );
    for (const c of sorted) if (c.name !== d.name) out.push(c);
    return out;
  };

  const explain = (d: Dependency): string => {
    const s = selected.get(d.name);
    if (s) return `${formatDependency(d)}: ${d.name} ${s.version} is already selected and does not fit`;
    const list = u.byName.get(d.name);
    const provs = u.providers.get(d.name) ?? [];
    if (!list && !provs.length) return `${formatDependency(d)}: no package of that name (or providing it) in the configured repositories for ${input.arch}`;
    if (list && d.archQualifier && !list.some((c) => u.satisfies(c, { name: d.name, archQualifier: d.archQualifier }))) {
      return `${formatDependency(d)}: ${d.name} is not Multi-Arch: allowed/foreign for the :${d.archQualifier} qualifier`;
    }
    const avail = list ? list.map((c) => c.version).join(", ") : "none";
    const p = provs.length ? `; provided by ${[...new Set(provs.map((x) => x.pkg.name))].slice(0, 5).join(", ")}` : "";
    return `${formatDependency(d)}: available versions ${avail}${p}`;
  };

  const select = (c: Candidate, parent: string | undefined, dep: string, layer: number): void => {
    selected.set(c.name, c);
    edges.set(c.name, new Set());
    why.set(c.name, { parent, dep, layer });
  };

  const satisfiedBySelected = (d: Dependency): Candidate | undefined => {
    const s = selected.get(d.name);
    if (s && u.satisfies(s, d)) return s;
    for (const p of u.providers.get(d.name) ?? []) {
      const sp = selected.get(p.pkg.name);
      if (sp && u.satisfies(sp, d)) return sp;
    }
    return undefined;
  };

  /** Meet one OR-group; returns the chosen package, newly selected or not. */
  const meet = (group: Dependency[], parent: string | undefined, layer: number): { pkg: Candidate; isNew: boolean } => {
    for (const d of group) {
      const s = satisfiedBySelected(d);
      if (s) return { pkg: s, isNew: false };
    }
    let fallback: Candidate | undefined;
    const ordered = preferred.size ? [...group.filter((d) => preferred.has(d.name)), ...group.filter((d) => !preferred.has(d.name))] : group;
    for (const d of ordered) {
      for (const c of candidatesFor(d)) {
        if (conflictsWithSelected(c)) { fallback ??= c; continue; }
        select(c, parent, group.map(formatDependency).join(" | "), layer);
        return { pkg: c, isNew: true };
      }
    }
    if (fallback) {
      select(fallback, parent, group.map(formatDependency).join(" | "), layer);
      return { pkg: fallback, isNew: true };
    }
    const where = parent ? `${chainOf(parent)} → ${group.map(formatDependency).join(" | ")}` : `layer ${layerName(layer)}`;
    throw new ResolveError(
      `debian: cannot satisfy ${group.map(formatDependency).join(" | ")} (needed by ${where}).\n` +
        group.map((d) => `  - ${explain(d)}`).join("\n") +
        `\nAdd the repository or component that has it, pin another version in the layer, or drop the package that needs it.`,
    );
  };

  const roots: string[][] = input.layers.map(() => []);
  input.layers.forEach((req, layer) => {
    if (!req) return;
    const queue: Candidate[] = [];
    const rootDeps: Dependency[] = req.packages.map(parseRootSpec);
    const extra = new Set<string>();
    if (req.essential || req.priority) {
      const maxRank = req.priority ? rank(req.priority) : -1;
      for (const [name, list] of u.byName) {
        const best = bestVersion(list, () => true)!;
        if ((req.essential && best.essential) || rank(best.priority) <= maxRank) extra.add(name);
      }
    }
    for (const name of [...extra].sort()) if (!rootDeps.some((d) => d.name === name)) rootDeps.push({ name });
    for (const d of rootDeps) {
      const { pkg, isNew } = meet([d], undefined, layer);
      if (!roots[layer]!.includes(pkg.name)) roots[layer]!.push(pkg.name);
      if (isNew) queue.push(pkg);
    }
    while (queue.length) {
      const c = queue.shift()!;
      for (const group of u.fields(c).deps) {
        const alts = group.filter((d) => archRestrictionAllows(d.archRestriction, input.arch));
        if (!alts.length) continue;
        const { pkg, isNew } = meet(alts, c.name, layer);
        if (pkg.name !== c.name) edges.get(c.name)!.add(pkg.name);
        if (isNew) queue.push(pkg);
      }
    }
  });

  // Conflicts and Breaks among what was selected.
  const problems: string[] = [];
  for (const c of selected.values()) {
    const f = u.fields(c);
    for (const [kind, list] of [["Conflicts", f.conflicts], ["Breaks", f.breaks]] as const) {
      for (const d of list.flat()) {
        for (const s of selected.values()) {
          if (s.name === c.name || !u.satisfies(s, d)) continue;
          problems.push(`${c.name} ${c.version} ${kind}: ${formatDependency(d)}, but ${s.name} ${s.version} is selected (via ${chainOf(s.name)})`);
        }
      }
    }
  }
  if (problems.length) {
    throw new ResolveError(`debian: the selected packages conflict:\n${problems.map((p) => `  - ${p}`).join("\n")}\nName one side explicitly in a layer or pin a version that does not conflict.`);
  }

  const out = new Map<string, Resolved>();
  for (const name of [...selected.keys()].sort()) {
    out.set(name, { pkg: selected.get(name)!, deps: [...edges.get(name)!].sort() });
  }
  return { selected: out, roots };
}
