// zstd:chunked layers: each file's content is its own zstd frame, the TOC and
// tar-split locate and describe them, the diffID is the plain tar's; podman
// (containers/storage with partial pulls) fetches only what it lacks.

import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { CHUNKED_ANNOTATIONS, FILE_CHUNK } from "../../src/layer/chunked.ts";
import { Crc64 } from "../../src/layer/crc64.ts";
import { buildLayer, layerKey, type LayerInput, type LayerRecord } from "../../src/layer/layer.ts";
import { MIN_FRAME } from "../../src/layer/frames.ts";
import { withParents } from "../../src/fold/plan.ts";
import type { LayerEntry } from "../../src/layer/tar-writer.ts";
import type { LayerCompression } from "../../src/layer/compress.ts";
import { Store } from "../../src/store/store.ts";
import { helloExample, runCli, tempDir } from "../helpers/cli.ts";
import { havePodman, podman } from "../helpers/engine.ts";
import { randomish } from "../helpers/bytes.ts";
import { hasCommand, startProxy, startRegistry } from "../helpers/registry.ts";

const run = promisify(execFile);
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const unzstd = (b: Uint8Array) => execFileSync("zstd", ["-dc"], { input: b, maxBuffer: 256 << 20 });


/** A package tree with a bit of everything a layer holds. */
async function pkg(store: Store, name: string, bigBytes: number): Promise<LayerEntry[]> {
  const { tree } = await store.ensureTree(`tree-${name}`, `test:${name}`, async (w) => {
    if (bigBytes) await w.addFile(`opt/${name}/big.bin`, Buffer.concat([Buffer.alloc(bigBytes >> 1, 7), randomish(name, bigBytes - (bigBytes >> 1))]));
    await w.addFile(`opt/${name}/a.py`, `print(${JSON.stringify(name)})\n`.repeat(50));
    await w.addFile(`opt/${name}/empty`, "");
    await w.addFile(`opt/${name}/${"long-directory-name/".repeat(8)}deep.txt`, "a path over 100 bytes: pax header\n", { uid: 1000, gid: 1000 });
    await w.addFile(`opt/${name}/attr.bin`, "x", { xattrs: { "user.note": Buffer.from("hi").toString("base64") } });
    w.addSymlink(`opt/${name}/link`, "a.py");
    w.addHardlink(`opt/${name}/hard`, `opt/${name}/a.py`);
  });
  return tree.manifest.entries.map((entry) => ({ entry, rootDir: tree.rootDir, packageId: `test:${name}`, treeKey: tree.key }));
}

async function layerOf(store: Store, pkgs: Array<[string, number]>, compression: LayerCompression): Promise<LayerInput> {
  const entries: LayerEntry[] = [];
  for (const [name, bytes] of pkgs) entries.push(...(await pkg(store, name, bytes)));
  return { name: "l", packages: pkgs.map(([n]) => `test:${n}`), entries: withParents(entries), compression, mtime: 1_700_000_000 };
}

interface TocEntry { type: string; name: string; size?: number; digest?: string; offset?: number; endOffset?: number; chunkSize?: number; chunkOffset?: number; chunkDigest?: string; linkName?: string; mode?: number; uid?: number; xattrs?: Record<string, string>; modtime?: string }

