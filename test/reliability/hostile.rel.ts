// Hostile inputs through the real code paths (archive source, wheel installer,
// .deb installer, tar extraction): path traversal, symlink and hardlink
// escapes, absolute paths, device nodes, huge sizes, bad UTF-8 and bombs.
// Each case either installs something confined to its tree or fails with a
// typed LayerfoldError; after all of them, nothing exists outside the trees
// and no tree holds a host symlink.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, mkdir, readdir, rm, writeFile, lstat, readFile } from "node:fs/promises";
import { Readable } from "node:stream";
import { createGzip } from "node:zlib";
import { pathToFileURL } from "node:url";
import os from "node:os";
import path from "node:path";
import { TreeWriter } from "../../src/store/tree.ts";
import { Store } from "../../src/store/store.ts";
import { LayerfoldError, MalformedArchiveError, UnsafeArchiveError } from "../../src/errors.ts";
import { extractTar } from "../../src/archive/tar.ts";
import { installDeb } from "../../src/sources/debian/deb.ts";
import { installWheel, schemeFor } from "../../src/sources/python/wheel.ts";
import { archiveSource, archiveSpecSchema } from "../../src/sources/archive/index.ts";
import { sha256Hex } from "../../src/util/hash.ts";
import { rng } from "./prng.ts";
import { deb, paxMember, tar, tarHeader, wheelRecord, zip, type TarMember, type ZipMember } from "./craft.ts";

let tmp: string;
let store: Store;
let n = 0;
const roots: string[] = [];
const outcomes = { unsafe: 0, malformed: 0, confined: 0 };

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "lf-rel-hostile-"));
  store = new Store(path.join(tmp, "store"));
  await mkdir(path.join(tmp, "outside"), { recursive: true });
  await writeFile(path.join(tmp, "outside", "victim"), "original\n");
});
after(async () => {
  console.log(`# hostile inputs: ${outcomes.unsafe + outcomes.malformed + outcomes.confined} cases: ${outcomes.unsafe} refused as unsafe (E_UNSAFE_ARCHIVE, exit 4), ${outcomes.malformed} refused as malformed (E_MALFORMED_ARCHIVE, exit 17), ${outcomes.confined} installed confined to their tree`);
  await rm(tmp, { recursive: true, force: true });
});

/** A tree deep enough that "../../.." from its root still lands inside tmp, where we look for escapes. */
function newTree(what: string, opts: ConstructorParameters<typeof TreeWriter>[2] = {}): TreeWriter {
  const root = path.join(tmp, "trees", `t${++n}`, "a", "b", "root");
  roots.push(root);
  return new TreeWriter(root, what, opts);
}

/**
 * Run one hostile case: it must either succeed confined or throw a typed error: UnsafeArchiveError
 * (exit 4) for an attempt, MalformedArchiveError (exit 17) for a broken file, another LayerfoldError
 * (a hash mismatch) otherwise. `expect` names the class when the case is about telling them apart.
 */
async function hostile(name: string, fn: () => Promise<unknown>, expect: "refuse" | "either" | "unsafe" | "malformed" = "refuse"): Promise<void> {
  try {
    await fn();
    assert.ok(expect === "either", `${name}: was accepted`);
    outcomes.confined++;
  } catch (err) {
    if (err instanceof assert.AssertionError) throw err;
    assert.ok(err instanceof LayerfoldError, `${name}: untyped error ${(err as Error)?.stack ?? err}`);
    assert.ok(err.message.length > 15, `${name}: a message that says something`);
    if (expect === "unsafe") assert.ok(err instanceof UnsafeArchiveError, `${name}: expected unsafe, got ${err.name}: ${err.message}`);
    if (expect === "malformed") assert.ok(err instanceof MalformedArchiveError, `${name}: expected malformed, got ${err.name}: ${err.message}`);
    if (err instanceof MalformedArchiveError) outcomes.malformed++;
    else outcomes.unsafe++;
  }
  await assertNothingEscaped(name);
}

async function walk(dir: string, out: string[] = []): Promise<string[]> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    out.push(p);
    if (e.isDirectory()) await walk(p, out);
  }
  return out;
}

