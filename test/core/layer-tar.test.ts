import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createReadStream } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { readTar, extractTar } from "../../src/archive/tar.ts";
import { openDecompressed } from "../../src/archive/decompress.ts";
import { buildLayer, layerKey } from "../../src/layer/layer.ts";
import { withParents } from "../../src/fold/plan.ts";
import type { LayerEntry } from "../../src/layer/tar-writer.ts";
import { Store } from "../../src/store/store.ts";
import { UnsafeArchiveError, CorruptStoreError } from "../../src/errors.ts";
import { repoRoot, tempDir } from "../helpers/cli.ts";
import { appendFile, mkdir, readFile, writeFile } from "node:fs/promises";

const CAP = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
const LONG = `usr/lib/${"very-long-directory-name/".repeat(8)}${"f".repeat(120)}.txt`;

async function sampleTree(store: Store, key = "t1") {
  return store.ensureTree(key, "test:sample", async (w) => {
    await w.addDir("tmp", { mode: 0o1777 });
    await w.addFile("usr/bin/ping", "ELF", { mode: 0o755, xattrs: { "security.capability": CAP.toString("base64") } });
    await w.addFile(LONG, "long\n");
    await w.addFile("etc/data", Buffer.alloc(3 * 1024 * 1024, 7));
    w.addSymlink("usr/bin/ping6", "ping");
    w.addHardlink("usr/bin/ping-hard", "usr/bin/ping");
    await w.addFile("opt/owned", "x", { uid: 1000, gid: 1000 });
  });
}

function entriesOf(tree: Awaited<ReturnType<typeof sampleTree>>["tree"]): LayerEntry[] {
  return withParents(tree.manifest.entries.map((entry) => ({ entry, rootDir: tree.rootDir, packageId: "test:sample", treeKey: tree.key })));
}

test("layer tar: deterministic, sorted, parents, links, owners, byte-exact xattrs, long names", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const records = [];
    for (const s of ["a", "b"]) {
      const store = new Store(path.join(dir, s));
      const { tree } = await sampleTree(store);
      const input = { name: "l", packages: ["test:sample"], entries: entriesOf(tree), compression: "zstd" as const, mtime: 1700000000 };
      records.push({ store, rec: await buildLayer(store, input, layerKey(input)) });
    }
    assert.equal(records[0]!.rec.digest, records[1]!.rec.digest, "same inputs, same compressed digest");
    assert.equal(records[0]!.rec.diffId, records[1]!.rec.diffId);
    const { store, rec } = records[0]!;
    const seen: Array<{ name: string; type: string; mode: number; uid: number; linkname: string; cap?: Buffer }> = [];
    const stream = await openDecompressed(store.blobPath(rec.digest.slice(7)), "layer");
    for await (const { header, body } of readTar(stream, "layer")) {
      seen.push({ name: header.name, type: header.type, mode: header.mode, uid: header.uid, linkname: header.linkname, cap: header.pax.get("SCHILY.xattr.security.capability") });
      await body.skip(0);
    }
    const names = seen.map((s) => s.name);
    assert.deepEqual(names, [...names].sort(), "entries sorted");
    assert.ok(names.includes("usr/") && names.includes("usr/bin/") && names.includes("etc/"), "explicit parent directories");
    assert.ok(names.includes(LONG), "long name kept through pax");
    const ping = seen.find((s) => s.name === "usr/bin/ping")!;
    assert.deepEqual(ping.cap, CAP, "security.capability byte-exact");
    assert.equal(ping.mode, 0o755);
    assert.equal(seen.find((s) => s.name === "tmp/")!.mode, 0o1777);
    assert.deepEqual(seen.find((s) => s.name === "usr/bin/ping6"), { name: "usr/bin/ping6", type: "2", mode: 0o777, uid: 0, linkname: "ping", cap: undefined });
    assert.equal(seen.find((s) => s.name === "usr/bin/ping-hard")!.type, "1");
    assert.equal(seen.find((s) => s.name === "opt/owned")!.uid, 1000);
    // GNU tar agrees, and sees the fixed mtime.
    const listing = execFileSync("sh", ["-c", `zstd -dc ${store.blobPath(rec.digest.slice(7))} | tar --full-time -tvf -`], { encoding: "utf8" });
    assert.match(listing, /2023-11-14 22:13:20 usr\/bin\/ping -> |2023-11-14 22:13:20 usr\/bin\/ping6 -> ping/);
    assert.doesNotMatch(listing, /root\/root/, "no user or group names");
  } finally {
    await cleanup();
  }
});