/** Read a chunked blob the way containers/storage does: annotations -> TOC -> frames; tar-split -> tar. */
function readChunked(blob: Buffer, annotations: Record<string, string>) {
  const [off, len, unc, type] = annotations[CHUNKED_ANNOTATIONS.tocPosition]!.split(":").map(Number) as [number, number, number, number];
  assert.equal(type, 1);
  assert.equal(annotations[CHUNKED_ANNOTATIONS.legacyTocPosition], annotations[CHUNKED_ANNOTATIONS.tocPosition]);
  assert.equal(annotations[CHUNKED_ANNOTATIONS.tocChecksum], `sha256:${sha(blob.subarray(off, off + len))}`);
  assert.equal(annotations[CHUNKED_ANNOTATIONS.legacyTocChecksum], annotations[CHUNKED_ANNOTATIONS.tocChecksum]);
  assert.equal(blob.readUInt32LE(off - 8), 0x184d2a50, "the TOC is a skippable frame");
  const tocJson = unzstd(blob.subarray(off, off + len));
  assert.equal(tocJson.length, unc);
  const toc = JSON.parse(tocJson.toString()) as { version: number; entries: TocEntry[]; tarSplitDigest: string };
  const [tsOff, tsLen, tsUnc] = annotations[CHUNKED_ANNOTATIONS.tarSplitPosition]!.split(":").map(Number) as [number, number, number];
  assert.equal(toc.tarSplitDigest, `sha256:${sha(blob.subarray(tsOff, tsOff + tsLen))}`, "the TOC names the compressed tar-split");
  const tarSplit = unzstd(blob.subarray(tsOff, tsOff + tsLen));
  assert.equal(tarSplit.length, tsUnc);
  // The 64-byte footer (a skippable frame) repeats both positions.
  const footer = blob.subarray(blob.length - 64);
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6].map((i) => Number(footer.readBigUInt64LE(i * 8))), [off, len, unc, 1, tsOff, tsLen, tsUnc]);
  assert.equal(footer.subarray(56).toString("latin1"), "GNUlInUx");
  return { toc, tarSplit };
}

test("zstd:chunked: CRC-64 is Go's crc64 with the ISO table", () => {
  // The catalogued check value of CRC-64/GO-ISO, and the same over uneven pieces.
  assert.equal(new Crc64().update(Buffer.from("123456789")).digest().toString("hex"), "b90956c775a41001");
  const data = randomish("crc", 100_003);
  const whole = new Crc64().update(data).digest().toString("hex");
  const c = new Crc64();
  for (let at = 0; at < data.length; at += 777) c.update(data.subarray(at, at + 777));
  assert.equal(c.digest().toString("hex"), whole);
});

test("zstd:chunked: each file is its own frame(s), the TOC and tar-split describe the tar, the diffID is the plain tar's", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = new Store(path.join(dir, "s"));
    const pkgs: Array<[string, number]> = [["alpha", FILE_CHUNK + (1 << 20)], ["beta", 0]];
    const chunkedIn = await layerOf(store, pkgs, "zstd:chunked");
    const rec = await buildLayer(store, chunkedIn, layerKey(chunkedIn));
    const plainIn = await layerOf(store, pkgs, "none");
    const plain = await buildLayer(store, plainIn, layerKey(plainIn));
    assert.equal(rec.diffId, plain.diffId, "same tar as an uncompressed layer of the same entries");
    assert.equal(rec.mediaType, "application/vnd.oci.image.layer.v1.tar+zstd");
    const blob = await readFile(store.blobPath(rec.digest.slice(7)));
    const tar = unzstd(blob);
    assert.equal(`sha256:${sha(tar)}`, rec.diffId, "any zstd reader gets the tar (skippable frames are skipped)");

    const { toc, tarSplit } = readChunked(blob, rec.annotations!);
    const byName = new Map(toc.entries.filter((e) => e.type !== "chunk").map((e) => [e.name, e]));
    // Every file's frames decompress alone to exactly its content.
    const contents = new Map<string, Buffer>();
    for (const e of toc.entries) {
      if (e.type !== "reg" || !e.size) continue;
      const content = unzstd(blob.subarray(e.offset!, e.endOffset!));
      assert.equal(content.length, e.size, e.name);
      assert.equal(`sha256:${sha(content)}`, e.digest, e.name);
      contents.set(e.name, content);
    }
    // The big file is cut in FILE_CHUNK chunks, each frame fetchable and checked alone.
    const big = byName.get("opt/alpha/big.bin")!;
    const chunks = toc.entries.filter((e) => e.type === "chunk" && e.name === big.name);
    assert.equal(chunks.length, 1);
    assert.equal(big.chunkSize, FILE_CHUNK);
    const bigContent = contents.get(big.name)!;
    assert.equal(big.chunkDigest, `sha256:${sha(bigContent.subarray(0, FILE_CHUNK))}`);
    assert.equal(chunks[0]!.chunkOffset, FILE_CHUNK);
    assert.equal(chunks[0]!.chunkSize, 1 << 20);
    assert.equal(`sha256:${sha(unzstd(blob.subarray(chunks[0]!.offset!, chunks[0]!.endOffset!)))}`, chunks[0]!.chunkDigest);
    assert.deepEqual(unzstd(blob.subarray(big.offset!, chunks[0]!.offset!)), bigContent.subarray(0, FILE_CHUNK));
    // Metadata as the tar has it.
    assert.equal(byName.get("opt/alpha/")!.type, "dir");
    assert.equal(byName.get("opt/alpha/link")!.linkName, "a.py");
    assert.equal(byName.get("opt/alpha/hard")!.type, "hardlink");
    assert.equal(byName.get("opt/alpha/hard")!.linkName, "opt/alpha/a.py");
    assert.equal(byName.get(`opt/alpha/${"long-directory-name/".repeat(8)}deep.txt`)!.uid, 1000);
    assert.deepEqual(byName.get("opt/alpha/attr.bin")!.xattrs, { "user.note": Buffer.from("hi").toString("base64") });
    assert.equal(byName.get("opt/alpha/empty")!.size, undefined);
    assert.equal(byName.get("opt/alpha/a.py")!.modtime, "2023-11-14T22:13:20Z");
    // tar-split + the files' contents rebuild the tar byte for byte, and its CRCs are the contents'.
    const parts: Buffer[] = [];
    for (const line of tarSplit.toString().trim().split("\n")) {
      const j = JSON.parse(line) as { type: number; name?: string; size?: number; payload: string | null };
      if (j.type === 2) parts.push(Buffer.from(j.payload!, "base64"));
      else if (j.size) {
        const content = contents.get(j.name!)!;
        assert.equal(j.payload, new Crc64().update(content).digest().toString("base64"), j.name);
        parts.push(content);
      } else assert.equal(j.payload, null);
    }
    assert.ok(Buffer.concat(parts).equals(tar), "tar-split rebuilds the tar");
  } finally {
    await cleanup();
  }
});

