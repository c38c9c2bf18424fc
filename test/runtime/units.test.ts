// Pure parts of the runtime: the ELF reader on real binaries, top-level module
// discovery, docker's argv/env rules, ld.so.conf parsing and whiteouts.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { readElf } from "../../src/runtime/elf.ts";
import { ldSoConfDirs } from "../../src/runtime/libcheck.ts";
import { auditRequirements, describeGap, topLevelModules } from "../../src/runtime/pycheck.ts";
import { commandLine, environment, parseVolume } from "../../src/runtime/run.ts";
import { planLayers } from "../../src/fold/plan.ts";
import { composeView, resolveInView, type ImageView, type ViewEntry } from "../../src/runtime/view.ts";
import type { RuntimeImage } from "../../src/runtime/image.ts";
import type { TreeEntry } from "../../src/store/tree.ts";

test("ELF reader: a dynamic executable's interpreter and DT_NEEDED, a library's SONAME, RUNPATH with $ORIGIN", async () => {
  const ls = await readElf("/bin/ls");
  assert.ok("elf" in ls);
  assert.equal(ls.elf.class, 64);
  assert.equal(ls.elf.machine, 62);
  assert.equal(ls.elf.interp, "/lib64/ld-linux-x86-64.so.2");
  assert.ok(ls.elf.needed.includes("libc.so.6"));
  const libc = await readElf("/lib/x86_64-linux-gnu/libc.so.6");
  assert.ok("elf" in libc && libc.elf.soname === "libc.so.6");
  const dir = await mkdtemp(path.join(os.tmpdir(), "layerfold-elf-"));
  try {
    const c = path.join(dir, "m.c");
    await (await import("node:fs/promises")).writeFile(c, "int main(void){return 0;}\n");
    execFileSync("gcc", ["-o", path.join(dir, "m"), c, "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib:/opt/x"]);
    const m = await readElf(path.join(dir, "m"));
    assert.ok("elf" in m);
    assert.deepEqual(m.elf.runpath, ["$ORIGIN/../lib", "/opt/x"]);
    assert.equal(m.elf.rpath, undefined);
    execFileSync("gcc", ["-static", "-o", path.join(dir, "s"), c]);
    const s = await readElf(path.join(dir, "s"));
    assert.ok("elf" in s && s.elf.needed.length === 0 && s.elf.interp === undefined);
    assert.deepEqual(await readElf(c), { notElf: true });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("top-level modules from top_level.txt, else from RECORD", () => {
  assert.deepEqual(topLevelModules("torch\nfunctorch\n\n_C_stub\n", undefined), ["_C_stub", "functorch", "torch"]);
  const record = [
    "yaml/__init__.py,sha256=x,1",
    "_yaml/__init__.py,,",
    "six.py,,",
    "_cffi_backend.cpython-311-x86_64-linux-gnu.so,,",
    "numpy.libs/libgfortran.so,,",
    "numpy-2.0.dist-info/RECORD,,",
    "../../bin/tool,,",
    '"odd,name/__init__.py",,',
    "__pycache__/six.cpython-311.pyc,,",
  ].join("\n");
  assert.deepEqual(topLevelModules(undefined, record), ["_cffi_backend", "_yaml", "six", "yaml"]);
});

test("docker argv rules: Entrypoint ++ Cmd, CMD replaces Cmd, --entrypoint resets Cmd", () => {
  const cfg = { Entrypoint: ["/e"], Cmd: ["c1"] };
  assert.deepEqual(commandLine(cfg, {}), ["/e", "c1"]);
  assert.deepEqual(commandLine(cfg, { cmd: ["x"] }), ["/e", "x"]);
  assert.deepEqual(commandLine(cfg, { entrypoint: "/f" }), ["/f"]);
  assert.deepEqual(commandLine(cfg, { entrypoint: "", cmd: ["ls"] }), ["ls"]);
  assert.deepEqual(commandLine({ Cmd: ["python"] }, {}), ["python"]);
  assert.deepEqual(environment(["A=1", "PATH=/x"], ["A=2", "B=3", "HOSTVAR"], { HOSTVAR: "h" }), ["A=2", "PATH=/x", "B=3", "HOSTVAR=h", "HOSTNAME=layerfold"]);
  assert.ok(environment([], []).includes("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
  assert.deepEqual(parseVolume("/h:/c:ro"), { host: "/h", container: "/c", readonly: true });
  assert.throws(() => parseVolume("/h:relative"), /absolute container path/);
});

const entry = (p: string, type: TreeEntry["type"], extra: Partial<TreeEntry> = {}): TreeEntry => ({ path: p, type, mode: type === "dir" ? 0o755 : 0o644, uid: 0, gid: 0, ...extra });
const tree = (key: string, entries: TreeEntry[]) => ({ key, rootDir: `/store/${key}/root`, manifest: { version: 1 as const, key, packageId: key, entries, size: 0, entriesDigest: "" } });

test("layout view: whiteouts and opaque dirs hide lower entries; a file over a dir replaces it", () => {
  const image: RuntimeImage = {
    ref: "t", manifestDigest: "sha256:0", config: { architecture: "amd64", os: "linux", config: {}, rootfs: { type: "layers", diff_ids: [] } }, kind: "from-layout", conflicts: {},
    layers: [
      { name: "1", digest: "sha256:1", mediaType: "", source: "blob", trees: [{ id: "l1", tree: tree("l1", [entry("etc", "dir"), entry("etc/a", "file"), entry("etc/gone", "file"), entry("opt", "dir"), entry("opt/old", "file"), entry("var", "dir"), entry("var/x", "file"), entry("lib", "symlink", { target: "usr/lib" })]) }] },
      { name: "2", digest: "sha256:2", mediaType: "", source: "blob", trees: [{ id: "l2", tree: tree("l2", [entry("etc/.wh.gone", "file"), entry("etc/a", "file", { mode: 0o600 }), entry("opt/.wh..wh..opq", "file"), entry("opt/new", "file"), entry("var", "file"), entry("lib/under-link", "file"), entry("usr/lib/libz.so.1", "file")]) }] },
    ],
  };
  const view = composeView(image);
  const paths = [...view.entries.keys()].sort();
  assert.deepEqual(paths, ["etc", "etc/a", "lib", "opt", "opt/new", "usr", "usr/lib", "usr/lib/libz.so.1", "var"]);
  assert.equal(view.entries.get("etc/a")!.mode, 0o600);
  assert.equal(view.entries.get("var")!.type, "file");
  assert.deepEqual(view.pathProblems, ["/lib/under-link (l2, 2) lies under /lib, a symlink to usr/lib in l1, 1; left out"]);
  assert.equal(view.pathProblemCount, 1);
  assert.equal(resolveInView(view, "/lib/libz.so.1"), "usr/lib/libz.so.1");
  assert.equal(resolveInView(view, "/lib/../../../etc/a"), "etc/a");
});

test("layout view: a directory unpacked over a lower symlink hides its target, and is a path problem", () => {
  const image: RuntimeImage = {
    ref: "t", manifestDigest: "sha256:0", config: { architecture: "amd64", os: "linux", config: {}, rootfs: { type: "layers", diff_ids: [] } }, kind: "from-layout", conflicts: {},
    layers: [
      { name: "base", digest: "sha256:1", mediaType: "", source: "blob", trees: [{ id: "l1", tree: tree("l1", [entry("bin", "symlink", { target: "usr/bin" }), entry("usr", "dir"), entry("usr/bin", "dir"), entry("usr/bin/sh", "file")]) }] },
      { name: "tools", digest: "sha256:2", mediaType: "", source: "blob", trees: [{ id: "l2", tree: tree("l2", [entry("bin", "dir"), entry("bin/mytool", "file")]) }] },
    ],
  };
  const view = composeView(image);
  // What podman shows: /bin is a directory holding only mytool.
  assert.equal(view.entries.get("bin")!.type, "dir");
  assert.equal(resolveInView(view, "/bin/sh"), "bin/sh");
  assert.equal(view.entries.get("bin/sh"), undefined);
  assert.deepEqual(view.pathProblems, ["/bin: a directory in l2, tools replaces the symlink to usr/bin of l1, base, hiding what was there"]);
});

test("ld.so.conf: includes with globs, comments, several dirs per line", () => {
  const files: Record<string, string> = {
    "etc/ld.so.conf": "include /etc/ld.so.conf.d/*.conf\n# comment\n/opt/extra/lib\n",
    "etc/ld.so.conf.d/x86_64-linux-gnu.conf": "# Multiarch support\n/usr/local/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n",
    "etc/ld.so.conf.d/cuda.conf": "/usr/local/cuda/lib64 /usr/local/cuda/extras\n",
  };
  const entries = new Map<string, ViewEntry>();
  for (const d of ["etc", "etc/ld.so.conf.d"]) entries.set(d, { path: d, type: "dir", mode: 0o755, uid: 0, gid: 0, layer: 0, packageId: "", treeKey: "" });
  for (const p of Object.keys(files)) entries.set(p, { path: p, type: "file", mode: 0o644, uid: 0, gid: 0, layer: 0, packageId: "", treeKey: "", host: p });
  const view: ImageView = { entries, sorted: [...entries.keys()].sort(), pathProblems: [], pathProblemCount: 0 };
  assert.deepEqual(ldSoConfDirs(view, (e) => files[e.host!]), ["/usr/local/cuda/lib64", "/usr/local/cuda/extras", "/usr/local/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/opt/extra/lib"]);
});

test("dependency audit (pip check from metadata): missing and mismatched requirements fail, dropped ones are notes, markers and extras count as pip counts them", () => {
  const site = "opt/venv/lib/python3.11/site-packages";
  const meta = (name: string, version: string, requires: string[] = []) => ["Metadata-Version: 2.1", `Name: ${name}`, `Version: ${version}`, ...requires.map((r) => `Requires-Dist: ${r}`), "", "Body: not a header"].join("\n");
  const files: Record<string, string> = {
    "opt/venv/pyvenv.cfg": "home = /usr/bin\ninclude-system-site-packages = true\nversion = 3.11.2\n",
    [`${site}/torch-2.14.1.dist-info/METADATA`]: meta("torch", "2.14.1", ["cuda-bindings==13.0.3; platform_system == \"Linux\"", "numpy", "sympy>=1.13.3", "typing_extensions>=4.10.0", "opt-einsum>=3.3; extra == \"opt-einsum\""]),
    [`${site}/numpy-2.3.5.dist-info/METADATA`]: meta("numpy", "2.3.5"),
    [`${site}/sympy-1.12.dist-info/METADATA`]: meta("SymPy", "1.12", ["mpmath<1.4,>=1.1.0", "winreg; sys_platform == \"win32\"", "old-thing; python_full_version < \"3.11.1\""]),
    [`${site}/mpmath-1.3.0.dist-info/METADATA`]: meta("mpmath", "1.3.0"),
    [`${site}/typing_extensions-4.15.0.dist-info/METADATA`]: meta("typing_extensions", "4.15.0"),
    [`${site}/kornia-0.7.1.dist-info/METADATA`]: meta("kornia", "0.7.1", ["torch>=1.9.1", "packaging"]),
  };
  const entries = new Map<string, ViewEntry>();
  const dir = (d: string) => entries.set(d, { path: d, type: "dir", mode: 0o755, uid: 0, gid: 0, layer: 0, packageId: "", treeKey: "" });
  for (const p of Object.keys(files)) {
    const parts = p.split("/");
    for (let i = 1; i < parts.length; i++) dir(parts.slice(0, i).join("/"));
    entries.set(p, { path: p, type: "file", mode: 0o644, uid: 0, gid: 0, layer: 0, packageId: "", treeKey: "", host: p });
  }
  entries.set("opt/venv/bin/python3", { path: "opt/venv/bin/python3", type: "file", mode: 0o755, uid: 0, gid: 0, layer: 0, packageId: "", treeKey: "", host: "x" });
  const view: ImageView = { entries, sorted: [...entries.keys()].sort(), pathProblems: [], pathProblemCount: 0 };
  const audit = auditRequirements(view, { readText: (e) => files[e.host!], dropped: new Map([["cuda-bindings", "not on the indexes"]]), architecture: "amd64" });
  assert.equal(audit.distributions, 6);
  assert.deepEqual(audit.failures.map(describeGap).sort(), [
    "kornia 0.7.1 requires packaging, which is not installed",
    "torch 2.14.1 requires sympy>=1.13.3, but 1.12 is installed",
  ]);
  assert.deepEqual(audit.notes.map(describeGap), ['torch 2.14.1 requires cuda-bindings==13.0.3; platform_system == "Linux", which the config drops on purpose (not on the indexes)']);
  // Without the drop, the same gap is a failure.
  const strict = auditRequirements(view, { readText: (e) => files[e.host!], architecture: "amd64" });
  assert.equal(strict.failures.length, 3);
  assert.equal(strict.notes.length, 0);
});

test("build view: an owner named for a directory prefix decides, as the planner does (run shows what the image holds)", () => {
  const a = tree("a", [entry("opt", "dir"), entry("opt/cv2", "dir"), entry("opt/cv2/x.so", "file", { size: 1, sha256: "s1" })]);
  const b = tree("b", [entry("opt", "dir"), entry("opt/cv2", "dir"), entry("opt/cv2/x.so", "file", { size: 1, sha256: "s2" })]);
  const conflicts = { "/opt/cv2/": "b" };
  const image: RuntimeImage = {
    ref: "t", manifestDigest: "sha256:0", config: { architecture: "amd64", os: "linux", config: {}, rootfs: { type: "layers", diff_ids: [] } }, kind: "from-build", conflicts,
    layers: [
      { name: "one", digest: "sha256:1", mediaType: "", source: "trees", trees: [{ id: "a", tree: a }] },
      { name: "two", digest: "sha256:2", mediaType: "", source: "trees", trees: [{ id: "b", tree: b }] },
    ],
  };
  const planned = planLayers([{ name: "one", packages: ["a"] }, { name: "two", packages: ["b"] }], (id) => (id === "a" ? a : b), conflicts);
  assert.deepEqual(planned.map((l) => l.entries.filter((e) => e.entry.type === "file").map((e) => e.packageId)), [[], ["b"]]);
  assert.equal(composeView(image).entries.get("opt/cv2/x.so")!.packageId, "b");
});

test("build view: a directory owner in conflicts takes a path from the packages below and above it (the planner's ownerOf)", () => {
  const layer = (id: string, content: string) => ({ name: id, digest: `sha256:${id}`, mediaType: "", source: "trees" as const, trees: [{ id, tree: tree(id, [entry("opt", "dir"), entry("opt/d", "dir"), entry("opt/d/f.txt", "file", { sha256: content })]) }] });
  const image: RuntimeImage = {
    ref: "t", manifestDigest: "sha256:0", config: { architecture: "amd64", os: "linux", config: {}, rootfs: { type: "layers", diff_ids: [] } }, kind: "from-build",
    conflicts: { "/opt/d/": "file:b" },
    layers: [layer("file:a", "sa"), layer("file:b", "sb"), layer("file:c", "sc")],
  };
  const e = composeView(image).entries.get("opt/d/f.txt")!;
  assert.equal(e.packageId, "file:b");
  assert.equal(e.sha256, "sb");
  // Without an owner the first provider keeps it.
  assert.equal(composeView({ ...image, conflicts: {} }).entries.get("opt/d/f.txt")!.packageId, "file:a");
});

