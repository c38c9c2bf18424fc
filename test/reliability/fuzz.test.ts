// Fuzzing with a fixed seed and run count: mutated tar, ar and zip bytes,
// deb822 text, PEP 508 requirements/markers and version specifiers. Nothing
// may crash or hang; the worst allowed outcome is a typed LayerfoldError.
// LF_FUZZ_RUNS raises the count (test:reliability runs more).

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { LayerfoldError, MalformedArchiveError, UnsafeArchiveError } from "../../src/errors.ts";
import { readTar, extractTar } from "../../src/archive/tar.ts";
import { readAr } from "../../src/archive/ar.ts";
import { readCentralDirectory, memberFromBuffer, openZip } from "../../src/archive/zip.ts";
import { parseDeb822, parseDependencyList } from "../../src/sources/debian/deb822.ts";
import { parseRequirement, parseMarker, evaluateMarker, targetMarkerEnv } from "../../src/sources/python/pep508.ts";
import { TreeWriter } from "../../src/store/tree.ts";
import { rng } from "./prng.ts";
import { ar, paxMember, tar, zip } from "./craft.ts";
import { readFileSync, writeFileSync } from "node:fs";
import { createGunzip, gzipSync } from "node:zlib";

const RUNS = Number(process.env.LF_FUZZ_RUNS ?? 300);
const SEED = 20261125;
const counts: Record<string, { ok: number; typed: number; unsafe: number; malformed: number }> = {};
let tmp: string | undefined;
after(async () => {
  const show = ([k, c]: [string, (typeof counts)[string]]) => (ARCHIVE.has(k) ? `${k} ${c.ok} parsed/${c.unsafe} unsafe/${c.malformed} malformed` : `${k} ${c.ok} parsed/${c.typed} typed errors`);
  console.log(`# fuzzing (seed ${SEED}, ${RUNS} runs per parser): ${Object.entries(counts).map(show).join("; ")}`);
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/** Archive readers: every refusal must be UnsafeArchiveError (exit 4) or MalformedArchiveError (exit 17). */
const ARCHIVE = new Set(["tar", "tar-extract", "tar.gz-extract", "ar", "zip", "zip-open"]);

function mutate(random: () => number, input: Buffer): Buffer {
  let b = Buffer.from(input);
  const edits = 1 + Math.floor(random() * 8);
  for (let k = 0; k < edits; k++) {
    const r = random();
    const at = Math.floor(random() * Math.max(1, b.length));
    if (r < 0.45) b[at] = Math.floor(random() * 256);
    else if (r < 0.6) b[at] = [0x30, 0x37, 0x20, 0x00, 0xff, 0x2f, 0x2e][Math.floor(random() * 7)]!;
    else if (r < 0.75) b = b.subarray(0, at);
    else if (r < 0.88) b = Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: 1 + Math.floor(random() * 16) }, () => Math.floor(random() * 256))), b.subarray(at)]);
    else b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + Math.floor(random() * 64)))]);
  }
  return b;
}

async function expectCleanly(parser: string, i: number, fn: () => unknown): Promise<void> {
  const c = (counts[parser] ??= { ok: 0, typed: 0, unsafe: 0, malformed: 0 });
  try {
    await fn();
    c.ok++;
  } catch (err) {
    if (!(err instanceof LayerfoldError)) assert.fail(`${parser} run ${i} (seed ${SEED}): untyped ${(err as Error)?.stack ?? err}`);
    c.typed++;
    if (err instanceof UnsafeArchiveError) c.unsafe++;
    else if (err instanceof MalformedArchiveError) c.malformed++;
    else if (ARCHIVE.has(parser)) assert.fail(`${parser} run ${i} (seed ${SEED}): ${err.name} is neither unsafe nor malformed: ${err.message}`);
  }
}

const seedTar = tar([
  { name: "dir/", type: "5", mode: 0o755 },
  { name: "dir/a.txt", body: "hello\n" },
  paxMember({ path: "dir/long-" + "x".repeat(120), "SCHILY.xattr.user.k": "v" }),
  { name: "ignored", body: "pax-named body" },
  { name: "dir/link", type: "2", linkname: "a.txt" },
  { name: "dir/hard", type: "1", linkname: "dir/a.txt" },
]);

test("fuzz tar: readTar and extractTar over mutated archives", async () => {
  const random = rng(SEED);
  tmp ??= await mkdtemp(path.join(os.tmpdir(), "lf-fuzz-"));
  for (let i = 0; i < RUNS; i++) {
    const bytes = mutate(random, seedTar);
    await expectCleanly("tar", i, async () => {
      for await (const { body, header } of readTar(Readable.from([bytes]), `fuzz tar ${i}`)) {
        if (header.size < 1 << 20) for await (const _ of body.stream(header.size)) void _;
      }
    });
    await expectCleanly("tar-extract", i, () => extractTar(Readable.from([bytes]), new TreeWriter(path.join(tmp!, `t${i}`), `fuzz tar ${i}`, { maxBytes: 1 << 20 }), { maxBytes: 1 << 20 }));
  }
});

test("fuzz tar.gz: mutated gzip streams through the decompressor and extractTar", async () => {
  const random = rng(SEED + 5);
  tmp ??= await mkdtemp(path.join(os.tmpdir(), "lf-fuzz-"));
  const seed = gzipSync(seedTar);
  for (let i = 0; i < RUNS; i++) {
    const bytes = mutate(random, seed);
    await expectCleanly("tar.gz-extract", i, () => extractTar(Readable.from([bytes]).pipe(createGunzip()), new TreeWriter(path.join(tmp!, `g${i}`), `fuzz tar.gz ${i}`, { maxBytes: 1 << 20 }), { maxBytes: 1 << 20 }));
  }
});

