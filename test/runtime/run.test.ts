// layerfold run on real images: docker's argv/env/workdir/user semantics,
// exit codes, private PID namespace, and writes that never reach the store.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { helloExample, repoRoot, runCli, tempDir } from "../helpers/cli.ts";
import { namespaceProblem } from "../../src/runtime/sandbox.ts";
import { openImage } from "../../src/runtime/image.ts";
import { runImage, type RunOptions } from "../../src/runtime/run.ts";
import { Store } from "../../src/store/store.ts";
import { compileProbe, probeImage } from "./images.ts";

const skip = namespaceProblem();
let tmp: { dir: string; cleanup: () => Promise<void> };
let store: string;
let probe: string;
let app: string;
before(async () => {
  tmp = await tempDir("layerfold-run-");
  store = path.join(tmp.dir, "store");
  probe = await probeImage(path.join(tmp.dir, "probe"));
  app = await probeImage(path.join(tmp.dir, "app"), { app: true });
  for (const dir of [probe, app]) {
    const r = await runCli(["build", "-C", dir, "--store", store, "-o", "none", "-q"]);
    assert.equal(r.code, 0, r.stderr);
  }
});
after(async () => tmp?.cleanup());

const cli = (args: string[], dir = probe) => runCli(["run", "-C", dir, "--store", store, ...args]);

/** In-process run of the probe image (no CLI start-up): what `layerfold run` does after parsing flags. */
async function run(opts: RunOptions, ref = "layerfold-tests/probe:1"): Promise<{ code: number; stdout: string; stderr: string }> {
  const s = new Store(store);
  const started = await runImage(s, await openImage(s, { image: ref }), { ...opts, stdio: "pipe" });
  started.stdin!.end();
  let stdout = "";
  let stderr = "";
  started.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  started.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const code = await started.done;
  return { code, stdout, stderr };
}

test("hello example: entrypoint, args after --, image env and -e", { skip }, async () => {
  const hello = await helloExample(tmp.dir);
  assert.equal((await runCli(["build", "-C", hello, "--store", store, "-o", "none", "-q"])).code, 0);
  const a = await runCli(["run", "-C", hello, "--store", store, "--", "one", "two"]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(a.stdout, "hello from layerfold: folded layers, reproducible digests\narg: one\narg: two\n");
  const b = await runCli(["run", "-C", hello, "--store", store, "-e", "GREETING=hi"]);
  assert.match(b.stdout, /^hi from layerfold/);
});

test("no CMD runs Entrypoint + Cmd in WorkingDir with Env, as PID 1", { skip }, async () => {
  const r = await run({});
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^pid=1 cwd=\/work\/dir uid=0 gid=0 FOO=bar HOME=\/root PATH=\/usr\/local\/sbin:/);
  assert.match(r.stdout, /\narg=from-cmd\n$/);
});

