// Pulls over a connection that drops mid-layer: the blob continues from the byte
// reached (Range), not from the start; a registry without Range support still
// works; a connection that keeps dropping ends in a clear error and no layout.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startRegistry, startProxy, hasCommand, type RunningRegistry } from "../helpers/registry.ts";
import { makeImage } from "./image-fixture.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { pushImages } from "../../src/registry/push.ts";
import { pullImage } from "../../src/registry/pull.ts";
import { NetworkError } from "../../src/errors.ts";
import { sha256Hex } from "../../src/util/hash.ts";

const skip = !hasCommand("docker-registry") ? "docker-registry not installed" : false;

let reg: RunningRegistry;
let tmp: string;
let layer: { digest: string; size: number };
let manifestDigest: string;
before(async () => {
  if (skip) return;
  reg = await startRegistry();
  tmp = await mkdtemp(path.join(os.tmpdir(), "lf-pull-resume-"));
  const image = await makeImage({ dir: path.join(tmp, "img"), compression: "none", layers: [{ files: { "big.bin": { randomSize: 3_000_000, seed: "resume" } } }] });
  const client = new RegistryClient({ registry: reg.host });
  try {
    manifestDigest = (await pushImages([image], { client, repository: "lf/resume", tag: "1" })).digest;
  } finally {
    await client.close();
  }
  layer = image.layers[0]!;
});
after(async () => {
  if (skip) return;
  await reg.stop();
  await rm(tmp, { recursive: true, force: true });
});

/** Bytes a client may have buffered and lost with a cut connection (a stream's buffer and a socket read or two). */
const SLACK = 256 * 1024;
const startOf = (range: unknown) => Number(/^bytes=(\d+)-$/.exec(String(range ?? "bytes=0-"))?.[1]);

const isLayerGet = (method: string, url: string) => method === "GET" && url.includes(`/blobs/${layer.digest}`);

async function pullThrough(proxyHost: string, dir: string) {
  const client = new RegistryClient({ registry: proxyHost, backoffMs: 10 });
  try {
    return await pullImage(`${proxyHost}/lf/resume:1`, dir, { client });
  } finally {
    await client.close();
  }
}

test("a layer whose connection drops twice is resumed from the byte reached, and verified", { skip }, async () => {
  let gets = 0;
  const proxy = await startProxy(reg.url, { fault: ({ method, url }) => (isLayerGet(method, url) && ++gets <= 2 ? { kind: "cut", afterBytes: 1_000_000 } : undefined) });
  try {
    const dir = path.join(tmp, "resumed");
    const r = await pullThrough(proxy.host, dir);
    assert.equal(r.digest, manifestDigest);
    assert.equal(sha256Hex(await readFile(path.join(dir, "blobs", "sha256", layer.digest.slice(7)))), layer.digest.slice(7));
    const layerGets = proxy.requests.filter((q) => isLayerGet(q.method, q.url));
    // What the client had read from the socket but not yet passed on when the connection died is
    // dropped with it (tens of KiB), so each resume starts at, or a little before, the cut.
    const starts = layerGets.map((q) => startOf(q.headers.range));
    assert.equal(starts.length, 3);
    assert.ok(starts[1]! > 1_000_000 - SLACK && starts[1]! <= 1_000_000 && starts[2]! > starts[1]! + 1_000_000 - SLACK && starts[2]! <= starts[1]! + 1_000_000, `range starts ${starts}`);
    const downloaded = layerGets.reduce((n, q) => n + q.responseBytes, 0);
    assert.ok(downloaded <= layer.size + 2 * SLACK, `${downloaded} bytes sent for a ${layer.size}-byte layer: resumed, not restarted`);
  } finally {
    await proxy.stop();
  }
});

test("a registry that ignores Range sends the layer whole again; the bytes already passed on are skipped", { skip }, async () => {
  let gets = 0;
  const proxy = await startProxy(reg.url, { ignoreRange: true, fault: ({ method, url }) => (isLayerGet(method, url) && ++gets === 1 ? { kind: "cut", afterBytes: 1_500_000 } : undefined) });
  try {
    const dir = path.join(tmp, "no-range");
    const r = await pullThrough(proxy.host, dir);
    assert.equal(r.digest, manifestDigest);
    assert.equal(sha256Hex(await readFile(path.join(dir, "blobs", "sha256", layer.digest.slice(7)))), layer.digest.slice(7));
    assert.equal(proxy.requests.filter((q) => isLayerGet(q.method, q.url)).length, 2);
  } finally {
    await proxy.stop();
  }
});

