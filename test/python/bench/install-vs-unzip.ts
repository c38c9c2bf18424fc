// Benchmark (not part of npm test): install wheels into package trees with
// layerfold's PEP 427 installer vs `unzip -q` of the same wheels, same disk.
//   node --import tsx test/python/bench/install-vs-unzip.ts WHEEL...
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { installWheel, schemeFor } from "../../../src/sources/python/wheel.ts";
import { TreeWriter } from "../../../src/store/tree.ts";

const wheels = process.argv.slice(2);
if (!wheels.length) { console.error("usage: install-vs-unzip.ts WHEEL..."); process.exit(2); }
const scheme = schemeFor({ prefix: "/opt/venv", version: "3.11", interpreter: "/usr/bin/python3.11" });
const base = await mkdtemp(path.join(os.tmpdir(), "lf-bench-"));
let bytes = 0;
for (const w of wheels) bytes += (await stat(w)).size;

async function timeIt(label: string, fn: (dir: string) => Promise<void>): Promise<number> {
  const best: number[] = [];
  for (let i = 0; i < 3; i++) {
    const dir = path.join(base, `${label}-${i}`);
    execFileSync("sync");
    const t0 = performance.now();
    await fn(dir);
    best.push((performance.now() - t0) / 1000);
    await rm(dir, { recursive: true, force: true });
  }
  return Math.min(...best);
}

const unzip = await timeIt("unzip", async (dir) => {
  for (const w of wheels) execFileSync("unzip", ["-q", "-o", w, "-d", dir]);
});
const lf = await timeIt("layerfold", async (dir) => {
  for (const w of wheels) {
    const t = new TreeWriter(path.join(dir, path.basename(w)), w, {});
    await installWheel(w, t, { file: path.basename(w), scheme, requested: false });
  }
});
await rm(base, { recursive: true, force: true });
console.log(`${wheels.length} wheels, ${(bytes / 1e6).toFixed(0)} MB compressed`);
console.log(`unzip -q:          ${unzip.toFixed(2)} s (best of 3)`);
console.log(`layerfold install: ${lf.toFixed(2)} s (best of 3; verifies RECORD, hashes every file)`);
console.log(`ratio: ${(lf / unzip).toFixed(2)}x`);