async function assertNothingEscaped(name: string): Promise<void> {
  assert.equal(await readFile(path.join(tmp, "outside", "victim"), "utf8"), "original\n", `${name}: the victim file was changed`);
  for (const p of await walk(tmp)) {
    const inRoot = roots.some((r) => p === r || p.startsWith(r + path.sep));
    const inFixtures = p.startsWith(path.join(tmp, "in")) || p.startsWith(path.join(tmp, "store")) || p.startsWith(path.join(tmp, "outside"));
    const isTreeDir = /[/\\]trees([/\\]t\d+([/\\]a([/\\]b)?)?)?$/.test(p);
    assert.ok(inRoot || inFixtures || isTreeDir, `${name}: ${path.relative(tmp, p)} was written outside every tree`);
    if (inRoot) assert.ok(!(await lstat(p)).isSymbolicLink(), `${name}: a host symlink ${path.relative(tmp, p)} was created`);
  }
  assert.deepEqual((await readdir(path.join(tmp, "outside"))).sort(), ["victim"], `${name}: something was written next to the victim`);
}

const tarCases: [string, TarMember[]][] = [
  ["traversal ../", [{ name: "../../../../outside/escaped-tar", body: "x" }]],
  ["traversal inside a path", [{ name: "ok/../../../../../outside/escaped-tar2", body: "x" }]],
  ["traversal in a pax path", [paxMember({ path: "../../../../outside/escaped-pax" }), { name: "innocent", body: "x" }]],
  ["symlink escape then write through it", [{ name: "evil", type: "2", linkname: "../../../../outside" }, { name: "evil/escaped-sym", body: "x" }]],
  ["absolute symlink then write through it", [{ name: "abs", type: "2", linkname: path.join("/", "tmp") }, { name: "abs/escaped-abs-sym", body: "x" }]],
  ["symlink to a parent, dir entry then file", [{ name: "up", type: "2", linkname: ".." }, { name: "up/up2", type: "5" }, { name: "up/up2/f", body: "x" }]],
  ["hardlink escape", [{ name: "h", type: "1", linkname: "../../../../outside/victim" }]],
  ["hardlink to an absolute host file", [{ name: "h2", type: "1", linkname: "/etc/passwd" }]],
  ["hardlink to a missing member", [{ name: "h3", type: "1", linkname: "nope" }]],
  ["char device", [{ name: "dev/null2", type: "3" }]],
  ["block device", [{ name: "dev/sda9", type: "4" }]],
  ["fifo", [{ name: "fifo", type: "6" }]],
  ["size field 8 GiB, short body", [{ name: "big", body: "tiny", sizeField: "77777777777\0" }]],
  ["base-256 size 2^62", [{ name: "huge", body: "tiny", sizeField: Buffer.from([0x80, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0]) }]],
  ["garbage size field", [{ name: "g", body: "x", sizeField: "zz\0" }]],
  ["truncated inside a body", [{ name: "cut", body: "abc".repeat(200) }]],
  ["NUL and control bytes in a pax path", [paxMember({ path: Buffer.from("a\0b/../../../../outside/nul") }), { name: "n", body: "x" }]],
];

for (const [name, members] of tarCases) {
  test(`tar: ${name}`, async () => {
    const bytes = tar(members);
    await hostile(name, () => extractTar(Readable.from([name.startsWith("truncated") ? bytes.subarray(0, 700) : bytes]), newTree(`crafted tar (${name})`)));
  });
}

test("tar: absolute member paths stay inside the tree", async () => {
  const t = newTree("crafted tar (absolute)");
  await hostile("absolute", () => extractTar(Readable.from([tar([{ name: path.join(tmp, "outside", "escaped-abs"), body: "x" }, { name: "/etc/evil", body: "y" }])]), t), "either");
  for (const e of t.list()) assert.ok(!e.path.startsWith("/"), `entry ${e.path} is relative`);
});

