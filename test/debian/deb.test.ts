import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { readAr } from "../../src/archive/ar.ts";
import { MalformedArchiveError, UnsafeArchiveError, PathConflictError } from "../../src/errors.ts";
import { xzUncompressedSize } from "../../src/archive/decompress.ts";
import { execFileSync } from "node:child_process";
import { canonicalLinkTarget, canonicalPath, installDeb } from "../../src/sources/debian/deb.ts";
import { parseAlternatives } from "../../src/sources/debian/generate.ts";
import { ldConfDirs } from "../../src/sources/debian/ldcache.ts";
import { TreeWriter } from "../../src/store/tree.ts";
import { tempDir } from "../helpers/cli.ts";
import { buildDeb, hasTools } from "./testrepo.ts";

function arBytes(members: [string, Buffer][]): Buffer {
  const parts: Buffer[] = [Buffer.from("!<arch>\n")];
  for (const [name, data] of members) {
    const h = `${(name + "/").padEnd(16)}${"0".padEnd(12)}${"0".padEnd(6)}${"0".padEnd(6)}${"100644".padEnd(8)}${String(data.length).padEnd(10)}\`\n`;
    parts.push(Buffer.from(h, "latin1"), data);
    if (data.length & 1) parts.push(Buffer.from("\n"));
  }
  return Buffer.concat(parts);
}

async function collect(buf: Buffer, chunk = 7) {
  const chunks: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunk) chunks.push(buf.subarray(i, i + chunk));
  const out: [string, string][] = [];
  for await (const m of readAr(Readable.from(chunks), "t")) {
    out.push([m.name, m.name === "skip" ? "" : (await m.body.mustRead(m.size)).toString()]);
  }
  return out;
}

test("ar: members in order, odd sizes padded, unread members skipped, small chunks", async () => {
  const buf = arBytes([["debian-binary", Buffer.from("2.0\n")], ["skip", Buffer.from("odd")], ["data", Buffer.from("12345")]]);
  assert.deepEqual(await collect(buf), [["debian-binary", "2.0\n"], ["skip", ""], ["data", "12345"]]);
});

test("ar: bad magic, bad header, truncation and unsafe names are refused", async () => {
  await assert.rejects(collect(Buffer.from("!<arch>X" + "x".repeat(60))), MalformedArchiveError);
  const good = arBytes([["a", Buffer.from("hello")]]);
  const badHeader = Buffer.from(good);
  badHeader[8 + 58] = 0x41;
  await assert.rejects(collect(badHeader), /bad ar member header/);
  await assert.rejects(collect(good.subarray(0, good.length - 3)), (e: Error) => e instanceof MalformedArchiveError && /entry "a": truncated/.test(e.message));
  await assert.rejects(collect(arBytes([["..", Buffer.from("x")]])), (e: Error) => e instanceof UnsafeArchiveError && /unsafe name/.test(e.message));
});

test("merged-/usr canonicalisation of paths and moved relative links", () => {
  assert.equal(canonicalPath("bin/sh"), "usr/bin/sh");
  assert.equal(canonicalPath("lib64/ld-linux-x86-64.so.2"), "usr/lib64/ld-linux-x86-64.so.2");
  assert.equal(canonicalPath("usr/bin/sh"), "usr/bin/sh");
  assert.equal(canonicalPath("libexec/x"), "libexec/x");
  assert.equal(canonicalLinkTarget("bin/x", "usr/bin/x", "../usr/lib/y"), "../lib/y");
  assert.equal(canonicalLinkTarget("lib/x86_64-linux-gnu/libz.so", "usr/lib/x86_64-linux-gnu/libz.so", "libz.so.1"), "libz.so.1");
  assert.equal(canonicalLinkTarget("sbin/x", "usr/sbin/x", "../bin/y"), "../bin/y");
  assert.equal(canonicalLinkTarget("bin/x", "usr/bin/x", "/usr/bin/y"), "/usr/bin/y");
  assert.equal(canonicalLinkTarget("usr/bin/x", "usr/bin/x", "../../bin/y"), "../../bin/y");
});

test("update-alternatives calls are read from postinst scripts, literal arguments only", () => {
  const script = `#!/bin/sh
set -e
update-alternatives --quiet --install /usr/bin/cc cc /usr/bin/gcc 20 \\
    --slave /usr/share/man/man1/cc.1.gz cc.1.gz /usr/share/man/man1/gcc.1.gz
update-alternatives --install /usr/bin/c89 c89 /usr/bin/c89-gcc 20 --slave /usr/share/man/man1/c89.1.gz c89.1.gz /usr/share/man/man1/c89-gcc.1.gz
update-alternatives --install "$LINK" x "$TARGET" 10
update-alternatives --remove cc /usr/bin/gcc
`;
  const alts = parseAlternatives(script, "gcc");
  assert.equal(alts.length, 2);
  assert.deepEqual(alts[0], { link: "/usr/bin/cc", name: "cc", path: "/usr/bin/gcc", priority: 20, pkg: "gcc", slaves: [{ link: "/usr/share/man/man1/cc.1.gz", name: "cc.1.gz", path: "/usr/share/man/man1/gcc.1.gz" }] });
  assert.equal(alts[1]!.name, "c89");
});

test("ld.so.conf includes are followed over the image's files", () => {
  const texts: Record<string, string> = {
    "etc/ld.so.conf": "include /etc/ld.so.conf.d/*.conf\n",
    "etc/ld.so.conf.d/x86_64-linux-gnu.conf": "# Multiarch support\n/usr/local/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n",
    "etc/ld.so.conf.d/cuda.conf": "/usr/local/cuda/lib64\n",
  };
  const files = { entries: new Map(Object.keys(texts).map((k) => [k, {}])) } as unknown as Parameters<typeof ldConfDirs>[0];
  assert.deepEqual(ldConfDirs(files, (p) => texts[p]), ["lib/x86_64-linux-gnu", "usr/local/cuda/lib64", "usr/local/lib/x86_64-linux-gnu"]);
});

