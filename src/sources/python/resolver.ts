// A backtracking resolver with conflict-directed backjumping. Each decision
// pins one project; when every version of a project fails, the failure names
// the decisions that caused it, and the search jumps back to the latest of
// those instead of trying every combination in between. The deepest failure
// is kept to explain an unsatisfiable set by its requirement chains.

import * as pep440 from "@renovatebot/pep440";
import { ResolveError } from "../../errors.ts";
import { evaluateMarker, parseRequirement, type MarkerEnv, type Requirement } from "./pep508.ts";

export interface Candidate {
  key: string;
  version: string;
  yanked?: boolean;
  requiresPython?: string;
}

export interface Provider<C extends Candidate> {
  /** Installable versions (best artifact per version), newest first. */
  candidates(key: string): Promise<C[]>;
  /** Requires-Dist lines of a candidate. */
  dependencies(c: C): Promise<string[]>;
  /** Why a project has no installable candidate at all (not offered, or no artifact fits the target). */
  whyNone(key: string): Promise<string>;
}

export interface RootRequirement {
  req: Requirement;
  /** Where it came from, e.g. 'layer "torch"'. */
  origin: string;
}

export interface ResolveInput {
  roots: RootRequirement[];
  /** Constraints (pip -c): limit versions of a project if it is needed at all. */
  constraints?: Requirement[];
  /** Replace every dependency's specifier on these projects (keys normalised). */
  overrides?: Record<string, string>;
  /** Ignore dependencies on these projects (roots may still name them). */
  drop?: string[];
  env: MarkerEnv;
  /** Allow pre-releases everywhere (pip --pre). */
  pre?: boolean;
  /** Versions to try first (from the lock). */
  preferred?: Map<string, string>;
  /** Give up after this many pin attempts. */
  maxSteps?: number;
}

export interface Resolved<C extends Candidate> {
  candidate: C;
  extras: string[];
  /** Keys of the projects it depends on in this resolution. */
  deps: string[];
  /** Shortest chain that pulled it in. */
  chain: string[];
}

interface Edge {
  req: Requirement;
  parent?: string;
  chain: string[];
}

interface Pin<C> {
  cand: C;
  extras: Set<string>;
  deps: Set<string>;
}

interface State<C> {
  pins: Map<string, Pin<C>>;
  edges: Map<string, Edge[]>;
}

type Outcome<C> = { ok: State<C> } | { conflict: Set<string> };

const preCache = new Map<string, boolean>();
const isPre = (v: string): boolean => {
  let hit = preCache.get(v);
  if (hit === undefined) preCache.set(v, (hit = Boolean(pep440.explain(v)?.is_prerelease)));
  return hit;
};
const specMentionsPre = (spec: string): boolean => spec.split(",").some((s) => isPre(s.replace(/^[<>=!~]+/, "").trim()));

// pep440.satisfies parses the specifier on every call; the resolver asks the same questions many times.
const satisfiesCache = new Map<string, boolean>();
export function satisfies(version: string, spec: string): boolean {
  if (!spec) return true;
  if (spec.startsWith("===")) return version === spec.slice(3);
  const key = `${version}\0${spec}`;
  let hit = satisfiesCache.get(key);
  if (hit === undefined) {
    try {
      hit = pep440.satisfies(version, spec, { prereleases: true });
    } catch {
      hit = false;
    }
    if (satisfiesCache.size > 200_000) satisfiesCache.clear();
    satisfiesCache.set(key, hit);
  }
  return hit;
}

export class Resolver<C extends Candidate> {
  private steps = 0;
  private best?: { depth: number; message: string };
  private readonly depCache = new Map<C, Promise<Requirement[]>>();
  private readonly drop: Set<string>;
  private readonly fullVersion: string;

  constructor(private readonly provider: Provider<C>, private readonly input: ResolveInput) {
    this.drop = new Set(input.drop ?? []);
    this.fullVersion = input.env.python_full_version ?? "3.0.0";
  }

  async resolve(): Promise<Map<string, Resolved<C>>> {
    let state: State<C> = { pins: new Map(), edges: new Map() };
    for (const r of this.input.roots) state = addEdge(state, r.req.key, { req: r.req, chain: [r.origin] });
    const out = await this.solve(state);
    if ("conflict" in out) {
      throw new ResolveError(`cannot resolve the python requirements:\n${this.best?.message ?? "no solution exists"}`);
    }
    const result = new Map<string, Resolved<C>>();
    for (const [key, pin] of out.ok.pins) {
      const edges = out.ok.edges.get(key) ?? [];
      const chain = edges.map((e) => e.chain).sort((a, b) => a.length - b.length)[0] ?? [];
      result.set(key, { candidate: pin.cand, extras: [...pin.extras].sort(), deps: [...pin.deps].sort(), chain });
    }
    return result;
  }

