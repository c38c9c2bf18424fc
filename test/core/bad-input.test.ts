// Bad input gets a clear error naming the offending thing, a non-zero exit
// and no partial output where the image was to be written.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { repoRoot, runCli, tempDir } from "../helpers/cli.ts";

let tmp: { dir: string; cleanup: () => Promise<void> };
before(async () => { tmp = await tempDir(); });
after(async () => tmp.cleanup());

const lib = path.join(repoRoot, "src", "index.ts");
let n = 0;

/** Write a config (its layers as TS source) in a fresh dir and build it. */
async function buildWith(layersTs: string, files: Record<string, string | Buffer> = {}, top = "") {
  const dir = path.join(tmp.dir, `case-${++n}`);
  await mkdir(dir, { recursive: true });
  for (const [name, data] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), data);
  }
  await writeFile(path.join(dir, "layerfold.config.ts"), `import { defineImage } from ${JSON.stringify(lib)};\nexport default defineImage({ name: "bad/case", ${top} layers: ${layersTs} });\n`);
  const out = path.join(dir, "out");
  const r = await runCli(["build", "-C", dir, "--store", path.join(tmp.dir, "store"), "-o", `oci:${out}`]);
  return { ...r, dir, outExists: existsSync(out) };
}

const python = (dir: string, code: string) => execFileSync("python3", ["-c", code], { cwd: dir });

test("wrong config types name the file and the field", async () => {
  const r = await buildWith(`[{ name: "a", inline: [{ path: "/x", text: "y" }] }]`, {}, "tag: 5,");
  assert.equal(r.code, 2);
  assert.match(r.stderr, /layerfold\.config\.ts: invalid image definition/);
  assert.match(r.stderr, /tag: Expected string, received number/);
  assert.equal(r.outExists, false);
  const r2 = await buildWith(`[{ name: "a", inline: [{ path: "relative", text: "y" }] }]`);
  assert.equal(r2.code, 2);
  assert.match(r2.stderr, /layers\[0\]\.inline\[0\]\.path: must be an absolute image path/);
  const r3 = await buildWith(`[{ name: "a", debain: ["bash"] }]`);
  assert.equal(r3.code, 2);
  assert.match(r3.stderr, /unknown key "debain"/);
});

test("a typo in a top-level key is refused, naming the key and the nearest valid one", async () => {
  const layers = `[{ name: "a", inline: [{ path: "/x", text: "y" }] }]`;
  const confg = await buildWith(layers, {}, `confg: { entrypoint: ["/x"] },`);
  assert.equal(confg.code, 2, confg.stderr);
  assert.match(confg.stderr, /error\[E_CONFIG\]: .*layerfold\.config\.ts: unknown key "confg" \(did you mean "config"\?\); the image's keys are name, tag/);
  assert.equal(confg.outExists, false);
  const compresion = await buildWith(layers, {}, `compresion: "gzip",`);
  assert.equal(compresion.code, 2, compresion.stderr);
  assert.match(compresion.stderr, /unknown key "compresion" \(did you mean "compression"\?\)/);
  const layer = await buildWith(`[{ name: "a", inlin: [{ path: "/x", text: "y" }] }]`);
  assert.match(layer.stderr, /layers\[0\] \(a\) has an unknown key "inlin" \(did you mean "inline"\?\)/);
});

test("--override: a directory that does not exist is named before any work", async () => {
  const dir = path.join(tmp.dir, "override");
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, "layerfold.config.ts"), `import { defineImage } from ${JSON.stringify(lib)};\nexport default defineImage({ name: "bad/override", layers: [{ name: "a", files: [{ src: "./x", dest: "/x", name: "x" }] }] });\n`);
  const r = await runCli(["build", "-C", dir, "--store", path.join(tmp.dir, "store"), "--override", "x=/nonexistent"]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /error\[E_USAGE\]: --override x=\/nonexistent: \/nonexistent does not exist; give the directory \(or file\) to use instead of x/);
  assert.doesNotMatch(r.stderr, /fix "src"/);
});

