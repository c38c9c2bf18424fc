// Push against a real registry (Debian's docker-registry), checked by skopeo.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdtemp, rm, readdir, readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startRegistry, startProxy, hasCommand, registryBlobDigests, type RunningRegistry } from "../helpers/registry.ts";
import { makeImage, type LayerSpec } from "./image-fixture.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { pushImages } from "../../src/registry/push.ts";
import { pullImage } from "../../src/registry/pull.ts";
import { loadBaseImage } from "../../src/registry/base.ts";
import { readLayoutImages } from "../../src/registry/layout-source.ts";
import { Store } from "../../src/store/store.ts";
import { MEDIA, type BuiltImage } from "../../src/oci/types.ts";
import { sha256Hex } from "../../src/util/hash.ts";
import { stableJson } from "../../src/util/json.ts";

const run = promisify(execFile);
const skip = !hasCommand("docker-registry") || !hasCommand("skopeo") ? "docker-registry or skopeo not installed" : false;

let reg: RunningRegistry;
let tmp: string;
before(async () => {
  if (skip) return;
  reg = await startRegistry();
  tmp = await mkdtemp(path.join(os.tmpdir(), "lf-push-"));
});
after(async () => {
  if (skip) return;
  await reg.stop();
  await rm(tmp, { recursive: true, force: true });
});

const layersV1 = (): LayerSpec[] => [
  { files: { "etc/base.txt": "base layer\n", "usr/share/a.bin": { randomSize: 300_000, seed: "a" } } },
  { files: { "opt/middle/m.bin": { randomSize: 500_000, seed: "m1" } } },
  { files: { "app/app.txt": "the app\n", "app/b.bin": { randomSize: 200_000, seed: "b" } } },
];
const layersV2 = (): LayerSpec[] => {
  const l = layersV1();
  l[1] = { files: { "opt/middle/m.bin": { randomSize: 500_000, seed: "m2" } } };
  return l;
};

const client = (host: string) => new RegistryClient({ registry: host, backoffMs: 20 });

test("push: every blob lands, skopeo inspects and copies with verified digests", { skip }, async () => {
  const image = await makeImage({ dir: path.join(tmp, "v1"), layers: layersV1(), tag: "v1" });
  const c = client(reg.host);
  const res = await pushImages([image], { client: c, repository: "lf/app", tag: "v1" });
  await c.close();
  assert.equal(res.digest, image.manifestDescriptor.digest);
  assert.equal(res.blobs.filter((b) => b.action === "uploaded").length, 4);
  const inspect = JSON.parse((await run("skopeo", ["inspect", "--tls-verify=false", `docker://${reg.host}/lf/app:v1`])).stdout) as { Digest: string; Layers: string[] };
  assert.equal(inspect.Digest, image.manifestDescriptor.digest);
  assert.deepEqual(inspect.Layers, image.layers.map((l) => l.digest));
  const out = path.join(tmp, "skopeo-dir");
  await run("skopeo", ["copy", "--src-tls-verify=false", `docker://${reg.host}/lf/app:v1`, `dir:${out}`]);
  const files = await readdir(out);
  for (const l of image.layers) {
    const hex = l.digest.slice(7);
    assert.ok(files.includes(hex), `layer ${hex} copied`);
    assert.equal(sha256Hex(await readFile(path.join(out, hex))), hex);
  }
});

test("blobs several times the size of the reused read buffers, four at once, arrive intact (whole and in chunks)", { skip }, async () => {
  // Local blobs are read through a few buffers that are used again and again; the registry
  // checks every digest on commit, so a buffer overwritten before it was sent fails the push.
  const layers: LayerSpec[] = ["r1", "r2", "r3", "r4", "r5"].map((seed, i) => ({ files: { [`big/${seed}.bin`]: { randomSize: 2_500_000 + i * 333_333, seed } } }));
  const image = await makeImage({ dir: path.join(tmp, "ring"), layers, compression: "none" });
  assert.ok(image.layers.every((l) => l.size > 2 * 1024 * 1024));
  for (const [repo, chunkSize] of [["lf/ring-whole", 0], ["lf/ring-chunks", 700_000]] as const) {
    const c = client(reg.host);
    const res = await pushImages([image], { client: c, repository: repo, tag: "t", concurrency: 4, chunkSize });
    assert.equal(res.digest, image.manifestDescriptor.digest);
    assert.equal(res.blobs.filter((b) => b.action === "uploaded").length, layers.length + 1);
    for (const l of image.layers) assert.deepEqual(await c.hasBlob(repo, l.digest), { exists: true, size: l.size }, `${repo}: ${l.digest} committed`);
    await c.close();
  }
});

