// Run a command in a materialised root filesystem without a daemon:
//   unshare --mount --pid --uts --ipc --fork   (private namespaces; PID 1 inside)
//   overlay: lower = the cached rootfs, upper = a per-run directory (writes land there)
//   /proc, a minimal /dev (host nodes bound), tmpfs /tmp and /dev/shm, read-only /sys
//   resolv.conf/hosts from the host when the image lacks them, -v bind mounts
//   unshare --root --wd [--setuid --setgid] -- CMD   (chroot, cwd, user, exec)
// The setup is a short shell script run by host tools; it writes its errors to
// fd 3, which is closed before the command starts, so a setup failure is told
// apart from the command's own exit status.

import { spawn, spawnSync, type ChildProcess, type StdioOptions } from "node:child_process";
import { lstat, mkdir, mkdtemp, readFile, readlink, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { RuntimeError } from "../errors.ts";

export interface Mount {
  host: string;
  /** Image path. */
  container: string;
  readonly?: boolean;
}

export interface SandboxSpec {
  /** The materialised rootfs (overlay lower dir; never written). */
  rootfs: string;
  /** Where per-run directories go (same filesystem as the store is best). */
  runDir: string;
  argv: string[];
  env: string[];
  workdir: string;
  uid: number;
  gid: number;
  mounts?: Mount[];
  hostname?: string;
}

export interface SandboxRun {
  child: ChildProcess;
  /** With stdio "pipe": the command's stdin, stdout and stderr. */
  stdin?: NodeJS.WritableStream;
  stdout?: NodeJS.ReadableStream;
  stderr?: NodeJS.ReadableStream;
  /** Resolves with the command's exit code (128+signal when killed); rejects with a RuntimeError on setup failure. */
  done: Promise<number>;
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

const DEV_NODES = ["null", "zero", "full", "random", "urandom", "tty"];

/**
 * Resolve an image path inside a root directory on the host, following
 * symlinks the way the container would (absolute ones from the root, ".."
 * clamped at the root). Returns the resolved path relative to the root.
 */
export async function resolveInRoot(root: string, raw: string): Promise<string> {
  const todo = raw.split("/").filter((s) => s && s !== ".");
  const done: string[] = [];
  let links = 0;
  while (todo.length) {
    const part = todo.shift()!;
    if (part === "..") { done.pop(); continue; }
    done.push(part);
    let st;
    try {
      st = await lstat(path.join(root, ...done));
    } catch {
      continue; // does not exist (yet): the rest is taken as written
    }
    if (!st.isSymbolicLink()) continue;
    if (++links > 40) throw new RuntimeError(`${raw}: too many levels of symbolic links in the image`);
    const target = await readlink(path.join(root, ...done));
    done.pop();
    if (target.startsWith("/")) done.length = 0;
    todo.unshift(...target.split("/").filter((s) => s && s !== "."));
  }
  return done.join("/");
}

let probed: string | undefined | null = null;

/** Can this process create the namespaces? undefined when yes, else the reason. */
export function namespaceProblem(): string | undefined {
  if (probed !== null) return probed;
  if (process.platform !== "linux") return (probed = `namespaces need Linux (this is ${process.platform})`);
  if (process.getuid?.() !== 0) return (probed = "layerfold run needs root (it mounts an overlay and /proc in private namespaces)");
  const r = spawnSync("unshare", ["--mount", "--pid", "--uts", "--ipc", "--fork", "--propagation", "private", "true"], { encoding: "utf8" });
  if (r.error) return (probed = `cannot run unshare (${r.error.message}); install util-linux`);
  if (r.status !== 0) return (probed = `unshare failed: ${(r.stderr || "").trim() || `exit ${r.status}`}`);
  return (probed = undefined);
}

export function noNamespacesError(reason: string): RuntimeError {
  return new RuntimeError(
    `cannot run the image here: ${reason}.\n` +
      `Run it with an engine instead: \`layerfold build -o docker-archive:img.tar\` then \`podman load -i img.tar && podman run --rm -it IMAGE\` ` +
      `(or \`docker load -i img.tar && docker run --rm -it IMAGE\`); in a container, namespaces need --privileged or CAP_SYS_ADMIN.`,
  );
}

export async function startSandbox(spec: SandboxSpec, stdio: "inherit" | "pipe"): Promise<SandboxRun> {
  const problem = namespaceProblem();
  if (problem) throw noNamespacesError(problem);
  for (const p of [spec.rootfs, spec.runDir]) {
    if (/[,:\n]/.test(p)) throw new RuntimeError(`${p}: overlay mounts cannot take a path with ',' or ':'; use a store path without them (--store)`);
  }
  await mkdir(spec.runDir, { recursive: true });
  const run = await mkdtemp(path.join(spec.runDir, "run-"));
  const M = path.join(run, "merged");
  const lines: string[] = [
    "set -e",
    "exec 2>&3",
    `mkdir -p ${q(`${run}/upper`)} ${q(`${run}/work`)} ${q(M)}`,
    `mount -t overlay overlay -o ${q(`lowerdir=${spec.rootfs},upperdir=${run}/upper,workdir=${run}/work`)} ${q(M)}`,
  ];
  // Mount points are resolved inside the image first, so a symlink in the image
  // (say /tmp -> /var/tmp, or /etc/resolv.conf -> /run/...) is followed inside
  // the root, never out of it.
  const target = async (p: string, kind: "dir" | "file") => {
    const rel = await resolveInRoot(spec.rootfs, p);
    const abs = path.join(M, rel);
    if (rel === "") throw new RuntimeError(`cannot mount over the image's root directory (${p})`);
    if (kind === "dir") lines.push(`mkdir -p ${q(abs)}`);
    else lines.push(`mkdir -p ${q(path.dirname(abs))}`, `[ -e ${q(abs)} ] || : > ${q(abs)}`);
    return q(abs);
  };
  lines.push(`mount -t proc -o nosuid,nodev,noexec proc ${await target("/proc", "dir")}`);
  const dev = await target("/dev", "dir");
  lines.push(`mount -t tmpfs -o nosuid,mode=0755,size=65536k tmpfs ${dev}`);
  for (const n of DEV_NODES) lines.push(`: > ${dev}/${n}`, `mount --bind /dev/${n} ${dev}/${n}`);
  lines.push(
    `mkdir -p ${dev}/pts ${dev}/shm`,
    `mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts ${dev}/pts 2>/dev/null && ln -s pts/ptmx ${dev}/ptmx || true`,
    `mount -t tmpfs -o nosuid,nodev,mode=1777 shm ${dev}/shm`,
    `ln -s /proc/self/fd ${dev}/fd`,
    `ln -s /proc/self/fd/0 ${dev}/stdin`,
    `ln -s /proc/self/fd/1 ${dev}/stdout`,
    `ln -s /proc/self/fd/2 ${dev}/stderr`,
  );
  lines.push(`mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs ${await target("/tmp", "dir")}`);
  lines.push(`mount -t sysfs -o ro,nosuid,nodev,noexec sysfs ${await target("/sys", "dir")} 2>/dev/null || true`);
  for (const f of ["/etc/resolv.conf", "/etc/hosts"]) {
    const rel = await resolveInRoot(spec.rootfs, f);
    const has = await lstat(path.join(spec.rootfs, rel)).then((s) => s.size > 0, () => false);
    if (has) continue;
    const t = await target(f, "file");
    lines.push(`if [ -f ${f} ]; then mount --bind ${f} ${t} && mount -o remount,bind,ro ${t}; fi`);
  }
  for (const m of spec.mounts ?? []) {
    let st;
    try {
      st = await lstat(m.host);
    } catch {
      throw new RuntimeError(`-v ${m.host}:${m.container}: ${m.host} does not exist on the host`);
    }
    const t = await target(m.container, st.isDirectory() ? "dir" : "file");
    lines.push(`mount --bind ${q(path.resolve(m.host))} ${t}`);
    if (m.readonly) lines.push(`mount -o remount,bind,ro ${t}`);
  }
  const wd = await resolveInRoot(spec.rootfs, spec.workdir || "/");
  lines.push(`mkdir -p ${q(path.join(M, wd))}`);
  if (spec.hostname) lines.push(`hostname ${q(spec.hostname)} 2>/dev/null || true`);
  // Hand over: stderr back to the caller's, close the setup channel, exec.
  const inner = ["unshare", `--root=${M}`, `--wd=/${wd}`];
  if (spec.uid !== 0 || spec.gid !== 0) inner.push(`--setgid=${spec.gid}`, `--setuid=${spec.uid}`);
  lines.push("exec 2>&4 3>&- 4>&-", `exec env -i ${spec.env.map(q).join(" ")} ${inner.map(q).join(" ")} -- ${spec.argv.map(q).join(" ")}`);
  const script = lines.join("\n");

  const io: StdioOptions = stdio === "inherit" ? ["inherit", "inherit", "pipe", "pipe", 2] : ["pipe", "pipe", "pipe", "pipe", "pipe"];
  const child = spawn("unshare", ["--mount", "--pid", "--uts", "--ipc", "--fork", "--propagation", "private", "--kill-child", "--", "/bin/sh", "-c", script], {
    stdio: io,
    env: { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" },
  });
  let setupErr = "";
  let outerErr = "";
  (child.stdio[3] as NodeJS.ReadableStream).on("data", (d: Buffer) => { if (setupErr.length < 8000) setupErr += d.toString(); });
  child.stderr!.on("data", (d: Buffer) => { if (outerErr.length < 8000) outerErr += d.toString(); });
  const done = new Promise<number>((resolve, reject) => {
    child.on("error", (err) => reject(new RuntimeError(`cannot start unshare: ${err.message}`, { cause: err })));
    child.on("close", (code, signal) => {
      const status = code ?? 128 + (signal ? signalNumber(signal) : 0);
      const cleanup = rm(run, { recursive: true, force: true }).catch(() => {});
      void cleanup.then(() => {
        if (setupErr.trim() || (status !== 0 && outerErr.trim())) {
          const text = (setupErr.trim() || outerErr.trim()).split("\n").slice(-6).join("\n");
          if (/unshare failed|Operation not permitted/.test(text) && !setupErr.trim()) return reject(noNamespacesError(text));
          return reject(new RuntimeError(`setting up the container failed (exit ${status}):\n${text}`));
        }
        resolve(status);
      });
    });
  });
  if (stdio === "pipe") {
    return { child, done, stdin: child.stdin!, stdout: child.stdout!, stderr: child.stdio[4] as NodeJS.ReadableStream };
  }
  return { child, done };
}

const signalNumber = (sig: NodeJS.Signals): number => (os.constants.signals as Record<string, number>)[sig] ?? 0;

/** Read a file of the rootfs by image path, symlinks resolved inside the root. */
export async function readImageFile(rootfs: string, p: string): Promise<string | undefined> {
  try {
    return await readFile(path.join(rootfs, await resolveInRoot(rootfs, p)), "utf8");
  } catch {
    return undefined;
  }
}
