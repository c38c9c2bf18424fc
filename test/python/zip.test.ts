import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, writeFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { openZip, memberFromBuffer, readCentralDirectory } from "../../src/archive/zip.ts";
import { UnsafeArchiveError } from "../../src/errors.ts";
import { makeZip } from "./helpers/zip.ts";

async function withZip(buf: Buffer, fn: (file: string) => Promise<void>) {
  const dir = await mkdtemp(path.join(os.tmpdir(), "lf-zip-"));
  try {
    const f = path.join(dir, "a.zip");
    await writeFile(f, buf);
    await fn(f);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test("reads stored and deflated members and their modes", async () => {
  const big = Buffer.alloc(300_000, "abc");
  await withZip(makeZip([{ name: "pkg/" , data: "" , method: 0 }, { name: "pkg/a.txt", data: "hello", method: 0 }, { name: "pkg/big.bin", data: big }, { name: "bin/x", data: "#!/bin/sh\n", mode: 0o100755 }]), async (f) => {
    const z = await openZip(f);
    try {
      assert.deepEqual(z.entries.map((e) => e.name), ["pkg/", "pkg/a.txt", "pkg/big.bin", "bin/x"]);
      assert.equal((await z.read(z.get("pkg/a.txt")!)).toString(), "hello");
      assert.ok((await z.read(z.get("pkg/big.bin")!)).equals(big));
      assert.ok(((await z.content(z.get("pkg/big.bin")!)) as Buffer).equals(big));
      assert.ok(!Buffer.isBuffer(await z.content(z.get("pkg/big.bin")!, 1000)), "large members stream");
      assert.equal(z.get("bin/x")!.mode, 0o755);
      assert.equal(z.get("pkg/")!.isDir, true);
    } finally {
      await z.close();
    }
  });
});

test("reads zips made by the system zip tool, including zip64", { skip: !hasZip() && "zip not installed" }, async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "lf-zip64-"));
  try {
    await writeFile(path.join(dir, "f.txt"), "zip64 content\n");
    // -fz forces zip64 records even for small files.
    execFileSync("zip", ["-q", "-fz", path.join(dir, "z.zip"), "f.txt"], { cwd: dir });
    const z = await openZip(path.join(dir, "z.zip"));
    assert.equal((await z.read(z.get("f.txt")!)).toString(), "zip64 content\n");
    await z.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

function hasZip(): boolean {
  try { execFileSync("zip", ["-v"], { stdio: "ignore" }); return true; } catch { return false; }
}

test("refuses a member that inflates past its declared size", async () => {
  await withZip(makeZip([{ name: "bomb", data: Buffer.alloc(1_000_000), declaredSize: 1000 }]), async (f) => {
    const z = await openZip(f);
    await assert.rejects(z.read(z.entries[0]!), (e: Error) => e instanceof UnsafeArchiveError && /inflates past its declared 1000 bytes/.test(e.message));
    // The small-member fast path has the same defence.
    await assert.rejects(z.content(z.entries[0]!), (e: Error) => e instanceof UnsafeArchiveError && /inflates past its declared 1000 bytes/.test(e.message));
    await z.close();
  });
});

test("refuses a member shorter than declared", async () => {
  await withZip(makeZip([{ name: "short", data: "abc", declaredSize: 10 }]), async (f) => {
    const z = await openZip(f);
    await assert.rejects(z.read(z.entries[0]!), /has 3 bytes but declares 10/);
    await z.close();
  });
});

test("refuses overlapping members (shared data)", async () => {
  await withZip(makeZip([{ name: "a", data: "x".repeat(100) }, { name: "b", data: "y".repeat(100) }], { shareDataOf: [0, 1] }), async (f) => {
    await assert.rejects(openZip(f), (e: Error) => e instanceof UnsafeArchiveError && /share their data/.test(e.message));
  });
});

test("refuses absolute and escaping names, and duplicates", async () => {
  for (const name of ["../evil", "a/../../evil", "/etc/passwd", "C:/x", "a\\..\\..\\b"]) {
    await withZip(makeZip([{ name, data: "x" }]), async (f) => {
      await assert.rejects(openZip(f, { what: "t.zip" }), (e: Error) => e instanceof UnsafeArchiveError && e.message.includes("t.zip"), name);
    });
  }
  await withZip(makeZip([{ name: "a", data: "1" }, { name: "a", data: "2" }]), async (f) => {
    await assert.rejects(openZip(f), /appears twice/);
  });
});

test("caps the declared total size", async () => {
  await withZip(makeZip([{ name: "a", data: "x".repeat(600) }, { name: "b", data: "y".repeat(600) }]), async (f) => {
    await assert.rejects(openZip(f, { maxTotalBytes: 1000 }), /more than 1000 uncompressed bytes/);
  });
});

test("refuses garbage", async () => {
  await withZip(Buffer.from("this is not a zip file at all, not even close"), async (f) => {
    await assert.rejects(openZip(f), /not a valid zip archive/);
  });
});

test("ranged extraction: central directory and one member from byte ranges", async () => {
  const buf = makeZip([{ name: "x/METADATA", data: "Name: x\nVersion: 1\n" }, { name: "x/other", data: "zzz" }]);
  const readAt = async (pos: number, len: number) => buf.subarray(pos, pos + len);
  const { entries } = await readCentralDirectory(readAt, buf.length, "x.whl");
  const e = entries.find((m) => m.name === "x/METADATA")!;
  const meta = memberFromBuffer(buf.subarray(e.offset, e.offset + 30 + 4096 + e.compressedSize), e, "x.whl");
  assert.equal(meta.toString(), "Name: x\nVersion: 1\n");
  const lie = { ...e, size: 3 };
  assert.throws(() => memberFromBuffer(buf.subarray(e.offset), lie, "x.whl"), UnsafeArchiveError, "inflating past the declared size is a bomb");
});
