// The real pipeline: `layerfold build` then `layerfold push` (from the build
// record and the store), and the selling point: a second checkout with an
// empty store rebuilds, and its push uploads only the layer that changed.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { appendFile } from "node:fs/promises";
import path from "node:path";
import { startRegistry, startProxy, hasCommand, type RunningRegistry } from "../helpers/registry.ts";
import { helloExample, runCli, tempDir } from "../helpers/cli.ts";

const skip = !hasCommand("docker-registry") || !hasCommand("skopeo") || !hasCommand("gcc") ? "docker-registry, skopeo or gcc missing" : false;

interface BuildJson { manifestDigest: string; configDigest: string; layers: Array<{ name: string; digest: string; size: number }> }
interface PushJson { digest: string; uploadedBytes: number; blobs: Array<{ digest: string; action: string; size: number }> }

let reg: RunningRegistry;
let tmp: { dir: string; cleanup: () => Promise<void> };
before(async () => {
  if (skip) return;
  reg = await startRegistry();
  tmp = await tempDir("lf-build-push-");
});
after(async () => {
  if (skip) return;
  await reg.stop();
  await tmp.cleanup();
});

test("build, push from the build record; a second checkout with an empty store uploads only the changed layer", { skip }, async () => {
  // First checkout.
  const a = await helloExample(path.join(tmp.dir, "a"));
  const storeA = path.join(tmp.dir, "store-a");
  const b1 = await runCli(["build", "-C", a, "--store", storeA, "-o", "none", "--json"]);
  assert.equal(b1.code, 0, b1.stderr);
  const built1 = JSON.parse(b1.stdout) as BuildJson;
  const p1 = await runCli(["push", "-C", a, "--store", storeA, `${reg.host}/examples/hello`, "--json"]);
  assert.equal(p1.code, 0, p1.stderr);
  const pushed1 = JSON.parse(p1.stdout) as PushJson;
  assert.equal(pushed1.digest, built1.manifestDigest);
  const inspect = JSON.parse(execFileSync("skopeo", ["inspect", "--tls-verify=false", `docker://${reg.host}/examples/hello:1.0`], { encoding: "utf8" })) as { Digest: string; Layers: string[] };
  assert.equal(inspect.Digest, built1.manifestDigest);
  assert.deepEqual(inspect.Layers, built1.layers.map((l) => l.digest));

  // Second checkout: new directory, empty store; the app layer (between others) changes.
  const b = await helloExample(path.join(tmp.dir, "b"));
  await appendFile(path.join(b, "app", "share", "message.txt"), "changed in checkout b\n");
  const storeB = path.join(tmp.dir, "store-b");
  const b2 = await runCli(["build", "-C", b, "--store", storeB, "-o", "none", "--json"]);
  assert.equal(b2.code, 0, b2.stderr);
  const built2 = JSON.parse(b2.stdout) as BuildJson;
  const before = new Set(built1.layers.map((l) => l.digest));
  const changed = built2.layers.filter((l) => !before.has(l.digest));
  assert.deepEqual(changed.map((l) => l.name), ["app"], "only the app layer differs; the others are bit-identical rebuilds");

  const proxy = await startProxy(reg.url);
  try {
    const p2 = await runCli(["push", "-C", b, "--store", storeB, `${proxy.host}/examples/hello`, "--json"]);
    assert.equal(p2.code, 0, p2.stderr);
    const pushed2 = JSON.parse(p2.stdout) as PushJson;
    const uploaded = pushed2.blobs.filter((x) => x.action === "uploaded").map((x) => x.digest).sort();
    assert.deepEqual(uploaded, [changed[0].digest, built2.configDigest].sort());
    assert.equal(pushed2.blobs.filter((x) => x.action === "exists").length, built2.layers.length - 1);
    const manifestBytes = proxy.requests.filter((r) => r.method === "PUT" && r.url.includes("/manifests/")).reduce((s, r) => s + r.bodyBytes, 0);
    const configSize = pushed2.blobs.find((x) => x.digest === built2.configDigest)!.size;
    assert.equal(proxy.uploadedBytes(), changed[0].size + configSize + manifestBytes, "bytes on the wire: the changed layer, the config and the manifest");
    assert.equal(proxy.requests.filter((r) => r.method === "HEAD").length, built2.layers.length + 1, "one HEAD per blob");
  } finally {
    await proxy.stop();
  }
});

test("a base image's layers are read from the registry once: the next local build takes them from the store", { skip }, async () => {
  // The base: examples/hello, pushed.
  const base = await helloExample(path.join(tmp.dir, "base"));
  const storeBase = path.join(tmp.dir, "store-base");
  const bb = await runCli(["build", "-C", base, "--store", storeBase, "-o", "none", "--json"]);
  assert.equal(bb.code, 0, bb.stderr);
  const baseBuilt = JSON.parse(bb.stdout) as BuildJson;
  const bp = await runCli(["push", "-C", base, "--store", storeBase, `${reg.host}/base/hello:1`]);
  assert.equal(bp.code, 0, bp.stderr);

  // An image on top of it, through a proxy that counts what the registry sends.
  const proxy = await startProxy(reg.url);
  try {
    const dir = path.join(tmp.dir, "derived");
    const { mkdir, writeFile } = await import("node:fs/promises");
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, "layerfold.config.ts"), `import { defineImage } from ${JSON.stringify(path.join(path.dirname(new URL(import.meta.url).pathname), "../../src/index.ts"))};
export default defineImage({
  name: "derived/app", tag: "1",
  from: "${proxy.host}/base/hello:1@${baseBuilt.manifestDigest}",
  layers: [{ name: "app", inline: [{ path: "/opt/app/VERSION", text: "1\\n" }] }],
});
`);
    const store = path.join(tmp.dir, "store-derived");
    const layerGets = () => proxy.requests.filter((r) => r.method === "GET" && baseBuilt.layers.some((l) => r.url.endsWith(`/blobs/${l.digest}`)));
    const first = await runCli(["build", "-C", dir, "--store", store, "-o", `oci:${path.join(tmp.dir, "derived-1")}`, "--json"]);
    assert.equal(first.code, 0, first.stderr);
    const built = JSON.parse(first.stdout) as BuildJson;
    assert.equal(layerGets().length, baseBuilt.layers.length, "every base layer read once");
    proxy.reset();
    const second = await runCli(["build", "-C", dir, "--store", store, "-o", `oci:${path.join(tmp.dir, "derived-2")}`, "--json"]);
    assert.equal(second.code, 0, second.stderr);
    assert.equal((JSON.parse(second.stdout) as BuildJson).manifestDigest, built.manifestDigest);
    assert.deepEqual(layerGets(), [], "no base layer read again");
    const inspect = JSON.parse(execFileSync("skopeo", ["inspect", `oci:${path.join(tmp.dir, "derived-2")}`], { encoding: "utf8" })) as { Digest: string; Layers: string[] };
    assert.equal(inspect.Digest, built.manifestDigest);
    assert.deepEqual(inspect.Layers.slice(0, baseBuilt.layers.length), baseBuilt.layers.map((l) => l.digest));
    execFileSync("skopeo", ["copy", `oci:${path.join(tmp.dir, "derived-2")}`, `dir:${path.join(tmp.dir, "derived-dir")}`], { stdio: "pipe" }); // re-verifies every blob
  } finally {
    await proxy.stop();
  }
});
