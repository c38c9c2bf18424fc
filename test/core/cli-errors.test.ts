// Every command, as a user or a script meets it: --help, a bad flag value (a clear
// message, the documented exit code, no stack, before any work), and stdout closed
// early by its reader (`| head`): no EPIPE crash.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, chown, mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { EXIT_CODES, LayerfoldError } from "../../src/errors.ts";
import { findOnPath } from "../../src/util/fs.ts";
import { cliPath, repoRoot, runCli, tempDir, type CliResult } from "../helpers/cli.ts";

let tmp: { dir: string; cleanup: () => Promise<void> };
let dir: string;
let store: string;
const IMAGE = "t/cli-errors:1";

before(async () => {
  tmp = await tempDir();
  dir = path.join(tmp.dir, "img");
  store = path.join(tmp.dir, "store");
  await mkdir(dir, { recursive: true });
  // Enough packages that why/sbom/inspect write more than a pipe's first read.
  const inline = Array.from({ length: 40 }, (_, i) => `{ path: "/etc/f${i}", text: "${i}" }`).join(", ");
  await writeFile(
    path.join(dir, "layerfold.config.ts"),
    `import { defineImage } from ${JSON.stringify(path.join(repoRoot, "src", "index.ts"))};\nexport default defineImage({ name: "t/cli-errors", tag: "1", layers: [{ name: "a", inline: [${inline}] }, { name: "b", inline: [{ path: "/etc/b", text: "b" }] }] });\n`,
  );
  const b = await runCli(["build", "-C", dir, "--store", store, "-o", `oci:${path.join(tmp.dir, "out")}`, "-q"]);
  assert.equal(b.code, 0, b.stderr);
});
after(async () => tmp.cleanup());