test("zstd:chunked: a layer of thousands of small files (several zstd batches) is cut right", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = new Store(path.join(dir, "s"));
    // 6,000 files: over 12,000 pieces, so batches fill in the middle of the tar writer's chunks
    // while later writes are in flight.
    const { tree } = await store.ensureTree("tree-many", "test:many", async (w) => {
      for (let i = 0; i < 6000; i++) await w.addFile(`opt/many/d${i % 50}/f${i}.py`, `x = ${i}\n`.repeat(1 + (i % 40)));
    });
    const entries = withParents(tree.manifest.entries.map((entry) => ({ entry, rootDir: tree.rootDir, packageId: "test:many", treeKey: tree.key })));
    const input: LayerInput = { name: "l", packages: ["test:many"], entries, compression: "zstd:chunked", mtime: 0 };
    const rec = await buildLayer(store, input, layerKey(input));
    const blob = await readFile(store.blobPath(rec.digest.slice(7)));
    const tar = unzstd(blob);
    assert.equal(`sha256:${sha(tar)}`, rec.diffId);
    const { toc, tarSplit } = readChunked(blob, rec.annotations!);
    // Every file's frame range, in TOC order, decompressed in one go (concatenated frames are one
    // stream) and cut by the sizes: each piece must be exactly that file.
    const files = toc.entries.filter((e) => e.type === "reg" && e.size);
    const all = unzstd(Buffer.concat(files.map((e) => blob.subarray(e.offset!, e.endOffset!))));
    const contents = new Map<string, Buffer>();
    let at = 0;
    for (const e of files) {
      const content = all.subarray(at, (at += e.size!));
      assert.equal(`sha256:${sha(content)}`, e.digest, e.name);
      contents.set(e.name, content);
    }
    assert.equal(at, all.length);
    assert.equal(contents.size, 6000);
    const parts: Buffer[] = [];
    for (const line of tarSplit.toString().trim().split("\n")) {
      const j = JSON.parse(line) as { type: number; name?: string; size?: number; payload: string | null };
      parts.push(j.type === 2 ? Buffer.from(j.payload!, "base64") : j.size ? contents.get(j.name!)! : Buffer.alloc(0));
    }
    assert.ok(Buffer.concat(parts).equals(tar), "tar-split rebuilds the tar");
  } finally {
    await cleanup();
  }
});

