// The direction of dependencies: the pipeline sits on top, so nothing below it
// (store, runtime, report, registry, layer, fold, oci) may reach it, even through
// another module; the store reaches no stage above it; no library module imports
// the CLI.

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { repoRoot } from "../helpers/cli.ts";

const src = path.join(repoRoot, "src");
const rel = (f: string) => path.relative(src, f).split(path.sep).join("/");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith(".ts") ? [p] : [];
  });
}

/** Each module's imports of other modules under src/ (static, re-exports and dynamic). */
const graph = new Map<string, string[]>(
  sources(src).map((f) => {
    const text = readFileSync(f, "utf8");
    const specs = [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^import\s+)["']([^"']+)["']/gm)].map((m) => m[1]!);
    return [rel(f), specs.filter((s) => s.startsWith(".")).map((s) => rel(path.resolve(path.dirname(f), s)))];
  }),
);

/** The chain from `from` to the first module that `bad` accepts, if any. */
function reach(from: string, bad: (m: string) => boolean): string[] | undefined {
  const prev = new Map<string, string>([[from, ""]]);
  const queue = [from];
  for (let i = 0; i < queue.length; i++) {
    for (const next of graph.get(queue[i]!) ?? []) {
      if (prev.has(next)) continue;
      prev.set(next, queue[i]!);
      if (bad(next)) {
        const chain = [next];
        for (let m = queue[i]!; m; m = prev.get(m)!) chain.unshift(m);
        return chain;
      }
      queue.push(next);
    }
  }
  return undefined;
}

test("the module graph was read (the checks below see real imports)", () => {
  assert.ok(graph.size > 100);
  assert.ok(graph.get("pipeline/build.ts")!.includes("pipeline/layers.ts"));
  assert.ok(graph.get("runtime/image.ts")!.includes("catalog/find.ts"));
});

test("nothing in store/, runtime/, report/, registry/, layer/, fold/ or oci/ reaches the pipeline, even through another module", () => {
  const below = [...graph.keys()].filter((m) => /^(store|runtime|report|registry|layer|fold|oci|catalog)\//.test(m));
  const found = below.map((m) => reach(m, (x) => x.startsWith("pipeline/"))).filter(Boolean).map((c) => c!.join(" -> "));
  assert.deepEqual(found, []);
});

test("the store reaches nothing above it (no stage, command or records module), even through another module", () => {
  const above = /^(pipeline|catalog|cli|config|lock|sources|fold|layer|oci|registry|docker|runtime|report|cache|fetch)\//;
  const found = [...graph.keys()].filter((m) => m.startsWith("store/")).map((m) => reach(m, (x) => above.test(x))).filter(Boolean).map((c) => c!.join(" -> "));
  assert.deepEqual(found, []);
});

test("no library module imports the CLI, and no command holds record-finding code", () => {
  const found = [...graph.keys()].filter((m) => !m.startsWith("cli/")).flatMap((m) => graph.get(m)!.filter((x) => x.startsWith("cli/")).map((x) => `${m} -> ${x}`));
  assert.deepEqual(found, []);
  for (const m of [...graph.keys()].filter((x) => x.startsWith("cli/"))) {
    const text = readFileSync(path.join(src, m), "utf8");
    assert.doesNotMatch(text, /getRecord|readRecord|buildRecordKey|BUILD_RECORDS|"builds"/, `${m} reads build records itself; use src/catalog`);
  }
});