test("tar: bad UTF-8 names are refused, never merged", async () => {
  const t = newTree("crafted tar (bad utf-8)");
  await hostile("bad utf-8", () => extractTar(Readable.from([tar([{ name: Buffer.from([0x66, 0xff, 0xfe, 0x2f, 0xc0, 0xaf, 0x2e, 0x2e]), body: "x" }, paxMember({ path: Buffer.from([0xed, 0xa0, 0x80, 0x2f, 0x78]) }), { name: "p", body: "y" }])]), t), "malformed");
  const latin = (b: number) => Buffer.from([0x63, 0x61, 0x66, b, 0x2e, 0x74, 0x78, 0x74]);
  for (const [label, members] of [
    ["0xE9 and 0xE8 names", [{ name: latin(0xe9), body: "one" }, { name: latin(0xe8), body: "two" }]],
    ["a non-UTF-8 pax path", [paxMember({ path: latin(0xe9) }), { name: "x", body: "one" }]],
    ["a non-UTF-8 link target", [{ name: "l", type: "2", linkname: latin(0xe9) }]],
  ] as [string, TarMember[]][]) {
    await hostile(label, () => extractTar(Readable.from([tar(members)]), newTree(`crafted tar (${label})`)), "malformed");
  }
});

test("tar: names no filesystem holds, duplicates, unsupported types, corrupt headers", async () => {
  const cases: [string, TarMember[], "unsafe" | "malformed"][] = [
    ["a 5 KB path", [paxMember({ path: `${"d/".repeat(2500)}f` }), { name: "x", body: "x" }], "malformed"],
    ["a 304-byte name", [paxMember({ path: `a/${"n".repeat(300)}.txt` }), { name: "x", body: "x" }], "malformed"],
    ["a file named twice", [{ name: "f", body: "first" }, { name: "./f", body: "second" }], "unsafe"],
    ["a directory then a file at one path", [{ name: "d", type: "5" }, { name: "d", body: "x" }], "unsafe"],
    ["a symlink then a file at one path", [{ name: "s", type: "2", linkname: "t" }, { name: "s", body: "x" }], "unsafe"],
    ["a directory named twice with other modes", [{ name: "d", type: "5", mode: 0o755 }, { name: "d/", type: "5", mode: 0o777 }], "unsafe"],
    ["a sparse file (type S)", [{ name: "sparse", type: "S", body: "x" }], "malformed"],
    ["a bad header checksum", [{ name: "ok", body: "x" }], "malformed"],
    ["a pax size that is not a number", [paxMember({ size: "12abc" }), { name: "x", body: "x" }], "malformed"],
  ];
  for (const [label, members, expect] of cases) {
    let bytes = tar(members);
    if (label === "a bad header checksum") bytes = Buffer.concat([Buffer.from(bytes.subarray(0, 148)), Buffer.from("0000000\0"), bytes.subarray(156)]);
    await hostile(label, () => extractTar(Readable.from([bytes]), newTree(`crafted tar (${label})`)), expect);
  }
});

test("tar: cut-short compressed streams (gzip, xz, zstd) are malformed and name the entry", async () => {
  // Incompressible, so half the compressed bytes end inside big.bin for every format.
  const next = rng(17);
  const body = Buffer.alloc(300_000);
  for (let i = 0; i < body.length; i++) body[i] = Math.floor(next() * 256);
  const plain = tar([{ name: "small", body: "x" }, { name: "big.bin", body }]);
  const { execFileSync } = await import("node:child_process");
  const { openDecompressed } = await import("../../src/archive/decompress.ts");
  for (const [fmt, bytes] of [["gzip", (await import("node:zlib")).gzipSync(plain)], ["xz", execFileSync("xz", ["-c"], { input: plain })], ["zstd", execFileSync("zstd", ["-c", "-q"], { input: plain })]] as [string, Buffer][]) {
    const file = path.join(tmp, "in", `cut.tar.${fmt}`);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
    await hostile(`truncated ${fmt}`, async () => {
      try {
        await extractTar(await openDecompressed(file, `cut.tar.${fmt}`), newTree(`cut ${fmt}`), { what: `cut.tar.${fmt}` });
      } catch (err) {
        assert.match((err as Error).message, /cut\.tar\.\w+.*"big\.bin"/, `${fmt}: names the archive and the entry`);
        throw err;
      }
    }, "malformed");
  }
});

