// Integration: generated wheels served by a PEP 503 (HTML) and PEP 691 (JSON)
// index on loopback; resolve, lock entries, install per PEP 427, --frozen.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createHash } from "node:crypto";
import { pythonSource, pythonOptionsSchema } from "../../src/sources/python/index.ts";
import { HashMismatchError, ResolveError } from "../../src/errors.ts";
import type { Logger } from "../../src/util/log.ts";
import type { LockedPackage } from "../../src/sources/types.ts";
import { makeCtx } from "./helpers/ctx.ts";
import { refusedPort, serveIndex, type IndexServer, type WheelSpec } from "./helpers/wheels.ts";

const WHEELS: WheelSpec[] = [
  { name: "app", version: "1.0", requires: ["lib>=1", "helper[fast]", "winlib; sys_platform == 'win32'", "newpy; python_version >= '3.13'"], entryPoints: { "app-cli": "app.cli:main" } },
  { name: "app", version: "2.0", requires: ["lib>=9"] }, // no lib 9: forces backtracking to app 1.0
  { name: "lib", version: "0.9" },
  { name: "lib", version: "1.0" },
  { name: "lib", version: "1.5" },
  { name: "lib", version: "1.6", requiresPython: ">=3.12" }, // not for the 3.11 target
  { name: "lib", version: "2.0rc1" },
  { name: "helper", version: "0.3", extras: ["fast"], requires: ["speedup; extra == 'fast'"], files: { "helper/__init__.py": "", "helper-0.3.data/scripts/helper-tool": "#!python\nprint('hi')\n", "helper-0.3.data/data/share/helper/README": "data file\n" } },
  { name: "speedup", version: "1.0", tag: "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64" },
  { name: "speedup", version: "1.1", tag: "cp311-cp311-manylinux_2_39_x86_64" }, // glibc too new for the target
  { name: "tampered", version: "1.0", badRecordFor: "tampered/__init__.py" },
];

let dir: string;
let server: IndexServer;
let deadUrl: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "lf-pyindex-"));
  server = await serveIndex(dir, WHEELS);
  deadUrl = `http://127.0.0.1:${await refusedPort()}/simple`;
});
after(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

const options = (indexUrl: string, extra: Record<string, unknown> = {}) =>
  pythonOptionsSchema.parse({ version: "3.11", fullVersion: "3.11.2", platform: { glibc: "2.36" }, interpreter: "/usr/bin/python3.11", pipConfig: false, indexes: [{ url: indexUrl }], ...extra });

function capture(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, info() {}, debug() {}, progress() {}, warn: (m) => warnings.push(m) };
}

async function installTree(p: LockedPackage, o: ReturnType<typeof options>, ctx: Awaited<ReturnType<typeof makeCtx>>) {
  const key = createHash("sha256").update(`${await pythonSource.installKey!(p, o, ctx)}${p.id}${p.artifact?.sha256}`).digest("hex");
  return (await ctx.store.ensureTree(key, p.id, (w) => pythonSource.install(p, w, o, ctx), pythonSource.treeOptions)).tree;
}