  private async deps(c: C): Promise<Requirement[]> {
    let p = this.depCache.get(c);
    if (!p) {
      p = this.provider.dependencies(c).then((lines) =>
        lines.map((l) => {
          try {
            return parseRequirement(l, `metadata of ${c.key} ${c.version}`);
          } catch (err) {
            throw new ResolveError(`${c.key} ${c.version} has an unreadable dependency ${JSON.stringify(l)}: ${(err as Error).message}`);
          }
        }),
      );
      this.depCache.set(c, p);
    }
    return p;
  }

  /** Requirements of a candidate that apply to the target with the given extras (and only those extras' when `onlyExtras`). */
  private async activeDeps(c: C, extras: Set<string>, onlyExtras?: Set<string>): Promise<Requirement[]> {
    const out: Requirement[] = [];
    for (const d of await this.deps(c)) {
      if (this.drop.has(d.key)) continue;
      const base = !d.marker || evaluateMarker(d.marker, this.input.env, []);
      const withExtras = d.marker ? evaluateMarker(d.marker, this.input.env, [...extras]) : true;
      if (onlyExtras) {
        if (!base && d.marker && evaluateMarker(d.marker, this.input.env, [...onlyExtras])) out.push(d);
      } else if (withExtras) out.push(d);
    }
    return out.map((d) => {
      const o = this.input.overrides?.[d.key];
      return o === undefined ? d : { ...d, specifier: o, text: `${d.text} (overridden to ${o || "any version"})` };
    });
  }

  private async matching(key: string, state: State<C>): Promise<C[]> {
    const edges = state.edges.get(key) ?? [];
    const specs = edges.map((e) => e.req.specifier);
    const cons = (this.input.constraints ?? []).filter((c) => c.key === key && (!c.marker || evaluateMarker(c.marker, this.input.env))).map((c) => c.specifier);
    const all = [...specs, ...cons].filter(Boolean);
    const exactPins = new Set(all.filter((s) => /^===?[^,]+$/.test(s)).map((s) => s.replace(/^=+/, "")));
    const allowPre = this.input.pre || all.some(specMentionsPre);
    const cands = (await this.provider.candidates(key)).filter(
      (c) =>
        all.every((s) => satisfies(c.version, s)) &&
        (!c.yanked || exactPins.has(c.version)) &&
        this.fitsPython(c),
    );
    let pool = allowPre ? cands : cands.filter((c) => !isPre(c.version));
    if (pool.length === 0) pool = cands; // PEP 440: pre-releases are fine when nothing else satisfies
    const pref = this.input.preferred?.get(key);
    if (pref) {
      const i = pool.findIndex((c) => c.version === pref);
      if (i > 0) pool = [pool[i]!, ...pool.slice(0, i), ...pool.slice(i + 1)];
    }
    return pool;
  }

  private fitsPython(c: C): boolean {
    return !c.requiresPython || satisfies(this.fullVersion, c.requiresPython.replace(/\s+/g, "").replace(/\.\*(?=,|$)/g, ""));
  }

  private async explainNone(key: string, state: State<C>): Promise<string> {
    const edges = state.edges.get(key) ?? [];
    const lines = edges.map((e) => `  ${e.req.text}   <- ${e.chain.join(" -> ")}`);
    for (const c of this.input.constraints ?? []) if (c.key === key) lines.push(`  ${c.text}   <- constraint`);
    const all = await this.provider.candidates(key);
    const offered = all.filter((c) => this.fitsPython(c));
    if (all.length > 0 && offered.length === 0) return `every version of "${key}" requires another Python than ${this.fullVersion} (e.g. ${all[0]!.version} needs ${all[0]!.requiresPython})\n  required by:\n${lines.join("\n")}`;
    if (offered.length === 0) return `"${key}" cannot be installed: ${await this.provider.whyNone(key)}\n  required by:\n${lines.join("\n")}`;
    const versions = offered.slice(0, 12).map((c) => c.version).join(", ") + (offered.length > 12 ? ", ..." : "");
    return `no version of "${key}" satisfies every requirement on it:\n${lines.join("\n")}\n  versions offered for the target: ${versions}`;
  }

