// Drive an OCI runtime (runc; crun takes the same commands) for one
// container: a fresh run directory with the bundle (config.json), the
// overlay's upper and work directories and the runtime's state; a wrapper in
// a private mount namespace mounts the overlay (lower: the cached root
// filesystem, read-only to the container) and runs `runc run` in the
// foreground, then deletes the upper layer: nothing one run writes is seen by
// the next.
//
// As root the wrapper is host root in a private mount namespace, and runc
// makes the container's user namespace from the spec's mappings. Rootless,
// the wrapper runs in a user namespace of its own (userns.ts) and runc, root
// there, puts the container in it.
//
// The wrapper writes its own errors to fd 3 and the runtime logs to a file,
// so a setup failure is told apart from the command's exit status.

import { spawn, spawnSync, type ChildProcess, type StdioOptions } from "node:child_process";
import { accessSync, constants as fsc, readFileSync } from "node:fs";
import { findOnPath } from "../util/fs.ts";
import { chmod, chown, mkdir, mkdtemp, readFile, rm, rmdir, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { RuntimeError } from "../errors.ts";
import type { IdMapping } from "./idmap.ts";
import { idmappedBindLines } from "./idmapped-mount.ts";
import { runtimeSpec, type ContainerConfig } from "./oci-spec.ts";
import { spawnInUserns, USERNS_WAIT } from "./userns.ts";

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Where, as root, the overlay is mounted: a directory the container's (unprivileged) root can reach. */
const ROOT_MOUNTS = "/run/layerfold";

export type StdioMode = "pipe" | "inherit" | "ignore";

export interface ContainerRun {
  child: ChildProcess;
  stdin?: NodeJS.WritableStream;
  stdout?: NodeJS.ReadableStream;
  stderr?: NodeJS.ReadableStream;
  /** The command's exit status (128+signal when killed); rejects with a RuntimeError when the container could not start. */
  done: Promise<number>;
  /** Stop the container: SIGKILL to its init (the whole PID namespace goes with it). */
  kill(): void;
}

let runtimeBin: string | undefined;

const isExecutable = (p: string) => {
  try {
    accessSync(p, fsc.X_OK);
    return true;
  } catch {
    return false;
  }
};

/** The OCI runtime's path: LAYERFOLD_RUNTIME (runc or crun, a name or a path), else runc on PATH. */
export function findRuntime(): string {
  if (runtimeBin) return runtimeBin;
  const want = process.env.LAYERFOLD_RUNTIME || "runc";
  // runc lives in /usr/sbin, which a non-root user's PATH often lacks.
  const found = want.includes("/") ? (isExecutable(want) ? want : undefined) : findOnPath(want, `${process.env.PATH || HOST_PATH}:/usr/sbin:/sbin`);
  if (found) return (runtimeBin = found);
  throw new RuntimeError(`the OCI runtime ${want} is not installed; install it (\`apt-get install runc\`, or crun with LAYERFOLD_RUNTIME=crun) and run again`);
}

export interface ContainerStart {
  /** The materialised root filesystem: the overlay's lower layer. */
  lower: string;
  /** A directory for this store's runs (the overlay's upper dir must be on a filesystem that supports it). */
  runsDir: string;
  config: Omit<ContainerConfig, "rootfs">;
  mapping: IdMapping;
  /** Owner of the overlay's root directory as the host sees it (the container's root). */
  rootOwner: { uid: number; gid: number };
  stdio: [StdioMode, StdioMode, StdioMode];
}

export async function runContainer(s: ContainerStart): Promise<ContainerRun> {
  const runtime = findRuntime();
  for (const p of [s.lower, s.runsDir]) {
    if (/[,:\n]/.test(p)) throw new RuntimeError(`${p}: overlay mounts cannot take a path with ',', ':' or a newline; use a store path without them (--store)`);
  }
  await mkdir(s.runsDir, { recursive: true });
  const dir = await mkdtemp(path.join(s.runsDir, "run-"));
  await chmod(dir, 0o700);
  const upper = path.join(dir, "upper");
  const work = path.join(dir, "work");
  const state = path.join(dir, "state");
  const log = path.join(dir, "runtime.log");
  const pidFile = path.join(dir, "pid");
  await Promise.all([mkdir(upper, { mode: 0o755 }), mkdir(work, { mode: 0o700 }), mkdir(state, { mode: 0o700 })]);
  // The overlay's root takes the upper dir's owner: the container's root.
  if (!s.mapping.rootless) await chown(upper, s.rootOwner.uid, s.rootOwner.gid);
  let merged: string;
  if (s.mapping.rootless) {
    merged = path.join(dir, "merged");
    await mkdir(merged);
  } else {
    // The runtime binds the rootfs from inside the user namespace, as the container's
    // root (an unprivileged host uid): every directory on the way must let it pass.
    await mkdir(ROOT_MOUNTS, { recursive: true, mode: 0o711 });
    await chmod(ROOT_MOUNTS, 0o711);
    merged = await mkdtemp(path.join(ROOT_MOUNTS, "root-"));
    await chmod(merged, 0o711);
  }
  // As root, each -v is staged in the run dir as an idmapped mount and the runtime binds that.
  const staged: string[] = [];
  const binds = await Promise.all(s.config.binds.map(async (b, i) => {
    if (s.mapping.rootless || !b.volume) return b;
    const stage = path.join(dir, `volume-${i}`);
    if ((await stat(b.host)).isDirectory()) await mkdir(stage);
    else await writeFile(stage, "");
    staged.push(...idmappedBindLines(b.host, stage, s.rootOwner.uid, s.rootOwner.gid, `-v ${b.host}:${b.container}`, 6));
    return { ...b, host: stage };
  }));
  const config = { ...s.config, binds, rootfs: merged };
  await writeFile(path.join(dir, "config.json"), JSON.stringify(runtimeSpec(config)));
  const id = `layerfold-${path.basename(dir).slice(4)}-${process.pid}`;
  const opts = [`lowerdir=${s.lower}`, `upperdir=${upper}`, `workdir=${work}`, ...(s.mapping.rootless ? ["userxattr"] : [])].join(",");
  const script = [
    "exec 6>&2 2>&3",
    "set -e",
    ...(s.mapping.rootless ? [USERNS_WAIT] : []),
    `mount -t overlay overlay -o ${q(opts)} ${q(merged)}`,
    ...staged,
    "set +e",
    // The terminal's Ctrl-C reaches the runtime, which passes it to the container.
    "trap '' INT HUP TERM",
    `${q(runtime)} --root ${q(state)} --log ${q(log)} --log-format json run --bundle ${q(dir)} --pid-file ${q(pidFile)} ${q(id)} 2>&6 3>&- 6>&-`,
    "st=$?",
    // Rootless, files the container made as its other users can only be removed in here.
    ...(s.mapping.rootless ? [`rm -rf ${q(upper)} ${q(work)} 2>/dev/null`] : []),
    "exit $st",
  ].join("\n");
  const stdio: StdioOptions = [...s.stdio, "pipe", "pipe"];
  const env = { PATH: HOST_PATH };
  let child: ChildProcess;
  let mapped: Promise<void> = Promise.resolve();
  if (s.mapping.rootless) ({ child, mapped } = spawnInUserns(script, [], s.mapping, stdio, env));
  else child = spawn("unshare", ["--mount", "--propagation", "private", "--", "/bin/sh", "-c", script], { stdio, env });

  let setupErr = "";
  (child.stdio[3] as NodeJS.ReadableStream).on("data", (d: Buffer) => { if (setupErr.length < 8000) setupErr += d.toString(); });
  let killed = false;
  const kill = () => {
    killed = true;
    const tryKill = (left: number) => {
      let pid: number | undefined;
      try {
        pid = Number(readFileSync(pidFile, "utf8").trim()) || undefined;
      } catch { /* not started yet */ }
      if (pid) {
        try { process.kill(pid, "SIGKILL"); } catch { /* gone */ }
        return;
      }
      if (left <= 0 || child.exitCode !== null) { child.kill("SIGKILL"); return; }
      setTimeout(() => tryKill(left - 1), 50).unref();
    };
    tryKill(100);
  };
  const done = new Promise<number>((resolve, reject) => {
    child.on("error", (err) => reject(new RuntimeError(`cannot start unshare (util-linux): ${err.message}`, { cause: err })));
    child.on("close", (code, signal) => {
      const status = code ?? 128 + (signal ? (os.constants.signals as Record<string, number>)[signal] ?? 0 : 0);
      void (async () => {
        const mapErr = await mapped.then(() => undefined, (e: unknown) => e);
        const runtimeErr = await runtimeErrors(log);
        await rm(dir, { recursive: true, force: true }).catch(() => {});
        if (!s.mapping.rootless) await rmdir(merged).catch(() => {});
        if (mapErr) return reject(mapErr);
        if (setupErr.trim()) return reject(new RuntimeError(`setting up the container failed:\n${setupErr.trim().split("\n").slice(-6).join("\n")}`));
        if (runtimeErr && !killed) return reject(new RuntimeError(`${path.basename(runtime)} could not start the container: ${runtimeErr}`));
        resolve(status);
      })();
    });
  });
  done.catch(() => {});
  const pipes = { stdin: child.stdin ?? undefined, stdout: child.stdout ?? undefined, stderr: child.stderr ?? undefined };
  return { child, done, kill, ...pipes };
}

/** The runtime's error lines from its JSON log (empty when it ran the container). */
async function runtimeErrors(log: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(log, "utf8");
  } catch {
    return undefined;
  }
  const msgs: string[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      const j = JSON.parse(line) as { level?: string; msg?: string };
      if ((j.level === "error" || j.level === "fatal") && j.msg) msgs.push(j.msg);
    } catch {
      msgs.push(line.trim());
    }
  }
  return msgs.length ? [...new Set(msgs)].join("; ") : undefined;
}