test("a corrupted store file is detected while streaming, never published", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = new Store(dir);
    const { tree } = await sampleTree(store);
    const data = path.join(tree.rootDir, "etc/data");
    const original = await readFile(data);
    const input = { name: "l", packages: ["test:sample"], entries: entriesOf(tree), compression: "none" as const, mtime: 0 };
    // Same size, other bytes: caught by the hash in a later process (a fresh Store),
    // which did not write the tree itself.
    await writeFile(data, Buffer.from(original.map((b) => b ^ 1)));
    await assert.rejects(buildLayer(new Store(dir), input, layerKey(input)), CorruptStoreError);
    // A size change is caught even in the process that wrote the tree.
    await appendFile(data, "tamper");
    await assert.rejects(buildLayer(store, input, layerKey(input)), CorruptStoreError);
    assert.equal(await store.getRecord("layers", layerKey(input)), undefined, "no record for a failed layer");
    // A tree.json edited behind our back is dropped on read: an entry changed in place
    // (its digest left as it was), or the whole file.
    const treeJson = path.join(store.treeDir(tree.key), "tree.json");
    const text = await readFile(treeJson, "utf8");
    assert.deepEqual((await new Store(dir).getTree(tree.key))?.manifest, tree.manifest, "an intact tree.json reads back as written");
    assert.match(text, /"mode":493/);
    await writeFile(treeJson, text.replace('"mode":493', '"mode":511'));
    assert.equal(await new Store(dir).getTree(tree.key), undefined);
    await sampleTree(store);
    await writeFile(path.join(store.treeDir(tree.key), "tree.json"), "{}");
    assert.equal(await store.getTree(tree.key), undefined);
  } finally {
    await cleanup();
  }
});

test("tree writer refuses traversal, escaping symlinks and writes through symlinks", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = new Store(dir);
    const attempt = (fill: Parameters<Store["ensureTree"]>[2], symlinks: "contained" | "image" = "contained") =>
      store.ensureTree(`k${Math.random()}`, "test:hostile", fill, { symlinks });
    await assert.rejects(attempt((w) => w.addFile("../../etc/passwd", "x").then(() => {})), UnsafeArchiveError);
    await assert.rejects(attempt(async (w) => w.addSymlink("a", "/etc/passwd")), /absolute path/);
    await assert.rejects(attempt(async (w) => w.addSymlink("a/b", "../../x")), /escapes the tree/);
    await assert.rejects(attempt(async (w) => { w.addSymlink("d", "."); await w.addFile("d/x", "y"); }), /lies under "d", which is a symlink/);
    await assert.rejects(attempt(async (w) => w.addHardlink("h", "nothing")), /does not point at a regular file/);
    // Absolute symlinks are fine for packages installed into an image root (.debs).
    const ok = await attempt(async (w) => w.addSymlink("usr/bin/cc", "/usr/bin/gcc-12"), "image");
    assert.equal(ok.tree.manifest.entries[0]!.target, "/usr/bin/gcc-12");
    // Nothing half-written is left in the store.
    const { readdir } = await import("node:fs/promises");
    assert.deepEqual((await readdir(path.join(dir, "trees"))).length, 1);
    assert.deepEqual(await readdir(path.join(dir, "tmp")).then((x) => x.filter((n) => n.startsWith("tree-"))), []);
  } finally {
    await cleanup();
  }
});