test("incremental push from a fresh checkout (no store, new dir) uploads only the changed layer", { skip }, async () => {
  const v1 = await makeImage({ dir: path.join(tmp, "inc-v1"), layers: layersV1() });
  const c1 = client(reg.host);
  await pushImages([v1], { client: c1, repository: "lf/inc", tag: "latest" });
  await c1.close();

  // A second checkout: new directory, empty store, new client; only the middle layer changed.
  const v2 = await makeImage({ dir: path.join(tmp, "inc-v2"), layers: layersV2() });
  assert.equal(v2.layers[0].digest, v1.layers[0].digest, "fixture layers are deterministic");
  assert.notEqual(v2.layers[1].digest, v1.layers[1].digest);
  const proxy = await startProxy(reg.url);
  try {
    const c2 = client(proxy.host);
    const res = await pushImages([v2], { client: c2, repository: "lf/inc", tag: "latest" });
    await c2.close();
    const uploaded = res.blobs.filter((b) => b.action === "uploaded").map((b) => b.digest).sort();
    assert.deepEqual(uploaded, [v2.layers[1].digest, v2.configDescriptor.digest].sort());
    // Bytes on the wire: exactly the changed layer, the config and the manifest.
    assert.equal(proxy.uploadedBytes(), v2.layers[1].size + v2.config.length + v2.manifest.length);
    const heads = proxy.requests.filter((r) => r.method === "HEAD");
    assert.equal(heads.length, 4, "one HEAD per blob");

    // Pushing the same image again is one HEAD per blob, a ping and the manifest.
    proxy.reset();
    const c3 = client(proxy.host);
    const again = await pushImages([v2], { client: c3, repository: "lf/inc", tag: "latest" });
    await c3.close();
    assert.equal(again.uploadedBytes, 0);
    assert.deepEqual(proxy.requests.map((r) => r.method).sort(), ["GET", "HEAD", "HEAD", "HEAD", "HEAD", "PUT"]);
  } finally {
    await proxy.stop();
  }
});

test("cross-repository mount from a recorded earlier push uploads nothing", { skip }, async () => {
  const image = await makeImage({ dir: path.join(tmp, "mount"), layers: layersV1().slice(0, 2) });
  const store = new Store(path.join(tmp, "store-mount"));
  const c = client(reg.host);
  await pushImages([image], { client: c, repository: "lf/mount-a", tag: "x", store });
  const res = await pushImages([image], { client: c, repository: "lf/mount-b", tag: "x", store });
  await c.close();
  assert.equal(res.uploadedBytes, 0);
  // Layers (and config) were not in lf/mount-b; they were mounted from lf/mount-a.
  assert.ok(res.blobs.every((b) => b.action === "mounted" && b.from === "lf/mount-a"), JSON.stringify(res.blobs));
});

