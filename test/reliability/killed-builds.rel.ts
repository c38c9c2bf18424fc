// Killed builds: `layerfold build` of examples/hello, with 64 MB more in its app
// layer (2,000 files) so that kills land while trees and layers are written, is
// SIGKILLed at random points (seeded), each time in a fresh store. After each kill the store holds
// no partial file (every blob hashes to its name, every record parses), and the
// next build in that same store succeeds with the reference digests.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createReadStream, existsSync } from "node:fs";
import { mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createHash } from "node:crypto";
import path from "node:path";
import { cliPath, helloExample, runCli, tempDir } from "../helpers/cli.ts";
import { rng } from "./prng.ts";

const RUNS = Number(process.env.LF_REL_KILLS ?? 20);
const SEED = 0xdead20;

let tmp: { dir: string; cleanup: () => Promise<void> };
let example: string;
before(async () => {
  tmp = await tempDir("lf-rel-kill-");
  example = await helloExample(tmp.dir);
  // Bulk for the app layer: compressible, deterministic, many files.
  const random = rng(0xb01d);
  for (let d = 0; d < 20; d++) {
    const dir = path.join(example, "app", "data", `d${d}`);
    await mkdir(dir, { recursive: true });
    for (let f = 0; f < 100; f++) {
      const words = Array.from({ length: 4096 }, () => (random() * 1e6).toString(36).slice(0, 7));
      await writeFile(path.join(dir, `f${f}.txt`), words.join(" "));
    }
  }
});
after(async () => tmp.cleanup());

async function walk(dir: string, out: string[] = []): Promise<string[]> {
  if (!existsSync(dir)) return out;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) await walk(p, out);
    else out.push(p);
  }
  return out;
}

const sha256File = (file: string) =>
  new Promise<string>((resolve, reject) => {
    const h = createHash("sha256");
    createReadStream(file).on("data", (c) => h.update(c)).on("end", () => resolve(h.digest("hex"))).on("error", reject);
  });

/** Everything the store would serve is whole: blobs hash to their names, records are complete JSON. */
async function checkStore(store: string, label: string): Promise<{ blobs: number; records: number; trees: number }> {
  let blobs = 0;
  let records = 0;
  for (const f of await walk(path.join(store, "blobs"))) {
    const name = path.basename(f);
    if (!/^[0-9a-f]{64}$/.test(name)) { assert.fail(`${label}: stray file in blobs/: ${path.relative(store, f)}`); }
    assert.equal(await sha256File(f), name, `${label}: blob ${name} is partial or corrupt`);
    blobs++;
  }
  for (const top of ["layers", "builds", "trees"]) {
    for (const f of await walk(path.join(store, top))) {
      if (!f.endsWith(".json") || (top === "trees" && !f.endsWith("tree.json"))) continue;
      const text = await readFile(f, "utf8");
      assert.doesNotThrow(() => JSON.parse(text), `${label}: record ${path.relative(store, f)} is not complete JSON`);
      records++;
    }
  }
  const trees = existsSync(path.join(store, "trees")) ? (await readdir(path.join(store, "trees"))).length : 0;
  return { blobs, records, trees };
}

test(`${RUNS} builds killed with SIGKILL at random points; the next build succeeds with the same digests`, { timeout: 12 * 60_000 }, async () => {
  const random = rng(SEED);
  // Reference build (also writes the lock the later builds use).
  const t0 = performance.now();
  const ref = await runCli(["build", "-C", example, "--store", path.join(tmp.dir, "ref-store"), "-o", `oci:${path.join(tmp.dir, "ref-out")}`, "--json"]);
  const fullMs = performance.now() - t0;
  assert.equal(ref.code, 0, ref.stderr);
  const refJson = JSON.parse(ref.stdout);
  const lock = await readFile(path.join(example, "layerfold.lock"), "utf8");
  await rm(path.join(tmp.dir, "ref-store"), { recursive: true, force: true });

  // Node and tsx start-up does no store work; aim the kills after it, so they land in resolve/install/layer/export.
  const s0 = performance.now();
  await runCli(["--version"]);
  const startMs = performance.now() - s0;
  let killedMidway = 0;
  let killedAfterWrites = 0;
  let blobsChecked = 0;
  let tempsSwept = 0;
  for (let i = 0; i < RUNS; i++) {
    const store = path.join(tmp.dir, `store${i}`);
    const out = path.join(tmp.dir, `out${i}`);
    // Kill anywhere between the end of start-up and most of a full build.
    const delay = Math.floor(startMs + random() * Math.max(1, fullMs * 0.9 - startMs));
    const child = spawn(process.execPath, [cliPath, "build", "-C", example, "--store", store, "-o", `oci:${out}`, "--json"], { stdio: "ignore" });
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    const timer = setTimeout(() => child.kill("SIGKILL"), delay);
    const code = await exited;
    clearTimeout(timer);
    if (code === null) killedMidway++;
    const { blobs, trees, records } = await checkStore(store, `run ${i} after a kill at ${delay} ms`);
    blobsChecked += blobs;
    if (code === null && trees + records > 0) killedAfterWrites++;
    assert.equal(await readFile(path.join(example, "layerfold.lock"), "utf8"), lock, `run ${i}: the lock was changed by a killed build`);

    const again = await runCli(["build", "-C", example, "--store", store, "-o", `oci:${out}`, "--json"]);
    assert.equal(again.code, 0, `run ${i}: the build after a kill at ${delay} ms failed: ${again.stderr}`);
    const j = JSON.parse(again.stdout);
    assert.equal(j.manifestDigest, refJson.manifestDigest, `run ${i}: manifest digest`);
    assert.deepEqual(j.layers.map((l: { digest: string }) => l.digest), refJson.layers.map((l: { digest: string }) => l.digest), `run ${i}: layer digests`);
    // The image written is whole too.
    for (const f of await walk(path.join(out, "blobs"))) assert.equal(await sha256File(f), path.basename(f), `run ${i}: output blob ${path.basename(f)}`);
    await checkStore(store, `run ${i} after the rebuild`);
    assert.ok((await stat(path.join(out, "index.json"))).size > 0);
    // gc sweeps what the kill left in tmp/ and keeps every blob of the image.
    const gc = await runCli(["gc", "--store", store, "--json"]);
    assert.equal(gc.code, 0, `run ${i}: gc: ${gc.stderr}`);
    tempsSwept += (JSON.parse(gc.stdout) as { parts: Array<{ kind: string; removed: number }> }).parts.find((p) => p.kind === "tmp")?.removed ?? 0;
    assert.deepEqual(existsSync(path.join(store, "tmp")) ? await readdir(path.join(store, "tmp")) : [], [], `run ${i}: tmp/ after gc`);
    for (const d of [j.manifestDigest, ...j.layers.map((l: { digest: string }) => l.digest)]) assert.ok(existsSync(path.join(store, "blobs", "sha256", d.slice(7))), `run ${i}: gc kept ${d}`);
    await rm(store, { recursive: true, force: true });
    await rm(out, { recursive: true, force: true });
  }
  console.log(`# killed builds: ${RUNS} runs (${killedMidway} killed mid-build, ${killedAfterWrites} of them after the store held trees or records; ${RUNS - killedMidway} finished before the kill), ${blobsChecked} store blobs verified after kills, ${tempsSwept} temp entries of killed runs swept by gc, every rebuild gave ${refJson.manifestDigest}`);
  assert.ok(killedMidway >= RUNS / 3, "a good share of the runs were actually killed mid-build");
  assert.ok(killedAfterWrites >= RUNS / 4, "a good share of the kills landed while the store was being written");
});