test("CMD after -- replaces Cmd; --entrypoint, -w, -u and -e work like docker", { skip }, async () => {
  const a = await run({ cmd: ["info", "x y", "z"] });
  assert.match(a.stdout, /\narg=x y\narg=z\n$/);
  assert.doesNotMatch(a.stdout, /from-cmd/);
  const b = await run({ workdir: "/tmp", user: "app", env: ["FOO=baz"], cmd: ["info"] });
  assert.match(b.stdout, /^pid=1 cwd=\/tmp uid=1000 gid=1000 FOO=baz HOME=\/home\/app /);
  const c = await run({ user: "4242:staff", cmd: ["info"] });
  assert.match(c.stdout, /uid=4242 gid=50 /);
  const d = await cli(["--entrypoint", "/usr/bin/probe", "-w", "/tmp", "-u", "app", "-e", "FOO=cli", "--", "info", "x"]);
  assert.equal(d.code, 0, d.stderr);
  assert.match(d.stdout, /^pid=1 cwd=\/tmp uid=1000 gid=1000 FOO=cli .*\narg=x\n$/s);
  await assert.rejects(run({ user: "nosuchuser", cmd: ["info"] }), /nosuchuser.*not in the image's \/etc\/passwd/);
});

test("the command's exit code passes through; a missing command is a clear error before anything runs", { skip }, async () => {
  assert.equal((await cli(["--", "exit", "42"])).code, 42);
  // In runImage, before anything runs, in layerfold's words with docker run's codes.
  await assert.rejects(run({ entrypoint: "/no/such/program" }), /\/no\/such\/program: no such file in layerfold-tests\/probe:1/);
  const missing = await cli(["--entrypoint", "/no/such/program"]);
  assert.equal(missing.code, 127, missing.stderr);
  assert.match(missing.stderr, /^error\[E_COMMAND_NOT_FOUND\]: \/no\/such\/program: no such file in layerfold-tests\/probe:1; give a program the image has/);
  assert.doesNotMatch(missing.stderr, /unshare|runc|execvp/);
  const bare = await cli(["--entrypoint", "nosuchprogram"]);
  assert.equal(bare.code, 127, bare.stderr);
  assert.match(bare.stderr, /error\[E_COMMAND_NOT_FOUND\]: nosuchprogram: not found in layerfold-tests\/probe:1 \(searched PATH=/);
  const dir = await cli(["--entrypoint", "/etc"]);
  assert.equal(dir.code, 126, dir.stderr);
  assert.match(dir.stderr, /error\[E_CANNOT_EXECUTE\]: \/etc: \/etc is a directory in layerfold-tests\/probe:1/);
});

test("/proc is the container's own: only its processes", { skip }, async () => {
  const r = await run({ cmd: ["cat", "/proc/self/stat"] });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^1 \(probe\)/);
  const ls = await run({ cmd: ["cat", "/proc/1/cmdline"] });
  assert.match(ls.stdout, /probe/);
});

test("writes in the container do not change the store or the cached rootfs, nor the next run", { skip }, async () => {
  // The store file behind /etc/motd (hardlinked into the cached rootfs).
  const sha = async (f: string) => createHash("sha256").update(await readFile(f)).digest("hex");
  const trees = path.join(store, "trees");
  let motd: string | undefined;
  for (const k of await readdir(trees)) {
    const f = path.join(trees, k, "root", "etc", "motd");
    try { await readFile(f); motd = f; } catch { /* not this tree */ }
  }
  assert.ok(motd, "store tree with /etc/motd");
  const before = await sha(motd!);
  const w = await run({ cmd: ["write", "/etc/motd", "changed by the container"] });
  assert.equal(w.code, 0, w.stderr);
  const w2 = await run({ cmd: ["write", "/usr/local/bin/entrypoint", "clobbered"] });
  assert.equal(w2.code, 0, w2.stderr);
  assert.equal(await sha(motd!), before);
  const cached = await run({ cmd: ["cat", "/usr/local/bin/entrypoint"] });
  assert.equal(cached.stdout, "#!/usr/bin/probe smoke\n");
  const again = await run({ cmd: ["cat", "/etc/motd"] });
  assert.equal(again.stdout, "original\n");
  // The store's tmp holds no leftover run directories.
  assert.deepEqual((await readdir(path.join(store, "tmp"))).filter((n) => n.startsWith("run-")), []);
});

test("-v binds a host directory; :ro makes it read-only", { skip }, async () => {
  const { writeFile, mkdir } = await import("node:fs/promises");
  const host = path.join(tmp.dir, "vol");
  await mkdir(host, { recursive: true });
  await writeFile(path.join(host, "in.txt"), "from host\n");
  const r = await run({ mounts: [{ host, container: "/data" }], cmd: ["cat", "/data/in.txt"] });
  assert.equal(r.stdout, "from host\n");
  const w = await cli(["-v", `${host}:/data`, "--", "write", "/data/out.txt", "from container"]);
  assert.equal(w.code, 0, w.stderr);
  assert.equal(await readFile(path.join(host, "out.txt"), "utf8"), "from container");
  const ro = await run({ mounts: [{ host, container: "/data", readonly: true }], cmd: ["write", "/data/out.txt", "x"] });
  assert.equal(ro.code, 2);
  assert.match(ro.stderr, /Read-only file system/);
});

test("smoke test: the app entrypoint with --smoke (CLI_ARGS=--quick-test-for-ci --cpu) exits 0", { skip }, async () => {
  const ok = await cli(["--smoke"], app);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, "smoke ok: --quick-test-for-ci --cpu\n");
  const same = await run({ env: ["CLI_ARGS=--quick-test-for-ci --cpu"] }, "layerfold-tests/probe:app");
  assert.equal(same.code, 0);
  const bad = await run({}, "layerfold-tests/probe:app");
  assert.equal(bad.code, 3);
});

