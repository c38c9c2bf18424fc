// layerfold gc on examples/hello: keeps the newest build of each image and all it reaches,
// removes old layers, trees, records and killed runs' temp files; never runs beside
// another user of the store, and a command waits for a running gc.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { cliPath, helloExample, runCli, tempDir } from "../helpers/cli.ts";

let tmp: { dir: string; cleanup: () => Promise<void> };
let example: string;
before(async () => {
  tmp = await tempDir();
  example = await helloExample(tmp.dir);
});
after(async () => tmp.cleanup());

interface Built { manifestDigest: string; configDigest: string; layers: Array<{ name: string; reused: boolean; digest: string }> }
const build = async (store: string): Promise<Built> => {
  const r = await runCli(["build", "-C", example, "--store", store, "-o", "none", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Built;
};
const gc = async (store: string, ...args: string[]) => runCli(["gc", "--store", store, "--json", ...args]);
const blobs = (store: string) => new Set(readdirSync(path.join(store, "blobs", "sha256")));
const message = () => path.join(example, "app", "share", "message.txt");

/** "pid starttime" of a live process, as the store's users/ files hold it. */
function owner(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return `${pid} ${stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]}`;
}

test("gc keeps the newest build and what it reaches; the next build reuses every layer, and an old state rebuilds one layer", async () => {
  const store = path.join(tmp.dir, "store-gc");
  const original = readFileSync(message(), "utf8");
  const v1 = await build(store);
  await writeFile(message(), "second version\n");
  try {
    await collectAndRebuild(store, v1);
  } finally {
    await writeFile(message(), original);
  }
  // Back to v1's message: its app layer was collected, so exactly that layer is built, byte-identical.
  const back = await build(store);
  assert.equal(back.manifestDigest, v1.manifestDigest);
  assert.deepEqual(back.layers.filter((l) => !l.reused).map((l) => l.name), ["app"]);

  const second = await gc(store, "--keep", "2");
  assert.equal(second.code, 0, second.stderr);
  assert.equal((JSON.parse(second.stdout) as { kept: unknown[] }).kept.length, 2, "--keep 2 keeps both builds of the image");
  const bad = await runCli(["gc", "--store", store, "--keep", "0"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /error\[E_USAGE\]: option '--keep <n>' argument '0' is invalid\. give a whole number, 1 or more/);
});

/** Build v2 over v1, collect, check what went and what stayed, and build v2 again. */
async function collectAndRebuild(store: string, v1: Built): Promise<void> {
  const v2 = await build(store);
  const oldOnly = v1.layers.filter((l) => !v2.layers.some((m) => m.digest === l.digest));
  assert.deepEqual(oldOnly.map((l) => l.name), ["app"], "only the app layer differs");

  // What killed runs leave behind: temp files, a temp tree, and the users/ entry of a dead process.
  await writeFile(path.join(store, "tmp", "layer-0123456789ab-999999-x"), "partial");
  await mkdir(path.join(store, "tmp", "tree-0123456789ab-abc", "root"), { recursive: true });
  const dead = spawnSync("true").pid!;
  await mkdir(path.join(store, "users"), { recursive: true });
  await writeFile(path.join(store, "users", String(dead)), `${dead} 1`);

  const before = blobs(store);
  const dry = await gc(store, "--dry-run");
  assert.equal(dry.code, 0, dry.stderr);
  const planned = JSON.parse(dry.stdout) as { dropped: Array<{ manifestDigest: string }>; freedBytes: number };
  assert.deepEqual(planned.dropped.map((b) => b.manifestDigest), [v1.manifestDigest]);
  assert.ok(planned.freedBytes > 0);
  assert.deepEqual(blobs(store), before, "a dry run removes nothing");

  const r = await gc(store);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { kept: Array<{ manifestDigest: string }>; parts: Array<{ kind: string; removed: number }> };
  assert.deepEqual(report.kept.map((b) => b.manifestDigest), [v2.manifestDigest]);
  const removed = Object.fromEntries(report.parts.map((p) => [p.kind, p.removed]));
  assert.ok(removed.trees >= 1 && removed.blobs >= 2 && removed.layers >= 1 && removed.builds >= 1, JSON.stringify(removed));
  assert.equal(removed.tmp, 2);
  const after = blobs(store);
  for (const d of [v2.manifestDigest, v2.configDigest, ...v2.layers.map((l) => l.digest)]) assert.ok(after.has(d.slice(7)), `kept ${d}`);
  for (const l of oldOnly) assert.ok(!after.has(l.digest.slice(7)), `old layer ${l.name} removed`);
  assert.ok(!after.has(v1.manifestDigest.slice(7)), "old manifest removed");
  assert.deepEqual(readdirSync(path.join(store, "tmp")), []);
  assert.ok(!existsSync(path.join(store, "users", String(dead))), "a dead process's entry is cleared");

  const again = await build(store);
  assert.equal(again.manifestDigest, v2.manifestDigest);
  assert.ok(again.layers.every((l) => l.reused), "every kept layer reused after gc");
  const inspect = await runCli(["inspect", "-C", example, "--store", store, "--json"]);
  assert.equal(inspect.code, 0, inspect.stderr);
}

test("gc refuses while another layerfold process uses the store; a command waits for a running gc", async () => {
  const store = path.join(tmp.dir, "store-busy");
  await build(store);
  const sleeper = spawn("sleep", ["60"]);
  try {
    await writeFile(path.join(store, "users", String(sleeper.pid)), owner(sleeper.pid!));
    const before = blobs(store);
    const refused = await gc(store);
    assert.equal(refused.code, 10, refused.stderr);
    assert.match(refused.stderr, new RegExp(`in use by layerfold process ${sleeper.pid}.*nothing was removed`));
    assert.deepEqual(blobs(store), before);
    assert.ok(!existsSync(path.join(store, "gc.lock")), "the refused gc let go of its lock");
  } finally {
    sleeper.kill();
  }

  // A gc.lock held by a live process: inspect waits, and goes on once that process ends.
  const holder = spawn("sleep", ["60"]);
  try {
    await writeFile(path.join(store, "gc.lock"), owner(holder.pid!));
    const inspect = spawn(process.execPath, [cliPath, "inspect", "-C", example, "--store", store]);
    let stderr = "";
    let stdout = "";
    inspect.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((resolve) => inspect.once("close", resolve));
    // The lock's owner ends only once inspect says it waits (however long its start takes).
    const said = new Promise<void>((resolve) => inspect.stderr.on("data", (d: Buffer) => { stderr += d.toString(); if (stderr.includes("waiting for")) resolve(); }));
    await Promise.race([said, exited]);
    assert.match(stderr, /waiting for/, "inspect waits while gc holds the store");
    assert.equal(stdout, "", "nothing done while gc holds the store");
    holder.kill();
    assert.equal(await exited, 0, stderr);
    assert.match(stderr, new RegExp(`waiting for layerfold gc \\(pid ${holder.pid}\\)`));
    assert.match(stdout, /derived|hello/);
  } finally {
    holder.kill();
  }
  // A lock left by a gc that was killed does not stop the next one. A user's entry still being
  // written (its temp file) is left to it; a killed writer's old temp file goes.
  const young = path.join(store, "users", ".4242.tmp-4242-young");
  const old = path.join(store, "users", ".4243.tmp-4243-old");
  await writeFile(young, "");
  await writeFile(old, "");
  await utimes(old, new Date(Date.now() - 120_000), new Date(Date.now() - 120_000));
  const r = await gc(store);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!existsSync(path.join(store, "gc.lock")));
  assert.ok(existsSync(young) && !existsSync(old));
});

test("gc keeps the newest build of each platform of a tag", async () => {
  const store = path.join(tmp.dir, "store-platforms");
  const amd64 = await build(store);
  const r = await runCli(["build", "-C", example, "--store", store, "-o", "none", "--platform", "linux/arm64", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const arm64 = JSON.parse(r.stdout) as Built;
  const g = await gc(store);
  assert.equal(g.code, 0, g.stderr);
  const report = JSON.parse(g.stdout) as { kept: Array<{ manifestDigest: string }>; dropped: unknown[] };
  assert.deepEqual(report.kept.map((b) => b.manifestDigest).sort(), [amd64.manifestDigest, arm64.manifestDigest].sort());
  assert.deepEqual(report.dropped, []);

  // --older-than: the arm64 build, made "two days ago", goes although it is the newest of its platform.
  const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000);
  await utimes(path.join(store, "builds", `${arm64.manifestDigest.slice(7)}.json`), twoDaysAgo, twoDaysAgo);
  const aged = await gc(store, "--older-than", "1d");
  assert.equal(aged.code, 0, aged.stderr);
  const agedReport = JSON.parse(aged.stdout) as { kept: Array<{ manifestDigest: string }>; dropped: Array<{ manifestDigest: string }> };
  assert.deepEqual(agedReport.kept.map((b) => b.manifestDigest), [amd64.manifestDigest]);
  assert.deepEqual(agedReport.dropped.map((b) => b.manifestDigest), [arm64.manifestDigest]);
  assert.ok(!blobs(store).has(arm64.manifestDigest.slice(7)));
  const missing = path.join(tmp.dir, "no-such-store");
  const none = await runCli(["gc", "--store", missing]);
  assert.equal(none.code, 14, "E_NOT_FOUND");
  assert.match(none.stderr, /no store at .*no-such-store; pass --store DIR or set LAYERFOLD_STORE/);
  assert.ok(!existsSync(missing), "a mistyped store is not created");
  const bad = await runCli(["gc", "--store", store, "--older-than", "a week"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--older-than <age>' argument 'a week' is invalid\. give a number and a unit/);
});

test("gc --artifacts drops downloaded artifacts of installed packages; a lost tree downloads its artifact again", async () => {
  const store = path.join(tmp.dir, "store-artifacts");
  const first = await build(store);
  const archive = "253b1bfa78273bd549810b018771fe17921803b14e88428f369ca8414354a997"; // examples/hello's vendor/docs.tar.gz
  assert.ok(blobs(store).has(archive));
  const plain = await gc(store);
  assert.equal(plain.code, 0, plain.stderr);
  assert.ok(blobs(store).has(archive), "without --artifacts the archive stays");
  const r = await gc(store, "--artifacts");
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!blobs(store).has(archive), "the archive is dropped");
  const again = await build(store);
  assert.equal(again.manifestDigest, first.manifestDigest);
  assert.ok(again.layers.every((l) => l.reused));
  await import("node:fs/promises").then((fs) => fs.rm(path.join(store, "trees"), { recursive: true }));
  const reinstalled = await build(store);
  assert.equal(reinstalled.manifestDigest, first.manifestDigest);
  assert.ok(blobs(store).has(archive), "fetched again to reinstall its tree");
});