test("zstd:chunked: same bytes from every build; a rebuilt layer copies unchanged segments", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const big = MIN_FRAME + (1 << 20);
    const warm = new Store(path.join(dir, "warm"));
    const v1 = await layerOf(warm, [["alpha", big], ["beta", big], ["gamma", big]], "zstd:chunked");
    const r1 = await buildLayer(warm, v1, layerKey(v1));
    assert.equal(r1.framesReused, 0);
    const v2 = await layerOf(warm, [["alpha", big], ["beta", big], ["gamma", big], ["zeta", 0]], "zstd:chunked");
    const r2 = await buildLayer(warm, v2, layerKey(v2));
    assert.equal(r2.framesReused, 2, "alpha's and beta's segments are copied");
    const cold = new Store(path.join(dir, "cold"));
    const v2cold = await layerOf(cold, [["alpha", big], ["beta", big], ["gamma", big], ["zeta", 0]], "zstd:chunked");
    const r2cold: LayerRecord = await buildLayer(cold, v2cold, layerKey(v2cold));
    assert.equal(r2cold.framesReused, 0);
    assert.equal(r2.digest, r2cold.digest, "reused segments give the same blob as compressing everything");
    assert.deepEqual(r2.annotations, r2cold.annotations);
    readChunked(await readFile(warm.blobPath(r2.digest.slice(7))), r2.annotations!);

    // A damaged earlier blob is never copied from: its segment is compressed again.
    const blob = warm.blobPath(r2.digest.slice(7));
    const bytes = await readFile(blob);
    bytes[100] ^= 0xff;
    await chmod(blob, 0o644);
    await writeFile(blob, bytes);
    const v3 = await layerOf(warm, [["alpha", big], ["beta", big], ["gamma", big], ["zeta", 0], ["zz", 0]], "zstd:chunked");
    const r3 = await buildLayer(warm, v3, layerKey(v3));
    assert.equal(r3.framesReused, 2, "beta's and gamma's segments are copied; alpha's, whose copy is damaged, is compressed again");
    const v3cold = await layerOf(cold, [["alpha", big], ["beta", big], ["gamma", big], ["zeta", 0], ["zz", 0]], "zstd:chunked");
    assert.equal(r3.digest, (await buildLayer(cold, v3cold, layerKey(v3cold))).digest);

    // A record that lies about where its frames end (same total, same bytes) is not used: the
    // TOC would point into the middle of frames. The layer comes out as from an empty store.
    const kind = path.join(warm.root, "zstd-chunked-segments");
    for (const f of await readdir(kind)) {
      const rec = JSON.parse(await readFile(path.join(kind, f), "utf8")) as { frames: number[] };
      if (rec.frames.length < 2) continue;
      rec.frames[0]! += 1;
      rec.frames[1]! -= 1;
      await writeFile(path.join(kind, f), JSON.stringify(rec));
    }
    const v4 = await layerOf(warm, [["alpha", big], ["beta", big], ["gamma", big], ["zeta", 0], ["zz", 0], ["zzz", 0]], "zstd:chunked");
    const r4 = await buildLayer(warm, v4, layerKey(v4));
    assert.equal(r4.framesReused, 0, "no lying record is used");
    const v4cold = await layerOf(cold, [["alpha", big], ["beta", big], ["gamma", big], ["zeta", 0], ["zz", 0], ["zzz", 0]], "zstd:chunked");
    assert.equal(r4.digest, (await buildLayer(cold, v4cold, layerKey(v4cold))).digest);
    assert.deepEqual(await readdir(warm.tmpDir), [], "no temp files or FIFOs left");
  } finally {
    await cleanup();
  }
});