test("a directory owner in conflicts: run shows the owner's copy of a path three packages provide, as the image does", { skip }, async () => {
  const dir = path.join(tmp.dir, "owners");
  await compileProbe(dir);
  const layers = [{ name: "bin", files: [{ src: "./build/probe", dest: "/usr/bin/probe", mode: 0o755, name: "probe" }] }];
  for (const n of ["a", "b", "c"]) {
    await mkdir(path.join(dir, n), { recursive: true });
    await writeFile(path.join(dir, n, "f.txt"), `from ${n}\n`);
    layers.push({ name: `l${n}`, files: [{ src: `./${n}/f.txt`, dest: "/opt/d/f.txt", mode: 0o644, name: n }] });
  }
  const image = { name: "layerfold-tests/owners", tag: "1", layers, conflicts: { "/opt/d/": "file:b" }, config: { entrypoint: ["/usr/bin/probe"] } };
  await writeFile(path.join(dir, "layerfold.config.ts"), `import { defineImage } from ${JSON.stringify(path.join(repoRoot, "src", "index.ts"))};\nexport default defineImage(${JSON.stringify(image)});\n`);
  const built = await runCli(["build", "-C", dir, "--store", store, "-o", "none", "--json"]);
  assert.equal(built.code, 0, built.stderr);
  const holders = (JSON.parse(built.stdout) as { layers: Array<{ name: string; packages: string[] }> }).layers.filter((l) => l.packages.some((p) => /^file:[abc]$/.test(p)));
  assert.deepEqual(holders.map((l) => l.name), ["la", "lb", "lc"]);
  const r = await runCli(["run", "-C", dir, "--store", store, "--", "cat", "/opt/d/f.txt"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "from b\n", "the image holds b's copy (conflicts names b for /opt/d/), and so must run");
});

test("IMAGE as NAME:TAG of a build in the store", { skip }, async () => {
  const r = await runCli(["run", "--store", store, "layerfold-tests/probe:1", "--", "info", "named"], { cwd: tmp.dir });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /arg=named/);
});

test("bad input: no OCI runtime, a uid outside the container's range: clear errors before anything runs", { skip }, async () => {
  const none = await runCli(["run", "-C", probe, "--store", store, "--", "info"], { env: { LAYERFOLD_RUNTIME: "no-such-runtime" } });
  assert.equal(none.code, 125, none.stderr);
  assert.match(none.stderr, /error\[E_RUNTIME\]: cannot run the image here: the OCI runtime no-such-runtime is not installed; install it \(`apt-get install runc`/);
  const noTty = await cli(["-t", "--", "info"]);
  assert.equal(noTty.code, 125, noTty.stderr);
  assert.match(noTty.stderr, /error\[E_RUNTIME\]: -t needs a terminal, and the input is not one; drop -t/);
  const far = await cli(["-u", "70000", "--", "info"]);
  assert.equal(far.code, 125, far.stderr);
  assert.match(far.stderr, /error\[E_RUNTIME\]: user 70000:70000: uid 70000 and gid 70000 cannot be used in the container: the container's ids go from 0 to 65535/);
});

test("shell: an image without /bin/sh gets a clear error", async () => {
  const r = await runCli(["shell", "-C", probe, "--store", store]);
  assert.equal(r.code, 127, r.stderr);
  assert.match(r.stderr, /error\[E_COMMAND_NOT_FOUND\]: layerfold-tests\/probe:1 has no \/bin\/bash or \/bin\/sh/);
});

