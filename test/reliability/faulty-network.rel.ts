// Faulty network: many pushes through a fault-injecting proxy in front of a real
// registry (drops mid-body, TCP resets, 500/503/429, slow answers), drawn from a
// seeded random plan. Each push either ends with the right manifest digest or
// fails with a typed LayerfoldError; either way the registry stays consistent:
// what a tag names can be inspected and copied by skopeo, blob by blob verified.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdtemp, rm, readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startRegistry, startProxy, hasCommand, type RunningRegistry, type Fault } from "../helpers/registry.ts";
import { makeImage } from "../registry/image-fixture.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { pushImages } from "../../src/registry/push.ts";
import { LayerfoldError } from "../../src/errors.ts";
import { sha256Hex } from "../../src/util/hash.ts";
import type { BuiltImage } from "../../src/oci/types.ts";
import { rng } from "./prng.ts";

const run = promisify(execFile);
const skip = !hasCommand("docker-registry") || !hasCommand("skopeo") ? "docker-registry or skopeo not installed" : false;
const PUSHES = Number(process.env.LF_REL_PUSHES ?? 50);
const SEED = 0x5eed8;

let reg: RunningRegistry;
let tmp: string;
before(async () => {
  if (skip) return;
  reg = await startRegistry();
  tmp = await mkdtemp(path.join(os.tmpdir(), "lf-rel-net-"));
});
after(async () => {
  if (skip) return;
  await reg.stop();
  await rm(tmp, { recursive: true, force: true });
});

/** Check the tag with skopeo: inspect gives the digest, and a copy verifies every layer's bytes. */
async function checkTag(ref: string, image: BuiltImage): Promise<void> {
  const { stdout } = await run("skopeo", ["inspect", "--tls-verify=false", "--raw", `docker://${ref}`]);
  assert.equal(`sha256:${sha256Hex(Buffer.from(stdout))}`, image.manifestDescriptor.digest, `${ref}: manifest digest`);
  const out = path.join(tmp, `copy-${Math.random().toString(36).slice(2)}`);
  await run("skopeo", ["copy", "--quiet", "--src-tls-verify=false", `docker://${ref}`, `dir:${out}`]);
  for (const l of image.layers) assert.equal(sha256Hex(await readFile(path.join(out, l.digest.slice(7)))), l.digest.slice(7), `${ref}: layer ${l.digest}`);
  await rm(out, { recursive: true, force: true });
}

test(`${PUSHES} pushes through drops, resets, 500/429/503 and slow answers`, { skip, timeout: 10 * 60_000 }, async () => {
  const random = rng(SEED);
  // A few images of different shapes; each push goes to a fresh repository so every blob is uploaded.
  const images: BuiltImage[] = [];
  for (let i = 0; i < 4; i++) {
    images.push(
      await makeImage({
        dir: path.join(tmp, `img${i}`),
        layers: Array.from({ length: 2 + (i % 2) }, (_, j) => ({ files: { [`l${j}.bin`]: { randomSize: 150_000 + 120_000 * j + 50_000 * i, seed: `net-${i}-${j}` } } })),
      }),
    );
  }
  const counts = { ok: 0, failedCleanly: 0, faults: {} as Record<string, number> };
  for (let i = 0; i < PUSHES; i++) {
    const image = images[i % images.length]!;
    // Every 25th push meets a registry that never stops failing uploads: it must fail, cleanly
    // (after its retries, which take about two minutes here, hence only a few of them).
    const hopeless = i % 25 === 24;
    const rate = 0.1 + random() * 0.25;
    const fault = ({ method, url }: { method: string; url: string }): Fault | undefined => {
      if (hopeless && (method === "PATCH" || (method === "PUT" && url.includes("/blobs/")))) return { kind: "status", status: 500 };
      if (random() >= rate) return undefined;
      const r = random();
      if (r < 0.2) return { kind: "drop", afterBytes: Math.floor(random() * 120_000) };
      if (r < 0.4) return { kind: "reset" };
      if (r < 0.55) return { kind: "status", status: 500 };
      if (r < 0.7) return { kind: "status", status: 503 };
      if (r < 0.85) return { kind: "status", status: 429, retryAfter: 0 };
      return { kind: "slow", delayMs: 100 + Math.floor(random() * 900) };
    };
    const proxy = await startProxy(reg.url, { fault });
    const repository = `rel/net${i}`;
    const mode = i % 3 === 0 ? { chunkSize: 64 * 1024 } : i % 3 === 1 ? { monolithic: true } : {};
    const client = new RegistryClient({ registry: proxy.host, backoffMs: 5 });
    const t0 = performance.now();
    try {
      const res = await pushImages([image], { client, repository, tag: "t", concurrency: 2, ...mode });
      assert.ok(!hopeless, `push ${i} succeeded against a registry that fails every upload`);
      assert.equal(res.digest, image.manifestDescriptor.digest, `push ${i}: manifest digest`);
      counts.ok++;
      await checkTag(`${reg.host}/${repository}:t`, image);
    } catch (err) {
      if (err instanceof assert.AssertionError) throw err;
      assert.ok(err instanceof LayerfoldError, `push ${i} failed with an untyped error: ${(err as Error)?.stack ?? err}`);
      assert.ok(["E_REGISTRY", "E_NETWORK"].includes(err.code), `push ${i}: code ${err.code}`);
      assert.ok(err.message.length > 20 && /sha256:|rel\/net|127\.0\.0\.1/.test(err.message), `push ${i}: the error names the blob, repository or registry: ${err.message}`);
      counts.failedCleanly++;
      // Consistent after a failure: a tag either does not exist or names the complete image.
      const inspected = await run("skopeo", ["inspect", "--tls-verify=false", "--raw", `docker://${reg.host}/${repository}:t`]).then(() => true, () => false);
      if (inspected) await checkTag(`${reg.host}/${repository}:t`, image);
    } finally {
      await client.close();
      if (process.env.LF_REL_VERBOSE) console.error(`push ${i}: ${((performance.now() - t0) / 1000).toFixed(1)} s, ${proxy.requests.length} requests, faults ${proxy.requests.filter((r) => r.fault).map((r) => `${r.method} ${r.fault}`).join(", ")}`);
      for (const r of proxy.requests) if (r.fault) { const k = r.fault.split(" ")[0]! + (r.fault.startsWith("status") ? ` ${r.status}` : ""); counts.faults[k] = (counts.faults[k] ?? 0) + 1; }
      await proxy.stop();
    }
  }
  console.log(`# faulty network: ${PUSHES} pushes, ${counts.ok} completed with the right digest, ${counts.failedCleanly} failed with a typed error; injected faults: ${JSON.stringify(counts.faults)}`);
  assert.equal(counts.ok + counts.failedCleanly, PUSHES);
  assert.ok(counts.ok >= PUSHES / 2, "most pushes survive the faults");
  for (const k of ["drop", "reset", "status 500", "status 429", "slow"]) assert.ok((counts.faults[k] ?? 0) > 0, `fault ${k} was injected`);
});
