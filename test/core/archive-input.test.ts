// Hostile and odd archives through the real CLI (`archives` source), and as
// wheels and .debs: every failure is a typed error that names the archive and
// the entry, exit 4 (E_UNSAFE_ARCHIVE) for what is unsafe and exit 17
// (E_MALFORMED_ARCHIVE) for what is merely broken; maxBytes holds for tar as
// for zip; one duplicate rule; no two names merge; setuid files are reported
// and follow the source's policy.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { after, before, test } from "node:test";
import { repoRoot, runCli, tempDir } from "../helpers/cli.ts";
import { deb, paxMember, tar, tarHeader } from "../reliability/craft.ts";
import { makeZip } from "../python/helpers/zip.ts";
import { extractTar } from "../../src/archive/tar.ts";
import { openZip } from "../../src/archive/zip.ts";
import { MalformedArchiveError, UnsafeArchiveError } from "../../src/errors.ts";
import { installDeb } from "../../src/sources/debian/deb.ts";
import { installWheel, schemeFor } from "../../src/sources/python/wheel.ts";
import { applySetuidPolicy } from "../../src/sources/setuid.ts";
import { TreeWriter } from "../../src/store/tree.ts";

let tmp: { dir: string; cleanup: () => Promise<void> };
before(async () => { tmp = await tempDir("lf-archive-input-"); });
after(async () => tmp.cleanup());

const lib = path.join(repoRoot, "src", "index.ts");
let n = 0;

/** Build an image whose one layer unpacks this archive (bytes written to a file of this name). */
async function buildArchive(file: string, bytes: Buffer, spec: Record<string, unknown> = {}, args: string[] = []) {
  const dir = path.join(tmp.dir, `case-${++n}`);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, file), bytes);
  const archive = { path: `./${file}`, dest: "/opt/x", ...spec };
  await writeFile(path.join(dir, "layerfold.config.ts"), `import { defineImage } from ${JSON.stringify(lib)};\nexport default defineImage({ name: "archive/case", compression: "gzip", layers: [{ name: "a", archives: [${JSON.stringify(archive)}] }] });\n`);
  const out = path.join(dir, "out");
  const store = path.join(tmp.dir, "store");
  const t0 = Date.now();
  const r = await runCli(["build", "-C", dir, "--store", store, "-o", `oci:${out}`, ...args]);
  return { ...r, dir, store, seconds: (Date.now() - t0) / 1000, outExists: existsSync(out) };
}

const newTree = (what: string, opts: ConstructorParameters<typeof TreeWriter>[2] = {}) => new TreeWriter(path.join(tmp.dir, "trees", `t${++n}`), what, opts);

