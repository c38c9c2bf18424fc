// bin/layerfold.mjs starts from a cached esbuild bundle of src/ (bin/cli-bundle.mjs),
// rebuilt when a source file changes; configs load through it without a TypeScript loader.

import { test } from "node:test";
import assert from "node:assert/strict";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { repoRoot, runCli, tempDir } from "../helpers/cli.ts";
// @ts-expect-error plain JS module without types
import { cliBundle, sourceKey } from "../../bin/cli-bundle.mjs";

const key = sourceKey as (dir: string, extra?: string) => string;
const bundle = cliBundle as (o: { root?: string; cacheDir: string }) => Promise<string>;

test("the source key changes when a file under src/ changes, is added or removed, and only then", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    await mkdir(path.join(dir, "a"), { recursive: true });
    await writeFile(path.join(dir, "a", "x.ts"), "export const x = 1;\n");
    await writeFile(path.join(dir, "y.ts"), "export const y = 2;\n");
    const k1 = key(dir);
    assert.equal(key(dir), k1, "stable when nothing changed");
    await writeFile(path.join(dir, "a", "x.ts"), "export const x = 3;\n"); // same size, new mtime
    await utimes(path.join(dir, "a", "x.ts"), new Date(), new Date(Date.now() + 5000));
    const k2 = key(dir);
    assert.notEqual(k2, k1, "an edit");
    await writeFile(path.join(dir, "a", "z.ts"), "");
    const k3 = key(dir);
    assert.notEqual(k3, k2, "a new file");
    assert.notEqual(key(dir, "node 22"), k3, "the extra input (Node major, package.json)");
  } finally {
    await cleanup();
  }
});

test("the bundle is written once, reused, and the CLI loads configs through it (index.ts and deeper imports)", async () => {
  const { dir, cleanup } = await tempDir();
  // Under node_modules/, where the bundle finds its npm packages.
  // node_modules/.cache is not there right after `npm ci`, until a CLI run bundles.
  await mkdir(path.join(repoRoot, "node_modules", ".cache"), { recursive: true });
  const cache = await mkdtemp(path.join(repoRoot, "node_modules", ".cache", "layerfold-cli-test-"));
  try {
    // Another process's bundle, between its write and its rename: left alone.
    const other = path.join(cache, "cli-0000.mjs.1.tmp");
    await writeFile(other, "");
    const file = await bundle({ cacheDir: cache });
    assert.ok(await stat(other).then(() => true, () => false), "a fresh temp file of another process is kept");
    const first = await stat(file);
    assert.equal(await bundle({ cacheDir: cache }), file);
    assert.equal((await stat(file)).mtimeMs, first.mtimeMs, "reused, not rewritten");
    const mod = (await import(file)) as Record<string, unknown>;
    assert.equal(typeof mod.main, "function");
    assert.equal(typeof mod.defineImage, "function");

    // A config that imports the public API, and one that imports a library file directly.
    const viaIndex = path.join(dir, "via-index");
    const viaDeep = path.join(dir, "via-deep");
    for (const [d, from] of [[viaIndex, "index.ts"], [viaDeep, "config/schema.ts"]] as const) {
      await mkdir(d, { recursive: true });
      await writeFile(path.join(d, "layerfold.config.ts"), `import { defineImage } from ${JSON.stringify(path.join(repoRoot, "src", from))};\nexport default defineImage({ name: "t/${path.basename(d)}", tag: "1", layers: [{ name: "a", inline: [{ path: "/a", text: "a" }] }] });\n`);
    }
    for (const [d, tsx] of [[viaIndex, false], [viaDeep, false], [viaIndex, true]] as const) {
      const r = await runCli(["inspect", "-C", d, "--store", path.join(dir, "store"), "--debug"], { env: tsx ? { LAYERFOLD_TSX: "1" } : {} });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, new RegExp(`no build of t/${path.basename(d)}:1 in the store`), `${d}${tsx ? " (tsx)" : ""}: the config loaded\n${r.stderr}`);
      assert.equal(/sources from the bundle \S+\/cli-[0-9a-f]+\.mjs\n/.test(r.stderr), !tsx, `bundle used: ${!tsx}\n${r.stderr}`);
    }
  } finally {
    await cleanup();
    await rm(cache, { recursive: true, force: true });
  }
});