test("zstd:chunked: the TOC says what skopeo's own zstd:chunked writer says of the same layers", { skip: !hasCommand("skopeo") && "skopeo missing" }, async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const example = await helloWithData(path.join(dir, "ex"), { "big.bin": randomish("big", 3 << 20), "small.txt": Buffer.from("small\n") });
    const build = async (compression: string, out: string) => {
      const r = await runCli(["build", "-C", example, "--store", path.join(dir, "store"), "--compression", compression, "-o", `oci:${out}`, "-q"]);
      assert.equal(r.code, 0, r.stderr);
    };
    await build("zstd:chunked", path.join(dir, "ours"));
    await build("gzip", path.join(dir, "gz"));
    await run("skopeo", ["copy", "--dest-compress-format", "zstd:chunked", `oci:${path.join(dir, "gz")}`, `oci:${path.join(dir, "theirs")}`]);
    const layers = async (layout: string) => {
      const blob = (d: string) => readFile(path.join(layout, "blobs", "sha256", d.slice(7)));
      const index = JSON.parse(await readFile(path.join(layout, "index.json"), "utf8")) as { manifests: Array<{ digest: string }> };
      const m = JSON.parse((await blob(index.manifests[0]!.digest)).toString()) as { config: { digest: string }; layers: Array<{ digest: string; annotations: Record<string, string> }> };
      const config = JSON.parse((await blob(m.config.digest)).toString()) as { rootfs: { diff_ids: string[] } };
      return { diffIds: config.rootfs.diff_ids, tocs: await Promise.all(m.layers.map(async (l) => {
        // skopeo 1.9 writes the io.containers.* keys only: read the position from whichever is there.
        const pos = (l.annotations[CHUNKED_ANNOTATIONS.tocPosition] ?? l.annotations[CHUNKED_ANNOTATIONS.legacyTocPosition])!.split(":").map(Number) as [number, number];
        const toc = JSON.parse(unzstd((await blob(l.digest)).subarray(pos[0], pos[0] + pos[1])).toString()) as { entries: TocEntry[] };
        return toc.entries.filter((e) => e.type !== "chunk").map((e) => JSON.stringify([e.type, e.name, e.linkName ?? "", e.mode ?? 0, e.size ?? 0, e.uid ?? 0, e.digest ?? "", Date.parse(e.modtime ?? "")]));
      })) };
    };
    const ours = await layers(path.join(dir, "ours"));
    const theirs = await layers(path.join(dir, "theirs"));
    assert.deepEqual(ours.diffIds, theirs.diffIds, "the same tars");
    assert.deepEqual(ours.tocs, theirs.tocs, "the same entries, metadata and file digests");
  } finally {
    await cleanup();
  }
});