test("a 5 KB path and a 304-byte file name: exit 17, naming the archive and the entry (no raw ENAMETOOLONG)", async () => {
  const long = `${"d/".repeat(2500)}f`;
  const r = await buildArchive("longpath.tar", tar([paxMember({ path: long }), { name: "ignored", body: "x" }]));
  assert.equal(r.code, 17, r.stderr);
  assert.match(r.stderr, /error\[E_MALFORMED_ARCHIVE\]: archive \.\/longpath\.tar \(archive:longpath\): entry "opt\/x\/d\/d\/d.*" is 5\d\d\d bytes long, over the 3840-byte limit/);
  assert.doesNotMatch(r.stderr, /ENAMETOOLONG/);
  assert.equal(r.outExists, false);

  const name = `${"n".repeat(300)}.txt`;
  const r2 = await buildArchive("longname.tar", tar([paxMember({ path: `dir/${name}` }), { name: "ignored", body: "x" }]));
  assert.equal(r2.code, 17, r2.stderr);
  assert.match(r2.stderr, /error\[E_MALFORMED_ARCHIVE\]: archive \.\/longname\.tar \(archive:longname\): entry "opt\/x\/dir\/n+…" has a 304-byte name component, over Linux's 255-byte limit/);
});

test("a gzip cut in half: exit 17 naming the archive, the entry and zlib's reason; --debug adds our stack, not zlib's", async () => {
  const body = Buffer.alloc(200_000);
  for (let i = 0; i < body.length; i++) body[i] = (i * 7919) % 251; // compresses, but not to nothing
  const whole = gzipSync(tar([{ name: "first.txt", body: "hello\n" }, { name: "big.bin", body }]));
  const r = await buildArchive("cut.tar.gz", whole.subarray(0, Math.floor(whole.length / 2)), {}, ["--debug"]);
  assert.equal(r.code, 17, r.stderr);
  assert.match(r.stderr, /error\[E_MALFORMED_ARCHIVE\]: archive \.\/cut\.tar\.gz \(archive:cut\), entry "big\.bin": the data does not decompress \(Z_BUF_ERROR: unexpected end of file\); the archive is truncated or corrupt/);
  assert.doesNotMatch(r.stderr, /node:zlib|Zlib\.|zlibOnError/, "no zlib stack frames");
  assert.match(r.stderr, /MalformedArchiveError: /, "--debug shows the typed error's stack");
});

/** A gzip that inflates to a tar with one `size`-byte entry of zeros: concatenated gzip members, ~1 KB per MiB. */
function gzipBomb(size: number): Buffer {
  const zeros = gzipSync(Buffer.alloc(1 << 20), { level: 9 });
  const parts = [gzipSync(tarHeader({ name: "zeros" }, size))];
  for (let i = 0; i < size / (1 << 20); i++) parts.push(zeros);
  parts.push(gzipSync(Buffer.alloc(1024)));
  return Buffer.concat(parts);
}

test("maxBytes holds for tar: a 2 GiB gzip bomb with maxBytes 1 MiB is refused at its header (exit 4)", async () => {
  const bomb = gzipBomb(2 * 1024 ** 3);
  const r = await buildArchive("bomb.tar.gz", bomb, { maxBytes: 1 << 20 });
  console.log(`# 2 GiB gzip bomb (${bomb.length} bytes compressed), maxBytes 1 MiB: exit ${r.code} after ${r.seconds.toFixed(1)} s (whole build)`);
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stderr, /error\[E_UNSAFE_ARCHIVE\]: archive \.\/bomb\.tar\.gz \(archive:bomb\): unpacks to more than 1048576 bytes \(at entry "zeros"\); refusing it as a possible archive bomb \(raise maxBytes/);

  // Early: the reader stops at the header. Count the compressed bytes it pulled.
  let pulled = 0;
  async function* chunks() {
    for (let i = 0; i < bomb.length; i += 64 * 1024) {
      pulled += Math.min(64 * 1024, bomb.length - i);
      yield bomb.subarray(i, i + 64 * 1024);
    }
  }
  const { createGunzip } = await import("node:zlib");
  await assert.rejects(extractTar(Readable.from(chunks()).pipe(createGunzip()), newTree("bomb"), { maxBytes: 1 << 20 }), UnsafeArchiveError);
  console.log(`# the tar reader refused it after ${pulled} of ${bomb.length} compressed bytes`);
  assert.ok(pulled < bomb.length / 4, `refused after ${pulled} of ${bomb.length} bytes`);
});

test("duplicates: one rule for tar, zip, wheels and .debs (a path twice is refused; the same directory twice is not)", async () => {
  const r = await buildArchive("dup.tar", tar([{ name: "a/", type: "5", mode: 0o755 }, { name: "a/", type: "5", mode: 0o755 }, { name: "a/f", body: "first" }, { name: "./a//f", body: "second" }]));
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stderr, /error\[E_UNSAFE_ARCHIVE\]: .*"\.\/a\/\/f" appears twice in the archive/);
  const zr = await buildArchive("dup.zip", makeZip([{ name: "a/f", data: "first" }, { name: "a//f", data: "second" }]));
  assert.equal(zr.code, 4, zr.stderr);
  assert.match(zr.stderr, /"a\/\/f" appears twice in the archive/);
  await assert.rejects(installDeb(Readable.from([deb([{ name: "./usr/bin/t", body: "1" }, { name: "./usr/bin/t", body: "2" }])]), newTree("deb", { symlinks: "image" }), "dup.deb"), /appears twice/);
  await assert.rejects(extractTar(Readable.from([tar([{ name: "d", type: "5", mode: 0o755 }, { name: "d", type: "5", mode: 0o4777 }])]), newTree("dirs")), /"d" appears twice in the archive with different modes/);
  const ok = await buildArchive("dirs.tar", tar([{ name: "a/", type: "5", mode: 0o755 }, { name: "a", type: "5", mode: 0o755 }, { name: "a/f", body: "x" }]));
  assert.equal(ok.code, 0, ok.stderr);
});