const seedAr = ar([
  { name: "debian-binary", body: Buffer.from("2.0\n") },
  { name: "control.tar.gz", body: Buffer.alloc(37, 7) },
  { name: "a-very-long-member-name.tar/", body: Buffer.from("odd") },
]);

test("fuzz ar: readAr over mutated archives", async () => {
  const random = rng(SEED + 1);
  for (let i = 0; i < RUNS; i++) {
    const bytes = mutate(random, seedAr);
    await expectCleanly("ar", i, async () => {
      for await (const m of readAr(Readable.from([bytes]), `fuzz ar ${i}`)) {
        if (m.size < 1 << 20) for await (const _ of m.body.stream(m.size)) void _;
      }
    });
  }
});

test("fuzz zip: central directory and member reads over mutated archives", async () => {
  const random = rng(SEED + 2);
  tmp ??= await mkdtemp(path.join(os.tmpdir(), "lf-fuzz-"));
  const file = path.join(tmp, "seed.zip");
  zip(file, [{ name: "pkg/__init__.py", data: "x = 1\n".repeat(50) }, { name: "pkg-1.0.dist-info/WHEEL", data: "Wheel-Version: 1.0\n" }, { name: "empty", data: "" }]);
  const seed = readFileSync(file);
  for (let i = 0; i < RUNS; i++) {
    // Mutations aimed at the tail (the central directory and its end record) as often as anywhere.
    const bytes = random() < 0.5 ? mutate(random, seed) : Buffer.concat([seed.subarray(0, seed.length - 120), mutate(random, seed.subarray(seed.length - 120))]);
    await expectCleanly("zip", i, async () => {
      const readAt = async (pos: number, len: number) => bytes.subarray(pos, pos + len);
      const { entries } = await readCentralDirectory(readAt, bytes.length, `fuzz zip ${i}`);
      for (const e of entries) if (e.size < 1 << 20) memberFromBuffer(bytes.subarray(e.offset), e, `fuzz zip ${i}`);
    });
    // The whole-file path too: names (UTF-8, length, duplicates), overlaps and streamed members.
    const f = path.join(tmp, `m${i % 8}.zip`);
    writeFileSync(f, bytes);
    await expectCleanly("zip-open", i, async () => {
      const z = await openZip(f, { what: `fuzz zip ${i}`, maxTotalBytes: 1 << 20 });
      try {
        for (const e of z.entries) if (!e.isDir) for await (const _ of await z.stream(e)) void _;
      } finally {
        await z.close();
      }
    });
  }
});

const seedDeb822 = `Package: libc6
Version: 2.36-9+deb12u4
Architecture: amd64
Depends: libgcc-s1, foo (>= 1.0) | bar [amd64 !i386] <!nocheck>, baz:any (<< 2~)
Description: GNU C Library
 multi-line
 .
 continued

Package: other
Pre-Depends: a (= 1:2.3-4)
`;

test("fuzz deb822: paragraphs and dependency lists over mutated text", async () => {
  const random = rng(SEED + 3);
  for (let i = 0; i < RUNS; i++) {
    const text = mutate(random, Buffer.from(seedDeb822)).toString("utf8");
    await expectCleanly("deb822", i, () => {
      for (const p of parseDeb822(text)) for (const [, v] of p) parseDependencyList(v);
    });
  }
});

const seedReqs = [
  'torch==2.14.1; python_version >= "3.10" and platform_machine == "x86_64"',
  "numpy>=1.26,<3,!=2.0.1",
  'requests[security,socks] ~= 2.31 ; extra == "http" or os_name != "nt"',
  "name @ https://example.org/a-1.0-py3-none-any.whl",
  "pillow===10.0.0",
  "a (>=1.0.post1.dev3, <2.0a1)",
];
const seedMarkers = ['python_version < "3.12" and (sys_platform == "linux" or implementation_name == "cpython")', '"3.11" in python_full_version', 'extra == "cuda" and platform_release >= "5"'];

test("fuzz PEP 508: requirements, markers and version specifiers", async () => {
  const random = rng(SEED + 4);
  const env = targetMarkerEnv({ version: "3.11", fullVersion: "3.11.2", arch: "x86_64" });
  for (let i = 0; i < RUNS; i++) {
    const req = mutate(random, Buffer.from(seedReqs[i % seedReqs.length]!)).toString("utf8");
    await expectCleanly("pep508-requirement", i, () => {
      const r = parseRequirement(req, `fuzz requirement ${i}`);
      if (r.marker) evaluateMarker(r.marker, env, ["cuda"]);
    });
    const mk = mutate(random, Buffer.from(seedMarkers[i % seedMarkers.length]!)).toString("utf8");
    await expectCleanly("pep508-marker", i, () => evaluateMarker(parseMarker(mk, `fuzz marker ${i}`), env));
    // Version specifiers alone, from a soup of their tokens.
    const tokens = ["==", ">=", "<", "~=", "!=", "===", ",", "1", ".", "*", "post", "dev", "a", "rc", "+local", " ", "!", "v", "2"];
    const spec = Array.from({ length: 1 + Math.floor(random() * 10) }, () => tokens[Math.floor(random() * tokens.length)]).join("");
    await expectCleanly("version-specifier", i, () => parseRequirement(`pkg${spec}`, `fuzz specifier ${i}`));
  }
});
