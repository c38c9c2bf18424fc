// The package as users get it: `npm pack` (prepack builds dist/), installed from the tarball
// into an empty project and globally, then used with no TypeScript loader and no checkout: the
// hello example copied out of the repository (importing "layerfold") builds to the digest the
// repository's sources build, plain `node` imports the package, and `tsc --strict` typechecks
// the config against the shipped declarations. The global install is used by a non-root user,
// who cannot write into it.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmod, chown, cp, mkdir, readdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { helloExample, repoRoot, runCli, runCommand, tempDir } from "../helpers/cli.ts";
import { startRegistry } from "../helpers/registry.ts";

const pkg = JSON.parse(await readFile(path.join(repoRoot, "package.json"), "utf8")) as { version: string };
const tsc = path.join(repoRoot, "node_modules", "typescript", "bin", "tsc");
const DIGEST = /^layerfold-examples\/hello:1\.0 (sha256:[0-9a-f]{64})$/m;

/**
 * npm's own variables (set when the suite runs under `npm test`) would point child npm commands at
 * this repository, and layerfold's would change how the CLI runs.
 */
const cleanEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(npm_|LAYERFOLD_)/i.test(k))),
  ...extra,
});

const run = (cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; uid?: number; gid?: number }) => runCommand(cmd, args, { ...opts, env: opts.env ?? cleanEnv() });
async function ok(cmd: string, args: string[], opts: Parameters<typeof run>[2]): Promise<string> {
  const r = await run(cmd, args, opts);
  assert.equal(r.code, 0, `${cmd} ${args.join(" ")} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Every file under dir with its size and mtime: what a run must leave as it was. */
async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const p = path.join(e.parentPath, e.name);
    const s = await stat(p);
    out.push(`${path.relative(dir, p)} ${s.size} ${s.mtimeMs}`);
  }
  return out.sort();
}

/** A config that gets a field's type wrong: tsc must reject it, or the types check nothing. */
const badConfig = `import { defineImage } from "layerfold";\nexport default defineImage({ name: "t/bad", tag: 1, layers: [] });\n`;

/** `withBadConfig`: also check that a wrong config fails (once is enough: the same declarations). */
async function typecheck(project: string, withBadConfig: boolean): Promise<void> {
  const tsconfig = {
    compilerOptions: {
      strict: true, module: "nodenext", moduleResolution: "nodenext", target: "es2022", noEmit: true,
      // The stricter flags some projects add: the declarations must hold under them too.
      exactOptionalPropertyTypes: true, noUncheckedIndexedAccess: true, noPropertyAccessFromIndexSignature: true, isolatedModules: true,
      // No skipLibCheck: the shipped declarations are checked too. @types/node as a user's project has it.
      typeRoots: [path.join(repoRoot, "node_modules", "@types")], types: ["node"],
    },
    files: ["hello/layerfold.config.ts"],
  };
  await writeFile(path.join(project, "tsconfig.json"), JSON.stringify(tsconfig));
  await ok(process.execPath, [tsc, "-p", project], { cwd: project });
  if (!withBadConfig) return;
  await writeFile(path.join(project, "bad.config.ts"), badConfig);
  await writeFile(path.join(project, "tsconfig.json"), JSON.stringify({ ...tsconfig, files: ["bad.config.ts"] }));
  const r = await run(process.execPath, [tsc, "-p", project], { cwd: project });
  assert.notEqual(r.code, 0, "a config with a wrong field type must fail to typecheck");
  assert.match(r.stdout, /bad\.config\.ts.*TS2322/s, r.stdout);
}

/**
 * Run action.yml's steps as GitHub runs a composite action: each `run` through
 * `bash --noprofile --norc -eo pipefail`, `${{ inputs.x }}` substituted, `if:` evaluated (the
 * `inputs.x == 'v'` terms joined by && that the action uses), GITHUB_ACTION_PATH the repository.
 */
async function runAction(given: Record<string, string>, opts: { cwd: string; env: NodeJS.ProcessEnv }): Promise<void> {
  const action = parseYaml(await readFile(path.join(repoRoot, "action.yml"), "utf8")) as {
    inputs: Record<string, { default?: string | boolean }>;
    runs: { using: string; steps: Array<{ name: string; if?: string; shell: string; env?: Record<string, string>; run: string }> };
  };
  assert.equal(action.runs.using, "composite");
  const inputs: Record<string, string> = { ...Object.fromEntries(Object.entries(action.inputs).map(([k, v]) => [k, String(v.default ?? "")])), token: "", ...given };
  for (const k of Object.keys(given)) assert.ok(k in action.inputs, `action.yml has an input ${k}`);
  const expand = (v: string) => v.replace(/\$\{\{\s*inputs\.([a-z-]+)\s*\}\}/g, (_, k: string) => inputs[k] ?? assert.fail(`unknown input ${k}`));
  const holds = (cond: string) =>
    cond.split("&&").every((term) => {
      const m = /^\s*inputs\.([a-z-]+)\s*(==|!=)\s*'([^']*)'\s*$/.exec(term) ?? assert.fail(`an if: this runner does not evaluate: ${cond}`);
      return (inputs[m[1]!] === m[3]) === (m[2] === "==");
    });
  for (const step of action.runs.steps) {
    if (step.if && !holds(step.if)) continue;
    assert.equal(step.shell, "bash");
    const env = { ...opts.env, GITHUB_ACTION_PATH: repoRoot, ...Object.fromEntries(Object.entries(step.env ?? {}).map(([k, v]) => [k, expand(v)])) };
    const r = await runCommand("bash", ["--noprofile", "--norc", "-eo", "pipefail", "-c", step.run], { cwd: opts.cwd, env });
    assert.equal(r.code, 0, `action step "${step.name}" failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
}

test("the packed tarball installs locally and globally, and works with no checkout and no tsx", { timeout: 600_000 }, async (t) => {
  const tmp = await tempDir("layerfold-pkg-");
  try {
    await chmod(tmp.dir, 0o755); // the non-root user below reads the tarball and the example from here
    const out = await ok("npm", ["pack", "--pack-destination", tmp.dir, "--no-audit", "--no-fund"], { cwd: repoRoot });
    const tarball = path.join(tmp.dir, out.trim().split("\n").at(-1)!);
    const tarballBytes = (await stat(tarball)).size;
    t.diagnostic(`tarball ${path.basename(tarball)}: ${tarballBytes} bytes`);
    const listing = execFileSync("tar", ["-tzf", tarball], { encoding: "utf8" }).split("\n").filter(Boolean);
    for (const f of ["package/bin/layerfold.mjs", "package/dist/layerfold.js", "package/dist/layerfold.js.map", "package/dist/types/index.d.ts", "package/CHANGELOG.md", "package/README.md"]) assert.ok(listing.includes(f), `${f} is in the tarball`);
    for (const f of listing) assert.doesNotMatch(f, /^package\/(src|test|bench|images|examples|scripts|\.ci|\.github|docs|bin\/cli-bundle)/, `${f} is not shipped`);

    // The reference: the repository's sources build the copied example.
    const hello = await helloExample(tmp.dir);
    assert.match(await readFile(path.join(hello, "layerfold.config.ts"), "utf8"), /from "layerfold"/);
    const ref = await runCli(["build", "-C", hello, "--store", path.join(tmp.dir, "store-repo"), "-o", "none"]);
    assert.equal(ref.code, 0, ref.stderr);
    const digest = DIGEST.exec(ref.stdout)?.[1];
    assert.ok(digest, ref.stdout);

    await t.test("local install (npm i TARBALL in an empty project)", async () => {
      const project = path.join(tmp.dir, "local");
      await mkdir(project);
      await writeFile(path.join(project, "package.json"), JSON.stringify({ name: "user-project", private: true }));
      await ok("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", tarball], { cwd: project });
      await cp(hello, path.join(project, "hello"), { recursive: true });
      const installed = path.join(project, "node_modules", "layerfold");
      const before = await snapshot(installed);
      const cache = path.join(tmp.dir, "cache-local");
      const env = cleanEnv({ XDG_CACHE_HOME: cache });
      const bin = path.join(project, "node_modules", ".bin", "layerfold");
      assert.equal((await ok(bin, ["--version"], { cwd: project, env })).trim(), pkg.version);
      for (const round of [1, 2]) {
        const r = await run(bin, ["build", "-C", "hello", "--store", path.join(tmp.dir, "store-local"), "-o", "none"], { cwd: project, env });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(DIGEST.exec(r.stdout)?.[1], digest, `round ${round}: the digest the repository built`);
      }
      assert.deepEqual(await snapshot(installed), before, "nothing written inside the package");
      assert.ok((await readdir(path.join(cache, "layerfold-config"))).some((f) => f.endsWith(".mjs")), "the config bundle is cached under $XDG_CACHE_HOME");
      // Plain node, no loader: the public API.
      const api = await ok(process.execPath, ["--input-type=module", "-e", 'const m = await import("layerfold"); console.log(JSON.stringify({ defineImage: typeof m.defineImage, error: new m.ConfigError("x").code, image: m.defineImage({ name: "a/b", tag: "1", layers: [] }).name }))'], { cwd: project, env });
      assert.deepEqual(JSON.parse(api), { defineImage: "function", error: "E_CONFIG", image: "a/b" });
      await typecheck(project, true);
    });

    await t.test("npx with no install (npx --package TARBALL layerfold, in a directory with no package.json)", async () => {
      const dir = path.join(tmp.dir, "npx");
      await mkdir(dir);
      await cp(hello, path.join(dir, "hello"), { recursive: true });
      const env = cleanEnv({ XDG_CACHE_HOME: path.join(tmp.dir, "cache-npx") });
      const r = await run("npx", ["--yes", "--prefer-offline", `--package=${tarball}`, "--", "layerfold", "build", "-C", "hello", "--store", path.join(tmp.dir, "store-npx"), "-o", "none"], { cwd: dir, env });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(DIGEST.exec(r.stdout)?.[1], digest, "the digest the repository built");
    });

    await t.test("global install (npm i -g) used by a non-root user", { skip: process.getuid?.() !== 0 && "creating a user needs root" }, async () => {
      const prefix = path.join(tmp.dir, "global");
      await ok("npm", ["install", "--global", "--prefix", prefix, "--no-audit", "--no-fund", "--prefer-offline", tarball], { cwd: tmp.dir });
      const user = "layerfold-test";
      if ((await run("id", ["-u", user], { cwd: tmp.dir })).code !== 0) await ok("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user], { cwd: tmp.dir });
      const uid = Number((await ok("id", ["-u", user], { cwd: tmp.dir })).trim());
      const gid = Number((await ok("id", ["-g", user], { cwd: tmp.dir })).trim());
      const home = path.join(tmp.dir, "home");
      await mkdir(home);
      await cp(hello, path.join(home, "hello"), { recursive: true });
      execFileSync("chown", ["-R", `${uid}:${gid}`, home]);
      await chown(home, uid, gid);
      const installed = path.join(prefix, "lib", "node_modules", "layerfold");
      const before = await snapshot(installed);
      // The user's PATH finds the global bin (and node: the shebang is `env node`).
      const env = { HOME: home, PATH: `${path.join(prefix, "bin")}:${path.dirname(process.execPath)}:/usr/bin:/bin`, LANG: "C.UTF-8" };
      const as = { cwd: home, env, uid, gid };
      assert.equal((await ok("layerfold", ["--version"], as)).trim(), pkg.version);
      for (const round of [1, 2]) {
        const r = await run("layerfold", ["build", "-C", "hello", "--store", path.join(home, "store"), "-o", "none"], as);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(DIGEST.exec(r.stdout)?.[1], digest, `round ${round}: the digest the repository built`);
      }
      assert.deepEqual(await snapshot(installed), before, "nothing written inside the global package");
      assert.ok((await readdir(path.join(home, ".cache", "layerfold-config"))).some((f) => f.endsWith(".mjs")), "the config bundle is cached in the user's ~/.cache");
      // A program of the user's imports the global package through a link to it (`npm link layerfold`
      // wants to chmod the root-owned package's bin, so the link by hand, as the README says).
      const program = path.join(home, "program");
      await mkdir(path.join(program, "node_modules"), { recursive: true });
      await writeFile(path.join(program, "package.json"), JSON.stringify({ name: "user-program", private: true }));
      await symlink(installed, path.join(program, "node_modules", "layerfold"));
      execFileSync("chown", ["-R", "-h", `${uid}:${gid}`, program]);
      const api = await ok(process.execPath, ["--input-type=module", "-e", 'const m = await import("layerfold"); console.log(typeof m.defineImage)'], { ...as, cwd: program });
      assert.equal(api.trim(), "function");
      await cp(hello, path.join(program, "hello"), { recursive: true });
      await typecheck(program, false);
    });

    await t.test("the GitHub Action (action.yml) installs the tarball, builds and pushes to a registry", async () => {
      const reg = await startRegistry();
      try {
        const work = path.join(tmp.dir, "action");
        await mkdir(path.join(work, "runner-temp"), { recursive: true });
        await cp(hello, path.join(work, "hello"), { recursive: true });
        const output = path.join(work, "github-output");
        await writeFile(output, "");
        const prefix = path.join(work, "prefix");
        const env = cleanEnv({
          RUNNER_TEMP: path.join(work, "runner-temp"),
          GITHUB_OUTPUT: output,
          npm_config_prefix: prefix, // npm i -g goes here, not into this machine's global prefix
          PATH: `${path.join(prefix, "bin")}:${process.env.PATH}`,
          LAYERFOLD_STORE: path.join(work, "store"),
          XDG_CACHE_HOME: path.join(work, "cache"),
        });
        const image = `${reg.host}/examples/hello:1.0`;
        // `version` takes any npm package spec: the tarball stands for a published version.
        await runAction({ config: "hello", version: tarball, setup: "none", frozen: "false", push: "true", image }, { cwd: work, env });
        const outputs = Object.fromEntries((await readFile(output, "utf8")).trim().split("\n").map((l) => l.split("=", 2) as [string, string]));
        assert.deepEqual(outputs, { digest, image: "layerfold-examples/hello:1.0" });
        const res = await fetch(`${reg.url}/v2/examples/hello/manifests/1.0`, { method: "HEAD", headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
        assert.equal(res.status, 200);
        assert.equal(res.headers.get("docker-content-digest"), digest, "the registry holds the image the action built");
      } finally {
        await reg.stop();
      }
    });
  } finally {
    await tmp.cleanup();
  }
});