test("one inline path in two layers: the same spec is one file, different ones a conflict naming both layers", async () => {
  const same = await buildWith(`[{ name: "a", inline: [{ path: "/etc/x", text: "1" }] }, { name: "b", inline: [{ path: "/etc/x", text: "1" }, { path: "/etc/y", text: "2" }] }]`);
  assert.equal(same.code, 0, same.stderr);
  const text = await buildWith(`[{ name: "a", inline: [{ path: "/etc/x", text: "1" }] }, { name: "b", inline: [{ path: "/etc/x", text: "2" }] }]`);
  assert.equal(text.code, 5, text.stderr);
  assert.match(text.stderr, /error\[E_PATH_CONFLICT\]: \/etc\/x is written inline in layer "a" and in layer "b" with a different text; an image has one file at a path/);
  assert.doesNotMatch(text.stderr, /distinct name/);
  const mode = await buildWith(`[{ name: "a", inline: [{ path: "/etc/x", text: "1" }] }, { name: "b", inline: [{ path: "/etc/x", text: "1", mode: 0o755 }] }]`);
  assert.equal(mode.code, 5, mode.stderr);
  assert.match(mode.stderr, /with a different mode \(0644 and 0755\)/);
  assert.equal(mode.outExists, false);
});

test("--override and lock --update name packages the image has", async () => {
  const dir = path.join(tmp.dir, "named");
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, "x"), "x");
  await writeFile(path.join(dir, "layerfold.config.ts"), `import { defineImage } from ${JSON.stringify(lib)};\nexport default defineImage({ name: "bad/named", layers: [{ name: "a", files: [{ src: "./x", dest: "/opt/x", name: "app" }], inline: [{ path: "/etc/y", text: "y" }] }] });\n`);
  const store = path.join(tmp.dir, "store");
  const nope = await runCli(["build", "-C", dir, "--store", store, "--override", `nope=${tmp.dir}`]);
  assert.equal(nope.code, 2, nope.stderr);
  assert.match(nope.stderr, /error\[E_USAGE\]: --override nope=\S+: no package named "nope" in the image takes an override \(files, git, python packages do\)/);
  const typo = await runCli(["build", "-C", dir, "--store", store, "--override", `ap=${tmp.dir}`]);
  assert.match(typo.stderr, /did you mean file:app\?/);
  const inline = await runCli(["build", "-C", dir, "--store", store, "--override", `inline:/etc/y=${tmp.dir}`]);
  assert.equal(inline.code, 2, inline.stderr);
  assert.match(inline.stderr, /inline:\/etc\/y cannot be replaced by a local directory; overrides are for files, git, python packages/);
  assert.equal(existsSync(path.join(dir, "out")), false, "nothing built");
  const ok = await runCli(["build", "-C", dir, "--store", store, "-o", "none", "--override", `app=${path.join(dir, "x")}`]);
  assert.equal(ok.code, 0, ok.stderr);
  const update = await runCli(["lock", "-C", dir, "--store", store, "--update", "nosuchpkg"]);
  assert.equal(update.code, 2, update.stderr);
  assert.match(update.stderr, /error\[E_USAGE\]: --update nosuchpkg: no package of that name in the image \(2 packages\)/);
});

test("a bad requirement written in the config is named by its layer and index", async () => {
  const r = await buildWith(`[{ name: "a", inline: [{ path: "/x", text: "y" }] }, { name: "b", python: ["six", "foo==="] }]`, {}, `python: { version: "3.11", platform: { glibc: "2.36" }, interpreter: "/usr/bin/python3.11" },`);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /error\[E_CONFIG\]: layer "b" python\[1\]: /);
  assert.doesNotMatch(r.stderr, /\(layer b\)/);
});

test("a missing file is named", async () => {
  const r = await buildWith(`[{ name: "a", files: [{ src: "./nope", dest: "/opt/x" }] }]`);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /files \.\/nope -> \/opt\/x: .*nope does not exist/);
  assert.equal(r.outExists, false);
});

test("a sha256 mismatch is refused with both hashes", async () => {
  const dir = path.join(tmp.dir, "tars");
  await mkdir(dir, { recursive: true });
  execFileSync("sh", ["-c", "mkdir -p d && echo hi > d/f && tar czf ok.tar.gz d"], { cwd: dir });
  const r = await buildWith(`[{ name: "a", archives: [{ path: ${JSON.stringify(path.join(dir, "ok.tar.gz"))}, sha256: "${"0".repeat(64)}" }] }]`);
  assert.equal(r.code, 3);
  assert.match(r.stderr, /E_HASH_MISMATCH/);
  assert.match(r.stderr, /archive .*ok\.tar\.gz \(archive:ok\): sha256 is [0-9a-f]{64} but 0{64} was expected/);
  assert.equal(r.outExists, false);
});

