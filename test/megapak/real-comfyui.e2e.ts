// The megapak's local variant with the real ComfyUI (0.3.41 at the pinned
// commit), run the way its users run it. Not part of `npm test` (it builds an
// 8 GB image: ~3-6 min from an empty store on 2 cores); CI runs it with
// `npm run test:megapak`.
//
// Inputs are the shared test fixtures beside the clone (../shared/fixtures/
// megapak, or LAYERFOLD_MEGAPAK_FIXTURES): the ComfyUI source as a tarball
// (GitHub is out of reach here), given to the build as a local checkout with
// --override, and wheels the configured indexes lack, given as one more
// find-links directory (PIP_FIND_LINKS), exactly as a user would.
//
// What it asserts:
// - the build from the committed lock (--frozen) succeeds;
// - `layerfold check` passes, its dependency audit noting exactly the
//   requirements the config drops on purpose;
// - in podman: the image's own entrypoint with CLI_ARGS="--quick-test-for-ci
//   --cpu" exits 0 with ComfyUI-Manager loaded and the bundled checkout's
//   revision known; only nodes_audio.py fails to import (torchaudio is not
//   on the indexes);
// - ComfyUI serves its UI; Chromium renders the graph canvas and registers
//   every node type /api/object_info lists;
// - `pip install` at run time goes to ~/.local, and the next container with
//   ~/.local as a volume finds it; the image's venv is unchanged;
// - the bundle is copied on the first start only: a file the user deleted
//   stays deleted; the example pre-start script is put in place, then runs.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, rm, statfs, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";
import { repoRoot, runCli } from "../helpers/cli.ts";
import { podman, type Podman } from "../helpers/engine.ts";
import { buildWheel, wheelFileName } from "../python/helpers/wheels.ts";

const fixtures = process.env.LAYERFOLD_MEGAPAK_FIXTURES ?? path.resolve(repoRoot, "../shared/fixtures/megapak");
const config = path.join(repoRoot, "images/comfyui-megapak/local.config.ts");
const tarball = path.join(fixtures, "ComfyUI-4e95c0c1.tar.gz");
// podman names a local image localhost/NAME:TAG.
const IMAGE = "localhost/comfyui-boot:cu130-megapak-py311-local";
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
// Long steps; each test sets its own limit.
const MIN = 60_000;

let work: string;
let store: string;
let checkout: string;
let layout: string;
let pm: Podman;
const timings: Record<string, string> = {};
const volumes: string[] = [];

const seconds = (t0: number) => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
const env = { PIP_FIND_LINKS: path.join(fixtures, "wheels") };

