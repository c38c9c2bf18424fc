// A fault-injecting proxy in front of a real registry drops connections and
// answers 500/429/503 mid-upload; the push still completes with the right digests.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdtemp, rm, readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startRegistry, startProxy, hasCommand, registryBlobDigests, type RunningRegistry, type Fault } from "../helpers/registry.ts";
import { makeImage } from "./image-fixture.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { pushImages } from "../../src/registry/push.ts";
import { sha256Hex } from "../../src/util/hash.ts";

const run = promisify(execFile);
const skip = !hasCommand("docker-registry") || !hasCommand("skopeo") ? "docker-registry or skopeo not installed" : false;

let reg: RunningRegistry;
let tmp: string;
before(async () => {
  if (skip) return;
  reg = await startRegistry();
  tmp = await mkdtemp(path.join(os.tmpdir(), "lf-faults-"));
});
after(async () => {
  if (skip) return;
  await reg.stop();
  await rm(tmp, { recursive: true, force: true });
});

async function verifyWithSkopeo(ref: string, digests: string[]): Promise<void> {
  const out = path.join(tmp, `copy-${Math.random().toString(36).slice(2)}`);
  await run("skopeo", ["copy", "--src-tls-verify=false", `docker://${ref}`, `dir:${out}`]);
  for (const d of digests) assert.equal(sha256Hex(await readFile(path.join(out, d.slice(7)))), d.slice(7));
}

test("chunked push survives dropped connections, 500, 429 and 503 mid-upload", { skip }, async () => {
  const image = await makeImage({
    dir: path.join(tmp, "img"),
    layers: [{ files: { "big/a.bin": { randomSize: 1_500_000, seed: "fa" } } }, { files: { "big/b.bin": { randomSize: 900_000, seed: "fb" } } }],
  });
  let patches = 0;
  let headFaults = 0;
  let putFaults = 0;
  const proxy = await startProxy(reg.url, {
    fault: ({ method, url }) => {
      if (method === "HEAD" && headFaults++ === 0) return { kind: "status", status: 429, retryAfter: 0 };
      if (method === "PATCH") {
        patches++;
        // The 3rd chunk sent is cut halfway, the 6th and 9th answer 500 and 429.
        if (patches === 3) return { kind: "drop", afterBytes: 100_000 } satisfies Fault;
        if (patches === 6) return { kind: "status", status: 500 };
        if (patches === 9) return { kind: "status", status: 429 };
      }
      if (method === "PUT" && url.includes("digest=") && putFaults++ === 0) return { kind: "status", status: 503 };
      return undefined;
    },
  });
  try {
    const client = new RegistryClient({ registry: proxy.host, backoffMs: 10 });
    const res = await pushImages([image], { client, repository: "lf/faulty", tag: "t", chunkSize: 256 * 1024, concurrency: 2 });
    await client.close();
    assert.equal(res.digest, image.manifestDescriptor.digest);
    assert.ok(proxy.requests.some((r) => r.fault?.startsWith("drop")), "a connection was dropped");
    assert.ok(proxy.requests.some((r) => r.fault === "status 500"), "a 500 was injected");
    assert.ok(proxy.requests.filter((r) => r.fault === "status 429").length >= 2, "429s were injected");
    const stored = await registryBlobDigests(reg);
    for (const l of image.layers) assert.ok(stored.includes(l.digest), `registry has ${l.digest}`);
    await verifyWithSkopeo(`${reg.host}/lf/faulty:t`, image.layers.map((l) => l.digest));
  } finally {
    await proxy.stop();
  }
});

test("monolithic push retries a dropped PUT from a fresh upload", { skip }, async () => {
  const image = await makeImage({ dir: path.join(tmp, "mono"), layers: [{ files: { "m.bin": { randomSize: 700_000, seed: "mono" } } }] });
  let drops = 0;
  const proxy = await startProxy(reg.url, {
    fault: ({ method, url }) => (method === "PUT" && url.includes("digest=") && !url.includes("manifests") && drops++ === 0 ? { kind: "drop", afterBytes: 50_000 } : undefined),
  });
  try {
    const client = new RegistryClient({ registry: proxy.host, backoffMs: 10 });
    const res = await pushImages([image], { client, repository: "lf/mono", tag: "t", monolithic: true });
    await client.close();
    assert.equal(res.digest, image.manifestDescriptor.digest);
    assert.ok(drops >= 1);
    await verifyWithSkopeo(`${reg.host}/lf/mono:t`, image.layers.map((l) => l.digest));
  } finally {
    await proxy.stop();
  }
});