test("a connection that keeps dropping ends in a NetworkError naming the blob and the byte reached; no layout is left", { skip }, async () => {
  const proxy = await startProxy(reg.url, { fault: ({ method, url, range }) => (isLayerGet(method, url) ? { kind: "cut", afterBytes: range ? 100_000 : 500_000 } : undefined) });
  try {
    const dir = path.join(tmp, "hopeless");
    await assert.rejects(pullThrough(proxy.host, dir), (err: unknown) => {
      assert.ok(err instanceof NetworkError, String(err));
      assert.match(err.message, new RegExp(`blob ${layer.digest}.*connection was lost at byte \\d+ of ${layer.size} 6 times`));
      return true;
    });
    assert.ok(!existsSync(dir), "no partial layout");
    const starts = proxy.requests.filter((q) => isLayerGet(q.method, q.url)).map((q) => startOf(q.headers.range));
    assert.equal(starts.length, 6);
    for (let i = 1; i < starts.length; i++) assert.ok(starts[i]! >= starts[i - 1]! && starts[i]! <= starts[i - 1]! + (i === 1 ? 500_000 : 100_000), `each attempt went on from the last: ${starts}`);
    assert.ok(starts[1]! > 500_000 - SLACK, `the first resume started near the first cut: ${starts}`);
  } finally {
    await proxy.stop();
  }
});

test("with a store, a pull that fails keeps the layers it completed; pulling again fetches only the rest", { skip }, async () => {
  const { Store } = await import("../../src/store/store.ts");
  const image = await makeImage({ dir: path.join(tmp, "two"), compression: "none", layers: [{ files: { "a.bin": { randomSize: 200_000, seed: "a" } } }, { files: { "b.bin": { randomSize: 2_000_000, seed: "b" } } }] });
  const push = new RegistryClient({ registry: reg.host });
  try {
    await pushImages([image], { client: push, repository: "lf/two", tag: "1" });
  } finally {
    await push.close();
  }
  const small = image.layers[0]!;
  const big = image.layers[1]!;
  const store = new Store(path.join(tmp, "pull-store"));
  const gets = (p: { requests: Array<{ method: string; url: string }> }, d: string) => p.requests.filter((q) => q.method === "GET" && q.url.endsWith(`/blobs/${d}`)).length;
  const pull = async (host: string, dir: string) => {
    const client = new RegistryClient({ registry: host, backoffMs: 10 });
    try {
      return await pullImage(`${host}/lf/two:1`, dir, { client, store, concurrency: 1 });
    } finally {
      await client.close();
    }
  };
  const failing = await startProxy(reg.url, { fault: ({ method, url }) => (method === "GET" && url.endsWith(`/blobs/${big.digest}`) ? { kind: "cut", afterBytes: 50_000 } : undefined) });
  try {
    await assert.rejects(pull(failing.host, path.join(tmp, "two-1")), NetworkError);
    assert.equal(gets(failing, small.digest), 1);
  } finally {
    await failing.stop();
  }
  assert.ok(existsSync(store.blobPath(small.digest.slice(7))), "the completed layer is kept");
  assert.ok(!existsSync(store.blobPath(big.digest.slice(7))), "the failed one is not");
  const clean = await startProxy(reg.url);
  try {
    const dir = path.join(tmp, "two-2");
    const r = await pull(clean.host, dir);
    assert.equal(r.digest, image.manifestDescriptor.digest);
    assert.equal(gets(clean, small.digest), 0, "the kept layer is not fetched again");
    assert.equal(gets(clean, big.digest), 1);
    for (const l of image.layers) assert.equal(sha256Hex(await readFile(path.join(dir, "blobs", "sha256", l.digest.slice(7)))), l.digest.slice(7));
  } finally {
    await clean.stop();
  }
});
