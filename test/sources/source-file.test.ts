// A layer's Python requirements read from a file inside a git source at the
// commit it pins (an app bringing its own requirements.txt), and a git source
// bundled as a shallow clone (gitDir): real git repositories in temp dirs, a
// loopback PEP 503 index, the CLI as users run it.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { repoRoot, runCli, tempDir } from "../helpers/cli.ts";
import { serveIndex, type IndexServer } from "../python/helpers/wheels.ts";

let tmp: { dir: string; cleanup: () => Promise<void> };
let repo: string;
let index: IndexServer;
const gitEnv = { GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@t", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@t", GIT_AUTHOR_DATE: "2020-01-01T00:00:00Z", GIT_COMMITTER_DATE: "2020-01-01T00:00:00Z", GIT_CONFIG_GLOBAL: "/dev/null" };
const git = (cwd: string, ...args: string[]) => execFileSync("git", args, { cwd, encoding: "utf8", env: { ...process.env, ...gitEnv } }).trim();

before(async () => {
  tmp = await tempDir();
  repo = path.join(tmp.dir, "app-src");
  await mkdir(repo, { recursive: true });
  await writeFile(path.join(repo, "main.py"), 'print("v1")\n');
  await writeFile(path.join(repo, "requirements.txt"), "# the app's own list\nalpha>=1.0\nbeta\n");
  git(repo, "init", "-q", "-b", "main", ".");
  git(repo, "add", ".");
  git(repo, "commit", "-qm", "v1");
  index = await serveIndex(path.join(tmp.dir, "index"), [
    { name: "alpha", version: "1.0" },
    { name: "alpha", version: "2.0" },
    { name: "beta", version: "0.5", requires: ["gamma"] },
    { name: "gamma", version: "3.0" },
    { name: "delta", version: "1.0" },
  ]);
});
after(async () => {
  await index.close();
  await tmp.cleanup();
});

interface Opts {
  rev: string;
  files?: unknown[];
  drop?: unknown;
  gitDir?: unknown;
  compression?: string;
}

