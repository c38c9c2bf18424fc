// End to end on examples/hello: reproducible digests in two empty stores,
// real clients (skopeo, umoci, podman) accept every output, one changed
// source rebuilds exactly one layer.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFile, writeFile, readdir } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { helloExample, runCli, tempDir } from "../helpers/cli.ts";
import { havePodman, podman } from "../helpers/engine.ts";
import { hasCommand } from "../helpers/registry.ts";

let tmp: { dir: string; cleanup: () => Promise<void> };
let example: string;
before(async () => {
  tmp = await tempDir();
  example = await helloExample(tmp.dir);
});
after(async () => tmp.cleanup());

const build = async (store: string, output: string, extra: string[] = []) => {
  const r = await runCli(["build", "-C", example, "--store", path.join(tmp.dir, store), "-o", output, "--json", ...extra]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { manifestDigest: string; layers: Array<{ name: string; reused: boolean; digest: string; mediaType: string }> };
};

test("two clean builds in two empty stores give byte-identical manifests", async () => {
  const a = await build("store-a", `oci:${tmp.dir}/out-a`);
  const b = await build("store-b", `oci:${tmp.dir}/out-b`);
  assert.equal(a.manifestDigest, b.manifestDigest);
  assert.equal(a.layers.length, 5);
  const blob = (d: string, dig: string) => readFile(path.join(tmp.dir, d, "blobs", "sha256", dig.slice(7)));
  assert.deepEqual(await blob("out-a", a.manifestDigest), await blob("out-b", b.manifestDigest));
  assert.ok(a.layers.every((l) => !l.reused && l.mediaType.endsWith("+zstd")));
});

test("skopeo reads the OCI layout and re-verifies every digest on copy", { skip: !hasCommand("skopeo") && "skopeo not installed" }, async () => {
  const r = await build("store-a", `oci:${tmp.dir}/out-sk`);
  const info = JSON.parse(execFileSync("skopeo", ["inspect", `oci:${tmp.dir}/out-sk`], { encoding: "utf8" }));
  assert.equal(info.Digest, r.manifestDigest);
  assert.deepEqual(info.Layers, r.layers.map((l) => l.digest));
  assert.ok(info.Env.includes("GREETING=hello"));
  execFileSync("skopeo", ["copy", `oci:${tmp.dir}/out-sk`, `dir:${tmp.dir}/sk-dir`], { stdio: "pipe" });
  const files = await readdir(`${tmp.dir}/sk-dir`);
  for (const l of r.layers) assert.ok(files.includes(l.digest.slice(7)), `layer ${l.name} copied`);
  const arch = await build("store-a", `oci-archive:${tmp.dir}/hello.oci.tar`);
  const ai = JSON.parse(execFileSync("skopeo", ["inspect", `oci-archive:${tmp.dir}/hello.oci.tar`], { encoding: "utf8" }));
  assert.equal(ai.Digest, arch.manifestDigest);
});

test("umoci unpacks the layout (gzip layers; umoci 0.4 has no zstd)", { skip: !hasCommand("umoci") && "umoci not installed" }, async () => {
  await build("store-a", `oci:${tmp.dir}/out-gz`, ["--compression", "gzip"]);
  execFileSync("umoci", ["unpack", "--image", `${tmp.dir}/out-gz:1.0`, `${tmp.dir}/bundle`], { stdio: "pipe" });
  const rootfs = `${tmp.dir}/bundle/rootfs`;
  assert.equal(await readFile(`${rootfs}/opt/hello/share/message.txt`, "utf8"), "folded layers, reproducible digests\n");
  const { statSync } = await import("node:fs");
  assert.equal(statSync(`${rootfs}/opt/hello/bin/greet.sh`).mode & 0o777, 0o755, "perms override applied");
  assert.equal(await readFile(`${rootfs}/usr/share/doc/hello/docs/LICENSE`, "utf8"), "license text\n");
  const cfg = JSON.parse(await readFile(`${tmp.dir}/bundle/config.json`, "utf8"));
  assert.deepEqual(cfg.process.args, ["/usr/bin/hello"]);
  assert.equal(cfg.process.cwd, "/opt/hello");
});

test("podman loads the docker-archive and runs it; podman runs the OCI layout", { skip: !havePodman() && "podman not installed" }, async () => {
  await build("store-a", `docker-archive:${tmp.dir}/hello.docker.tar`);
  const pm = await podman();
  try {
    const load = await pm.exec(["load", "-i", `${tmp.dir}/hello.docker.tar`]);
    assert.match(load.stdout, /layerfold-examples\/hello:1.0/);
    const out = await pm.exec(["run", "--rm", "--network", "none", "layerfold-examples/hello:1.0", "x"]);
    assert.equal(out.stdout, "hello from layerfold: folded layers, reproducible digests\narg: x\n");
    // podman wants a lowercase path for oci: references.
    const lower = path.join(pm.root, "layout");
    await build("store-a", `oci:${lower}`);
    const fromLayout = await pm.exec(["run", "--rm", "--network", "none", `oci:${lower}`]);
    assert.match(fromLayout.stdout, /hello from layerfold/);
  } finally {
    await pm.cleanup();
  }
});

test("changing one source rebuilds exactly that layer; an unchanged build does no layer work", async () => {
  const first = await build("store-c", `oci:${tmp.dir}/out-c`);
  const again = await build("store-c", `oci:${tmp.dir}/out-c`);
  assert.ok(again.layers.every((l) => l.reused), "nothing changed: every layer reused");
  assert.equal(again.manifestDigest, first.manifestDigest);
  await writeFile(path.join(example, "app", "share", "message.txt"), "changed\n");
  try {
    const changed = await build("store-c", `oci:${tmp.dir}/out-c`);
    assert.deepEqual(changed.layers.filter((l) => !l.reused).map((l) => l.name), ["app"]);
    assert.notEqual(changed.manifestDigest, first.manifestDigest);
    const inspect = await runCli(["inspect", "-C", example, "--store", path.join(tmp.dir, "store-c"), "--json"]);
    const info = JSON.parse(inspect.stdout);
    assert.deepEqual(info.layers.map((l: { reused: boolean }) => l.reused), [true, true, true, false, true]);
    assert.deepEqual(info.layers[3].packages, ["file:/opt/hello"]);
  } finally {
    await writeFile(path.join(example, "app", "share", "message.txt"), "folded layers, reproducible digests\n");
  }
});

test("SOURCE_DATE_EPOCH sets every timestamp", async () => {
  const r = await runCli(["build", "-C", example, "--store", path.join(tmp.dir, "store-a"), "-o", `oci:${tmp.dir}/out-epoch`, "--json"], { env: { SOURCE_DATE_EPOCH: "1700000000" } });
  assert.equal(r.code, 0, r.stderr);
  const m = JSON.parse(r.stdout);
  const manifest = JSON.parse(await readFile(`${tmp.dir}/out-epoch/blobs/sha256/${m.manifestDigest.slice(7)}`, "utf8"));
  const config = JSON.parse(await readFile(`${tmp.dir}/out-epoch/blobs/sha256/${manifest.config.digest.slice(7)}`, "utf8"));
  assert.equal(config.created, "2023-11-14T22:13:20.000Z");
  assert.ok(config.history.every((h: { created: string }) => h.created === config.created));
});

test("a base image (from:) that cannot be pulled fails the build before any package is installed", async () => {
  const dir = await helloExample(path.join(tmp.dir, "bad-from"));
  const cfg = path.join(dir, "layerfold.config.ts");
  // Port 9 on loopback: nothing listens, the connection is refused at once.
  await writeFile(cfg, (await readFile(cfg, "utf8")).replace(`tag: "1.0",`, `tag: "1.0",\n  from: "127.0.0.1:9/nope/base:1",`));
  const store = path.join(tmp.dir, "store-bad-from");
  const r = await runCli(["build", "-C", dir, "--store", store, "-o", "none"]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /127\.0\.0\.1:9/);
  assert.doesNotMatch(r.stdout + r.stderr, /^install /m, "no package was installed");
  assert.deepEqual(await readdir(path.join(store, "trees")).catch(() => []), [], "no tree in the store");
});