test("non-UTF-8 names: 0xE9 and 0xE8 never become one file; tar and zip refuse them (exit 17)", async () => {
  const e9 = Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x2e, 0x74, 0x78, 0x74]);
  const e8 = Buffer.from([0x63, 0x61, 0x66, 0xe8, 0x2e, 0x74, 0x78, 0x74]);
  const r = await buildArchive("latin1.tar", tar([{ name: e9, body: "one" }, { name: e8, body: "two" }]));
  assert.equal(r.code, 17, r.stderr);
  assert.match(r.stderr, /entry name "caf\\xe9\.txt" is not valid UTF-8; refusing the archive rather than guessing its encoding/);
  const zr = await buildArchive("latin1.zip", makeZip([{ name: e9, data: "one" }, { name: e8, data: "two" }]));
  assert.equal(zr.code, 17, zr.stderr);
  assert.match(zr.stderr, /"caf\\xe9\.txt" is not valid UTF-8/);
  // Valid UTF-8 names in a zip without the UTF-8 flag are read as UTF-8, and stay distinct.
  const f = path.join(tmp.dir, "utf8.zip");
  await writeFile(f, makeZip([{ name: "café.txt", data: "one" }, { name: "cafè.txt", data: "two" }]));
  const z = await openZip(f);
  assert.deepEqual(z.entries.map((e) => e.name), ["café.txt", "cafè.txt"]);
  await z.close();
});

test("not a valid wheel is malformed (exit 17), not unsafe; a setuid bit in a wheel is dropped, as pip does", async () => {
  const scheme = schemeFor({ prefix: "/opt/venv", version: "3.11", interpreter: "/usr/bin/python3.11" });
  const bad = path.join(tmp.dir, "bad-1.0-py3-none-any.whl");
  await writeFile(bad, makeZip([{ name: "bad/__init__.py", data: "" }]));
  await assert.rejects(installWheel(bad, newTree("bad wheel"), { file: "bad-1.0-py3-none-any.whl", scheme, requested: false }), (e: Error) => e instanceof MalformedArchiveError && e.exitCode === 17 && /not a valid wheel/.test(e.message));
  const { createHash } = await import("node:crypto");
  const di = "s-1.0.dist-info";
  const files = [{ name: "s/tool", data: "#!/bin/sh\n" }, { name: `${di}/WHEEL`, data: "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n" }, { name: `${di}/METADATA`, data: "Name: s\nVersion: 1.0\n" }];
  const record = [...files.map((m) => `${m.name},sha256=${createHash("sha256").update(m.data).digest("base64url")},${m.data.length}`), `${di}/RECORD,,`, ""].join("\n");
  const whl = path.join(tmp.dir, "s-1.0-py3-none-any.whl");
  await writeFile(whl, makeZip([{ ...files[0]!, mode: 0o104755 }, ...files.slice(1), { name: `${di}/RECORD`, data: record }]));
  const t = newTree("setuid wheel");
  await installWheel(whl, t, { file: "s-1.0-py3-none-any.whl", scheme, requested: false });
  assert.equal(t.get("opt/venv/lib/python3.11/site-packages/s/tool")!.mode, 0o755);
});

