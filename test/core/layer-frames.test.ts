// zstd layers in frames: a rebuilt layer copies the frames of unchanged
// packages from the earlier blob, and still comes out byte for byte what a
// build from an empty store makes.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { buildLayer, layerKey, type LayerInput } from "../../src/layer/layer.ts";
import { MIN_FRAME, ZstdFrameCutter } from "../../src/layer/frames.ts";
import { withParents } from "../../src/fold/plan.ts";
import type { LayerEntry } from "../../src/layer/tar-writer.ts";
import { Store } from "../../src/store/store.ts";
import { helloExample, runCli, tempDir } from "../helpers/cli.ts";
import { havePodman, podman } from "../helpers/engine.ts";
import { randomish } from "../helpers/bytes.ts";

/** A package tree with one file of `bytes` bytes (half random, so zstd has work to do). */
async function pkgTree(store: Store, name: string, bytes: number) {
  const half = bytes >> 1;
  const content = Buffer.concat([createHash("sha512").update(name).digest().subarray(0, 1), Buffer.alloc(half, name.charCodeAt(0)), randomish(name, bytes - half - 1)]);
  const { tree } = await store.ensureTree(`tree-${name}`, `test:${name}`, async (w) => {
    await w.addFile(`opt/venv/site-packages/${name}/data.bin`, content);
    await w.addFile(`opt/venv/site-packages/${name}.dist-info/RECORD`, `${name}/data.bin\n`);
  });
  return tree.manifest.entries.map((entry): LayerEntry => ({ entry, rootDir: tree.rootDir, packageId: `test:${name}`, treeKey: tree.key }));
}


async function layerOf(store: Store, pkgs: Array<[string, number]>): Promise<LayerInput> {
  const entries: LayerEntry[] = [];
  for (const [name, bytes] of pkgs) entries.push(...(await pkgTree(store, name, bytes)));
  return { name: "l", packages: pkgs.map(([n]) => `test:${n}`), entries: withParents(entries), compression: "zstd", mtime: 0 };
}

const big = MIN_FRAME + (1 << 20);

test("zstd frames: a layer with one package more copies the others' frames and equals a cold build", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const warm = new Store(path.join(dir, "warm"));
    const v1 = await layerOf(warm, [["alpha", big], ["beta", big], ["gamma", big]]);
    const r1 = await buildLayer(warm, v1, layerKey(v1));
    assert.equal(r1.frames, 3, "one frame per package of at least MIN_FRAME bytes");
    assert.equal(r1.framesReused, 0);

    // "zeta" sorts last and starts a frame (the one before is full); gamma's frame held the
    // end-of-archive blocks in v1, so it is new: alpha's and beta's are copied.
    const v2 = await layerOf(warm, [["alpha", big], ["beta", big], ["gamma", big], ["zeta", 4096]]);
    const r2 = await buildLayer(warm, v2, layerKey(v2));
    assert.equal(r2.frames, 4);
    assert.equal(r2.framesReused, 2);

    const cold = new Store(path.join(dir, "cold"));
    const v2cold = await layerOf(cold, [["alpha", big], ["beta", big], ["gamma", big], ["zeta", 4096]]);
    const r2cold = await buildLayer(cold, v2cold, layerKey(v2cold));
    assert.equal(r2cold.framesReused, 0);
    assert.equal(r2.digest, r2cold.digest, "reused frames give the same blob as compressing everything");
    assert.equal(r2.diffId, r2cold.diffId);

    // The blob is one valid zstd stream whose content hashes to the diffID.
    const tar = execFileSync("zstd", ["-dc", warm.blobPath(r2.digest.slice(7))], { maxBuffer: 64 << 20 });
    assert.equal(`sha256:${createHash("sha256").update(tar).digest("hex")}`, r2.diffId);

    // A damaged earlier blob is never copied from: its frame is compressed again.
    const third = new Store(path.join(dir, "warm"));
    const blob = warm.blobPath(r2.digest.slice(7));
    const bytes = await readFile(blob);
    bytes[100] ^= 0xff;
    await chmod(blob, 0o644);
    await writeFile(blob, bytes);
    const v3 = await layerOf(third, [["alpha", big], ["beta", big], ["gamma", big], ["zeta", 4096], ["zz", 10]]);
    const r3 = await buildLayer(third, v3, layerKey(v3));
    assert.equal(r3.framesReused, 2, "beta's and gamma's frames are copied; alpha's, whose copy is damaged, is compressed again");
    const cold3 = new Store(path.join(dir, "cold3"));
    const v3cold = await layerOf(cold3, [["alpha", big], ["beta", big], ["gamma", big], ["zeta", 4096], ["zz", 10]]);
    assert.equal(r3.digest, (await buildLayer(cold3, v3cold, layerKey(v3cold))).digest);
    assert.deepEqual(await readdir(warm.tmpDir), [], "no temp files or FIFOs left");
  } finally {
    await cleanup();
  }
});

