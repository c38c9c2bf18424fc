import assert from "node:assert/strict";
import { test } from "node:test";
import { chainOf, fold } from "../../src/fold/fold.ts";

const graph: Record<string, string[]> = {
  a: ["b", "c"],
  b: ["c"],
  c: [],
  d: ["c", "e"],
  e: [],
  f: ["a"],
  g: [],
};
const deps = (id: string) => graph[id];

test("layer i = closure(roots i) minus earlier layers", () => {
  const r = fold([{ name: "one", roots: ["b"] }, { name: "two", roots: ["a", "d"] }, { name: "three", roots: ["g"] }], deps);
  assert.deepEqual(r.layers.map((l) => [l.name, l.packages]), [
    ["one", ["b", "c"]],
    ["two", ["a", "d", "e"]],
    ["three", ["g"]],
  ]);
  const all = r.layers.flatMap((l) => l.packages);
  assert.equal(new Set(all).size, all.length, "every package in exactly one layer");
});

test("a package named in two layers lands in the first", () => {
  const r = fold([{ name: "one", roots: ["c", "e"] }, { name: "two", roots: ["e", "d"] }], deps);
  assert.deepEqual(r.layerOf.get("e"), "one");
  assert.deepEqual(r.layers[1]!.packages, ["d"]);
});

test("empty layers are dropped and reported", () => {
  const r = fold([{ name: "one", roots: ["a"] }, { name: "two", roots: ["b", "c"] }, { name: "three", roots: ["f"] }], deps);
  assert.deepEqual(r.dropped, ["two"]);
  assert.deepEqual(r.layers.map((l) => l.name), ["one", "three"]);
});

test("why: the chain from a root", () => {
  const r = fold([{ name: "one", roots: ["f"] }], deps);
  assert.deepEqual(chainOf(r, "c"), ["f", "a", "c"]);
  assert.deepEqual(chainOf(r, "b"), ["f", "a", "b"]);
  assert.equal(chainOf(r, "f")[0], "f");
});

test("a dependency no source resolved is a clear error", () => {
  assert.throws(() => fold([{ name: "one", roots: ["x"] }], (id) => (id === "x" ? ["missing"] : undefined)), /x depends on missing, which no source resolved/);
});

test("12 layers over 50k packages: every package folded exactly once", () => {
  const n = 50_000;
  const g = new Map<string, string[]>();
  for (let i = 0; i < n; i++) g.set(`p${i}`, i > 0 ? [`p${i - 1}`, `p${Math.floor(i / 2)}`] : []);
  const layers = Array.from({ length: 12 }, (_, k) => ({ name: `l${k}`, roots: [`p${Math.floor(((k + 1) * n) / 12) - 1}`] }));
  const r = fold(layers, (id) => g.get(id));
  assert.equal(r.layers.reduce((s, l) => s + l.packages.length, 0), n);
  assert.equal(new Set(r.layers.flatMap((l) => l.packages)).size, n);
});
