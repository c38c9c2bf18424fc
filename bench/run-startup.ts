// Start-up of `layerfold run -- true` on examples/debian-tools (Debian bookworm,
// 4 layers), in one run against:
//   old     the chroot sandbox this replaced (`unshare --root`, no user namespace),
//           run from a copy of the sources at --old-ref (default: the commit before it);
//   podman  `podman run --rm IMAGE true` of the same image (runc, overlay, cgroupfs:
//           the flags podman needs on these machines).
// All three with a warm cache (the rootfs materialised, the image in podman's storage)
// and the same 2-core machine; each is run --runs times, interleaved, and the median
// and minimum reported. Also: a non-root user's `run` (rootless) when --user NAME is given.
// Usage: node --import tsx bench/run-startup.ts [--runs 15] [--old-ref REF] [--store DIR] [--user NAME]

import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { median, timedCmd } from "./stack.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..");
const arg = (name: string, def: string) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1]! : def; };
const runs = Number(arg("runs", "15"));
const oldRef = arg("old-ref", "4bfdfc6^");
const log = (m: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${m}\n`);

// Lower case: podman names an image pulled from oci:DIR after the path.
const work = path.join(os.tmpdir(), `lf-startup-${randomBytes(4).toString("hex")}`);
await mkdir(work);
const store = arg("store", path.join(work, "store"));
const layout = path.join(work, "layout");
const cli = path.join(repo, "bin", "layerfold.mjs");
const IMAGE = "layerfold-examples/debian-tools:bookworm";
try {
  log(`building examples/debian-tools into ${store}`);
  execFileSync(process.execPath, [cli, "build", "-C", path.join(repo, "examples", "debian-tools"), "--store", store, "--frozen", "-o", `oci:${layout}`, "-q"], { stdio: "inherit" });

  // The old code: the sources at oldRef, with this checkout's node_modules.
  const old = path.join(work, "old");
  await mkdir(old);
  execFileSync("sh", ["-c", `git -C '${repo}' archive '${oldRef}' | tar -x -C '${old}'`]);
  // Its own node_modules/.cache: the CLI keeps one cached bundle per cache directory, and
  // sharing it would rebuild the bundle on every alternate run of both.
  await mkdir(path.join(old, "node_modules"));
  for (const e of await readdir(path.join(repo, "node_modules"))) {
    if (e !== ".cache") await symlink(path.join(repo, "node_modules", e), path.join(old, "node_modules", e));
  }
  const oldCli = path.join(old, "bin", "layerfold.mjs");

  // podman with its own storage, the image loaded once.
  const pmRoot = await mkdtemp(path.join(os.tmpdir(), "lfpm-"));
  const conf = path.join(pmRoot, "containers.conf");
  await writeFile(conf, "[containers]\ndefault_ulimits = []\n");
  await mkdir(path.join(pmRoot, "tmp"));
  const pmFlags = ["--root", path.join(pmRoot, "storage"), "--runroot", path.join(pmRoot, "run"), "--storage-driver", "overlay", "--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--tmpdir", path.join(pmRoot, "tmp")];
  const pmEnv = { CONTAINERS_CONF: conf };
  execFileSync("podman", [...pmFlags, "pull", "-q", `oci:${layout}`], { env: { ...process.env, ...pmEnv }, stdio: ["ignore", "ignore", "inherit"] });
  const image = execFileSync("podman", [...pmFlags, "images", "-q"], { env: { ...process.env, ...pmEnv }, encoding: "utf8" }).trim().split("\n")[0]!;

  const cases: Record<string, () => Promise<{ seconds: number }>> = {
    // The image as a build in the store (NAME:TAG), as after `layerfold build`.
    layerfold: () => timedCmd(process.execPath, [cli, "run", "--store", store, IMAGE, "--", "true"]),
    old: () => timedCmd(process.execPath, [oldCli, "run", "--store", store, IMAGE, "--", "true"]),
    podman: () => timedCmd("podman", [...pmFlags, "run", "--rm", image, "true"], { env: pmEnv }),
  };
  const user = arg("user", "");
  let userStore = "";
  if (user) {
    // Rootless: the user's own store, in a directory only they can enter.
    const ids = execFileSync("id", ["-u", user], { encoding: "utf8" }).trim();
    userStore = path.join(work, "userstore");
    await mkdir(userStore);
    execFileSync("chown", [`${ids}:${ids}`, userStore]);
    await chmod(work, 0o755);
    execFileSync("chmod", ["-R", "a+rX", layout]);
    cases.rootless = () => timedCmd("setpriv", [`--reuid=${user}`, `--regid=${user}`, "--init-groups", process.execPath, cli, "run", "--store", userStore, "--layout", layout, "--", "true"], { env: { HOME: userStore } });
  }
  // Warm: the rootfs materialised (once per code: old and new name it differently).
  for (const [name, f] of Object.entries(cases)) {
    const w = await f();
    log(`warm-up ${name}: ${w.seconds.toFixed(3)} s`);
  }
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  for (let i = 0; i < runs; i++) for (const [name, f] of Object.entries(cases)) times[name]!.push((await f()).seconds);
  const result = Object.fromEntries(Object.entries(times).map(([k, xs]) => [k, { median: median(xs), min: Math.min(...xs), runs: xs.map((x) => Number(x.toFixed(3))) }]));
  const summary = {
    date: new Date().toISOString(),
    machine: `${os.cpus().length} cores, load ${os.loadavg()[0]!.toFixed(1)}, Node ${process.version}, ${execFileSync("runc", ["--version"], { encoding: "utf8" }).split("\n")[0]}, ${execFileSync("podman", ["--version"], { encoding: "utf8" }).trim()}`,
    image: "examples/debian-tools",
    command: "run -- true (warm)",
    oldRef,
    ...result,
  };
  await mkdir(path.join(here, "results"), { recursive: true });
  await writeFile(path.join(here, "results", "run-startup.json"), JSON.stringify(summary, null, 2) + "\n");
  for (const [k, v] of Object.entries(result)) log(`${k.padEnd(10)} median ${v.median.toFixed(3)} s  min ${v.min.toFixed(3)} s`);
  execFileSync("podman", [...pmFlags, "rmi", "-a", "-f"], { env: { ...process.env, ...pmEnv }, stdio: "ignore" });
  await rm(pmRoot, { recursive: true, force: true }).catch(() => {});
} finally {
  await rm(work, { recursive: true, force: true }).catch(() => {});
}