test("zstd frames: a failing zstd fails the layer cleanly, with its message", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    // A zstd that reports the real version (the layer key asks) and then fails mid-way. It runs in a
    // child process: the zstd program is looked up once per process.
    const bin = path.join(dir, "bin");
    await mkdir(bin);
    const real = execFileSync("sh", ["-c", "command -v zstd"], { encoding: "utf8" }).trim();
    await writeFile(path.join(bin, "zstd"), `#!/bin/sh\ncase "$1" in -V) exec ${real} -V;; esac\nhead -c 1000 >/dev/null\necho "zstd: simulated failure" >&2\nexit 1\n`, { mode: 0o755 });
    const script = path.join(dir, "build.mts");
    const src = path.resolve(import.meta.dirname, "../../src");
    await writeFile(script, `
      import { readdir } from "node:fs/promises";
      import { Store } from ${JSON.stringify(`${src}/store/store.ts`)};
      import { buildLayer, layerKey } from ${JSON.stringify(`${src}/layer/layer.ts`)};
      import { withParents } from ${JSON.stringify(`${src}/fold/plan.ts`)};
      const store = new Store(${JSON.stringify(path.join(dir, "s"))});
      const entries = [];
      for (const [name, bytes] of [["alpha", ${big}], ["beta", 4096]]) {
        const { tree } = await store.ensureTree("tree-" + name, "test:" + name, async (w) => { await w.addFile("opt/" + name, Buffer.alloc(bytes, 1)); });
        entries.push(...tree.manifest.entries.map((entry) => ({ entry, rootDir: tree.rootDir, packageId: "test:" + name, treeKey: tree.key })));
      }
      const input = { name: "l", packages: [], entries: withParents(entries), compression: "zstd", mtime: 0 };
      const key = layerKey(input);
      try { await buildLayer(store, input, key); console.log("built"); } catch (err) { console.log("error: " + err.message); }
      console.log("tmp: " + JSON.stringify(await readdir(store.tmpDir)));
      console.log("record: " + JSON.stringify(await store.getRecord("layers", key)));
    `);
    const out = execFileSync(process.execPath, ["--import", "tsx", script], { encoding: "utf8", env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    assert.match(out, /error: zstd compression failed \(exit 1\): zstd: simulated failure/);
    assert.match(out, /tmp: \[\]/, "no temp files or FIFOs left");
    assert.match(out, /record: undefined/, "no layer record");
  } finally {
    await cleanup();
  }
});

test("zstd frames: the cutter finds every frame end, whatever the chunking", () => {
  const parts = [Buffer.alloc(0), Buffer.from("x"), randomish("a", 300_000), Buffer.alloc(2_000_000, 3)];
  const frames = parts.map((p) => execFileSync("zstd", ["-3", "-q", "-c"], { input: p }));
  const stream = Buffer.concat(frames);
  const expected: number[] = [];
  frames.reduce((at, f) => (expected.push(at + f.length), at + f.length), 0);
  for (const size of [1, 2, 3, 7, 4096, stream.length]) {
    const cutter = new ZstdFrameCutter();
    const ends: number[] = [];
    for (let at = 0; at < stream.length; at += size) for (const e of cutter.cut(stream.subarray(at, at + size))) ends.push(at + e);
    assert.deepEqual(ends, expected, `chunks of ${size}`);
    assert.ok(cutter.atBoundary);
  }
  assert.throws(() => new ZstdFrameCutter().cut(Buffer.from("not zstd")), /not a zstd frame/);
});

test("zstd frames: podman runs an image whose layer is several frames", { skip: !havePodman() && "podman not installed" }, async () => {
  const { dir, cleanup } = await tempDir();
  const pm = await podman();
  try {
    const example = await helloExample(path.join(dir, "ex"));
    // The app layer gets a second package after a first one of more than MIN_FRAME bytes: two frames.
    await writeFile(path.join(example, "app", "big.bin"), randomish("big", MIN_FRAME + 4096));
    await mkdir(path.join(example, "data"));
    await writeFile(path.join(example, "data", "small.txt"), "second frame\n");
    const cfg = path.join(example, "layerfold.config.ts");
    await writeFile(cfg, (await readFile(cfg, "utf8")).replace('files: [{ src: "./app", dest: "/opt/hello"', 'files: [{ src: "./data", dest: "/opt/zz-data" }, { src: "./app", dest: "/opt/hello"'));
    // podman wants a lowercase path for oci: references.
    const layout = path.join(pm.root, "layout");
    const built = await runCli(["build", "-C", example, "--store", path.join(dir, "store"), "-o", `oci:${layout}`, "--json", "-q"]);
    assert.equal(built.code, 0, built.stderr);
    const app = (JSON.parse(built.stdout) as { layers: Array<{ name: string; digest: string }> }).layers.find((l) => l.name === "app")!;
    const cutter = new ZstdFrameCutter();
    assert.equal(cutter.cut(await readFile(path.join(layout, "blobs", "sha256", app.digest.slice(7)))).length, 2, "the app layer is two zstd frames");
    // podman unpacks every layer and checks it against its diffID.
    const out = await pm.exec(["run", "--rm", "--network", "none", "--entrypoint", "/usr/bin/hello", `oci:${layout}`, "x"]);
    assert.match(out.stdout, /hello from layerfold/);
  } finally {
    await pm.cleanup();
    await cleanup();
  }
});
