// PEP 517: `name @ git+file://…@rev` from a local git repository, with an
// in-tree backend whose build requirement comes from a loopback index.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pythonSource, pythonOptionsSchema } from "../../src/sources/python/index.ts";
import { parseBuildSystem, parseVcsUrl } from "../../src/sources/python/build.ts";
import type { Logger } from "../../src/util/log.ts";
import { makeCtx } from "./helpers/ctx.ts";
import { serveIndex, type IndexServer } from "./helpers/wheels.ts";

function hostPython(): string | undefined {
  try {
    return execFileSync("python3", ["-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"]).toString().trim();
  } catch {
    return undefined;
  }
}
const hostVersion = hostPython();
const hasGit = (() => { try { execFileSync("git", ["--version"]); return true; } catch { return false; } })();

test("parses VCS URLs and [build-system]", () => {
  assert.deepEqual(parseVcsUrl("git+https://github.com/org/repo.git@v1.2#egg=x&subdirectory=py"), { repo: "https://github.com/org/repo.git", rev: "v1.2", subdirectory: "py" });
  assert.deepEqual(parseVcsUrl("git+ssh://git@host/repo.git"), { repo: "ssh://git@host/repo.git", rev: undefined, subdirectory: undefined });
  assert.equal(parseVcsUrl("https://x/y.whl"), undefined);
  assert.deepEqual(parseBuildSystem('[project]\nname="x"\n[build-system]\nrequires = [\n  "setuptools>=61",\n  \'wheel\',\n]\nbuild-backend = "setuptools.build_meta"\n[tool.x]\na=1\n'), { requires: ["setuptools>=61", "wheel"], backend: "setuptools.build_meta", backendPath: [] });
  assert.deepEqual(parseBuildSystem(""), { requires: ["setuptools>=40.8.0"], backend: "setuptools.build_meta:__legacy__", backendPath: [] });
});

const BACKEND = `
import os, zipfile, hashlib, base64
def _h(d): return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode()
def get_requires_for_build_wheel(config_settings=None): return []
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    import helper  # the build requirement, installed by layerfold
    value = open("VALUE").read().strip()
    name = "gitpkg-0.1-py3-none-any.whl"
    files = {"gitpkg/__init__.py": ("VALUE = %s\\n" % value).encode(),
             "gitpkg-0.1.dist-info/METADATA": b"Metadata-Version: 2.1\\nName: gitpkg\\nVersion: 0.1\\nRequires-Dist: lib>=1\\n",
             "gitpkg-0.1.dist-info/WHEEL": b"Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"}
    rec = "".join("%s,%s,%d\\n" % (p, _h(d), len(d)) for p, d in files.items()) + "gitpkg-0.1.dist-info/RECORD,,\\n"
    files["gitpkg-0.1.dist-info/RECORD"] = rec.encode()
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as z:
        for p, d in files.items():
            z.writestr(zipfile.ZipInfo(p, date_time=(1980, 1, 1, 0, 0, 0)), d)
    return name
`;

