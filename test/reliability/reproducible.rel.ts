// Reproducibility: the same config built in two clean stores, once with umask
// 022 and TZ=UTC and once with umask 077 and TZ=Pacific/Kiritimati (UTC+14),
// and from checkouts copied at different times, gives identical manifest digests.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { cp, utimes } from "node:fs/promises";
import path from "node:path";
import { cliPath, helloExample, tempDir } from "../helpers/cli.ts";

let tmp: { dir: string; cleanup: () => Promise<void> };
before(async () => { tmp = await tempDir("lf-rel-repro-"); });
after(async () => tmp.cleanup());

function build(dir: string, store: string, out: string, umask: string, tz: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // The umask is set by a shell in front of node, as a user's login shell would.
    const child = spawn("sh", ["-c", `umask ${umask} && exec "$0" "$@"`, process.execPath, cliPath, "build", "-C", dir, "--store", store, "-o", `oci:${out}`, "--json"], { env: { ...process.env, TZ: tz } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

test("two clean stores, two umasks, two time zones, two checkouts: identical digests", { timeout: 5 * 60_000 }, async () => {
  const a = await helloExample(path.join(tmp.dir, "a"));
  // A second checkout with different file times (copied later, touched to another date).
  const b = path.join(tmp.dir, "b", "hello");
  await cp(a, b, { recursive: true });
  for (const f of ["app/bin/greet.sh", "app/share/message.txt", "layerfold.config.ts"]) await utimes(path.join(b, f), new Date("2001-02-03T04:05:06Z"), new Date("2001-02-03T04:05:06Z"));
  const r1 = await build(a, path.join(tmp.dir, "store1"), path.join(tmp.dir, "out1"), "022", "UTC");
  assert.equal(r1.code, 0, r1.stderr);
  const r2 = await build(b, path.join(tmp.dir, "store2"), path.join(tmp.dir, "out2"), "077", "Pacific/Kiritimati");
  assert.equal(r2.code, 0, r2.stderr);
  const j1 = JSON.parse(r1.stdout);
  const j2 = JSON.parse(r2.stdout);
  assert.deepEqual(j2.layers.map((l: { digest: string }) => l.digest), j1.layers.map((l: { digest: string }) => l.digest), "layer digests");
  assert.equal(j2.configDigest, j1.configDigest, "config digest");
  assert.equal(j2.manifestDigest, j1.manifestDigest, "manifest digest");
  console.log(`# reproducibility: 2 builds (umask 022/UTC vs 077/UTC+14, different checkouts and stores) -> ${j1.manifestDigest} both times`);
});