let probed: string | undefined | null = null;

/** Can containers run here? undefined when yes, else what is missing. */
export function containerProblem(): string | undefined {
  if (probed !== null) return probed;
  if (process.platform !== "linux") return (probed = `containers need Linux (this is ${process.platform})`);
  try {
    findRuntime();
  } catch (err) {
    return (probed = (err as Error).message.replace(/ and run again$/, ""));
  }
  try {
    if (readFileSync("/proc/sys/user/max_user_namespaces", "utf8").trim() === "0") {
      return (probed = "the kernel allows no user namespaces (user.max_user_namespaces is 0); enable them with `sysctl -w user.max_user_namespaces=15000`");
    }
  } catch {
    return (probed = "the kernel has no user namespaces (no /proc/sys/user/max_user_namespaces); use a kernel built with CONFIG_USER_NS");
  }
  const r = spawnSync("unshare", ["--user", "--map-root-user", "--mount", "true"], { encoding: "utf8", env: { PATH: HOST_PATH } });
  if (r.error) return (probed = `cannot run unshare (${r.error.message}); install util-linux`);
  if (r.status !== 0) {
    return (probed = `the kernel refused a user namespace (${(r.stderr || "").trim() || `exit ${r.status}`}); allow unprivileged user namespaces (\`sysctl -w kernel.unprivileged_userns_clone=1\`, or the AppArmor setting kernel.apparmor_restrict_unprivileged_userns=0)`);
  }
  return (probed = undefined);
}