test("tar: a gzip bomb stops at the tree's byte limit", async () => {
  // 256 MiB of zeros in one member, about 250 KB gzipped; the tree allows 16 MiB.
  const size = 256 * 1024 * 1024;
  async function* body() {
    yield Buffer.from(tar([{ name: "zeros", body: "", sizeField: size.toString(8).padStart(11, "0") + "\0" }], { end: false }).subarray(0, 512));
    const chunk = Buffer.alloc(1 << 20);
    for (let i = 0; i < size / chunk.length; i++) yield chunk;
    yield Buffer.alloc(1024);
  }
  const gz = Readable.from(body()).pipe(createGzip({ level: 1 }));
  const file = path.join(tmp, "in", "bomb.tar.gz");
  await mkdir(path.dirname(file), { recursive: true });
  const { pipeline } = await import("node:stream/promises");
  const { createWriteStream, createReadStream } = await import("node:fs");
  await pipeline(gz, createWriteStream(file));
  const { openDecompressed } = await import("../../src/archive/decompress.ts");
  const t = newTree("crafted tar.gz bomb", { maxBytes: 16 * 1024 * 1024 });
  await hostile("gzip bomb", async () => extractTar(await openDecompressed(file, "bomb.tar.gz"), t));
  void createReadStream;
});

test("tar: a 2 GiB gzip bomb under maxBytes 1 MiB is refused at its header (archive source)", async () => {
  // Concatenated gzip members: one tar header claiming 2 GiB, then 2048 members of 1 MiB of zeros (~1 KB each).
  const { gzipSync } = await import("node:zlib");
  const zeros = gzipSync(Buffer.alloc(1 << 20), { level: 9 });
  const file = path.join(tmp, "in", "bomb2g.tar.gz");
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, Buffer.concat([gzipSync(tarHeader({ name: "zeros" }, 2 * 1024 ** 3)), ...Array.from({ length: 2048 }, () => zeros), gzipSync(Buffer.alloc(1024))]));
  await hostile("2 GiB gzip bomb, maxBytes 1 MiB", () => archiveInstall("bomb2g", file, { maxBytes: 1 << 20 }), "unsafe");
});

// --- the archive source, end to end through the store (fetch by file URL, verify, extract) ---

async function archiveInstall(name: string, file: string, extra: Record<string, unknown> = {}) {
  const sha256 = sha256Hex(await readFile(file));
  const spec = archiveSpecSchema.parse({ url: pathToFileURL(file).toString(), sha256, dest: "/opt/x", stripComponents: 0, ...extra });
  const layers = [{ name: "l", archives: [spec] }];
  const ctx = { store, image: { layers }, overrides: {}, configDir: tmp, log: { info() {}, warn() {}, debug() {} } } as never;
  const { packages } = await archiveSource.resolve([[spec as never]], undefined, { ...(ctx as object), locked: [], update: [], frozen: false } as never);
  const tree = newTree(`archive ${name}`, archiveSource.treeOptions);
  await archiveSource.install!(packages[0]!, tree, undefined, ctx);
  return tree;
}

const zipCases: [string, ZipMember[], { claimSize?: number; maxBytes?: number }?][] = [
  ["traversal", [{ name: "../../../../../../outside/escaped-zip", data: "x" }]],
  ["absolute path", [{ name: "/tmp/escaped-zip-abs", data: "x" }]],
  ["backslash traversal", [{ name: "..\\..\\..\\..\\outside\\escaped-bs", data: "x" }]],
  ["symlink mode bits", [{ name: "link", data: "../../../../outside", mode: 0o120777 }, { name: "link/escaped-zip-sym", data: "x" }]],
  ["device mode bits", [{ name: "dev", data: "", mode: 0o020666 }]],
  ["deflate bomb under a byte limit", [{ name: "zeros", data: { zeros: 64 * 1024 * 1024 } }], { maxBytes: 8 * 1024 * 1024 }],
  ["sizes that lie (bomb claiming 100 bytes)", [{ name: "zeros", data: { zeros: 32 * 1024 * 1024 } }], { claimSize: 100 }],
];

for (const [name, members, o] of zipCases) {
  test(`zip (archive source): ${name}`, async () => {
    const file = path.join(tmp, "in", `z${++n}.zip`);
    await mkdir(path.dirname(file), { recursive: true });
    zip(file, members, { claimSize: o?.claimSize });
    const expect = name.startsWith("symlink") || name.startsWith("device") ? "either" : "refuse";
    await hostile(`zip ${name}`, () => archiveInstall(name, file, { format: "zip", ...(o?.maxBytes ? { maxBytes: o.maxBytes } : {}) }), expect);
  });
}