test("base image: layers kept by reference, mounted when pushing to the same registry; pull writes a layout", { skip }, async () => {
  const baseImg = await makeImage({ dir: path.join(tmp, "base"), layers: layersV1().slice(0, 1), tag: "1" });
  const c = client(reg.host);
  await pushImages([baseImg], { client: c, repository: "lf/base", tag: "1" });
  const base = await loadBaseImage(`${reg.host}/lf/base:1@${baseImg.manifestDescriptor.digest}`);
  assert.equal(base.layers.length, 1);
  assert.equal(base.layers[0].digest, baseImg.layers[0].digest);
  assert.equal(base.config.rootfs.diff_ids[0], baseImg.layers[0].diffId);
  assert.equal(base.blobs.remoteRepository?.(base.layers[0]), `${reg.host}/lf/base`);

  // An image = base layer + one of ours, with blobs from both sources.
  const top = await makeImage({ dir: path.join(tmp, "top"), layers: [{ files: { "app/x": "x\n" } }] });
  const layers = [...base.layers, ...top.layers];
  const config = Buffer.from(stableJson({ ...base.config, rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) } }));
  const configDescriptor = { mediaType: MEDIA.config, digest: `sha256:${sha256Hex(config)}`, size: config.length };
  const manifest = Buffer.from(stableJson({ schemaVersion: 2, mediaType: MEDIA.manifest, config: configDescriptor, layers: layers.map(({ mediaType, digest, size }) => ({ mediaType, digest, size })) }));
  const ours = new Set(top.layers.map((l) => l.digest));
  const image: BuiltImage = {
    name: "lf/derived",
    tag: "1",
    manifest,
    manifestDescriptor: { mediaType: MEDIA.manifest, digest: `sha256:${sha256Hex(manifest)}`, size: manifest.length },
    config,
    configDescriptor,
    layers,
    blobs: {
      open: (d) => (ours.has(d.digest) ? top.blobs.open(d) : base.blobs.open(d)),
      remoteRepository: (d) => (ours.has(d.digest) ? undefined : base.blobs.remoteRepository?.(d)),
    },
  };
  const res = await pushImages([image], { client: c, repository: "lf/derived", tag: "1" });
  assert.deepEqual(res.blobs.find((b) => b.digest === base.layers[0].digest)?.action, "mounted");

  // The same image to another registry streams the base layer through.
  const reg2 = await startRegistry();
  try {
    const c2 = client(reg2.host);
    const res2 = await pushImages([image], { client: c2, repository: "lf/derived", tag: "1" });
    await c2.close();
    assert.equal(res2.blobs.find((b) => b.digest === base.layers[0].digest)?.action, "uploaded");
    assert.ok((await registryBlobDigests(reg2)).includes(base.layers[0].digest));
  } finally {
    await reg2.stop();
  }

  // Pull writes an OCI layout that skopeo reads and our reader turns back into the image.
  const dir = path.join(tmp, "pulled");
  const pulled = await pullImage(`${reg.host}/lf/derived:1`, dir);
  assert.equal(pulled.digest, image.manifestDescriptor.digest);
  const inspect = JSON.parse((await run("skopeo", ["inspect", `oci:${dir}:1`])).stdout) as { Digest: string };
  assert.equal(inspect.Digest, image.manifestDescriptor.digest);
  const [again] = await readLayoutImages(dir, "1");
  assert.equal(again.manifestDescriptor.digest, image.manifestDescriptor.digest);
  await c.close();
});