test("tar reader refuses device nodes, absolute paths and corrupt headers", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const mk = (name: string, py: string) => {
      const file = path.join(dir, name);
      execFileSync("python3", ["-c", `import tarfile,io\nt=tarfile.open(${JSON.stringify(file)},"w")\n${py}\nt.close()`]);
      return file;
    };
    const dev = mk("dev.tar", `i=tarfile.TarInfo("dev/sda"); i.type=tarfile.BLKTYPE; i.devmajor=8; t.addfile(i)`);
    const abs = mk("abs.tar", `i=tarfile.TarInfo("/etc/cron.d/x"); i.size=1; t.addfile(i, io.BytesIO(b"x"))`);
    const dotdot = mk("dotdot.tar", `i=tarfile.TarInfo("a/../../x"); i.size=1; t.addfile(i, io.BytesIO(b"x"))`);
    const store = new Store(path.join(dir, "store"));
    for (const [file, re] of [[dev, /device node/], [abs, /absolute path/], [dotdot, /escape/]] as const) {
      await assert.rejects(store.ensureTree(`k-${path.basename(file)}`, "test:tar", async (w) => extractTar(createReadStream(file), w)), re);
    }
    const garbage = path.join(dir, "garbage.tar");
    await writeFile(garbage, Buffer.alloc(1024, 0x41));
    await assert.rejects(store.ensureTree("k-garbage", "test:tar", async (w) => extractTar(createReadStream(garbage), w)), /checksum/);
  } finally {
    await cleanup();
  }
});

test("tar reader reads its input to the end: padding that arrives after the end-of-archive block is consumed", async () => {
  // git archive writes its last record apart: a reader that stopped at the first zero block left it
  // unread, and the child's stdout never ended (a git source hung, 4 builds in 30 for such a tree).
  const { dir, cleanup } = await tempDir();
  try {
    const file = path.join(dir, "one.tar");
    execFileSync("python3", ["-c", `import tarfile,io\nt=tarfile.open(${JSON.stringify(file)},"w",format=tarfile.USTAR_FORMAT)\ni=tarfile.TarInfo("a"); i.size=1; t.addfile(i, io.BytesIO(b"a"))\nt.close()`]);
    const bytes = await readFile(file);
    assert.ok(bytes.length > 1536 + 512, "python pads the archive to its record size");
    const { Readable } = await import("node:stream");
    // Header, body and the first zero block; the rest on a later tick.
    const input = Readable.from((async function* () {
      yield bytes.subarray(0, 1536);
      await new Promise((r) => setTimeout(r, 20));
      yield bytes.subarray(1536);
    })(), { objectMode: false });
    const store = new Store(path.join(dir, "store"));
    const { tree } = await store.ensureTree("k-padded", "test:tar", async (w) => extractTar(input, w));
    assert.deepEqual(tree.manifest.entries.map((e) => e.path), ["a"]);
    assert.ok(input.readableEnded, "the input was read to its end");
    // But not without end: megabytes after the marker are refused, not inflated for nothing.
    const padded = Readable.from([bytes, Buffer.alloc(2 << 20)], { objectMode: false });
    await assert.rejects(store.ensureTree("k-overpadded", "test:tar", async (w) => extractTar(padded, w)), (err: unknown) => err instanceof UnsafeArchiveError && /follow the end-of-archive marker/.test(err.message));
  } finally {
    await cleanup();
  }
});

test("the zstd version is remembered by the program's identity, and asked again when the program changes", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const bin = path.join(dir, "bin");
    await mkdir(bin);
    const fake = path.join(bin, "zstd");
    const cache = path.join(dir, "store", "tools", "zstd.json");
    const compressTs = path.join(repoRoot, "src", "layer", "compress.ts");
    const idOf = () => execFileSync(process.execPath, ["--import", "tsx", "-e",
      `const c = await import(${JSON.stringify(compressTs)}); await c.prepareCompressor("zstd", ${JSON.stringify(cache)}); console.log(c.compressorId("zstd"));`,
    ], { encoding: "utf8", env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } }).trim();
    await writeFile(fake, "#!/bin/sh\necho '*** Zstandard CLI (64-bit) v9.9.1, by Yann Collet ***'\n", { mode: 0o755 });
    assert.equal(idOf(), "zstd 9.9.1 -3");
    assert.equal(JSON.parse(await readFile(cache, "utf8")).version, "9.9.1");
    // Same program: the remembered version is used without running it (shown by editing the record).
    await writeFile(cache, (await readFile(cache, "utf8")).replace("9.9.1", "9.9.0"));
    assert.equal(idOf(), "zstd 9.9.0 -3");
    // A replaced program is asked again.
    await writeFile(fake, "#!/bin/sh\necho '*** Zstandard CLI (64-bit) v9.9.22, by Yann Collet ***'\n", { mode: 0o755 });
    assert.equal(idOf(), "zstd 9.9.22 -3");
  } finally {
    await cleanup();
  }
});