test("a registry that keeps failing gives a typed error naming the blob, not a hang", { skip }, async () => {
  const image = await makeImage({ dir: path.join(tmp, "dead"), layers: [{ files: { "d": "d\n" } }] });
  const proxy = await startProxy(reg.url, { fault: ({ method }) => (method === "PATCH" || method === "PUT" ? { kind: "status", status: 500 } : undefined) });
  try {
    const client = new RegistryClient({ registry: proxy.host, backoffMs: 1 });
    await assert.rejects(pushImages([image], { client, repository: "lf/dead", tag: "t" }), (err: Error & { code?: string }) => {
      assert.match(err.message, /sha256:/);
      assert.ok(err.code === "E_REGISTRY" || err.code === "E_NETWORK", err.code);
      return true;
    });
    await client.close();
  } finally {
    await proxy.stop();
  }
});

test("a failure before the registry has any byte resumes at 0 (distribution reports Range 0-0 for an empty upload)", { skip }, async () => {
  const image = await makeImage({ dir: path.join(tmp, "first"), layers: [{ files: { "f.bin": { randomSize: 400_000, seed: "first" } } }] });
  let patches = 0;
  const proxy = await startProxy(reg.url, { fault: ({ method }) => (method === "PATCH" && ++patches === 1 ? { kind: "status", status: 500 } : undefined) });
  try {
    const client = new RegistryClient({ registry: proxy.host, backoffMs: 1 });
    const res = await pushImages([image], { client, repository: "lf/first", tag: "t", chunkSize: 128 * 1024 });
    await client.close();
    assert.equal(res.digest, image.manifestDescriptor.digest);
    const statusQuery = proxy.requests.find((r) => r.method === "GET" && r.url.includes("/blobs/uploads/"));
    assert.ok(statusQuery, "the upload status was queried");
    await verifyWithSkopeo(`${reg.host}/lf/first:t`, image.layers.map((l) => l.digest));
  } finally {
    await proxy.stop();
  }
});

test("default upload is one streamed PATCH per blob (no Content-Range); a drop mid-stream still ends with the right blob", { skip }, async () => {
  const image = await makeImage({ dir: path.join(tmp, "stream"), layers: [{ files: { "s.bin": { randomSize: 2_000_000, seed: "stream" } } }] });
  let patches = 0;
  const proxy = await startProxy(reg.url, { fault: ({ method }) => (method === "PATCH" && ++patches === 1 ? { kind: "drop", afterBytes: 700_000 } : undefined) });
  try {
    const client = new RegistryClient({ registry: proxy.host, backoffMs: 1 });
    const res = await pushImages([image], { client, repository: "lf/stream", tag: "t" });
    await client.close();
    assert.equal(res.digest, image.manifestDescriptor.digest);
    const layerPatches = proxy.requests.filter((r) => r.method === "PATCH" && r.bodyBytes > 10_000);
    assert.ok(layerPatches.length >= 2, "the dropped PATCH was followed by another");
    const full = layerPatches.at(-1)!;
    assert.equal(full.headers["content-range"], undefined, "a whole-blob PATCH carries no Content-Range");
    assert.equal(full.bodyBytes, image.layers[0].size);
    await verifyWithSkopeo(`${reg.host}/lf/stream:t`, image.layers.map((l) => l.digest));
  } finally {
    await proxy.stop();
  }
});

test("a registry that is not there fails at once with a typed error", async () => {
  const { freePort } = await import("../helpers/registry.ts");
  const port = await freePort();
  const image = await makeImage({ dir: path.join(tmp ?? os.tmpdir(), "nothere"), layers: [{ files: { n: "n\n" } }] });
  const client = new RegistryClient({ registry: `127.0.0.1:${port}`, backoffMs: 1 });
  const t = Date.now();
  await assert.rejects(pushImages([image], { client, repository: "lf/x", tag: "t" }), (err: Error & { code?: string }) => {
    assert.equal(err.code, "E_NETWORK");
    assert.match(err.message, /cannot reach 127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
    return true;
  });
  assert.ok(Date.now() - t < 3000, "no retry loop on a refused connection");
  await client.close();
});