  private async chooseKey(state: State<C>): Promise<{ key: string; cands: C[] } | undefined> {
    let best: { key: string; cands: C[]; root: boolean } | undefined;
    for (const key of [...state.edges.keys()].sort()) {
      if (state.pins.has(key)) continue;
      const cands = await this.matching(key, state);
      const root = (state.edges.get(key) ?? []).some((e) => e.parent === undefined);
      if (cands.length === 0) return { key, cands };
      // Roots first, then the most constrained project: conflicts surface early.
      if (!best || (root && !best.root) || (root === best.root && cands.length < best.cands.length)) best = { key, cands, root };
    }
    return best;
  }

  private parentsOf(key: string, state: State<C>): Set<string> {
    const s = new Set<string>();
    for (const e of state.edges.get(key) ?? []) if (e.parent) s.add(e.parent);
    return s;
  }

  private async solve(state: State<C>): Promise<Outcome<C>> {
    const next = await this.chooseKey(state);
    if (!next) return { ok: state };
    const { key, cands } = next;
    if (cands.length === 0) {
      const depth = state.pins.size;
      if (!this.best || depth >= this.best.depth) this.best = { depth, message: await this.explainNone(key, state) };
      return { conflict: this.parentsOf(key, state) };
    }
    const acc = new Set<string>();
    for (const c of cands) {
      if (++this.steps > (this.input.maxSteps ?? 20000)) {
        throw new ResolveError(`gave up after ${this.input.maxSteps ?? 20000} attempts; the closest failure was:\n${this.best?.message ?? "(none)"}\nPin some versions in the config to narrow the search.`);
      }
      const pinned = await this.pin(state, key, c);
      if ("conflict" in pinned) { for (const k of pinned.conflict) acc.add(k); continue; }
      const res = await this.solve(pinned.ok);
      if ("ok" in res) return res;
      if (!res.conflict.has(key)) return res; // this decision is not to blame: jump back past it
      for (const k of res.conflict) acc.add(k);
    }
    acc.delete(key);
    for (const p of this.parentsOf(key, state)) acc.add(p);
    return { conflict: acc };
  }

  /** Pin key to c and add its dependencies; a dependency that an existing pin violates is a conflict. */
  private async pin(state: State<C>, key: string, c: C): Promise<Outcome<C>> {
    const edges = state.edges.get(key) ?? [];
    const extras = new Set(edges.flatMap((e) => e.req.extras));
    const chain = [...(edges.map((e) => e.chain).sort((a, b) => a.length - b.length)[0] ?? []), `${key} ${c.version}`];
    const pins = new Map(state.pins);
    pins.set(key, { cand: c, extras, deps: new Set() });
    return this.addDeps({ pins, edges: state.edges }, key, await this.activeDeps(c, extras), chain);
  }

  private async addDeps(state: State<C>, parent: string, deps: Requirement[], chain: string[]): Promise<Outcome<C>> {
    let s = state;
    const parentPin = s.pins.get(parent)!;
    const pdeps = new Set(parentPin.deps);
    for (const d of deps) {
      pdeps.add(d.key);
      s = addEdge(s, d.key, { req: d, parent, chain });
      const pin = s.pins.get(d.key);
      if (!pin) continue;
      if (!satisfies(pin.cand.version, d.specifier)) {
        const depth = s.pins.size;
        if (!this.best || depth > this.best.depth) this.best = { depth, message: await this.explainNone(d.key, { ...s, pins: new Map([...s.pins].filter(([k]) => k !== d.key)) }) };
        return { conflict: new Set([parent, d.key]) };
      }
      const newExtras = new Set(d.extras.filter((x) => !pin.extras.has(x)));
      if (newExtras.size) {
        const pins = new Map(s.pins);
        const grown = { ...pin, extras: new Set([...pin.extras, ...newExtras]) };
        pins.set(d.key, grown);
        s = { ...s, pins };
        const more = await this.activeDeps(pin.cand, grown.extras, newExtras);
        const r = await this.addDeps(s, d.key, more, [...chain, `${d.key}[${[...newExtras].join(",")}] ${pin.cand.version}`]);
        if ("conflict" in r) { r.conflict.add(parent); return r; }
        s = r.ok;
      }
    }
    const pins = new Map(s.pins);
    const cur = pins.get(parent)!;
    pins.set(parent, { ...cur, deps: new Set([...cur.deps, ...pdeps]) });
    return { ok: { ...s, pins } };
  }
}

function addEdge<C>(s: State<C>, key: string, e: Edge): State<C> {
  const edges = new Map(s.edges);
  edges.set(key, [...(edges.get(key) ?? []), e]);
  return { ...s, edges };
}