before(async () => {
  // Not a skip: without the fixtures this test cannot say anything, and CI has them.
  assert.ok(existsSync(tarball), `the megapak fixtures are missing: ${tarball}; put shared/ beside the clone or set LAYERFOLD_MEGAPAK_FIXTURES`);
  assert.ok(existsSync(chromiumPath), `chromium is missing (${chromiumPath}); scripts/setup-test.sh installs it`);
  // Lowercase on purpose: podman names an image pulled from oci:PATH after the path, and refuses capitals.
  work = path.join(process.env.LAYERFOLD_PODMAN_TMP ?? "/var/tmp", `lf-megapak-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
  await mkdir(work, { recursive: true });
  // The store and podman's overlay copy of the 8 GB image take ~25 GB: say so first, not with ENOSPC midway.
  const fs = await statfs(work);
  const freeGiB = (fs.bavail * fs.bsize) / 2 ** 30;
  assert.ok(freeGiB >= 28, `${work}: ${freeGiB.toFixed(1)} GiB free; the megapak test needs ~28 GiB (store + podman storage). Free some, or set LAYERFOLD_PODMAN_TMP to a bigger disk`);
  // A store from the environment is reused (a warm rerun); otherwise a fresh one, removed after.
  store = process.env.LAYERFOLD_STORE ?? path.join(work, "store");
  layout = path.join(work, "oci");
  // The user's checkout of the pinned source: the fixture has no .git (it is a snapshot),
  // so it is committed once, with fixed dates, to give the image's .git a stable commit.
  checkout = path.join(work, "ComfyUI");
  execFileSync("tar", ["-xzf", tarball, "-C", work]);
  const git = (...args: string[]) =>
    execFileSync("git", args, {
      cwd: checkout,
      env: { ...process.env, GIT_CONFIG_GLOBAL: "/dev/null", GIT_AUTHOR_NAME: "fixture", GIT_AUTHOR_EMAIL: "fixture@localhost", GIT_COMMITTER_NAME: "fixture", GIT_COMMITTER_EMAIL: "fixture@localhost", GIT_AUTHOR_DATE: "2025-06-17T00:00:00Z", GIT_COMMITTER_DATE: "2025-06-17T00:00:00Z" },
    });
  git("init", "-q", "-b", "master", ".");
  git("add", "-A");
  git("commit", "-qm", "ComfyUI 4e95c0c1 (0.3.41), from the test fixture");
  pm = await podman({ storageDriver: "overlay" });
});

after(async () => {
  for (const v of volumes) await pm?.exec(["volume", "rm", "-f", v]).catch(() => {});
  await pm?.cleanup();
  // The store is under work unless LAYERFOLD_STORE named one (kept for a warm rerun).
  if (work) await rm(work, { recursive: true, force: true, maxRetries: 5 });
  console.log(`megapak timings: ${JSON.stringify(timings)}`);
});

test("builds the local variant with the real ComfyUI from the committed lock", { timeout: 40 * MIN }, async () => {
  const t0 = performance.now();
  const r = await runCli(["build", "-c", config, "--store", store, "--override", `comfyui=${checkout}`, "--frozen", "-o", `oci:${layout}`, "--json"], { env });
  timings.build = seconds(t0);
  assert.equal(r.code, 0, r.stderr.slice(-4000));
  const out = JSON.parse(r.stdout);
  assert.equal(out.layers.find((l: { name: string }) => l.name === "12-app")?.name, "12-app");
  // Logged with the timings: two builds of the same lock and checkout should print the same digest.
  timings.image = out.manifestDigest;
});

test("layerfold check passes; the dependency audit notes exactly what the config drops", { timeout: 30 * MIN }, async () => {
  const t0 = performance.now();
  const r = await runCli(["check", "-c", config, "--store", store, "--json"], { env });
  timings.check = seconds(t0);
  const report = JSON.parse(r.stdout);
  assert.equal(r.code, 0, `${JSON.stringify(report.requirements?.failures ?? report, null, 1).slice(0, 4000)}\n${r.stderr.slice(-2000)}`);
  assert.equal(report.ok, true);
  assert.deepEqual(report.requirements.failures, []);
  const noted = [...new Set(report.requirements.notes.map((n: { requirement: string }) => n.requirement.split(/[\s<>=!~;[]/)[0]))].sort();
  assert.deepEqual(noted, ["cuda-bindings", "matrix-client", "uv"]);
  assert.ok(report.requirements.requirements > 150, `only ${report.requirements.requirements} requirements audited`);
});

test("podman: the entrypoint's CI smoke test exits 0 with the manager loaded", { timeout: 20 * MIN }, async () => {
  let t0 = performance.now();
  const id = (await pm.exec(["pull", "-q", `oci:${layout}`])).stdout.trim().split("\n").pop()!;
  await pm.exec(["tag", id, IMAGE]);
  timings.podmanPull = seconds(t0);
  t0 = performance.now();
  const out = await runPodman(["run", "--rm", "-e", "CLI_ARGS=--quick-test-for-ci --cpu", IMAGE]);
  timings.smoke = seconds(t0);
  assert.equal(out.code, 0, out.text.slice(-4000));
  assert.match(out.text, /\[START\] ComfyUI-Manager/);
  assert.match(out.text, /### Loading: ComfyUI-Manager/);
  const head = execFileSync("git", ["rev-parse", "HEAD"], { cwd: checkout, encoding: "utf8" }).trim();
  assert.match(out.text, new RegExp(`### ComfyUI Revision: 1 \\[${head.slice(0, 8)}\\]`), "the bundled ComfyUI is a git checkout on master");
  assert.doesNotMatch(out.text, /No module named 'comfyui_manager'/);
  const failed = [...out.text.matchAll(/^IMPORT FAILED: (.*)$/gm)].flatMap((m) => m[1]!.trim().split(/\s+/));
  assert.deepEqual(failed, ["nodes_audio.py"], "only the audio nodes fail (torchaudio is not on the indexes)");
});

test("the UI: Chromium renders the graph canvas and registers every node type /api/object_info lists", { timeout: 15 * MIN }, async () => {
  const port = await freePort();
  const t0 = performance.now();
  await pm.exec(["run", "-d", "--name", "megapak-ui", "-p", `127.0.0.1:${port}:8188`, "-e", "CLI_ARGS=--cpu", IMAGE]);
  try {
    const url = `http://127.0.0.1:${port}/`;
    await waitForHttp(url, 10 * MIN);
    timings.uiReady = seconds(t0);
    const browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(String(e)));
      const t1 = performance.now();
      const info = page.waitForResponse((r) => r.url().endsWith("/api/object_info") && r.status() === 200, { timeout: 5 * MIN });
      await page.goto(url, { waitUntil: "load", timeout: 5 * MIN });
      const listed = Object.keys(await (await info).json());
      const canvas = page.locator("canvas#graph-canvas");
      await canvas.waitFor({ state: "visible", timeout: 5 * MIN });
      const box = await canvas.boundingBox();
      assert.ok(box && box.width > 300 && box.height > 300, `graph canvas is ${JSON.stringify(box)}`);
      await page.waitForFunction((n) => Object.keys((window as unknown as { LiteGraph?: { registered_node_types: object } }).LiteGraph?.registered_node_types ?? {}).length >= n, listed.length, { timeout: 5 * MIN });
      const registered = await page.evaluate(() => Object.keys((window as unknown as { LiteGraph: { registered_node_types: object } }).LiteGraph.registered_node_types));
      timings.pageRendered = seconds(t1);
      assert.ok(listed.length >= 400, `/api/object_info lists ${listed.length} node types`);
      assert.ok(listed.includes("KSampler") && listed.includes("CheckpointLoaderSimple"));
      assert.deepEqual(listed.filter((n) => !registered.includes(n)), [], "every listed node type is registered in the page");
      assert.deepEqual(errors, [], "no uncaught errors in the page");
    } finally {
      await browser.close();
    }
  } finally {
    await pm.exec(["rm", "-f", "-t", "0", "megapak-ui"]).catch(() => {});
  }
});