async function project(name: string, o: Opts): Promise<string> {
  const dir = path.join(tmp.dir, name);
  await mkdir(dir, { recursive: true });
  const python = o.files
    ? `python: { version: "3.11", platform: { glibc: "2.36" }, interpreter: "/usr/bin/python3.11", pipConfig: false, indexes: [{ url: ${JSON.stringify(`${index.url}/simple`)} }]${o.drop ? `, drop: ${JSON.stringify(o.drop)}` : ""} },`
    : "";
  await writeFile(
    path.join(dir, "layerfold.config.ts"),
    `import { defineImage } from ${JSON.stringify(path.join(repoRoot, "src/index.ts"))};
export default defineImage({ name: "srcfile/test", compression: ${JSON.stringify(o.compression ?? "zstd")}, ${python} layers: [
  { name: "app", git: [{ url: ${JSON.stringify(`file://${repo}`)}, rev: ${JSON.stringify(o.rev)}, dest: "/opt/app", name: "app"${o.gitDir ? `, gitDir: ${JSON.stringify(o.gitDir)}` : ""} }] },
  ${o.files ? `{ name: "deps", python: { requirements: [], files: ${JSON.stringify(o.files)} } },` : ""}
]});\n`,
  );
  return dir;
}

const lockIds = async (dir: string) => (JSON.parse(await readFile(path.join(dir, "layerfold.lock"), "utf8")).packages as Array<{ id: string; version: string }>).map((p) => `${p.id}@${p.version}`).filter((x) => x.startsWith("py:") && !x.startsWith("py:_venv"));

test("requirements come from the app's requirements.txt at the pinned commit, and follow it when the pin moves", async () => {
  const v1 = git(repo, "rev-parse", "HEAD");
  const dir = await project("p1", { rev: v1, files: [{ source: "git:app", path: "requirements.txt" }, { source: "app", path: "extra-requirements.txt", optional: true }] });
  const store = path.join(tmp.dir, "store1");
  const r = await runCli(["lock", "-C", dir, "--store", store]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await lockIds(dir), ["py:alpha@2.0", "py:beta@0.5", "py:gamma@3.0"]);

  // A later commit changes the list and adds the optional file: the lock follows once the config pins it.
  await writeFile(path.join(repo, "requirements.txt"), "alpha<2\n");
  await writeFile(path.join(repo, "extra-requirements.txt"), "delta\n");
  git(repo, "add", ".");
  git(repo, "commit", "-qm", "v2");
  const v2 = git(repo, "rev-parse", "HEAD");
  const again = await runCli(["lock", "-C", dir, "--store", store]);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(await lockIds(dir), ["py:alpha@2.0", "py:beta@0.5", "py:gamma@3.0"], "still pinned to v1: its requirements.txt, not the branch's");
  const dir2 = await project("p1", { rev: v2, files: [{ source: "git:app", path: "requirements.txt" }, { source: "app", path: "extra-requirements.txt", optional: true }] });
  const moved = await runCli(["lock", "-C", dir2, "--store", store]);
  assert.equal(moved.code, 0, moved.stderr);
  assert.deepEqual(await lockIds(dir2), ["py:alpha@1.0", "py:delta@1.0"]);

  // A local override is read instead of the commit.
  const local = path.join(tmp.dir, "checkout");
  await mkdir(local, { recursive: true });
  await writeFile(path.join(local, "requirements.txt"), "gamma\n");
  const over = await runCli(["lock", "-C", dir2, "--store", store, "--override", `app=${local}`]);
  assert.equal(over.code, 0, over.stderr);
  assert.deepEqual(await lockIds(dir2), ["py:gamma@3.0"]);
  git(repo, "reset", "-q", "--hard", v1);
});

test("python.drop removes a requirement the app's file names, and a dependency, with the reason logged", async () => {
  const dir = await project("p2", { rev: git(repo, "rev-parse", "HEAD"), files: [{ source: "git:app", path: "requirements.txt" }], drop: { alpha: "not wanted here", gamma: "provided otherwise" } });
  const r = await runCli(["lock", "-C", dir, "--store", path.join(tmp.dir, "store2")]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await lockIds(dir), ["py:beta@0.5"]);
  assert.match(r.stdout + r.stderr, /asks for alpha>=1\.0, which python\.drop leaves out \(not wanted here\)/);
  // check gives one verdict however the image is named: the build's record keeps python.drop.
  const store = path.join(tmp.dir, "store2");
  const out = path.join(tmp.dir, "p2-out");
  const b = await runCli(["build", "-C", dir, "--store", store, "-o", `oci:${out}`]);
  assert.equal(b.code, 0, b.stderr);
  const only = ["--no-imports", "--no-libs", "--no-dups", "--json"];
  for (const args of [["-C", dir], ["srcfile/test"], ["--layout", out]]) {
    const c = await runCli(["check", ...args, "--store", store, ...only]);
    assert.equal(c.code, 0, `${args.join(" ")}: ${c.stderr}`);
    const rep = JSON.parse(c.stdout) as { requirements: { failures: unknown[]; notes: Array<{ distribution: string }> } };
    assert.deepEqual(rep.requirements.failures, [], args.join(" "));
    assert.deepEqual(rep.requirements.notes.map((n) => n.distribution), ["beta 0.5"], args.join(" "));
  }
  // In a store that has no record of the build, dropped requirements count as unmet, with a warning saying why.
  const other = await runCli(["check", "--layout", out, "--store", path.join(tmp.dir, "store-other"), ...only]);
  assert.notEqual(other.code, 0);
  assert.match(other.stdout, /no build record of sha256:[0-9a-f]{64}, so requirements its config drops on purpose/);
});

test("bad references fail with a clear config error: unknown source, missing file, a path out of the source, includes", async () => {
  const rev = git(repo, "rev-parse", "HEAD");
  const store = path.join(tmp.dir, "store3");
  const cases: Array<[unknown[], RegExp]> = [
    [[{ source: "git:nope", path: "requirements.txt" }], /no source named "git:nope".*git:app/s],
    [[{ source: "git:app", path: "missing.txt" }], /git:app has no file missing\.txt at the revision it pins.*optional: true/s],
    [[{ source: "git:app", path: "../../etc/passwd" }], /must be a relative path inside the source/],
    [[{ source: "git:app", path: "/etc/passwd" }], /must be a relative path inside the source/],
  ];
  for (const [files, re] of cases) {
    const dir = await project(`p3-${cases.findIndex((c) => c[0] === files)}`, { rev, files });
    const r = await runCli(["lock", "-C", dir, "--store", store]);
    assert.equal(r.code, 2, `${JSON.stringify(files)}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
  await writeFile(path.join(repo, "inc.txt"), "-r requirements.txt\n");
  git(repo, "add", ".");
  git(repo, "commit", "-qm", "inc");
  const dir = await project("p3-inc", { rev: git(repo, "rev-parse", "HEAD"), files: [{ source: "git:app", path: "inc.txt" }] });
  const r = await runCli(["lock", "-C", dir, "--store", store]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /"-r requirements\.txt" includes another file/);
  git(repo, "reset", "-q", "--hard", rev);
});

/** Extracts the only layer of an uncompressed OCI layout into `into`; returns the layer digest. */
async function unpackLayout(layout: string, into: string): Promise<string> {
  const idx = JSON.parse(await readFile(path.join(layout, "index.json"), "utf8"));
  const blob = (d: string) => path.join(layout, "blobs", "sha256", d.replace("sha256:", ""));
  const manifest = JSON.parse(await readFile(blob(idx.manifests[0].digest), "utf8"));
  const layer = manifest.layers.find((l: { size: number }) => l.size > 2048);
  await mkdir(into, { recursive: true });
  execFileSync("tar", ["-xf", blob(layer.digest), "-C", into]);
  return layer.digest;
}

