// Benchmark (not part of npm test): one global resolution of the megapak's
// layers (torch, pak lists given as arguments) against pip's configured
// indexes, cold and then with the store's metadata cache warm.
//   node --import tsx test/python/bench/resolve-paks.ts PAK.txt...
// git+ lines need PEP 517 builds, which are not supported yet: they are
// listed and left out.
import { mkdtemp, readFile, writeFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pythonSource, pythonOptionsSchema } from "../../../src/sources/python/index.ts";
import { Store } from "../../../src/store/store.ts";
import { createLogger } from "../../../src/util/log.ts";
import { makeCtx } from "../helpers/ctx.ts";
import { Finder } from "../../../src/sources/python/finder.ts";
import { loadPipConfig } from "../../../src/sources/python/pipconfig.ts";
import { readRequirementsFile } from "../../../src/sources/python/reqfile.ts";
import { silentLogger } from "../../../src/util/log.ts";

const paks = process.argv.slice(2);
const dir = await mkdtemp(path.join(os.tmpdir(), "lf-paks-"));
const layers: { name: string; spec: { requirements: string[]; files: string[] } }[] = [
  { name: "torch", spec: { requirements: ["torch==2.14.1", "torchvision"], files: [] } },
];
for (const p of paks) {
  const lines = (await readFile(p, "utf8")).split("\n");
  const git = lines.filter((l) => /^\s*git\+/.test(l));
  if (git.length) console.log(`${path.basename(p)}: leaving out ${git.length} git requirements (no PEP 517 builds yet)`);
  const f = path.join(dir, path.basename(p));
  await writeFile(f, lines.filter((l) => !/^\s*git\+/.test(l)).join("\n"));
  layers.push({ name: path.basename(p, ".txt"), spec: { requirements: [], files: [f] } });
}
// This machine's mirror may not hold every pak entry: leave out (and list) the roots no index offers.
const pip = loadPipConfig();
const finder = new Finder({ indexes: [pip.indexUrl, ...pip.extraIndexUrls], findLinks: pip.findLinks, store: new Store(path.join(dir, "probe")), log: silentLogger });
const missing: string[] = [];
for (const l of layers) {
  const keep: string[] = [];
  for (const f of l.spec.files) {
    for (const r of readRequirementsFile(f).requirements) {
      if ((await finder.files(r.key)).some((x) => x.wheel)) keep.push(r.text);
      else missing.push(r.key);
    }
  }
  if (l.spec.files.length) l.spec = { requirements: keep, files: [] };
}
if (missing.length) console.log(`not offered by the configured indexes, left out: ${missing.join(" ")}`);
const store = new Store(process.env.LAYERFOLD_STORE ?? path.join(dir, "store"));
const o = pythonOptionsSchema.parse({
  version: "3.11", fullVersion: "3.11.2", platform: { glibc: "2.36" }, interpreter: "/usr/bin/python3.11",
  drop: (process.env.DROP ?? "cuda-bindings").split(",").filter(Boolean),
});
// Dependencies the mirror lacks (e.g. sdist-only projects) are dropped and listed, found by resolving once.
for (;;) {
  const ctx = await makeCtx({ layers: layers.map((l) => l.name), store: new Store(path.join(dir, "probe")), log: silentLogger });
  try {
    await pythonSource.resolve(layers.map((l) => l.spec), o, ctx);
    break;
  } catch (err) {
    const m = /"([^"]+)" cannot be installed: no configured index offers it/.exec((err as Error).message);
    if (!m) { console.log((err as Error).message); break; }
    (o.drop as string[]).push(m[1]!);
  }
}
console.log(`dropped dependencies no index offers: ${(o.drop as string[]).join(" ")}`);
for (const run of ["cold", "warm"]) {
  const ctx = await makeCtx({ layers: layers.map((l) => l.name), store, log: createLogger({}) });
  const t0 = performance.now();
  try {
    const r = await pythonSource.resolve(layers.map((l) => l.spec), o, ctx);
    console.log(`${run}: ${r.packages.length - 1} distributions in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
  } catch (err) {
    console.log(`${run}: failed after ${((performance.now() - t0) / 1000).toFixed(2)} s: ${(err as Error).message}`);
  }
}
await rm(dir, { recursive: true, force: true });