test("push --from a layout written by skopeo, and a multi-platform index", { skip }, async () => {
  const a = await makeImage({ dir: path.join(tmp, "plat-a"), layers: [{ files: { "a": "amd64\n" } }] });
  const b = await makeImage({ dir: path.join(tmp, "plat-b"), layers: [{ files: { "a": "arm64\n" } }] });
  const bCfg = JSON.parse(b.config.toString()) as Record<string, unknown>;
  const armConfig = Buffer.from(stableJson({ ...bCfg, architecture: "arm64" }));
  const armCfgDesc = { mediaType: MEDIA.config, digest: `sha256:${sha256Hex(armConfig)}`, size: armConfig.length };
  const armManifest = Buffer.from(stableJson({ schemaVersion: 2, mediaType: MEDIA.manifest, config: armCfgDesc, layers: b.layers.map(({ mediaType, digest, size }) => ({ mediaType, digest, size })) }));
  const arm: BuiltImage = {
    ...b,
    config: armConfig,
    configDescriptor: armCfgDesc,
    manifest: armManifest,
    manifestDescriptor: { mediaType: MEDIA.manifest, digest: `sha256:${sha256Hex(armManifest)}`, size: armManifest.length, platform: { os: "linux", architecture: "arm64" } },
    blobs: { open: async (d) => (d.digest === armCfgDesc.digest ? (await import("node:stream")).Readable.from([armConfig]) : b.blobs.open(d)) },
  };
  const c = client(reg.host);
  const res = await pushImages([a, arm], { client: c, repository: "lf/multi", tag: "m" });
  assert.equal(res.mediaType, MEDIA.index);
  const raw = JSON.parse((await run("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/lf/multi:m`])).stdout) as { manifests: Array<{ platform: { architecture: string } }> };
  assert.deepEqual(raw.manifests.map((m) => m.platform.architecture), ["amd64", "arm64"]);
  const armInspect = JSON.parse((await run("skopeo", ["inspect", "--override-arch", "arm64", "--tls-verify=false", `docker://${reg.host}/lf/multi:m`])).stdout) as { Digest: string; Architecture: string; Layers: string[] };
  assert.equal(armInspect.Digest, res.digest, "the tag points at the index");
  assert.equal(armInspect.Architecture, "arm64");
  assert.deepEqual(armInspect.Layers, b.layers.map((l) => l.digest));
  // A base image out of an index: the platform asked for, or an error naming the ones there are.
  const armBase = await loadBaseImage(`${reg.host}/lf/multi:m@${res.digest}`, { platform: "linux/arm64" });
  assert.equal(armBase.manifestDigest, arm.manifestDescriptor.digest);
  assert.equal(armBase.config.architecture, "arm64");
  await assert.rejects(loadBaseImage(`${reg.host}/lf/multi:m`, { platform: "linux/s390x" }), /has no image for linux\/s390x \(it has: linux\/amd64, linux\/arm64\)/);

  // skopeo writes a layout; we push it.
  const dir = path.join(tmp, "skopeo-layout");
  await run("skopeo", ["copy", "--src-tls-verify=false", `docker://${reg.host}/lf/app:v1`, `oci:${dir}:v1`]);
  const images = await readLayoutImages(dir, "v1");
  const res2 = await pushImages(images, { client: c, repository: "lf/from-layout", tag: "v1" });
  await c.close();
  const inspect = JSON.parse((await run("skopeo", ["inspect", "--tls-verify=false", `docker://${reg.host}/lf/from-layout:v1`])).stdout) as { Digest: string };
  assert.equal(inspect.Digest, res2.digest);
});

test("base image stored with Docker v2 media types: layers come back as their OCI equivalents", { skip }, async () => {
  const dir = path.join(tmp, "docker-base");
  const img = await makeImage({ dir, layers: [{ files: { "etc/d": "docker\n" } }], tag: "d" });
  await run("skopeo", ["copy", "--format", "v2s2", "--dest-tls-verify=false", `oci:${dir}:d`, `docker://${reg.host}/lf/docker-base:d`]);
  const raw = JSON.parse((await run("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/lf/docker-base:d`])).stdout) as { mediaType: string };
  assert.equal(raw.mediaType, MEDIA.dockerManifest);
  const warnings: string[] = [];
  const base = await loadBaseImage(`${reg.host}/lf/docker-base:d`, { logger: { info() {}, debug() {}, progress() {}, warn: (m) => warnings.push(m) } });
  assert.equal(base.layers[0].mediaType, MEDIA.layerGzip);
  assert.equal(base.layers[0].digest, img.layers[0].digest);
  assert.ok(warnings.some((w) => /not pinned by digest/.test(w)), "a tag-only base is warned about");
  await base.close();
  // A wrong pinned digest is refused.
  await assert.rejects(loadBaseImage(`${reg.host}/lf/docker-base:d@sha256:${"0".repeat(64)}`), /not found|digest/);
});

test("RegistryTarget: the registry as a generic ImageTarget (writeImage)", { skip }, async () => {
  const { RegistryTarget } = await import("../../src/registry/target.ts");
  const { writeImage } = await import("../../src/oci/layout.ts");
  const image = await makeImage({ dir: path.join(tmp, "target"), layers: [{ files: { "t/x": "target\n" } }] });
  const c = client(reg.host);
  const target = new RegistryTarget(c, "lf/target");
  await writeImage(target, image, "w");
  await target.commit();
  assert.ok(await target.hasBlob(image.layers[0]));
  const inspect = JSON.parse((await run("skopeo", ["inspect", "--tls-verify=false", `docker://${reg.host}/lf/target:w`])).stdout) as { Digest: string };
  assert.equal(inspect.Digest, image.manifestDescriptor.digest);
  await c.close();
});
