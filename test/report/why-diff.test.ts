// why and diff: unit checks on a hand-made model, then the real CLI on two
// builds of examples/hello (one source file changed between them), compared
// as OCI layouts, as store builds and through a real registry.

import assert from "node:assert/strict";
import { appendFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { diffImages, versionChange, type DiffSide } from "../../src/report/diff.ts";
import { duplication } from "../../src/report/model.ts";
import { closeNames, why } from "../../src/report/why.ts";
import { helloExample, runCli, tempDir } from "../helpers/cli.ts";
import { hasCommand, startRegistry } from "../helpers/registry.ts";
import { sampleModel } from "./fixtures.ts";

test("why: chain from the layer root, needed-by, name forms, close names when absent", () => {
  const m = sampleModel();
  const [n] = why(m, "numpy");
  assert.equal(n!.layer, "torch");
  assert.equal(n!.layerIndex, 2);
  assert.deepEqual(n!.chain.map((c) => c.id), ["py:torch", "py:numpy"]);
  assert.deepEqual(n!.neededBy, ["py:torch"]);
  // PEP 503 spelling differences and full ids both find the package.
  assert.equal(why(m, "Typing.Extensions")[0]!.id, "py:typing-extensions");
  assert.equal(why(m, "deb:libc6")[0]!.chain.map((c) => c.id).join(">"), "deb:base-files>deb:libc6");
  assert.throws(() => why(m, "libc7"), (e: Error & { code?: string }) => e.code === "E_NOT_FOUND" && /did you mean deb:libc6/.test(e.message));
  assert.throws(() => why(m, "py:libc6"), /no package "py:libc6"/);
  assert.deepEqual(closeNames("nump", m.packages.map((p) => p.id)), ["py:numpy"]);
});

test("duplication: cumulative is the sum of prefix sums", () => {
  assert.deepEqual(duplication([10, 20, 30]), { folded: 60, cumulative: 10 + 30 + 60, avoided: 40 });
  assert.deepEqual(duplication([]), { folded: 0, cumulative: 0, avoided: 0 });
});

test("diff: layers added/removed/changed, packages added/removed/upgraded/moved, bytes to push", () => {
  const side = (label: string, layers: Array<[string, string, number]>, pkgs?: Record<string, [string, string]>): DiffSide => ({
    label,
    source: "store",
    manifestDigest: `sha256:${label.repeat(64).slice(0, 64)}`,
    layers: layers.map(([name, digest, size]) => ({ name, digest: `sha256:${digest.repeat(64)}`, size, uncompressedSize: size * 2 })),
    packages: pkgs && new Map(Object.entries(pkgs).map(([id, [version, layer]]) => [id, { version, layer }])),
  });
  const a = side("a", [["base", "1", 100], ["torch", "2", 1000], ["old", "3", 50]], {
    "deb:libc6": ["2.36-9", "base"],
    "py:torch": ["2.13.0", "torch"],
    "py:numpy": ["2.1.0", "torch"],
    "py:gone": ["1.0", "old"],
    "deb:tzdata": ["2024a-0", "base"],
  });
  const b = side("b", [["base", "1", 100], ["torch", "4", 1100], ["app", "5", 70], ["app2", "2", 1000]], {
    "deb:libc6": ["2.36-9", "base"],
    "py:torch": ["2.14.1", "torch"],
    "py:numpy": ["2.0.2", "torch"],
    "py:new": ["0.1", "app"],
    "deb:tzdata": ["2024a-0", "app"],
  });
  const d = diffImages(a, b);
  assert.deepEqual(d.layers.map((l) => `${l.name}:${l.status}`), ["base:unchanged", "torch:changed", "old:removed", "app:added", "app2:added"]);
  // app2 has the digest A's torch layer had: the registry has it, nothing to push.
  assert.equal(d.pushBytes, 1100 + 70);
  assert.equal(d.pushLayers, 2);
  const torch = d.layers.find((l) => l.name === "torch")!;
  assert.deepEqual(torch.packages.upgraded, [
    { id: "py:numpy", from: "2.1.0", to: "2.0.2", change: "downgraded" },
    { id: "py:torch", from: "2.13.0", to: "2.14.1", change: "upgraded" },
  ]);
  const app = d.layers.find((l) => l.name === "app")!;
  assert.deepEqual(app.packages.added, [{ id: "py:new", to: "0.1" }]);
  assert.deepEqual(app.packages.upgraded, [{ id: "deb:tzdata", from: "2024a-0", to: "2024a-0", change: "moved", fromLayer: "base" }]);
  assert.deepEqual(d.layers.find((l) => l.name === "old")!.packages.removed, [{ id: "py:gone", from: "1.0" }]);
  assert.deepEqual(d.summary, { layersAdded: 2, layersRemoved: 1, layersChanged: 1, packagesAdded: 1, packagesRemoved: 1, packagesUpgraded: 2 });
  assert.equal(versionChange("deb:x", "1:1.0-1", "2.0-1"), "downgraded"); // the epoch wins
  assert.equal(versionChange("deb:x", "1.0-1", "1.0-1+deb12u1"), "upgraded");
  assert.equal(versionChange("file:x", "abc", "def"), "changed");
});

let tmp: { dir: string; cleanup: () => Promise<void> };
let example: string;
let store: string;
const IMAGE = "layerfold-examples/hello:1.0";

before(async () => {
  tmp = await tempDir("lf-report-diff-");
  example = await helloExample(tmp.dir);
  store = path.join(tmp.dir, "store");
  const a = await runCli(["build", "-C", example, "--store", store, "-o", `oci:${tmp.dir}/a`, "-q"]);
  assert.equal(a.code, 0, a.stderr);
  await appendFile(path.join(example, "app", "share", "message.txt"), "one more line\n");
  const b = await runCli(["build", "-C", example, "--store", store, "-o", `oci:${tmp.dir}/b`, "-q"]);
  assert.equal(b.code, 0, b.stderr);
});
after(async () => tmp?.cleanup());

interface DiffJson {
  identical: boolean;
  packagesCompared: boolean;
  pushBytes: number;
  pushLayers: number;
  layers: Array<{ name: string; status: string; pushBytes: number; b?: { size: number; digest: string }; packages: { upgraded: Array<{ id: string }> } }>;
  b: { manifestDigest: string };
}

test("layerfold why on a real build: layer, root, and a clear error with suggestions", async () => {
  const r = await runCli(["why", "--store", store, "--image", IMAGE, "hello", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { matches: Array<{ id: string; layer: string; chain: Array<{ id: string }>; bytes: number }> };
  assert.equal(j.matches[0]!.id, "file:hello");
  assert.equal(j.matches[0]!.layer, "bin");
  assert.deepEqual(j.matches[0]!.chain.map((c) => c.id), ["file:hello"]);
  assert.ok(j.matches[0]!.bytes > 100_000, "the static binary's size comes from its tree");
  // A file path: which package ships it (merged-/usr form accepted), or files with a similar name.
  const file = await runCli(["why", "--store", store, "--image", IMAGE, "/bin/hello", "--json"]);
  assert.equal(file.code, 0, file.stderr);
  const fj = JSON.parse(file.stdout) as { matches: Array<{ id: string; path: string; layer: string }> };
  assert.deepEqual(fj.matches.map((m) => [m.id, m.path, m.layer]), [["file:hello", "usr/bin/hello", "bin"]]);
  const nofile = await runCli(["why", "--store", store, "--image", IMAGE, "/opt/hello/share/message"]);
  assert.equal(nofile.code, 14, "E_NOT_FOUND");
  assert.match(nofile.stderr, /no package in .* ships \/opt\/hello\/share\/message; files with a similar name: \/opt\/hello\/share\/message\.txt \(file:\/opt\/hello\)/);
  const miss = await runCli(["why", "--store", store, "--image", IMAGE, "helo"]);
  assert.equal(miss.code, 14, "E_NOT_FOUND");
  assert.match(miss.stderr, /error\[E_NOT_FOUND\]: no package "helo".*did you mean file:hello/);
});

test("layerfold diff: two layouts with build records, one changed layer, bytes to push = that layer", async () => {
  const r = await runCli(["diff", "--store", store, `${tmp.dir}/a`, `oci:${tmp.dir}/b`, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const d = JSON.parse(r.stdout) as DiffJson;
  assert.equal(d.identical, false);
  assert.equal(d.packagesCompared, true);
  assert.deepEqual(d.layers.map((l) => `${l.name}:${l.status}`), ["base:unchanged", "bin:unchanged", "vendor-docs:unchanged", "app:changed", "entrypoint:unchanged"]);
  const app = d.layers.find((l) => l.name === "app")!;
  assert.equal(d.pushBytes, app.b!.size);
  assert.equal(d.pushLayers, 1);
  assert.ok(app.packages.upgraded.some((p) => p.id === "file:/opt/hello"));
  // Without build records (empty store), layers are still matched by their manifest annotation.
  const bare = await runCli(["diff", "--store", path.join(tmp.dir, "empty-store"), `${tmp.dir}/a`, `${tmp.dir}/b`, "--json"]);
  assert.equal(bare.code, 0, bare.stderr);
  const bd = JSON.parse(bare.stdout) as DiffJson;
  assert.equal(bd.packagesCompared, false);
  assert.deepEqual(bd.layers.map((l) => l.status), d.layers.map((l) => l.status));
  assert.equal(bd.pushBytes, d.pushBytes);
  // Same image on both sides: nothing to push. Store build by name:tag vs its layout.
  const same = JSON.parse((await runCli(["diff", "--store", store, IMAGE, `${tmp.dir}/b`, "--json"])).stdout) as DiffJson;
  assert.equal(same.identical, true);
  assert.equal(same.pushBytes, 0);
  const text = await runCli(["diff", "--store", store, `${tmp.dir}/a`, `${tmp.dir}/b`]);
  assert.match(text.stdout, /~ app\s+changed/);
  assert.match(text.stdout, /to push: \d+ B in 1 layer/);
  const bad = await runCli(["diff", "--store", store, "sha256:" + "0".repeat(64), `${tmp.dir}/b`]);
  assert.equal(bad.code, 14, "E_NOT_FOUND");
  assert.match(bad.stderr, /no build with manifest digest sha256:0{64} in the store/);
});

test("layerfold diff against a registry image behind Basic auth (manifest and config only)", { skip: !(hasCommand("docker-registry") && hasCommand("htpasswd")) && "docker-registry or htpasswd not installed" }, async () => {
  const reg = await startRegistry({ htpasswd: { ci: "s3cret-pass" } });
  const creds = { LAYERFOLD_REGISTRY_USER: "ci", LAYERFOLD_REGISTRY_PASSWORD: "s3cret-pass" };
  try {
    const push = await runCli(["push", "--from", `${tmp.dir}/a`, `${reg.host}/hello:a`, "-q", "--store", `${tmp.dir}/push-store`], { env: creds });
    assert.equal(push.code, 0, push.stderr);
    const denied = await runCli(["diff", "--store", path.join(tmp.dir, "empty-store"), `${reg.host}/hello:a`, `${tmp.dir}/b`], { env: { LAYERFOLD_REGISTRY_USER: "", LAYERFOLD_REGISTRY_PASSWORD: "", DOCKER_CONFIG: path.join(tmp.dir, "no-docker-config") } });
    assert.equal(denied.code, 12);
    assert.match(denied.stderr, /wants credentials/);
    // A (registry) -> B (layout): only the app layer is new.
    const r = await runCli(["diff", "--store", path.join(tmp.dir, "empty-store"), `${reg.host}/hello:a`, `${tmp.dir}/b`, "--json"], { env: creds });
    assert.equal(r.code, 0, r.stderr);
    const d = JSON.parse(r.stdout) as DiffJson;
    assert.equal(d.pushLayers, 1);
    assert.equal(d.layers.find((l) => l.status === "changed")?.name, "app");
    assert.ok(!r.stderr.includes("s3cret-pass"));
    const missing = await runCli(["diff", `${reg.host}/hello:nope`, `${tmp.dir}/b`], { env: creds });
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /error\[E_REGISTRY\]: manifest .*hello:nope not found/);
  } finally {
    await reg.stop();
  }
});