let dir: string;
let repo: string;
let server: IndexServer;
const gitc = (...args: string[]) => execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@example.invalid", ...args], { cwd: repo }).toString().trim();

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "lf-pybuild-test-"));
  server = await serveIndex(path.join(dir, "index"), [{ name: "helper", version: "0.3" }, { name: "lib", version: "1.0" }]);
  repo = path.join(dir, "repo");
  await mkdir(repo);
  if (!hasGit) return;
  gitc("init", "-q", "-b", "main");
  await writeFile(path.join(repo, "pyproject.toml"), '[build-system]\nrequires = ["helper"]\nbuild-backend = "mybackend"\nbackend-path = ["."]\n');
  await writeFile(path.join(repo, "mybackend.py"), BACKEND);
  await writeFile(path.join(repo, "VALUE"), "42\n");
  gitc("add", ".");
  gitc("commit", "-q", "-m", "one");
});
after(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

test("builds name @ git+…@rev with PEP 517, caches by commit, locks the commit, rebuilds identically", { skip: (!hostVersion && "no python3 on PATH") || (!hasGit && "no git") }, async () => {
  const infos: string[] = [];
  const log: Logger = { info: (m) => infos.push(m), warn() {}, debug() {}, progress() {} };
  const o = pythonOptionsSchema.parse({ version: hostVersion, platform: { glibc: "2.36" }, interpreter: "/usr/bin/python3", pipConfig: false, indexes: [{ url: `${server.url}/simple` }], build: { python: "python3" } });
  const url = `git+file://${repo}@main`;
  const ctx = await makeCtx({ layers: ["a"], log });
  const r = await pythonSource.resolve([[`gitpkg @ ${url}`]], o, ctx);
  const pkg = r.packages.find((p) => p.name === "gitpkg")!;
  const commit1 = gitc("rev-parse", "HEAD");
  assert.equal(pkg.version, "0.1");
  assert.equal(pkg.meta?.commit, commit1);
  assert.equal(pkg.artifact!.url, url);
  assert.ok(r.packages.some((p) => p.name === "lib"), "the built wheel's dependencies are resolved");
  assert.equal(infos.filter((m) => m.includes("building gitpkg")).length, 1);

  // Same commit: the cached wheel is reused.
  await pythonSource.resolve([[`gitpkg @ ${url}`]], o, await makeCtx({ layers: ["a"], log, store: ctx.store }));
  assert.equal(infos.filter((m) => m.includes("building gitpkg")).length, 1);

  // The branch moves: the lock keeps the old commit until --update.
  await writeFile(path.join(repo, "VALUE"), "43\n");
  gitc("commit", "-q", "-am", "two");
  const kept = await pythonSource.resolve([[`gitpkg @ ${url}`]], o, await makeCtx({ layers: ["a"], log, store: ctx.store, locked: r.packages }));
  assert.equal(kept.packages.find((p) => p.name === "gitpkg")!.meta?.commit, commit1);
  const upd = await pythonSource.resolve([[`gitpkg @ ${url}`]], o, await makeCtx({ layers: ["a"], log, store: ctx.store, locked: r.packages, update: ["gitpkg"] }));
  assert.equal(upd.packages.find((p) => p.name === "gitpkg")!.meta?.commit, gitc("rev-parse", "HEAD"));

  // A fresh store installs the locked commit by rebuilding it; the wheel hash must match.
  const fresh = await makeCtx({ layers: ["a"], log, locked: r.packages, frozen: true });
  const { tree } = await fresh.store.ensureTree("t".repeat(64).replace(/t/g, "a"), pkg.id, (w) => pythonSource.install(pkg, w, o, fresh), pythonSource.treeOptions);
  const init = tree.manifest.entries.find((e) => e.path.endsWith("site-packages/gitpkg/__init__.py"));
  assert.ok(init);
  const { readFile } = await import("node:fs/promises");
  assert.equal(await readFile(path.join(tree.rootDir, init!.path), "utf8"), "VALUE = 42\n");
});

test("a failing build says so with the backend's output", { skip: (!hostVersion && "no python3 on PATH") || (!hasGit && "no git") }, async () => {
  const bad = path.join(dir, "bad");
  await mkdir(bad);
  execFileSync("git", ["init", "-q", "-b", "main"], { cwd: bad });
  await writeFile(path.join(bad, "pyproject.toml"), '[build-system]\nrequires = []\nbuild-backend = "nosuchbackend"\n');
  execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@example.invalid", "add", "."], { cwd: bad });
  execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "x"], { cwd: bad });
  const o = pythonOptionsSchema.parse({ version: hostVersion, platform: { glibc: "2.36" }, interpreter: "/usr/bin/python3", pipConfig: false, indexes: [{ url: `${server.url}/simple` }], build: { python: "python3" } });
  await assert.rejects(pythonSource.resolve([[`badpkg @ git+file://${bad}@main`]], o, await makeCtx({ layers: ["a"] })), /PEP 517 build failed[^]*nosuchbackend/);
  const wrongPy = pythonOptionsSchema.parse({ ...o, version: "3.2" });
  await assert.rejects(pythonSource.resolve([[`badpkg @ git+file://${bad}@main`]], wrongPy, await makeCtx({ layers: ["a"] })), /is Python \d+\.\d+, but the image's is 3\.2/);
});
