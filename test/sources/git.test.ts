// The git source against a real repository served from a temp dir
// (file:// runs git's own fetch code path, as https would).

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { repoRoot, runCli, tempDir } from "../helpers/cli.ts";

let tmp: { dir: string; cleanup: () => Promise<void> };
let repo: string;
const sh = (cmd: string, cwd: string) => execFileSync("sh", ["-c", cmd], { cwd, encoding: "utf8" }).trim();
const gitEnv = "GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t GIT_AUTHOR_DATE=2020-01-01T00:00:00Z GIT_COMMITTER_DATE=2020-01-01T00:00:00Z";

before(async () => {
  tmp = await tempDir();
  repo = path.join(tmp.dir, "app-src");
  await mkdir(repo, { recursive: true });
  sh(`git init -q -b main . && echo 'print("v1")' > main.py && git add . && ${gitEnv} git commit -qm v1`, repo);
});
after(async () => tmp.cleanup());

async function project(name: string, rev: string) {
  const dir = path.join(tmp.dir, name);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, "layerfold.config.ts"), `import { defineImage } from ${JSON.stringify(path.join(repoRoot, "src/index.ts"))};
export default defineImage({ name: "git/test", layers: [
  { name: "base", inline: [{ path: "/etc/hostname", text: "x\\n" }] },
  { name: "app", git: [{ url: ${JSON.stringify(`file://${repo}`)}, rev: ${JSON.stringify(rev)}, dest: "/opt/app", name: "app" }] },
]});\n`);
  return dir;
}

const build = (dir: string, extra: string[] = []) =>
  runCli(["build", "-C", dir, "--store", path.join(tmp.dir, "store"), "-o", `oci:${dir}/out`, "--json", ...extra]);

test("a branch is pinned to its commit in the lock; a moving branch changes nothing until lock --update", async () => {
  const dir = await project("p1", "main");
  const first = await build(dir);
  assert.equal(first.code, 0, first.stderr);
  const v1 = sh("git rev-parse HEAD", repo);
  const lock = JSON.parse(await readFile(path.join(dir, "layerfold.lock"), "utf8"));
  assert.equal(lock.packages.find((p: { id: string }) => p.id === "git:app").meta.commit, v1);
  sh(`echo 'print("v2")' > main.py && ${gitEnv} git commit -qam v2`, repo);
  const again = await build(dir);
  assert.equal(JSON.parse(again.stdout).manifestDigest, JSON.parse(first.stdout).manifestDigest, "branch moved, build unchanged");
  const upd = await runCli(["lock", "-C", dir, "--store", path.join(tmp.dir, "store"), "--update", "app"]);
  assert.equal(upd.code, 0, upd.stderr);
  const moved = await build(dir);
  const layers = JSON.parse(moved.stdout).layers;
  assert.deepEqual(layers.filter((l: { reused: boolean }) => !l.reused).map((l: { name: string }) => l.name), ["app"]);
  sh(`git reset -q --hard ${v1}`, repo);
});

test("a local override replaces the source without editing the config", async () => {
  const dir = await project("p2", sh("git rev-parse HEAD", repo));
  const local = path.join(tmp.dir, "checkout");
  await mkdir(local, { recursive: true });
  await writeFile(path.join(local, "main.py"), 'print("local")\n');
  const r = await build(dir, ["--override", `app=${local}`]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  const r2 = await build(dir, ["--override", `app=${local}`]);
  assert.ok(JSON.parse(r2.stdout).layers.every((l: { reused: boolean }) => l.reused), "unchanged checkout: nothing rebuilt");
  await writeFile(path.join(local, "main.py"), 'print("edited")\n');
  const r3 = await build(dir, ["--override", `app=${local}`]);
  assert.deepEqual(JSON.parse(r3.stdout).layers.filter((l: { reused: boolean }) => !l.reused).map((l: { name: string }) => l.name), ["app"]);
  assert.notEqual(JSON.parse(r3.stdout).manifestDigest, out.manifestDigest);
});

test("an unreachable repository names the source and the package, and suggests an override", async () => {
  const dir = path.join(tmp.dir, "p3");
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, "layerfold.config.ts"), `import { defineImage } from ${JSON.stringify(path.join(repoRoot, "src/index.ts"))};
export default defineImage({ name: "git/test", layers: [
  { name: "app", git: [{ url: "https://127.0.0.1:9/comfyanonymous/ComfyUI.git", rev: "master", dest: "/opt/ComfyUI" }] },
]});\n`);
  const r = await build(dir);
  assert.equal(r.code, 7, r.stderr);
  assert.match(r.stderr, /git source https:\/\/127\.0\.0\.1:9\/comfyanonymous\/ComfyUI\.git \(git:comfyui\) is unreachable/);
  assert.match(r.stderr, /--override comfyui=DIR/);
});