test("gitDir bundles a shallow clone of the pinned commit: clean status, HEAD on the branch, same bytes in every build", async () => {
  const rev = git(repo, "rev-parse", "HEAD");
  const dir = await project("p4", { rev, gitDir: { branch: "master" }, compression: "none" });
  const digests: string[] = [];
  for (const n of [1, 2]) {
    const r = await runCli(["build", "-C", dir, "--store", path.join(tmp.dir, `store4-${n}`), "-o", `oci:${dir}/out${n}`]);
    assert.equal(r.code, 0, r.stderr);
    digests.push(await unpackLayout(`${dir}/out${n}`, `${dir}/root${n}`));
  }
  assert.equal(digests[0], digests[1], "two builds in two stores give the same layer");
  const app = `${dir}/root1/opt/app`;
  assert.equal(git(app, "rev-parse", "HEAD"), rev);
  assert.equal(git(app, "rev-parse", "--abbrev-ref", "HEAD"), "master");
  assert.equal(git(app, "status", "--porcelain"), "", "the checkout is clean");
  assert.equal(git(app, "rev-parse", "--is-shallow-repository"), "true");
  assert.equal(git(app, "config", "remote.origin.url"), `file://${repo}`);
  git(app, "fsck", "--no-progress");
  // An edit shows up as a change, as in any clone.
  await writeFile(path.join(app, "main.py"), "edited\n");
  assert.equal(git(app, "status", "--porcelain"), "M main.py");
  assert.deepEqual((await readdir(path.join(app, ".git/objects/pack"))).length, 2);
});

test("gitDir with an override: the checkout's own HEAD is bundled; a plain directory gets none, with a warning", async () => {
  const dir = await project("p5", { rev: git(repo, "rev-parse", "HEAD"), gitDir: {}, compression: "none" });
  const local = path.join(tmp.dir, "local-clone");
  git(tmp.dir, "clone", "-q", repo, local);
  await writeFile(path.join(local, "main.py"), 'print("local")\n');
  git(local, "commit", "-qam", "local change");
  const head = git(local, "rev-parse", "HEAD");
  const r = await runCli(["build", "-C", dir, "--store", path.join(tmp.dir, "store5"), "-o", `oci:${dir}/out`, "--override", `app=${local}`]);
  assert.equal(r.code, 0, r.stderr);
  await unpackLayout(`${dir}/out`, `${dir}/root`);
  assert.equal(git(`${dir}/root/opt/app`, "rev-parse", "HEAD"), head, "detached at the checkout's HEAD");
  assert.equal(git(`${dir}/root/opt/app`, "status", "--porcelain"), "");

  const plain = path.join(tmp.dir, "plain");
  await mkdir(plain, { recursive: true });
  await writeFile(path.join(plain, "main.py"), "x\n");
  const p = await runCli(["build", "-C", dir, "--store", path.join(tmp.dir, "store5"), "-o", `oci:${dir}/out-plain`, "--override", `app=${plain}`]);
  assert.equal(p.code, 0, p.stderr);
  assert.match(p.stderr, /not a git checkout, so the image gets no \/opt\/app\/\.git/);
});

test("lock --check lists what this machine cannot resolve (an unreachable repository's requirements, a project no index offers) and still checks the rest", async () => {
  const dir = path.join(tmp.dir, "p6");
  await mkdir(dir, { recursive: true });
  await writeFile(
    path.join(dir, "layerfold.config.ts"),
    `import { defineImage } from ${JSON.stringify(path.join(repoRoot, "src/index.ts"))};
export default defineImage({ name: "srcfile/check", python: { version: "3.11", platform: { glibc: "2.36" }, interpreter: "/usr/bin/python3.11", pipConfig: false, indexes: [{ url: ${JSON.stringify(`${index.url}/simple`)} }] }, layers: [
  { name: "app", git: [{ url: "file://${tmp.dir}/no-such-repo", rev: "${"a".repeat(40)}", dest: "/opt/app", name: "app" }] },
  { name: "deps", python: { requirements: ["beta", "nothere>=1"], files: [{ source: "git:app", path: "requirements.txt" }] } },
]});\n`,
  );
  const r = await runCli(["lock", "--check", "-C", dir, "--store", path.join(tmp.dir, "store6")]);
  assert.equal(r.code, 9, r.stderr);
  const lines = r.stdout.split("\n");
  assert.deepEqual(lines.filter((l) => l.startsWith("unresolvable")).map((l) => l.split(/\s+/)[1]), ["git:app:requirements.txt", "py:nothere"]);
  assert.match(r.stdout, /^unresolvable +py:nothere +nothere>=1: no configured index offers it/m);
  assert.match(r.stdout, /^unresolvable +git:app:requirements\.txt +the requirements in it are unknown here: .*unreachable/m);
  assert.deepEqual(lines.filter((l) => l.startsWith("missing")).map((l) => l.split(/\s+/)[1]), ["git:app", "py:_venv", "py:beta", "py:gamma"]);
  assert.match(r.stdout, /2 cannot be resolved on this machine/);
  // Without --check the first of them is an error, as before.
  const lock = await runCli(["lock", "-C", dir, "--store", path.join(tmp.dir, "store6")]);
  assert.equal(lock.code, 7, lock.stderr);
  assert.match(lock.stderr, /git:app.*unreachable/);
});