test("config bundles are cached by their inputs: reused while unchanged, rebuilt after an edit or a new file beside them", async () => {
  const { loadConfig, configCacheDir } = await import("../../src/config/load.ts");
  const { sourceKinds } = await import("../../src/sources/registry.ts");
  const { dir, cleanup } = await tempDir();
  try {
    const cfg = path.join(dir, "layerfold.config.ts");
    const past = new Date(Date.now() - 60_000);
    const write = async (name: string) => {
      await writeFile(path.join(dir, "name.ts"), `export const name = ${JSON.stringify(name)};\n`);
      await writeFile(cfg, `import { defineImage } from ${JSON.stringify(path.join(repoRoot, "src", "index.ts"))};\nimport { name } from "./name.ts";\nexport default defineImage({ name, tag: "1", layers: [{ name: "a", inline: [{ path: "/a", text: "a" }] }] });\n`);
      // Older than the cache's 2-second window for files that may still be changing.
      for (const p of [cfg, path.join(dir, "name.ts"), dir]) await utimes(p, past, past);
    };
    const load = async () => (await loadConfig({ dir }, sourceKinds)).image.name;
    // Tamper with the cached bundle: a load that serves it shows the cache was used.
    const tamper = async (from: string, to: string) => {
      // The cache is shared: a load in another process may remove other configs' entries as they are read.
      const entries = await Promise.all((await readdir(configCacheDir)).filter((f) => f.endsWith(".json")).map((f) => readFile(path.join(configCacheDir, f), "utf8").then((t) => JSON.parse(t) as { config: string; bundle: string }, () => undefined)));
      const entry = entries.find((e) => e?.config === cfg);
      assert.ok(entry, "the bundle was cached");
      const cached = path.join(configCacheDir, entry.bundle);
      await writeFile(cached, (await readFile(cached, "utf8")).replace(JSON.stringify(from), JSON.stringify(to)));
    };
    await write("t/one");
    assert.equal(await load(), "t/one");
    await tamper("t/one", "t/cached-one");
    assert.equal(await load(), "t/cached-one", "unchanged inputs: served from the cache");
    await write("t/two");
    assert.equal(await load(), "t/two", "an imported file changed: bundled again");
    await tamper("t/two", "t/cached-two");
    assert.equal(await load(), "t/cached-two");
    await writeFile(path.join(dir, "other.txt"), "");
    assert.equal(await load(), "t/two", "a file added beside the inputs (it could change what an import resolves to): bundled again");
    // Just edited (no utimes into the past): with sub-second timestamps, cached once 50 ms have passed.
    await writeFile(path.join(dir, "name.ts"), `export const name = "t/three";\n`);
    if ((await stat(dir)).mtimeMs % 1000) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(await load(), "t/three");
      await tamper("t/three", "t/cached-three");
      assert.equal(await load(), "t/cached-three", "a config edited 100 ms ago is cached");
    }
  } finally {
    await cleanup();
  }
});

