// Base images are part of the image everywhere (issue 16): for an image built
// `from:` a base in a real registry, inspect lists the base layers, check audits
// them, run sees them (from the build and from its OCI layout, in the store that
// built it); and a runner whose build took every layer from a shared cache, so
// installed nothing, can still check and run the image, from the layer blobs.

import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { namespaceProblem } from "../../src/runtime/sandbox.ts";
import { repoRoot, runCli, tempDir } from "../helpers/cli.ts";
import { hasCommand, startRegistry, type RunningRegistry } from "../helpers/registry.ts";
import { makeImage, shellLayerFiles } from "../registry/image-fixture.ts";

const skip = !hasCommand("docker-registry") ? "docker-registry not installed" : false;
const noRun = namespaceProblem();

let tmp: { dir: string; cleanup: () => Promise<void> };
let reg: RunningRegistry;
let app: string;
before(async () => {
  if (skip) return;
  tmp = await tempDir("lf-base-");
  reg = await startRegistry();
  const layout = path.join(tmp.dir, "base-layout");
  const base = await makeImage({ dir: layout, tag: "1", layers: [{ files: shellLayerFiles() }, { files: { "etc/base-release": "echo base 1\n" } }] });
  const push = await runCli(["push", "--from", layout, `${reg.host}/base/sh:1`, "--store", path.join(tmp.dir, "push-store")]);
  assert.equal(push.code, 0, push.stderr);
  app = path.join(tmp.dir, "app");
  await mkdir(app);
  await writeFile(path.join(app, "layerfold.config.ts"), `import { defineImage } from ${JSON.stringify(path.join(repoRoot, "src", "index.ts"))};
export default defineImage({
  name: "t/on-base", tag: "1",
  from: "${reg.host}/base/sh:1@${base.manifestDescriptor.digest}",
  layers: [{ name: "app", inline: [{ path: "/opt/app/hello.sh", text: "echo hi from the app\\n" }] }],
  config: { cmd: ["/bin/sh", "-c", ". /opt/app/hello.sh; . /etc/base-release"] },
});
`);
});
after(async () => {
  if (skip) return;
  await reg.stop();
  await tmp.cleanup();
});

const store = (name: string) => path.join(tmp.dir, name);

test("inspect, check and run of a build see its base image's layers", { skip }, async () => {
  const b = await runCli(["build", "-C", app, "--store", store("s1"), "-o", `oci:${tmp.dir}/out`]);
  assert.equal(b.code, 0, b.stderr);
  const inspect = await runCli(["inspect", "-C", app, "--store", store("s1"), "--json"]);
  assert.equal(inspect.code, 0, inspect.stderr);
  const layers = JSON.parse(inspect.stdout).layers as Array<{ name: string; base?: boolean }>;
  assert.deepEqual(layers.map((l) => [l.name, l.base ?? false]), [["base 1", true], ["base 2", true], ["app", false]]);
  const check = await runCli(["check", "-C", app, "--store", store("s1"), "--no-imports", "--no-libs"]);
  assert.equal(check.code, 0, check.stdout + check.stderr);
  assert.match(check.stdout, /ok {4}duplication: \d+ paths in 3 layers, none in two/);
});

test("run of a build from a base, and of its OCI layout in the store that built it, sees the base", { skip: skip || noRun }, async () => {
  const run = await runCli(["run", "-C", app, "--store", store("s1")]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout, "hi from the app\nbase 1\n");
  const fromLayout = await runCli(["run", "--layout", `${tmp.dir}/out`, "--store", store("s1")]);
  assert.equal(fromLayout.code, 0, fromLayout.stderr);
  assert.equal(fromLayout.stdout, "hi from the app\nbase 1\n");
});

test("a runner that built nothing (every layer from --cache) checks and runs the image from the layer blobs", { skip }, async () => {
  const cache = `${reg.host}/on-base-cache`;
  const a = await runCli(["build", "-C", app, "--store", store("runner-a"), "-o", "none", "--cache", cache]);
  assert.equal(a.code, 0, a.stderr);
  const b = await runCli(["build", "-C", app, "--store", store("runner-b"), "-o", "none", "--cache", cache, "--json"]);
  assert.equal(b.code, 0, b.stderr);
  assert.ok((JSON.parse(b.stdout).layers as Array<{ cached?: string }>).every((l) => l.cached), "every layer from the cache");
  const check = await runCli(["check", "-C", app, "--store", store("runner-b"), "--no-imports", "--no-libs"]);
  assert.equal(check.code, 0, check.stdout + check.stderr);
  assert.match(check.stdout, /ok {4}duplication: \d+ paths in 3 layers, none in two/);
  if (noRun) return;
  const run = await runCli(["run", "-C", app, "--store", store("runner-b")]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout, "hi from the app\nbase 1\n");
});