test("zstd:chunked: a failing zstd fails the layer cleanly, with its message, and leaves nothing behind", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    // A zstd that reports the real version (the layer key asks) and fails on everything else. In a
    // child process: the zstd program is looked up once per process.
    const bin = path.join(dir, "bin");
    await mkdir(bin);
    const real = execFileSync("sh", ["-c", "command -v zstd"], { encoding: "utf8" }).trim();
    await writeFile(path.join(bin, "zstd"), `#!/bin/sh\ncase "$1" in -V) exec ${real} -V;; esac\necho "zstd: simulated failure" >&2\nexit 1\n`, { mode: 0o755 });
    const src = path.resolve(import.meta.dirname, "../../src");
    const script = path.join(dir, "build.mts");
    await writeFile(script, `
      import { readdir } from "node:fs/promises";
      import { Store } from ${JSON.stringify(`${src}/store/store.ts`)};
      import { buildLayer, layerKey } from ${JSON.stringify(`${src}/layer/layer.ts`)};
      import { withParents } from ${JSON.stringify(`${src}/fold/plan.ts`)};
      const store = new Store(${JSON.stringify(path.join(dir, "s"))});
      const entries = [];
      // A file over 1 MiB goes through the FIFOs, the small ones through --filelist batches.
      for (const [name, bytes] of [["alpha", 3 << 20], ["beta", 4096]]) {
        const { tree } = await store.ensureTree("tree-" + name, "test:" + name, async (w) => { await w.addFile("opt/" + name, Buffer.alloc(bytes, 1)); });
        entries.push(...tree.manifest.entries.map((entry) => ({ entry, rootDir: tree.rootDir, packageId: "test:" + name, treeKey: tree.key })));
      }
      const input = { name: "l", packages: [], entries: withParents(entries), compression: "zstd:chunked", mtime: 0 };
      const key = layerKey(input);
      try { await buildLayer(store, input, key); console.log("built"); } catch (err) { console.log("error: " + err.message); }
      const mine = (d) => readdir(d).then((xs) => xs.filter((x) => x.startsWith("layerfold-chunked-" + process.pid + "-")), () => []);
      console.log("scratch: " + JSON.stringify([...(await mine("/dev/shm")), ...(await mine(store.tmpDir))]));
      console.log("tmp: " + JSON.stringify(await readdir(store.tmpDir).catch(() => [])));
      console.log("record: " + JSON.stringify(await store.getRecord("layers", key)));
    `);
    const out = execFileSync(process.execPath, ["--import", "tsx", script], { encoding: "utf8", timeout: 60_000, env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    assert.match(out, /error: zstd compression failed \(exit 1\): zstd: simulated failure/);
    assert.match(out, /scratch: \[\]/, "no scratch files or FIFOs left");
    assert.match(out, /tmp: \[\]/, "no temp blob left");
    assert.match(out, /record: undefined/, "no layer record");
  } finally {
    await cleanup();
  }
});

/** The app layer of the hello example with an extra file set, as a config edit: `data` files go to /opt/data. */
async function helloWithData(dir: string, files: Record<string, Buffer>): Promise<string> {
  const example = await helloExample(dir);
  await mkdir(path.join(example, "data"));
  for (const [name, content] of Object.entries(files)) await writeFile(path.join(example, "data", name), content);
  const cfg = path.join(example, "layerfold.config.ts");
  await writeFile(cfg, (await readFile(cfg, "utf8")).replace('files: [{ src: "./app", dest: "/opt/hello"', 'files: [{ src: "./data", dest: "/opt/data" }, { src: "./app", dest: "/opt/hello"'));
  return example;
}