test("pip install at run time lands in ~/.local and survives a new container; the image's venv stays as built", { timeout: 10 * MIN }, async () => {
  const wheels = path.join(work, "wheels");
  await mkdir(wheels, { recursive: true });
  const probe = { name: "lf-probe", version: "1.0", requires: ["numpy>=1.25"], files: { "lf_probe/__init__.py": "import numpy\nVALUE = 42\n" } };
  await writeFile(path.join(wheels, wheelFileName(probe)), buildWheel(probe));
  const vol = `lf-megapak-local-${process.pid}`;
  volumes.push(vol);
  const mounts = ["-v", `${vol}:/root/.local`, "-v", `${wheels}:/wheels:ro`];
  const t0 = performance.now();
  const install = await runPodman(["run", "--rm", ...mounts, IMAGE, "pip", "install", "--no-index", "--find-links", "/wheels", "lf-probe"]);
  assert.equal(install.code, 0, install.text.slice(-3000));
  assert.match(install.text, /Successfully installed lf-probe-1\.0/);
  const again = await runPodman([
    "run", "--rm", ...mounts, IMAGE, "bash", "-c",
    "python3 -c 'import lf_probe; print(lf_probe.__file__, lf_probe.VALUE)' && pip list 2>/dev/null | grep -Ei '^(lf-probe|torch|numpy) ' && pip check; " +
      "ls /opt/venv/lib/python3.11/site-packages | grep -c lf_probe || true",
  ]);
  timings.pipRoundTrip = seconds(t0);
  assert.match(again.text, /\/root\/\.local\/lib\/python3\.11\/site-packages\/lf_probe\/__init__\.py 42/);
  assert.match(again.text, /^lf-probe\s+1\.0$/m);
  assert.match(again.text, /^torch\s+2\.14\.1/m, "pip list sees the image's packages too");
  // pip check inside the image agrees with layerfold's audit: only what the config drops.
  const gaps = [...again.text.matchAll(/requires ([A-Za-z0-9_.-]+), which is not installed/g)].map((m) => m[1]).sort();
  assert.deepEqual(gaps, ["cuda-bindings", "matrix-client", "uv"]);
  assert.match(again.text, /^0$/m, "nothing was written into /opt/venv");
});

test("first start only: the bundle is copied once, a deleted file stays deleted, the pre-start example is placed then run", { timeout: 10 * MIN }, async () => {
  const vol = `lf-megapak-home-${process.pid}`;
  volumes.push(vol);
  const first = await runPodman(["run", "--rm", "-v", `${vol}:/root`, IMAGE, "bash", "-c", "rm ~/ComfyUI/README.md && git -C ~/ComfyUI status --porcelain"]);
  assert.equal(first.code, 0, first.text);
  assert.match(first.text, /Setting up ComfyUI: copied the image's bundle/);
  assert.match(first.text, /Put an example pre-start script in \/root\/user-scripts\/pre-start\.sh/);
  assert.match(first.text, /^ D README\.md$/m, "the copy is a git checkout; git sees the deletion");
  const second = await runPodman(["run", "--rm", "-v", `${vol}:/root`, IMAGE, "bash", "-c", "test ! -e ~/ComfyUI/README.md && echo still-deleted; ls ~/ComfyUI/custom_nodes"]);
  assert.equal(second.code, 0, second.text);
  assert.match(second.text, /Using the existing ComfyUI/);
  assert.match(second.text, /Running \/root\/user-scripts\/pre-start\.sh/);
  assert.match(second.text, /Continue without pre-start script/);
  assert.match(second.text, /^still-deleted$/m);
});

/** podman with the test's flags; stdout and stderr together, and the exit code (not thrown). */
async function runPodman(args: string[]): Promise<{ code: number; text: string }> {
  try {
    const { stdout, stderr } = await pm.exec(args);
    return { code: 0, text: `${stdout}\n${stderr}` };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : 1, text: `${e.stdout ?? ""}\n${e.stderr ?? ""}` };
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitForHttp(url: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const r = await fetch(url);
      if (r.ok) return;
      last = `HTTP ${r.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  const logs = await runPodman(["logs", "megapak-ui"]);
  throw new Error(`${url} did not answer within ${ms / 1000}s (${last}):\n${logs.text.slice(-3000)}`);
}
