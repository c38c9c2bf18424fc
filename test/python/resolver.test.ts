import { test } from "node:test";
import assert from "node:assert/strict";
import { Resolver, type Candidate, type Provider, type ResolveInput } from "../../src/sources/python/resolver.ts";
import { parseRequirement, targetMarkerEnv } from "../../src/sources/python/pep508.ts";
import { ResolveError } from "../../src/errors.ts";

type Universe = Record<string, Record<string, string[]>>; // key -> version -> Requires-Dist

function provider(u: Universe, calls: { n: number } = { n: 0 }): Provider<Candidate> {
  return {
    async candidates(key) {
      return Object.keys(u[key] ?? {}).sort((a, b) => (a < b ? 1 : -1)).map((version) => ({ key, version }));
    },
    async dependencies(c) { calls.n++; return u[c.key]![c.version]!; },
    async whyNone(key) { return `no configured index offers "${key}"`; },
  };
}

const env = targetMarkerEnv({ version: "3.11", arch: "x86_64" });
const roots = (...specs: string[]) => specs.map((s, i) => ({ req: parseRequirement(s), origin: `layer "l${i}"` }));
const run = (u: Universe, input: Partial<ResolveInput> & { roots: ResolveInput["roots"] }) =>
  new Resolver(provider(u), { env, ...input }).resolve();
const versions = (m: Map<string, { candidate: Candidate }>) => Object.fromEntries([...m].map(([k, v]) => [k, v.candidate.version]).sort());

test("picks the newest versions that fit together, with markers and extras", async () => {
  const u: Universe = {
    app: { "1.0": ["lib>=1.0", "winonly; sys_platform == 'win32'", "extra-dep; extra == 'fast'", "old-py; python_version < '3.8'"] },
    lib: { "1.0": [], "1.1": [], "2.0b1": [] },
    "extra-dep": { "3.0": ["lib<1.1"] },
    winonly: { "1.0": [] },
  };
  assert.deepEqual(versions(await run(u, { roots: roots("app") })), { app: "1.0", lib: "1.1" });
  assert.deepEqual(versions(await run(u, { roots: roots("app[fast]") })), { app: "1.0", "extra-dep": "3.0", lib: "1.0" });
  // A pre-release is chosen only when asked for.
  assert.deepEqual(versions(await run(u, { roots: roots("lib>=2.0b1") })), { lib: "2.0b1" });
  assert.deepEqual(versions(await run(u, { roots: roots("lib"), pre: true })), { lib: "2.0b1" });
});

test("an extra requested later by another package adds that extra's dependencies", async () => {
  const u: Universe = {
    a: { "1": ["b"] },
    c: { "1": ["b[x]"] },
    b: { "1": ["y; extra == 'x'"] },
    y: { "1": [] },
  };
  const r = await run(u, { roots: roots("a", "c") });
  assert.deepEqual(versions(r), { a: "1", b: "1", c: "1", y: "1" });
  assert.deepEqual(r.get("b")!.extras, ["x"]);
  assert.deepEqual(r.get("b")!.deps, ["y"]);
});

test("backtracks to an older version when the newest conflicts", async () => {
  const u: Universe = {
    top: { "1": ["a", "b"] },
    a: { "2": ["c==2"], "1": ["c==1"] },
    b: { "1": ["c<2"] },
    c: { "1": [], "2": [] },
  };
  assert.deepEqual(versions(await run(u, { roots: roots("top") })), { a: "1", b: "1", c: "1", top: "1" });
});

test("backjumping keeps a hopeless search short", async () => {
  // 30 independent projects with 10 versions each, then a conflict none of them causes.
  const ten = (deps: string[]) => Object.fromEntries(Array.from({ length: 10 }, (_, v) => [`${v}.0`, deps]));
  const u: Universe = { x: ten(["z>=2"]), y: ten(["z<2"]), z: { "1": [], "2": [] } };
  const rootSpecs: string[] = [];
  for (let i = 0; i < 30; i++) {
    u[`p${i}`] = ten([]);
    rootSpecs.push(`p${i}`);
  }
  const calls = { n: 0 };
  await assert.rejects(new Resolver(provider(u, calls), { env, roots: roots(...rootSpecs, "x", "y"), maxSteps: 2000 }).resolve(), ResolveError);
  // Chronological backtracking would try 10^30 combinations of the p's.
  assert.ok(calls.n < 300, `explored ${calls.n} candidates`);
});

test("explains a conflict by its requirement chains", async () => {
  const u: Universe = {
    transformers: { "4.57.0": ["tokenizers>=0.22,<0.23"] },
    tokenizers: { "0.21.0": [], "0.22.1": [] },
  };
  await assert.rejects(run(u, { roots: [{ req: parseRequirement("transformers"), origin: 'layer "ml"' }, { req: parseRequirement("tokenizers<0.22"), origin: 'layer "pins"' }] }), (e: Error) => {
    assert.ok(e instanceof ResolveError);
    assert.match(e.message, /no version of "tokenizers" satisfies every requirement/);
    assert.match(e.message, /tokenizers>=0.22,<0.23\s+<- layer "ml" -> transformers 4.57.0/);
    assert.match(e.message, /tokenizers<0.22\s+<- layer "pins"/);
    assert.match(e.message, /versions offered for the target: 0.22.1, 0.21.0/);
    return true;
  });
});

test("says which package no index offers, and who wanted it", async () => {
  const u: Universe = { torch: { "2.14.1": ["nvidia-foo-cu13==13.0"] } };
  await assert.rejects(run(u, { roots: roots("torch==2.14.1") }), (e: Error) => {
    assert.match(e.message, /"nvidia-foo-cu13" cannot be installed: no configured index offers "nvidia-foo-cu13"/);
    assert.match(e.message, /<- layer "l0" -> torch 2.14.1/);
    return true;
  });
  // drop removes the dependency; override changes its specifier.
  assert.deepEqual(versions(await run(u, { roots: roots("torch==2.14.1"), drop: ["nvidia-foo-cu13"] })), { torch: "2.14.1" });
  const u2: Universe = { a: { "1": ["b<1"] }, b: { "1.5": [] } };
  assert.deepEqual(versions(await run(u2, { roots: roots("a"), overrides: { b: ">=1" } })), { a: "1", b: "1.5" });
});

test("constraints limit versions; the lock's versions are preferred", async () => {
  const u: Universe = { torch: { "2.15.0": [], "2.14.1": [], "2.13.0": [] } };
  assert.deepEqual(versions(await run(u, { roots: roots("torch"), constraints: [parseRequirement("torch<=2.14.1")] })), { torch: "2.14.1" });
  assert.deepEqual(versions(await run(u, { roots: roots("torch"), preferred: new Map([["torch", "2.13.0"]]) })), { torch: "2.13.0" });
});