test("zip (archive source): names twice after normalising, not UTF-8, too long", async () => {
  const { makeZip } = await import("../python/helpers/zip.ts");
  const cases: [string, Parameters<typeof makeZip>[0], "unsafe" | "malformed"][] = [
    ["a//f and a/f", [{ name: "a/f", data: "1" }, { name: "a//f", data: "2" }], "unsafe"],
    ["0xE9 and 0xE8 names", [{ name: Buffer.from("caf\xe9.txt", "latin1"), data: "1" }, { name: Buffer.from("caf\xe8.txt", "latin1"), data: "2" }], "malformed"],
    ["a 304-byte name", [{ name: `${"z".repeat(304)}`, data: "1" }], "malformed"],
  ];
  for (const [label, members, expect] of cases) {
    const file = path.join(tmp, "in", `z${++n}.zip`);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, makeZip(members));
    await hostile(`zip ${label}`, () => archiveInstall(label, file, { format: "zip" }), expect);
  }
});

test("archive source: setuid files are stripped by default, confined", async () => {
  const file = path.join(tmp, "in", "suid.tar");
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, tar([{ name: "tool", body: "x", mode: 0o4755 }, { name: "grp", body: "y", mode: 0o2755 }]));
  let tree: TreeWriter | undefined;
  await hostile("setuid in an archive", async () => { tree = await archiveInstall("suid", file); }, "either");
  assert.deepEqual(tree!.list().filter((e) => e.type === "file").map((e) => [e.path, e.mode]).sort(), [["opt/x/grp", 0o755], ["opt/x/tool", 0o755]]);
});

test("tar (archive source): symlink escape in a .tar.gz", async () => {
  const file = path.join(tmp, "in", "sym.tar");
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, tar([{ name: "evil", type: "2", linkname: "../../../../../../outside" }, { name: "evil/escaped", body: "x" }]));
  await hostile("archive source tar symlink", () => archiveInstall("sym", file));
});

// --- wheels through the real installer ---

const scheme = schemeFor({ prefix: "/opt/venv", version: "3.11", interpreter: "/usr/bin/python3.11" });

async function crafted(name: string, files: { name: string; data: string }[], o: { claimSize?: number; bomb?: number } = {}): Promise<string> {
  const di = "evil-1.0.dist-info";
  const members = [...files, { name: `${di}/WHEEL`, data: "Wheel-Version: 1.0\nGenerator: crafted\nRoot-Is-Purelib: true\nTag: py3-none-any\n" }, { name: `${di}/METADATA`, data: "Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n" }];
  const record = wheelRecord(members.map((m) => ({ name: m.name, bytes: Buffer.from(m.data) })), `${di}/RECORD`);
  const file = path.join(tmp, "in", `${name}-1.0-py3-none-any.whl`);
  await mkdir(path.dirname(file), { recursive: true });
  const zm: ZipMember[] = [...members, { name: `${di}/RECORD`, data: record }];
  if (o.bomb) zm.unshift({ name: "evil/zeros.bin", data: { zeros: o.bomb } });
  zip(file, zm, { claimSize: o.claimSize });
  return file;
}

const wheelCases: [string, { name: string; data: string }[], { claimSize?: number; bomb?: number }?][] = [
  ["traversal", [{ name: "../../../../../outside/escaped-whl", data: "x" }]],
  ["traversal through .data", [{ name: "evil-1.0.data/purelib/../../../../../outside/escaped-data", data: "x" }]],
  ["unknown .data scheme", [{ name: "evil-1.0.data/../../escaped-scheme/x", data: "x" }]],
  ["absolute member", [{ name: "/opt/escaped-whl-abs", data: "x" }]],
  ["data scripts with a traversal name", [{ name: "evil-1.0.data/scripts/../../../../outside/escaped-script", data: "#!python\n" }]],
  ["member not in RECORD", [{ name: "evil/__init__.py", data: "" }]],
  ["bomb with lying sizes", [], { claimSize: 10, bomb: 32 * 1024 * 1024 }],
];