test("hostile archives: ../ paths, escaping or absolute symlinks, device nodes", async () => {
  const dir = path.join(tmp.dir, "hostile");
  await mkdir(dir, { recursive: true });
  python(dir, `
import tarfile, io
def mk(name, infos):
    with tarfile.open(name, "w:gz") as t:
        for i, data in infos:
            t.addfile(i, io.BytesIO(data) if data is not None else None)
def f(n, d=b"x"):
    i = tarfile.TarInfo(n); i.size = len(d); return (i, d)
def l(n, target):
    i = tarfile.TarInfo(n); i.type = tarfile.SYMTYPE; i.linkname = target; return (i, None)
dev = tarfile.TarInfo("dev/null"); dev.type = tarfile.CHRTYPE; dev.devmajor = 1; dev.devminor = 3
mk("traversal.tar.gz", [f("../../etc/evil")])
mk("abs-link.tar.gz", [l("etc/shadow", "/etc/shadow")])
mk("escape-link.tar.gz", [l("a/b", "../../../root")])
mk("device.tar.gz", [(dev, None)])
`);
  const cases: Array<[string, RegExp]> = [
    ["traversal.tar.gz", /"\.\.\/\.\.\/etc\/evil" contains "\.\."/],
    ["abs-link.tar.gz", /symlink "etc\/shadow" points to the absolute path/],
    ["escape-link.tar.gz", /symlink "a\/b" -> "\.\.\/\.\.\/\.\.\/root" escapes the tree/],
    ["device.tar.gz", /"dev\/null" is a device node/],
  ];
  for (const [file, re] of cases) {
    const r = await buildWith(`[{ name: "a", archives: [{ path: ${JSON.stringify(path.join(dir, file))} }] }]`);
    assert.equal(r.code, 4, `${file}: ${r.stderr}`);
    assert.match(r.stderr, /E_UNSAFE_ARCHIVE/);
    assert.match(r.stderr, re, file);
    assert.match(r.stderr, new RegExp(`archive:${file.replace(/\.tar\.gz$/, "")}`), "names the package");
    assert.equal(r.outExists, false);
  }
});

test("zip bombs: a size that lies, and a total over the limit", async () => {
  const dir = path.join(tmp.dir, "bombs");
  await mkdir(dir, { recursive: true });
  python(dir, `
import zipfile, struct
with zipfile.ZipFile("big.zip", "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("zeros", b"\\0" * (64 << 20))
data = bytearray(open("big.zip", "rb").read())
# Lie about the uncompressed size (64 MiB -> 1000 bytes) in both headers.
lh = data.find(b"PK\\x03\\x04"); struct.pack_into("<I", data, lh + 22, 1000)
ch = data.find(b"PK\\x01\\x02"); struct.pack_into("<I", data, ch + 24, 1000)
open("liar.zip", "wb").write(bytes(data))
`);
  const liar = await buildWith(`[{ name: "a", archives: [{ path: ${JSON.stringify(path.join(dir, "liar.zip"))} }] }]`);
  assert.equal(liar.code, 4, liar.stderr);
  assert.match(liar.stderr, /archive:liar/);
  assert.equal(liar.outExists, false);
  const big = await buildWith(`[{ name: "a", archives: [{ path: ${JSON.stringify(path.join(dir, "big.zip"))}, maxBytes: 1048576 }] }]`);
  assert.equal(big.code, 4, big.stderr);
  assert.match(big.stderr, /archive:big/);
  assert.equal(big.outExists, false);
});

test("two packages with different content at one path: error names both and the fix", async () => {
  const r = await buildWith(`[{ name: "a", inline: [{ path: "/etc/x", text: "1" }] }, { name: "b", files: [{ src: "./x", dest: "/etc/x" }] }]`, { x: "2" });
  assert.equal(r.code, 5, r.stderr);
  assert.match(r.stderr, /\/etc\/x is provided by both inline:\/etc\/x and file:\/etc\/x/);
  assert.match(r.stderr, /conflicts: \{ "\/etc\/x": "inline:\/etc\/x" \}/);
  const ok = await buildWith(`[{ name: "a", inline: [{ path: "/etc/x", text: "1" }] }, { name: "b", files: [{ src: "./x", dest: "/etc/x" }] }]`, { x: "2" }, `conflicts: { "/etc/x": "file:/etc/x" },`);
  assert.equal(ok.code, 0, ok.stderr);
});