test("a config load leaves the config cache's fresh temp files alone (another process may be about to rename one), and removes old ones", async () => {
  const { loadConfig, configCacheDir } = await import("../../src/config/load.ts");
  const { sourceKinds } = await import("../../src/sources/registry.ts");
  const { dir, cleanup } = await tempDir();
  const fresh = path.join(configCacheDir, `.0000.json.tmp-${process.pid + 1}-fresh`);
  const old = path.join(configCacheDir, `.0000.json.tmp-${process.pid + 1}-old`);
  try {
    const cfg = path.join(dir, "layerfold.config.ts");
    await writeFile(cfg, `import { defineImage } from ${JSON.stringify(path.join(repoRoot, "src", "index.ts"))};\nexport default defineImage({ name: "t/tmp", tag: "1", layers: [{ name: "a", inline: [{ path: "/a", text: "a" }] }] });\n`);
    const past = new Date(Date.now() - 60_000);
    for (const p of [cfg, dir]) await utimes(p, past, past); // old enough to be cached
    await mkdir(configCacheDir, { recursive: true });
    await writeFile(fresh, "{}");
    await writeFile(old, "{}");
    const hourAgo = new Date(Date.now() - 3600_000);
    await utimes(old, hourAgo, hourAgo);
    assert.equal((await loadConfig({ dir }, sourceKinds)).image.name, "t/tmp");
    assert.ok(await stat(fresh).then(() => true, () => false), "a temp file written just now is kept");
    assert.equal(await stat(old).then(() => true, () => false), false, "a temp file of a run killed an hour ago is removed");
  } finally {
    await rm(fresh, { force: true });
    await rm(old, { force: true });
    await cleanup();
  }
});

test('a config that imports "layerfold" loads in the repository and outside it, from the bundle and through tsx; import.meta names the config, a string naming it stays', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const outside = path.join(dir, "outside");
    await mkdir(path.join(outside, "sub"), { recursive: true });
    await writeFile(path.join(outside, "sub", "where.ts"), 'export const here = [import.meta.url, import.meta.dirname, import.meta.filename];\n');
    await writeFile(
      path.join(outside, "layerfold.config.ts"),
      '#!/usr/bin/env node\nimport { defineImage, ConfigError } from "layerfold";\nimport { here } from "./sub/where.ts";\n' +
        'const s = "import.meta.url"; // import.meta.url in a comment\n' +
        'export default defineImage({ name: "t/outside", tag: "1", layers: [{ name: "a", inline: [{ path: "/a", text: JSON.stringify([s, import.meta.url, import.meta.dirname, ...here, typeof ConfigError]) }] }] });\n',
    );
    const { loadConfig } = await import("../../src/config/load.ts");
    const { sourceKinds } = await import("../../src/sources/registry.ts");
    const loaded = await loadConfig({ dir: outside }, sourceKinds);
    const text = (loaded.image.layers[0] as unknown as { inline: Array<{ text: string }> }).inline[0]!.text;
    const sub = path.join(outside, "sub");
    assert.deepEqual(JSON.parse(text), ["import.meta.url", `file://${outside}/layerfold.config.ts`, outside, `file://${sub}/where.ts`, sub, path.join(sub, "where.ts"), "function"]);
    // Through the CLI: the repository's own example (the package's name resolves to itself there) and the copy outside.
    for (const [d, name] of [[path.join(repoRoot, "examples", "hello"), "layerfold-examples/hello:1.0"], [outside, "t/outside:1"]] as const) {
      for (const tsx of [false, true]) {
        const r = await runCli(["inspect", "-C", d, "--store", path.join(dir, "store")], { env: tsx ? { LAYERFOLD_TSX: "1" } : {} });
        assert.match(r.stderr, new RegExp(`no build of ${name} in the store`), `${d}${tsx ? " (tsx)" : ""}: the config loaded\n${r.stderr}`);
      }
    }
  } finally {
    await cleanup();
  }
});

test("a checkout whose npm dependencies are not installed says what to run, with no stack", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    for (const p of ["bin", "src", "package.json"]) await cp(path.join(repoRoot, p), path.join(dir, p), { recursive: true });
    const r = await runCli(["--version"], { cwd: dir, script: path.join(dir, "bin", "layerfold.mjs") });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`dependencies are not installed \\(${dir}/node_modules\\)[^]*Run \`npm ci\` in ${dir}`));
    assert.doesNotMatch(r.stderr, /ERR_MODULE_NOT_FOUND|\n\s+at /);
  } finally {
    await cleanup();
  }
});
