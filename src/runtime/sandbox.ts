// Run a command in a materialised root filesystem without a daemon, in a
// container made by an OCI runtime (oci-runtime.ts) from a runtime spec
// (oci-spec.ts): pivot_root into an overlay whose lower layer is the cached
// rootfs, own user/mount/pid/ipc/uts/cgroup namespaces, default capabilities,
// no_new_privs, the default seccomp profile, network none unless asked.
// This module decides what the container gets from the host: its stdio (never
// the host's terminal), the host's resolv.conf/hosts when the image has none,
// and -v bind mounts.

import { isatty } from "node:tty";
import { lstat, readFile, readlink } from "node:fs/promises";
import path from "node:path";
import { RuntimeError } from "../errors.ts";
import { checkMapped, type IdMapping } from "./idmap.ts";
import { containerProblem, runContainer, type ContainerRun, type StdioMode } from "./oci-runtime.ts";
import type { BindMount, NetworkMode } from "./oci-spec.ts";
import { DEFAULT_CAPABILITIES } from "./oci-spec.ts";
import { loadDefaultProfile, seccompFor } from "./seccomp.ts";

export type Mount = BindMount;

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
  additionalGids?: number[];
  mounts?: Mount[];
  hostname?: string;
  /** "none" (default): a network namespace with only loopback; "host": the host's network. */
  network?: NetworkMode;
  /** Give the command its own pseudo-terminal (docker -t); the runtime relays the caller's terminal to it. */
  tty?: boolean;
  mapping: IdMapping;
  /** The host owner of the container's root directory (the container's root). */
  rootOwner: { uid: number; gid: number };
}

export type SandboxRun = ContainerRun;

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

/** Can containers run here? undefined when yes, else what is missing. */
export const namespaceProblem = containerProblem;

export function noNamespacesError(reason: string): RuntimeError {
  return new RuntimeError(
    `cannot run the image here: ${reason}.\n` +
      `Or run it with an engine: \`layerfold build -o docker-archive:img.tar\` then \`podman load -i img.tar && podman run --rm -it IMAGE\`.`,
  );
}

export async function startSandbox(spec: SandboxSpec, stdio: "inherit" | "pipe"): Promise<SandboxRun> {
  const problem = containerProblem();
  if (problem) throw noNamespacesError(problem);
  checkMapped(spec.mapping, spec.uid, spec.gid, `user ${spec.uid}:${spec.gid}`);
  const binds: BindMount[] = [];
  // The host's name resolution when the image has none (as docker does).
  for (const f of ["/etc/resolv.conf", "/etc/hosts"]) {
    const rel = await resolveInRoot(spec.rootfs, f);
    const has = await lstat(path.join(spec.rootfs, rel)).then((s) => s.size > 0, () => false);
    if (has) continue;
    if (await lstat(f).then((s) => s.isFile(), () => false)) binds.push({ host: f, container: f, readonly: true });
  }
  for (const m of spec.mounts ?? []) {
    try {
      await lstat(m.host);
    } catch {
      throw new RuntimeError(`-v ${m.host}:${m.container}: ${m.host} does not exist on the host`);
    }
    if ((await resolveInRoot(spec.rootfs, m.container)) === "") throw new RuntimeError(`-v ${m.host}:${m.container}: cannot mount over the image's root directory`);
    binds.push({ host: path.resolve(m.host), container: m.container, readonly: m.readonly, volume: true });
  }
  // Never the host's terminal inside: with a tty the runtime gives the command a
  // pty of its own and relays to ours; without, a terminal on our side is
  // replaced by a pipe (output) or nothing (input, as docker without -i).
  let modes: [StdioMode, StdioMode, StdioMode];
  let relay = false;
  if (stdio === "pipe") modes = ["pipe", "pipe", "pipe"];
  else if (spec.tty) {
    // runc relays the pty through the caller's controlling terminal; docker says the same.
    if (!isatty(0)) throw new RuntimeError("-t needs a terminal, and the input is not one; drop -t (the output is then piped, never a terminal of yours)");
    modes = ["inherit", "inherit", "inherit"];
  }
  else {
    modes = [isatty(0) ? "ignore" : "inherit", isatty(1) ? "pipe" : "inherit", isatty(2) ? "pipe" : "inherit"];
    relay = true;
  }
  const run = await runContainer({
    lower: spec.rootfs,
    runsDir: spec.runDir,
    mapping: spec.mapping,
    rootOwner: spec.rootOwner,
    stdio: modes,
    config: {
      argv: spec.argv,
      env: spec.env,
      cwd: `/${await resolveInRoot(spec.rootfs, spec.workdir || "/")}`,
      uid: spec.uid,
      gid: spec.gid,
      additionalGids: spec.additionalGids,
      terminal: !!spec.tty && stdio === "inherit",
      hostname: spec.hostname ?? "layerfold",
      network: spec.network ?? "none",
      binds,
      mapping: spec.mapping,
      seccomp: seccompFor(loadDefaultProfile(), { caps: DEFAULT_CAPABILITIES }),
    },
  });
  if (relay) {
    run.stdout?.pipe(process.stdout, { end: false });
    run.stderr?.pipe(process.stderr, { end: false });
  }
  return run;
}

/** Read a file of the rootfs by image path, symlinks resolved inside the root. */
export async function readImageFile(rootfs: string, p: string): Promise<string | undefined> {
  try {
    return await readFile(path.join(rootfs, await resolveInRoot(rootfs, p)), "utf8");
  } catch {
    return undefined;
  }
}
