import { test } from "node:test";
import assert from "node:assert/strict";
import { evaluateMarker, parseMarker, parseRequirement, targetMarkerEnv } from "../../src/sources/python/pep508.ts";
import { ConfigError } from "../../src/errors.ts";
import { parseWheelName, platformTags, supportedTags, wheelRank, parseSdistName } from "../../src/sources/python/tags.ts";
import { parseRequirementsText } from "../../src/sources/python/reqfile.ts";
import { parseIni, loadPipConfig } from "../../src/sources/python/pipconfig.ts";
import { mkdtemp, writeFile, mkdir } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

const env = targetMarkerEnv({ version: "3.11", fullVersion: "3.11.2", arch: "x86_64" });
const aarch = targetMarkerEnv({ version: "3.12", arch: "aarch64" });

test("parses PEP 508 requirements", () => {
  const r = parseRequirement("Foo.Bar[Extra_1, b] (>=1.0,<2) ; python_version >= '3.8'");
  assert.equal(r.key, "foo-bar");
  assert.deepEqual(r.extras, ["b", "extra-1"]);
  assert.equal(r.specifier, ">=1.0,<2");
  assert.ok(r.marker);
  const u = parseRequirement("pkg @ https://example.org/pkg-1.0-py3-none-any.whl ; sys_platform == 'linux'");
  assert.equal(u.url, "https://example.org/pkg-1.0-py3-none-any.whl");
  assert.equal(evaluateMarker(u.marker!, env), true);
  assert.equal(parseRequirement("torch==2.14.1").specifier, "==2.14.1");
  assert.equal(parseRequirement("numpy").specifier, "");
  assert.throws(() => parseRequirement("numpy >= "), ConfigError);
  assert.throws(() => parseRequirement("numpy ; bogus_var == '1'"), /unknown marker variable/);
});

test("markers evaluate against the target, not the host", () => {
  const m = (s: string, e = env, extras: string[] = []) => evaluateMarker(parseMarker(s), e, extras);
  assert.equal(m("python_version < '3.12'"), true);
  assert.equal(m("python_version < '3.12'", aarch), false);
  assert.equal(m("python_full_version >= '3.11.1'"), true);
  assert.equal(m("python_version >= '3.9' and python_version < '3.10'"), false);
  assert.equal(m("platform_machine == 'x86_64' and sys_platform == 'linux'"), true);
  assert.equal(m("platform_machine == 'x86_64'", aarch), false);
  assert.equal(m("platform_system == 'Windows' or (os_name == 'posix' and implementation_name == 'cpython')"), true);
  assert.equal(m("sys_platform == 'darwin'"), false);
  assert.equal(m("'linux' in sys_platform"), true);
  assert.equal(m("platform_machine not in 'arm64 aarch64'"), true);
  assert.equal(m("extra == 'Test_Deps'", env, ["test-deps"]), true);
  assert.equal(m("extra == 'test'", env, []), false);
  assert.equal(m("python_version > '3.9'"), true, "versions compare as versions, not strings (3.11 > 3.9)");
});

test("wheel names and tags follow the packaging rules", () => {
  const t = { version: "3.11", implementation: "cp", abi: "cp311", glibc: "2.36", arch: "x86_64" };
  const sup = supportedTags(t);
  const rank = (f: string) => wheelRank(parseWheelName(f)!, sup);
  assert.notEqual(rank("numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"), undefined);
  assert.notEqual(rank("numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"), undefined);
  assert.equal(rank("x-1-cp36-cp36m-manylinux1_x86_64.whl"), undefined, "another ABI does not fit");
  assert.notEqual(rank("x-1-cp38-abi3-manylinux2010_x86_64.whl"), undefined, "abi3 from older CPython fits");
  assert.equal(rank("x-1-cp312-abi3-manylinux_2_17_x86_64.whl"), undefined, "abi3 from newer CPython does not");
  assert.equal(rank("x-1-cp311-cp311-manylinux_2_39_x86_64.whl"), undefined, "glibc newer than the target");
  assert.equal(rank("x-1-cp311-cp311-manylinux_2_17_aarch64.whl"), undefined, "other arch");
  assert.equal(rank("x-1-cp311-cp311-musllinux_1_2_x86_64.whl"), undefined);
  assert.equal(rank("x-1-cp311-cp311-win_amd64.whl"), undefined);
  assert.ok(rank("x-1-cp311-cp311-manylinux_2_28_x86_64.whl")! < rank("x-1-cp311-cp311-manylinux_2_17_x86_64.whl")!, "newer glibc preferred");
  assert.ok(rank("x-1-cp311-cp311-manylinux_2_17_x86_64.whl")! < rank("x-1-py3-none-any.whl")!, "binary before pure");
  assert.notEqual(rank("x-1-py2.py3-none-any.whl"), undefined);
  assert.ok(platformTags({ ...t, arch: "aarch64" }).includes("manylinux2014_aarch64"));
  assert.ok(!platformTags({ ...t, arch: "aarch64" }).includes("manylinux1_aarch64"));
  const w = parseWheelName("torch-2.14.1+cu130-cp311-cp311-manylinux_2_28_x86_64.whl")!;
  assert.equal(w.version, "2.14.1+cu130");
  assert.equal(parseWheelName("a-1-2-py3-none-any.whl")!.build, "2");
  assert.deepEqual(parseSdistName("python-ffmpeg-2.0.12.tar.gz", "python-ffmpeg"), { version: "2.0.12" });
});