test("zstd:chunked: podman pulls it partially, runs it, and fetches only the changed file of an update", { skip: (!havePodman() || !hasCommand("docker-registry") || !hasCommand("skopeo")) && "podman, docker-registry or skopeo missing" }, async (t) => {
  const { dir, cleanup } = await tempDir();
  const reg = await startRegistry();
  const proxy = await startProxy(reg.url);
  const pm = await podman({ partialPulls: true });
  try {
    // huge.bin is over FILE_CHUNK: two chunk frames, which podman must put together.
    const files = { "big.bin": randomish("big", 3 << 20), "huge.bin": Buffer.concat([Buffer.alloc(FILE_CHUNK, 5), randomish("huge", 1 << 20)]), "changes.bin": randomish("v1", 200_000), "same.txt": Buffer.from("unchanged\n".repeat(1000)) };
    const store = path.join(dir, "store");
    const buildPush = async (example: string, tag: string) => {
      const built = await runCli(["build", "-C", example, "--store", store, "--compression", "zstd:chunked", "-o", "none", "--json", "-q"]);
      assert.equal(built.code, 0, built.stderr);
      const pushed = await runCli(["push", "-C", example, "--store", store, `${reg.host}/hello:${tag}`, "-q"]);
      assert.equal(pushed.code, 0, pushed.stderr);
      return JSON.parse(built.stdout) as { manifestDigest: string; layers: Array<{ name: string; digest: string; size: number }> };
    };
    const v1 = await buildPush(await helloWithData(path.join(dir, "v1"), files), "1");
    const pull = async (tag: string) => {
      proxy.reset();
      const out = await pm.exec(["--log-level", "debug", "pull", "--tls-verify=false", `${proxy.host}/hello:${tag}`]);
      return out.stderr;
    };
    const log1 = await pull("1");
    for (const l of v1.layers) assert.match(log1, new RegExp(`Retrieved partial blob ${l.digest}`), `layer ${l.name} pulled partially`);
    const ran = await pm.exec(["run", "--rm", "--network", "none", `${proxy.host}/hello:1`, "x"]);
    assert.match(ran.stdout, /hello from layerfold/);

    // The update: one file of the app layer changed.
    const v2 = await buildPush(await helloWithData(path.join(dir, "v2"), { ...files, "changes.bin": randomish("v2", 200_000) }), "2");
    const app1 = v1.layers.find((l) => l.name === "app")!;
    const app2 = v2.layers.find((l) => l.name === "app")!;
    assert.notEqual(app1.digest, app2.digest);
    const log2 = await pull("2");
    assert.match(log2, new RegExp(`Retrieved partial blob ${app2.digest}`));
    const fetched = proxy.requests.filter((r) => r.url.endsWith(app2.digest)).reduce((n, r) => n + r.responseBytes, 0);
    // What it may fetch: the TOC (its range) and the changed file's frame; not big.bin or same.txt.
    const manifest = JSON.parse((await run("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/hello:2`])).stdout) as { layers: Array<{ digest: string; annotations: Record<string, string> }> };
    const tocLen = Number(manifest.layers.find((l) => l.digest === app2.digest)!.annotations[CHUNKED_ANNOTATIONS.tocPosition]!.split(":")[1]);
    assert.ok(fetched <= tocLen + 2 * 200_100 + 4096, `fetched ${fetched} bytes of the ${app2.size}-byte app layer (TOC ${tocLen})`);
    assert.ok(fetched < app2.size / 10, `fetched ${fetched} of ${app2.size}`);
    // `layerfold diff` foresees it: the TOC and tar-split (which podman 4.3 does not fetch) and the changed file's frames.
    const diff = await runCli(["diff", "--store", store, v1.manifestDigest, v2.manifestDigest, "--json"]);
    assert.equal(diff.code, 0, diff.stderr);
    const estimate = (JSON.parse(diff.stdout) as { partialPullBytes?: number }).partialPullBytes!;
    const tarSplitLen = Number(manifest.layers.find((l) => l.digest === app2.digest)!.annotations[CHUNKED_ANNOTATIONS.tarSplitPosition]!.split(":")[1]);
    assert.ok(fetched <= estimate && estimate <= fetched + tarSplitLen + 4096, `diff says ${estimate} bytes, podman fetched ${fetched} (tar-split ${tarSplitLen})`);
    t.diagnostic(`update pull: ${fetched} bytes fetched of the ${app2.size}-byte changed layer (TOC ${tocLen} bytes, changed file 200000 bytes uncompressed)`);
    // The hello image has no shell: run its own entrypoint, and look at the files through podman's mount.
    const ran3 = await pm.exec(["run", "--rm", "--network", "none", `${proxy.host}/hello:2`, "x"]);
    assert.match(ran3.stdout, /hello from layerfold/);
    const mount = (await pm.exec(["image", "mount", `${proxy.host}/hello:2`])).stdout.trim();
    assert.equal(sha(await readFile(path.join(mount, "opt/data/changes.bin"))), sha(randomish("v2", 200_000)), "the changed file has its new content");
    assert.equal(sha(await readFile(path.join(mount, "opt/data/big.bin"))), sha(files["big.bin"]), "an unchanged file, not fetched again, is whole");
    assert.equal(sha(await readFile(path.join(mount, "opt/data/huge.bin"))), sha(files["huge.bin"]), "a file in two chunk frames is whole");
    await pm.exec(["image", "unmount", `${proxy.host}/hello:2`]);
    // skopeo copies the update, verifying every blob's digest.
    await run("skopeo", ["copy", "--src-tls-verify=false", `docker://${reg.host}/hello:2`, `oci:${path.join(dir, "copy")}`]);
  } finally {
    await pm.exec(["rmi", "-a", "-f"]).catch(() => {});
    await pm.cleanup();
    await proxy.stop();
    await reg.stop();
    await cleanup();
  }
});