test("gzip and uncompressed layers of a few bytes: the blob file exists as soon as the compressor does", async () => {
  // The layer builder reads the blob back while it grows; a write stream that opened its file
  // on a later tick lost that race on tiny layers (ENOENT in CI).
  const { compressToFile } = await import("../../src/layer/compress.ts");
  const { existsSync } = await import("node:fs");
  const { dir, cleanup } = await tempDir();
  try {
    for (const kind of ["gzip", "none"] as const) {
      const file = path.join(dir, `tiny.${kind}`);
      const comp = compressToFile(kind, undefined, file);
      assert.ok(existsSync(file), `${kind}: file opened synchronously`);
      comp.input.end(Buffer.from("x"));
      await comp.done;
      assert.ok((await readFile(file)).length > 0);
    }
    const store = new Store(path.join(dir, "store"));
    const { tree } = await store.ensureTree("tiny", "test:tiny", async (w) => { await w.addFile("a", "a\n"); });
    const entries = withParents(tree.manifest.entries.map((entry) => ({ entry, rootDir: tree.rootDir, packageId: "test:tiny", treeKey: tree.key })));
    for (const compression of ["gzip", "none"] as const) {
      const input = { name: "tiny", packages: ["test:tiny"], entries, compression, mtime: 0 };
      const rec = await buildLayer(store, input, layerKey(input));
      assert.equal(rec.size, (await readFile(store.blobPath(rec.digest.slice(7)))).length);
    }
  } finally {
    await cleanup();
  }
});

test("store.teeBlob keeps a blob only when the whole stream hashed to its name", async () => {
  const { Readable } = await import("node:stream");
  const { pipeline } = await import("node:stream/promises");
  const { readdirSync, existsSync } = await import("node:fs");
  const { sha256Hex } = await import("../../src/util/hash.ts");
  const { dir, cleanup } = await tempDir();
  try {
    const store = new Store(path.join(dir, "store"));
    const data = Buffer.alloc(300_000, 5);
    const hex = sha256Hex(data);
    const chunks = () => Readable.from([data.subarray(0, 100_000), data.subarray(100_000)]);
    // A reader that stops after the first chunk: nothing kept.
    for await (const _ of store.teeBlob(chunks(), hex)) break;
    // A source that fails midway: the error reaches the reader, nothing kept.
    const failing = Readable.from((async function* () { yield data.subarray(0, 1000); throw new Error("connection lost"); })());
    await assert.rejects(pipeline(store.teeBlob(failing, hex), async function* (src) { for await (const _ of src) yield; }), /connection lost/);
    // Bytes that are not the named blob: passed on, not kept.
    let passed = 0;
    for await (const c of store.teeBlob(Readable.from([Buffer.from("other")]), hex)) passed += (c as Buffer).length;
    assert.equal(passed, 5);
    assert.ok(!existsSync(store.blobPath(hex)));
    assert.deepEqual(readdirSync(store.tmpDir), [], "no temp file left");
    // The whole blob: kept.
    let total = 0;
    for await (const c of store.teeBlob(chunks(), hex)) total += (c as Buffer).length;
    assert.equal(total, data.length);
    assert.equal(sha256Hex(await readFile(store.blobPath(hex))), hex);
  } finally {
    await cleanup();
  }
});