test("requirement files: comments, includes, index options, URLs", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "lf-req-"));
  await writeFile(path.join(dir, "base.txt"), "six>=1.0  # trailing comment\n");
  await writeFile(path.join(dir, "c.txt"), "six<2\n");
  const set = parseRequirementsText(
    "# Essentials\n-r base.txt\n-c c.txt\n--extra-index-url https://download.example/whl/cu130\nimageio[ffmpeg]\nnumpy \\\n  >=1.2\n\ngit+https://github.com/org/Some-Repo.git@v1.2#egg=some_repo\nfoo @ https://x/foo-1.0-py3-none-any.whl\n",
    path.join(dir, "pak.txt"),
  );
  assert.deepEqual(set.requirements.map((r) => r.key), ["six", "imageio", "numpy", "some-repo", "foo"]);
  assert.equal(set.requirements[2]!.specifier, ">=1.2");
  assert.deepEqual(set.constraints.map((r) => r.text), ["six<2"]);
  assert.deepEqual(set.extraIndexUrls, ["https://download.example/whl/cu130"]);
  assert.equal(set.requirements[3]!.url, "git+https://github.com/org/Some-Repo.git@v1.2#egg=some_repo");
  assert.throws(() => parseRequirementsText("-r missing.txt\n", path.join(dir, "x.txt")), /cannot be read/);
});

test("pip configuration: files in pip's order, [install] over [global], PIP_* over files", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "lf-pipconf-"));
  await mkdir(path.join(dir, "xdg", "pip"), { recursive: true });
  await mkdir(path.join(dir, "home", ".config", "pip"), { recursive: true });
  await writeFile(path.join(dir, "xdg", "pip", "pip.conf"), "[global]\nindex-url = https://global.example/simple\nconstraint = /c.txt\n");
  await writeFile(path.join(dir, "home", ".config", "pip", "pip.conf"), "[global]\nextra-index-url =\n    https://a.example/simple\n    https://b.example/simple\nfind-links = ./wheels\n[install]\nindex-url = https://user.example/simple\n");
  const cfg = loadPipConfig({ XDG_CONFIG_DIRS: path.join(dir, "xdg"), HOME: path.join(dir, "home") }, "/work");
  assert.equal(cfg.indexUrl, "https://user.example/simple");
  assert.deepEqual(cfg.extraIndexUrls, ["https://a.example/simple", "https://b.example/simple"]);
  assert.deepEqual(cfg.findLinks, ["file:///work/wheels"]);
  assert.deepEqual(cfg.constraints, ["/c.txt"]);
  const env2 = loadPipConfig({ XDG_CONFIG_DIRS: path.join(dir, "xdg"), HOME: path.join(dir, "home"), PIP_INDEX_URL: "https://env.example/simple", PIP_EXTRA_INDEX_URL: "https://e1 https://e2", PIP_NO_INDEX: "1" }, "/work");
  assert.equal(env2.indexUrl, "https://env.example/simple");
  assert.deepEqual(env2.extraIndexUrls, ["https://e1", "https://e2"]);
  assert.equal(env2.noIndex, true);
  // PIP_CONFIG_FILE replaces the user files.
  await writeFile(path.join(dir, "only.conf"), "[global]\nindex-url = https://only.example/simple\n");
  const env3 = loadPipConfig({ XDG_CONFIG_DIRS: path.join(dir, "xdg"), HOME: path.join(dir, "home"), PIP_CONFIG_FILE: path.join(dir, "only.conf") }, "/work");
  assert.equal(env3.indexUrl, "https://only.example/simple");
  assert.deepEqual(env3.extraIndexUrls, []);
  assert.equal(parseIni("[global]\nfind_links = x\n").get("global")!.get("find-links"), "x");
});