const noStack = (r: CliResult, what: string) => {
  assert.doesNotMatch(r.stderr, /^\s+at /m, `${what}: no stack trace\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /EPIPE|TypeError|Cannot read properties/, `${what}: no raw error\n${r.stderr}`);
};

/** Every command, as `layerfold <argv>`. */
const COMMANDS = ["build", "lock", "inspect", "why", "diff", "run", "shell", "check", "report", "sbom", "push", "pull", "load", "index push", "gc"];

test("the list covers every command the CLI has", async () => {
  const { program } = await import("../../src/cli/main.ts");
  const names = program().commands.flatMap((c) => (c.commands.length ? c.commands.map((s) => `${c.name()} ${s.name()}`) : [c.name()]));
  assert.deepEqual([...names].sort(), [...COMMANDS].sort());
});

test("every command: --help prints its usage and exits 0", async () => {
  for (const cmd of COMMANDS) {
    const r = await runCli([...cmd.split(" "), "--help"]);
    assert.equal(r.code, 0, `${cmd} --help: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^Usage: layerfold ${cmd} `), cmd);
    assert.equal(r.stderr, "", cmd);
  }
});

// [argv, exit code, message]. Usage errors exit 2 in every command but run and shell, which
// exit 125 for layerfold's own failures (the command's own exit code passes through there).
const BAD = (at: string[]): Array<[string[], number, RegExp]> => [
  [["build", "--concurrency", "abc"], 2, /error\[E_USAGE\]: option '--concurrency <n>' argument 'abc' is invalid\. give a whole number, 1 or more/],
  [["build", "--concurrency", "0"], 2, /argument '0' is invalid/],
  [["build", "-o", "oci"], 2, /error\[E_USAGE\]: option '-o, --output <spec>' argument 'oci' is invalid\. output "oci" is not understood; use oci:DIR/],
  [["build", "-o", "bogus:out-bogus", ...at], 2, /argument 'bogus:out-bogus' is invalid/],
  [["build", "--compression", "lz4"], 2, /argument 'lz4' is invalid\. use zstd, zstd:chunked, gzip or none/],
  [["build", "--platform", "amd64"], 2, /argument 'amd64' is invalid\. give os\/arch/],
  [["lock", "--override", "nodir", ...at], 2, /error\[E_USAGE\]: --override "nodir" must look like NAME=DIR/],
  [["inspect", "--layout", "/nonexistent", ...at], 14, /error\[E_NOT_FOUND\]: \/nonexistent is not an OCI layout/],
  [["why", "nosuchpkg", ...at], 14, /error\[E_NOT_FOUND\]: no package "nosuchpkg" in t\/cli-errors:1/],
  [["diff", "a", "b", "--platform", "windows"], 2, /argument 'windows' is invalid/],
  [["run", "-v", "nocolon"], 125, /error\[E_USAGE\]: option '-v, --volume <HOST:CONTAINER\[:ro\]>' argument 'nocolon' is invalid\. -v "nocolon": use HOST:CONTAINER/],
  [["run", "--json"], 125, /error\[E_USAGE\]: unknown option '--json'/],
  [["shell", "-e", "=x"], 125, /argument '=x' is invalid\. give NAME=VALUE/],
  [["check", "--import-timeout", "0"], 2, /argument '0' is invalid/],
  [["report", "--image", "nosuch:1", ...at], 14, /error\[E_NOT_FOUND\]: no build of nosuch:1 in the store/],
  [["sbom", "-f", "xml"], 2, /argument 'xml' is invalid\. use cyclonedx or spdx/],
  [["push", "--concurrency", "-1", "r.example/x:1"], 2, /argument '-1' is invalid/],
  [["pull", "--concurrency", "-3", "r.example/x:1", "d"], 2, /argument '-3' is invalid/],
  [["load", "--via", "ssh"], 2, /argument 'ssh' is invalid\. use auto, api or cli/],
  [["index", "push", "Bad Ref!", "r.example/x:1"], 2, /error\[E_USAGE\]: command-argument value 'Bad Ref!' is invalid for argument 'ref'\. index target "Bad Ref!"/],
  [["index", "push", "r.example/x:1", "r.example/y:1", "r.example/Y:2"], 2, /argument 'images'\. index member "r\.example\/Y:2"/],
  [["push", "r.example/Bad:1"], 2, /error\[E_USAGE\]: command-argument value 'r\.example\/Bad:1' is invalid for argument 'ref'/],
  [["build", "--cache", "Bad Ref"], 2, /option '--cache <ref>' argument 'Bad Ref' is invalid/],
  [["gc", "--keep", "0"], 2, /argument '0' is invalid/],
  [["why", "x", "--image", "t/x:1", "--store", path.join(tmp.dir, "no-store")], 14, /error\[E_NOT_FOUND\]: no build of t\/x:1 in the store \S+no-store; run `layerfold build` first \(or pass --store\)/],
  [["inspect", "-C", dir, "--store", path.join(tmp.dir, "no-store")], 14, /no build of t\/cli-errors:1 in the store \S+no-store/],
  [["build", "--bogus"], 2, /error\[E_USAGE\]: unknown option '--bogus'/],
  [["nosuchcommand"], 2, /error\[E_USAGE\]: unknown command 'nosuchcommand'/],
];

test("every command: a bad flag value is a clear usage error with the documented exit code, before any work", async () => {
  const cases = BAD(["-C", dir, "--store", store]);
  const covered = new Set(cases.map(([argv]) => (argv[0] === "index" ? "index push" : argv[0]!)));
  for (const cmd of COMMANDS) assert.ok(covered.has(cmd), `${cmd} has a bad-value case`);
  for (const [argv, code, message] of cases) {
    const r = await runCli(argv, { cwd: tmp.dir });
    const what = argv.join(" ");
    assert.equal(r.code, code, `${what}: ${r.stderr}`);
    assert.match(r.stderr, message, what);
    noStack(r, what);
  }
  // Refused on its flags before any work: nothing was written, no store created.
  assert.equal(existsSync(path.join(tmp.dir, "no-store")), false);
  assert.deepEqual(existsSync(path.join(tmp.dir, "out-bogus")), false);
});

/** Run with stdout closed before the command writes: its reader has gone (`| head -0`). */
function closedPipe(args: string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { cwd: tmp.dir });
    child.stdout.destroy();
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout: "", stderr }));
  });
}

test("every command: output into a closed pipe ends quietly with the command's own exit code", async () => {
  const at = ["-C", dir, "--store", store];
  const layout = path.join(tmp.dir, "out");
  const cases: Array<[string[], number]> = [
    [["build", ...at, "-o", "none"], 0],
    [["lock", "--check", ...at], 0],
    [["inspect", ...at], 0],
    [["why", "inline:/etc/f1", ...at], 0],
    [["diff", "--store", store, IMAGE, layout], 0],
    [["check", ...at, "--no-imports", "--no-libs"], 0],
    [["report", ...at, "-o", path.join(tmp.dir, "r.html")], 0],
    [["sbom", ...at], 0],
    [["sbom", ...at, "--json", "-o", path.join(tmp.dir, "s.json")], 0],
    [["gc", "--store", store, "--dry-run"], 0],
    // These need a registry, an engine or namespaces to do their work; their output here is their help.
    ...["run", "shell", "push", "pull", "load", "index push"].map((c): [string[], number] => [[...c.split(" "), "--help"], 0]),
    [["why", "nosuchpkg", ...at], 14],
  ];
  for (const [args, code] of cases) {
    const r = await closedPipe(args);
    const what = args.slice(0, 2).join(" ");
    assert.equal(r.code, code, `${what}: ${r.stderr}`);
    noStack(r, what);
  }
  assert.ok(existsSync(path.join(tmp.dir, "r.html")), "report finished its work with stdout gone");
});

test("-q: report and lock --check print nothing on success; sbom --json -o prints its summary; run --json is refused", async () => {
  const at = ["-C", dir, "--store", store];
  const report = await runCli(["report", ...at, "-q", "-o", path.join(tmp.dir, "q.html")]);
  assert.equal(report.code, 0, report.stderr);
  assert.equal(report.stdout, "");
  const check = await runCli(["lock", "--check", ...at, "-q"]);
  assert.equal(check.code, 0, check.stderr);
  assert.equal(check.stdout, "");
  const sbom = await runCli(["sbom", ...at, "--json", "-o", path.join(tmp.dir, "s2.json")]);
  assert.equal(sbom.code, 0, sbom.stderr);
  const summary = JSON.parse(sbom.stdout) as { file: string; format: string; packages: number; manifestDigest: string };
  assert.deepEqual([summary.file, summary.format, typeof summary.packages], [path.join(tmp.dir, "s2.json"), "cyclonedx", "number"]);
  assert.match(summary.manifestDigest, /^sha256:[0-9a-f]{64}$/);
  assert.equal(JSON.parse(await readFile(summary.file, "utf8")).bomFormat, "CycloneDX");
});

test("load with a docker CLI but no daemon: docker's own words, exit 7", { skip: !findOnPath("docker") && "no docker CLI" }, async () => {
  const r = await runCli(["load", "-C", dir, "--store", store, "--via", "cli"], { env: { DOCKER_HOST: "unix:///nonexistent/docker.sock" } });
  assert.equal(r.code, 7, r.stderr);
  assert.match(r.stderr, /error\[E_NETWORK\]: docker load: Cannot connect to the Docker daemon at unix:\/\/\/nonexistent\/docker\.sock/);
  assert.match(r.stderr, /point DOCKER_HOST \(or --docker-host\) at a running engine's socket/);
  assert.doesNotMatch(r.stderr, /Premature close/);
  noStack(r, "load");
});

test("build --load with no engine and no docker CLI fails before building", async () => {
  const out = path.join(tmp.dir, "out-load");
  const r = await runCli(["build", "-C", dir, "--store", path.join(tmp.dir, "store-load"), "-o", `oci:${out}`, "--load"], { env: { PATH: "/nonexistent", DOCKER_HOST: "", XDG_RUNTIME_DIR: "" } });
  assert.equal(r.code, 7, r.stderr);
  assert.match(r.stderr, /error\[E_NETWORK\]: no docker engine found: set DOCKER_HOST/);
  assert.equal(existsSync(out), false, "nothing built");
  assert.equal(existsSync(path.join(tmp.dir, "store-load", "blobs")), false, "nothing stored");
  noStack(r, "build --load");
});

test("a full disk: E_NO_SPACE naming the full filesystem's path, exit 16", { skip: spawnSync("unshare", ["-rm", "true"]).status !== 0 && "no user namespaces" }, async () => {
  // A 1 MiB tmpfs in a private mount namespace holds the store; the image needs 4 MiB.
  const big = path.join(tmp.dir, "big");
  const small = path.join(tmp.dir, "small-disk");
  await mkdir(small, { recursive: true });
  await mkdir(big, { recursive: true });
  await writeFile(path.join(big, "data.bin"), randomBytes(4 << 20));
  await writeFile(path.join(big, "layerfold.config.ts"), `import { defineImage } from ${JSON.stringify(path.join(repoRoot, "src", "index.ts"))};\nexport default defineImage({ name: "t/big", layers: [{ name: "a", files: [{ src: "./data.bin", dest: "/data.bin" }] }] });\n`);
  const script = `mount -t tmpfs -o size=1m none "$1" && exec "$2" "$3" build -C "$4" --store "$1/store" -o none`;
  const r = spawnSync("unshare", ["-rm", "sh", "-c", script, "sh", small, process.execPath, cliPath, big], { encoding: "utf8" });
  assert.equal(r.status, 16, r.stderr);
  assert.match(r.stderr, new RegExp(`error\\[E_NO_SPACE\\]: no space left on device writing ${small}/store/\\S+/data\\.bin; nearly full: the store ${small}/store \\([\\d.]+ KiB free\\); free some space`));
  assert.match(r.stderr, /--store DIR/);
  assert.doesNotMatch(r.stderr, /^\s+at /m);
});

test("a PATH entry the user cannot read is skipped when looking for tools (zstd)", { skip: (process.getuid?.() !== 0 || spawnSync("setpriv", ["--version"]).status !== 0) && "needs root and setpriv" }, async () => {
  // As after `su` without `-`: root's PATH, with a directory another user owns and keeps to
  // itself. layerfold runs as root without the capabilities that bypass file permissions, so
  // it still reads the checkout (which may be closed to other users, as a CI clone can be).
  const top = path.join(tmp.dir, "path-case");
  const secret = path.join(top, "secret");
  await mkdir(path.join(top, "img"), { recursive: true });
  await mkdir(secret, { recursive: true });
  await chown(secret, 65534, 65534);
  await chmod(secret, 0o700);
  await writeFile(path.join(top, "img", "layerfold.config.ts"), `import { defineImage } from ${JSON.stringify(path.join(repoRoot, "src", "index.ts"))};\nexport default defineImage({ name: "t/path", layers: [{ name: "a", inline: [{ path: "/x", text: "y" }] }] });\n`);
  const r = spawnSync("setpriv", ["--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all", process.execPath, cliPath, "build", "-C", path.join(top, "img"), "--store", path.join(top, "store"), "-o", "none"], {
    encoding: "utf8",
    env: { ...process.env, PATH: `${secret}:${process.env.PATH}`, HOME: top },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /1 layers \(1 built, 0 reused\)/);
});

test("every error class has its code and exit code in the table", async () => {
  const errors = (await import("../../src/errors.ts")) as Record<string, unknown>;
  const classes = Object.values(errors).filter((v): v is new (m: string) => LayerfoldError => typeof v === "function" && v.prototype instanceof LayerfoldError);
  assert.ok(classes.length >= 15);
  for (const C of classes) {
    const e = new C("x");
    const row = EXIT_CODES.find((r) => r.exit === e.exitCode);
    assert.ok(row && row.code.split(", ").includes(e.code), `${C.name}: ${e.code} exit ${e.exitCode} is in EXIT_CODES`);
  }
});

test("the README's exit code table is errors.ts's EXIT_CODES", async () => {
  const readme = await readFile(path.join(repoRoot, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Exit codes"));
  const rows = [...section.matchAll(/^\| (\d+) \| ([^|]*) \|/gm)].map((m) => [Number(m[1]), m[2]!.replace(/`/g, "").trim()]);
  assert.deepEqual(rows, EXIT_CODES.map((e) => [e.exit, e.code]));
});