test("wheel: not a valid wheel, a non-UTF-8 member name", async () => {
  const { makeZip } = await import("../python/helpers/zip.ts");
  const nowheel = path.join(tmp, "in", "nowheel-1.0-py3-none-any.whl");
  await writeFile(nowheel, makeZip([{ name: "nowheel/__init__.py", data: "" }]));
  await hostile("wheel without WHEEL", () => installWheel(nowheel, newTree("wheel without WHEEL"), { file: path.basename(nowheel), scheme, requested: true }), "malformed");
  const latin = path.join(tmp, "in", "latin-1.0-py3-none-any.whl");
  await writeFile(latin, makeZip([{ name: Buffer.from("latin/caf\xe9.py", "latin1"), data: "" }, { name: Buffer.from("latin/caf\xe8.py", "latin1"), data: "" }]));
  await hostile("wheel with 0xE9/0xE8 names", () => installWheel(latin, newTree("wheel latin-1"), { file: path.basename(latin), scheme, requested: true }), "malformed");
});

for (const [name, files, o] of wheelCases) {
  test(`wheel: ${name}`, async () => {
    const file = await crafted(`w${++n}`, files, o);
    if (name === "member not in RECORD") {
      // Rewrite without listing evil/__init__.py in RECORD: the wheel must be refused.
      const di = "evil-1.0.dist-info";
      const members = [{ name: `${di}/WHEEL`, data: "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n" }, { name: `${di}/METADATA`, data: "Name: evil\nVersion: 1.0\n" }];
      zip(file, [...members, { name: "evil/__init__.py", data: "import os\n" }, { name: `${di}/RECORD`, data: wheelRecord(members.map((m) => ({ name: m.name, bytes: Buffer.from(m.data) })), `${di}/RECORD`) }]);
    }
    await hostile(`wheel ${name}`, () => installWheel(file, newTree(`wheel ${name}`), { file: path.basename(file), scheme, requested: true }));
  });
}

// --- .debs through the real installer (symlink policy "image": absolute links allowed, never followed on the host) ---

const debCases: [string, TarMember[], "refuse" | "either" | "unsafe" | "malformed"][] = [
  ["a file named twice", [{ name: "./usr/bin/t", body: "1" }, { name: "usr/bin/t", body: "2" }], "unsafe"],
  ["0xE9 and 0xE8 names", [{ name: Buffer.from("./usr/share/caf\xe9", "latin1"), body: "1" }, { name: Buffer.from("./usr/share/caf\xe8", "latin1"), body: "2" }], "malformed"],
  ["a setuid file (kept: Debian's policy is keep)", [{ name: "./usr/bin/su2", body: "x", mode: 0o4755 }], "either"],
  ["traversal", [{ name: "./../../../../outside/escaped-deb", body: "x" }], "refuse"],
  ["absolute symlink then write through it", [{ name: "./usr/lib/evil", type: "2", linkname: "/tmp" }, { name: "./usr/lib/evil/escaped-deb", body: "x" }], "refuse"],
  ["relative symlink escape then write", [{ name: "./etc/x", type: "2", linkname: "../../../../../../outside" }, { name: "./etc/x/escaped", body: "x" }], "refuse"],
  ["hardlink escape", [{ name: "./bin/h", type: "1", linkname: "../../../../outside/victim" }], "refuse"],
  ["device node", [{ name: "./dev/console", type: "3" }], "refuse"],
  ["huge size field", [{ name: "./big", body: "x", sizeField: "77777777777\0" }], "refuse"],
  ["absolute symlink (allowed, not followed)", [{ name: "./usr/bin/sh2", type: "2", linkname: "/bin/dash" }], "either"],
];

for (const [name, members, expect] of debCases) {
  test(`deb: ${name}`, async () => {
    await hostile(`deb ${name}`, () => installDeb(Readable.from([deb(members)]), newTree(`crafted .deb (${name})`, { symlinks: "image" }), `evil_1.0_amd64.deb (${name})`), expect);
  });
}

test("deb: corrupt ar containers are refused with a typed error", async () => {
  const good = deb([{ name: "./f", body: "x" }]);
  const cases: [string, Buffer][] = [
    ["bad magic", Buffer.concat([Buffer.from("!<arcX>\n"), good.subarray(8)])],
    ["member size beyond the end", Buffer.from(good.toString("latin1").replace(/(debian-binary {3}.{32})4 {9}/s, "$19999999999"), "latin1")],
    ["truncated", good.subarray(0, good.length - 40)],
    ["empty", Buffer.alloc(0)],
  ];
  for (const [name, bytes] of cases) await hostile(`ar ${name}`, () => installDeb(Readable.from([bytes]), newTree(`ar ${name}`, { symlinks: "image" }), `crafted.deb (${name})`));
});