for (const flavour of ["simple", "json"] as const) {
  test(`resolves and installs from a ${flavour === "simple" ? "PEP 503 HTML" : "PEP 691 JSON"} index; a refused index costs no time`, async () => {
    const log = capture();
    const ctx = await makeCtx({ layers: ["base", "app"], log });
    // The refused index comes first, as pip's unreachable default index does.
    const o = options(deadUrl, { indexes: [{ url: deadUrl }, { url: `${server.url}/${flavour}` }] });
    const t0 = Date.now();
    const r = await pythonSource.resolve([["lib<2"], { requirements: ["app"], files: [] }], o, ctx);
    assert.ok(Date.now() - t0 < 5000, `resolve took ${Date.now() - t0} ms`);
    assert.equal(log.warnings.filter((w) => w.includes("127.0.0.1") && w.includes("unreachable")).length, 1, log.warnings.join("\n"));
    const v = Object.fromEntries(r.packages.map((p) => [p.name, p.version]));
    assert.deepEqual(v, { _venv: "3.11.2", app: "1.0", helper: "0.3", lib: "1.5", speedup: "1.0" });
    assert.deepEqual(r.roots, [["py:_venv", "py:lib"], ["py:app"]]);
    const app = r.packages.find((p) => p.name === "app")!;
    assert.deepEqual(app.deps, ["py:helper", "py:lib"]);
    assert.equal(app.artifact!.file, "app-1.0-py3-none-any.whl");
    assert.match(app.artifact!.sha256!, /^[0-9a-f]{64}$/);
    assert.equal(app.artifact!.url, undefined, "lock entries carry no index URL");
    assert.deepEqual(r.packages.find((p) => p.name === "helper")!.meta, { extras: ["fast"] });
    if (flavour === "simple") {
      // Metadata came from ranged reads, not whole downloads.
      assert.ok(server.log.some((l) => l.includes("/files/app-1.0-py3-none-any.whl bytes=-65536")), server.log.join("\n"));
    }

    const site = "opt/venv/lib/python3.11/site-packages";
    const appTree = await installTree(app, o, ctx);
    const entries = new Map(appTree.manifest.entries.map((e) => [e.path, e]));
    assert.ok(entries.has(`${site}/app/__init__.py`));
    assert.equal(entries.get("opt/venv/bin/app-cli")!.mode, 0o755);
    const cli = await readFile(path.join(appTree.rootDir, "opt/venv/bin/app-cli"), "utf8");
    assert.match(cli, /^#!\/opt\/venv\/bin\/python\n/);
    assert.match(cli, /from app\.cli import main/);
    assert.equal(await readFile(path.join(appTree.rootDir, site, "app-1.0.dist-info/INSTALLER"), "utf8"), "layerfold\n");
    assert.ok(entries.has(`${site}/app-1.0.dist-info/REQUESTED`), "a root gets REQUESTED");
    const record = await readFile(path.join(appTree.rootDir, site, "app-1.0.dist-info/RECORD"), "utf8");
    assert.match(record, /^\.\.\/\.\.\/\.\.\/bin\/app-cli,sha256=[\w-]+,\d+$/m);
    assert.match(record, /^app-1\.0\.dist-info\/RECORD,,$/m);

    const helper = await installTree(r.packages.find((p) => p.name === "helper")!, o, ctx);
    const hp = new Map(helper.manifest.entries.map((e) => [e.path, e]));
    assert.ok(!hp.has(`${site}/helper-0.3.dist-info/REQUESTED`), "a dependency gets no REQUESTED");
    assert.equal(await readFile(path.join(helper.rootDir, "opt/venv/bin/helper-tool"), "utf8"), "#!/opt/venv/bin/python\nprint('hi')\n");
    assert.equal(hp.get("opt/venv/bin/helper-tool")!.mode, 0o755);
    assert.ok(hp.has("opt/venv/share/helper/README"), ".data/data goes to the prefix");

    const venv = await installTree(r.packages.find((p) => p.name === "_venv")!, o, ctx);
    const ve = new Map(venv.manifest.entries.map((e) => [e.path, e]));
    assert.equal(ve.get("opt/venv/bin/python")!.target, "/usr/bin/python3.11");
    assert.match(await readFile(path.join(venv.rootDir, "opt/venv/pyvenv.cfg"), "utf8"), /^home = \/usr\/bin$/m);
  });
}

test("a wheel whose file does not match RECORD is refused and leaves no tree", async () => {
  const ctx = await makeCtx({ layers: ["x"] });
  const o = options(`${server.url}/simple`);
  const r = await pythonSource.resolve([["tampered"]], o, ctx);
  const p = r.packages.find((x) => x.name === "tampered")!;
  await assert.rejects(installTree(p, o, ctx), (e: Error) => e instanceof HashMismatchError && /tampered\/__init__\.py does not match its RECORD hash/.test(e.message));
  const { readdir } = await import("node:fs/promises");
  assert.deepEqual(await readdir(path.join(ctx.store.root, "trees")).catch(() => []), []);
  assert.deepEqual((await readdir(ctx.store.tmpDir)).filter((n) => n.startsWith("tree-")), []);
});

test("explains conflicts and missing projects", async () => {
  const ctx = await makeCtx({ layers: ["a", "b"] });
  const o = options(`${server.url}/simple`);
  await assert.rejects(pythonSource.resolve([["app==1.0"], ["lib<1"]], o, ctx), (e: Error) => {
    assert.ok(e instanceof ResolveError);
    assert.match(e.message, /no version of "lib" satisfies every requirement on it/);
    assert.match(e.message, /lib>=1\s+<- layer "a" -> app 1\.0/);
    assert.match(e.message, /lib<1\s+<- layer "b"/);
    return true;
  });
  await assert.rejects(pythonSource.resolve([["lib==1.6"]], o, ctx), /no version of "lib" satisfies[^]*versions offered for the target: 2.0rc1, 1.5, 1.0, 0.9$/);
  await assert.rejects(pythonSource.resolve([["nosuchthing"]], o, ctx), /"nosuchthing" cannot be installed: no configured index offers it/);
  await assert.rejects(pythonSource.resolve([["speedup==1.1"]], o, ctx), /no version of "speedup"/);
});

test("pre-releases only when asked; overrides and drop", async () => {
  const ctx = await makeCtx({ layers: ["a"] });
  const o = options(`${server.url}/json`);
  const ver = async (specs: string[], extra: Record<string, unknown> = {}) =>
    Object.fromEntries((await pythonSource.resolve([specs], { ...o, ...extra } as typeof o, ctx)).packages.map((p) => [p.name, p.version]));
  assert.equal((await ver(["lib"]))["lib"], "1.5");
  assert.equal((await ver(["lib>=2.0rc1"]))["lib"], "2.0rc1");
  assert.equal((await ver(["lib"], { pre: true }))["lib"], "2.0rc1");
  const dropped = await ver(["app==1.0"], { drop: ["helper"] });
  assert.equal(dropped["helper"], undefined);
  assert.equal((await ver(["app==2.0"], { overrides: { lib: ">=1.0" } }))["app"], "2.0");
});

test("--frozen installs from the lock without asking any index", async () => {
  const ctx = await makeCtx({ layers: ["a"] });
  const o = options(`${server.url}/simple`);
  const r = await pythonSource.resolve([["app==1.0"]], o, ctx);
  const before = server.log.length;
  const frozenCtx = await makeCtx({ layers: ["a"], store: ctx.store, locked: r.packages, frozen: true });
  const fr = await pythonSource.resolve([["app==1.0"]], options(deadUrl), frozenCtx);
  assert.deepEqual(fr.packages.map((p) => p.id).sort(), r.packages.map((p) => p.id).sort());
  assert.equal(server.log.length, before);
  await assert.rejects(pythonSource.resolve([["lib"]], o, await makeCtx({ layers: ["a"], locked: [], frozen: true })), /not in layerfold\.lock/);
});

test("honours pip's configuration (PIP_CONFIG_FILE, PIP_* variables)", async () => {
  const saved = { ...process.env };
  const conf = path.join(dir, "pip.conf");
  await (await import("node:fs/promises")).writeFile(conf, `[global]\nindex-url = ${deadUrl}\nextra-index-url = ${server.url}/simple\n`);
  try {
    process.env.XDG_CONFIG_DIRS = path.join(dir, "no-such-xdg");
    process.env.PIP_CONFIG_FILE = conf;
    for (const k of Object.keys(process.env)) if (k.startsWith("PIP_") && k !== "PIP_CONFIG_FILE") delete process.env[k];
    const ctx = await makeCtx({ layers: ["a"] });
    const o = pythonOptionsSchema.parse({ version: "3.11", platform: { glibc: "2.36" }, interpreter: "/usr/bin/python3.11" });
    const r = await pythonSource.resolve([["lib==1.0"]], o, ctx);
    assert.equal(r.packages.find((p) => p.name === "lib")!.version, "1.0");
    process.env.PIP_NO_INDEX = "1";
    await assert.rejects(pythonSource.resolve([["lib==1.0"]], o, await makeCtx({ layers: ["a"] })), /cannot be installed/);
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
});

test("name @ URL: a wheel by direct URL (http and a path relative to the config)", async () => {
  const ctx = await makeCtx({ layers: ["a"], configDir: dir });
  const o = options(`${server.url}/simple`);
  const r = await pythonSource.resolve([["lib @ " + `${server.url}/files/lib-1.0-py3-none-any.whl`, "speedup @ ./files/speedup-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"]], o, ctx);
  const lib = r.packages.find((p) => p.name === "lib")!;
  assert.equal(lib.version, "1.0", "the URL wins over newer index versions");
  assert.equal(lib.artifact!.url, `${server.url}/files/lib-1.0-py3-none-any.whl`);
  const sp = r.packages.find((p) => p.name === "speedup")!;
  assert.equal(sp.artifact!.url, "./files/speedup-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "relative paths stay relative in the lock");
  // Install from a fresh store: the file comes from the URL in the lock.
  const fresh = await makeCtx({ layers: ["a"], configDir: dir, locked: r.packages, frozen: true });
  const tree = await installTree(sp, o, fresh);
  assert.ok(tree.manifest.entries.some((e) => e.path.endsWith("speedup/__init__.py")));
  await assert.rejects(pythonSource.resolve([["lib @ git+https://example.invalid/lib.git@v1"]], o, ctx), /lib @ git\+https:\/\/example\.invalid\/lib\.git@v1: git clone failed/);
  await assert.rejects(pythonSource.resolve([["lib @ https://example.invalid/lib-1.0.tar.gz"]], o, ctx), /not a wheel; source distributions need a PEP 517 build/);
  await assert.rejects(pythonSource.resolve([["lib @ https://user:secret@example.invalid/lib-1.0-py3-none-any.whl"]], o, ctx), /credentials/);
  await assert.rejects(pythonSource.resolve([["app @ " + `${server.url}/files/lib-1.0-py3-none-any.whl`]], o, ctx), /is for "lib", not "app"/);
});

test("a build whose resolution inputs are unchanged takes the lock; a changed spec or --update resolves", async () => {
  const { resolveImage } = await import("../../src/pipeline/resolve.ts");
  const work = await mkdtemp(path.join(os.tmpdir(), "lf-pyfast-"));
  try {
    const ctx = await makeCtx({ layers: ["a"] });
    const image = (spec: string[]) => ({ ...ctx.image, python: options(`${server.url}/simple`), layers: [{ name: "a", python: pythonSource.layerSchema.parse(spec) }] });
    const cfg = (spec: string[]) => ({ file: path.join(work, "layerfold.config.ts"), dir: work, image: image(spec) as typeof ctx.image });
    const opts = { store: ctx.store, log: capture(), reuseLock: true };
    // Record how each resolution ran: from the lock alone (frozen) or against the index.
    const calls: boolean[] = [];
    const kind = { ...pythonSource, resolve: (s: Parameters<typeof pythonSource.resolve>[0], o: Parameters<typeof pythonSource.resolve>[1], c: Parameters<typeof pythonSource.resolve>[2]) => { calls.push(c.frozen); return pythonSource.resolve(s, o, c); } };
    const first = await resolveImage(cfg(["app==1.0"]), [kind], opts);
    assert.equal(first.lockChanged, true);
    assert.match(first.lock.inputs?.py ?? "", /^[0-9a-f]{64}$/);
    const again = await resolveImage(cfg(["app==1.0"]), [kind], opts);
    assert.equal(again.lockChanged, false);
    assert.deepEqual([...again.packages.keys()].sort(), [...first.packages.keys()].sort());
    const changed = await resolveImage(cfg(["app==1.0", "lib<1.5"]), [kind], opts);
    assert.equal(changed.packages.get("py:lib")?.version, "1.0");
    await resolveImage(cfg(["app==1.0", "lib<1.5"]), [kind], { ...opts, update: ["lib"] });
    await resolveImage(cfg(["app==1.0", "lib<1.5"]), [kind], { ...opts, reuseLock: false });
    assert.deepEqual(calls, [false, true, false, false, false], "first resolves; unchanged takes the lock; a changed spec, --update and `layerfold lock` resolve");
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