test(".deb files: every compression, /bin and /usr/bin clash, truncation", { skip: hasTools() }, async () => {
  const tmp = await tempDir("layerfold-debunit-");
  try {
    for (const c of ["xz", "gzip", "zstd", "none"] as const) {
      const deb = await buildDeb(tmp.dir, { name: `p-${c}`, version: "1", compression: c, files: { "bin/tool": "t", "etc/x": "x" } });
      const w = new TreeWriter(path.join(tmp.dir, `root-${c}`), `p-${c}`, { symlinks: "image" });
      const info = await installDeb(Readable.from([await readFile(deb)]), w, `p-${c}`);
      assert.equal(w.get("usr/bin/tool")?.size, 1, c);
      assert.match(info.control, new RegExp(`^Package: p-${c}$`, "m"));
      assert.deepEqual(info.paths.filter((p) => p.includes("tool")), ["/bin/tool"]);
    }
    const clash = await buildDeb(tmp.dir, { name: "clash", version: "1", files: { "bin/tool": "a", "usr/bin/tool": "b" } });
    await assert.rejects(installDeb(Readable.from([await readFile(clash)]), new TreeWriter(path.join(tmp.dir, "rc"), "clash", { symlinks: "image" }), "clash"), PathConflictError);
    const selfLink = await buildDeb(tmp.dir, { name: "selflink", version: "1", files: { "usr/bin/tool": "b", "bin/tool": { link: "/usr/bin/tool" } } });
    const w = new TreeWriter(path.join(tmp.dir, "rs"), "selflink", { symlinks: "image" });
    await installDeb(Readable.from([await readFile(selfLink)]), w, "selflink");
    assert.equal(w.get("usr/bin/tool")?.type, "file", "a /bin alias link to the /usr file is dropped");
    const whole = await readFile(path.join(tmp.dir, "p-xz_1_amd64.deb"));
    const truncated = whole.subarray(0, whole.length - 40);
    await assert.rejects(installDeb(Readable.from([truncated]), new TreeWriter(path.join(tmp.dir, "rt"), "t", { symlinks: "image" }), "t"), MalformedArchiveError);
  } finally {
    await tmp.cleanup();
  }
});

test("armored keys carry a CRC-24 that gpg accepts", { skip: hasTools() }, async () => {
  const { armorPublicKey } = await import("../../src/sources/debian/generate.ts");
  const { execFileSync } = await import("node:child_process");
  const key = await readFile("/usr/share/keyrings/debian-archive-keyring.gpg").catch(() => undefined);
  if (!key) return;
  const armored = armorPublicKey(key);
  assert.match(armored, /^-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n[A-Za-z0-9+/=\n]+\n=[A-Za-z0-9+/]{4}\n-----END PGP PUBLIC KEY BLOCK-----\n$/);
  const back = execFileSync("gpg", ["--dearmor"], { input: armored });
  assert.ok(back.equals(key));
  const broken = armored.replace(/\n=[A-Za-z0-9+/]{4}\n/, "\n=AAAA\n");
  assert.throws(() => execFileSync("gpg", ["--dearmor"], { input: broken, stdio: ["pipe", "pipe", "ignore"] }));
});

test("xz index: the uncompressed size of one whole stream, else undefined", () => {
  const data = Buffer.from(Array.from({ length: 100_000 }, (_v, i) => (i * 7919) % 251));
  const xz = (args: string[]) => execFileSync("xz", ["-c", ...args], { input: data });
  const one = xz([]);
  assert.equal(xzUncompressedSize(one), data.length);
  assert.equal(xzUncompressedSize(xz(["-T2", "--block-size=10000"])), data.length, "many blocks");
  assert.equal(xzUncompressedSize(Buffer.concat([one, Buffer.alloc(8)])), data.length, "stream padding");
  assert.equal(xzUncompressedSize(Buffer.concat([one, one])), undefined, "two streams");
  assert.equal(xzUncompressedSize(one.subarray(0, one.length - 1)), undefined, "truncated");
  assert.equal(xzUncompressedSize(one.subarray(0, 20)), undefined, "too short");
  assert.equal(xzUncompressedSize(Buffer.from("not xz at all, just some text here")), undefined);
});

test(".deb whose control.tar.xz index cannot be read (two xz streams) still installs, control decoded on its own", { skip: hasTools() }, async () => {
  const tmp = await tempDir("layerfold-debxz-");
  try {
    const deb = await buildDeb(tmp.dir, { name: "two-streams", version: "1", files: { "usr/bin/tool": "t" } });
    const members: [string, Buffer][] = [];
    for await (const m of readAr(Readable.from([await readFile(deb)]), "t")) members.push([m.name, Buffer.from(await m.body.mustRead(m.size))]);
    const control = members.find(([n]) => n === "control.tar.xz")!;
    const tar = execFileSync("xz", ["-dc"], { input: control[1] });
    const half = Math.floor(tar.length / 2);
    control[1] = Buffer.concat([execFileSync("xz", ["-c"], { input: tar.subarray(0, half) }), execFileSync("xz", ["-c"], { input: tar.subarray(half) })]);
    assert.equal(xzUncompressedSize(control[1]), undefined);
    const w = new TreeWriter(path.join(tmp.dir, "root"), "two-streams", { symlinks: "image" });
    const info = await installDeb(Readable.from([arBytes(members)]), w, "two-streams");
    assert.match(info.control, /^Package: two-streams$/m);
    assert.equal(w.get("usr/bin/tool")?.size, 1);
  } finally {
    await tmp.cleanup();
  }
});