test("setuid: an archive's are stripped by default (warned), kept with policy keep (inspect and check list them), refused with refuse", async () => {
  const members = [{ name: "bin/", type: "5", mode: 0o2755 }, { name: "bin/tool", body: "#!/bin/sh\n", mode: 0o4755 }, { name: "bin/grp", body: "x", mode: 0o2711 }];
  const stripped = await buildArchive("suid.tar", tar(members));
  assert.equal(stripped.code, 0, stripped.stderr);
  assert.match(stripped.stderr, /warning: archive \.\/suid\.tar \(archive:suid\): cleared setuid\/setgid on \/opt\/x\/bin\/tool \(setuid root\), \/opt\/x\/bin\/grp \(setgid root\)/);
  const ins = await runCli(["inspect", "-C", stripped.dir, "--store", stripped.store]);
  assert.equal(ins.code, 0, ins.stderr);
  assert.match(ins.stdout, /setuid\/setgid files: none/);

  const kept = await buildArchive("suid.tar", tar(members), { setuid: { policy: "keep" } });
  assert.equal(kept.code, 0, kept.stderr);
  const ins2 = await runCli(["inspect", "-C", kept.dir, "--store", kept.store, "--json"]);
  const setuid = (JSON.parse(ins2.stdout) as { setuid: Array<{ path: string; mode: string; grants: string; packageId: string }> }).setuid;
  assert.deepEqual(setuid.map((f) => [f.path, f.mode, f.grants, f.packageId]).sort(), [["/opt/x/bin/grp", "2711", "setgid root", "archive:suid"], ["/opt/x/bin/tool", "4755", "setuid root", "archive:suid"]]);
  const chk = await runCli(["check", "-C", kept.dir, "--store", kept.store, "--no-imports", "--no-libs", "--no-dups"]);
  assert.equal(chk.code, 0, chk.stderr);
  assert.match(chk.stdout, /setuid\/setgid files: 2[^\n]*\n\s+\/opt\/x\/bin\/grp\s+2711 setgid root\s+archive:suid in layer a\n\s+\/opt\/x\/bin\/tool\s+4755 setuid root/);

  const allowed = await buildArchive("suid.tar", tar(members), { setuid: { policy: "refuse", allow: ["/opt/x/bin/tool"] } });
  assert.equal(allowed.code, 4, allowed.stderr);
  assert.match(allowed.stderr, /error\[E_UNSAFE_ARCHIVE\]: .*ships setuid\/setgid files, which its setuid policy refuses: \/opt\/x\/bin\/grp \(setgid root\)/);
  const bad = await buildArchive("suid.tar", tar(members), { setuid: { policy: "sometimes" } });
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /layers\[0\]\.archives\[0\]\.setuid\.policy/);
});

test("setuid from a .deb: kept by Debian's default, stripped or refused by policy", async () => {
  const pkg = () => Readable.from([deb([{ name: "./usr/", type: "5", mode: 0o755 }, { name: "./usr/bin/", type: "5", mode: 0o755 }, { name: "./usr/bin/su2", body: "x", mode: 0o4755 }])]);
  const keep = newTree("deb keep", { symlinks: "image" });
  await installDeb(pkg(), keep, "su2.deb");
  applySetuidPolicy(keep, { policy: "keep", allow: [] }, "su2.deb");
  assert.equal(keep.get("usr/bin/su2")!.mode, 0o4755);
  const strip = newTree("deb strip", { symlinks: "image" });
  await installDeb(pkg(), strip, "su2.deb");
  const warned: string[] = [];
  applySetuidPolicy(strip, { policy: "strip", allow: [] }, "su2.deb", { info() {}, debug() {}, progress() {}, warn: (m) => warned.push(m) });
  assert.equal(strip.get("usr/bin/su2")!.mode, 0o755);
  assert.match(warned.join("\n"), /cleared setuid\/setgid on \/usr\/bin\/su2 \(setuid root\)/);
  const refuse = newTree("deb refuse", { symlinks: "image" });
  await installDeb(pkg(), refuse, "su2.deb");
  assert.throws(() => applySetuidPolicy(refuse, { policy: "refuse", allow: [] }, "su2.deb"), UnsafeArchiveError);
});
