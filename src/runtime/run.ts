// `layerfold run` as a library call: the image's config turned into a
// sandbox spec with docker's semantics (Entrypoint + Cmd, Env, WorkingDir,
// User), then started on the materialised rootfs.

import { RuntimeError } from "../errors.ts";
import { checkCommand } from "./command.ts";
import { DEFAULT_PATH } from "../oci/image.ts";
import type { Store } from "../store/store.ts";
import type { RuntimeImage } from "./image.ts";
import { hostMapping, mapsTo, type IdMapping } from "./idmap.ts";
import type { NetworkMode } from "./oci-spec.ts";
import { materialise, type Rootfs, type RootfsOwnership } from "./rootfs.ts";
import { namespaceProblem, noNamespacesError, readImageFile, startSandbox, type Mount, type SandboxRun } from "./sandbox.ts";
import { chownInNamespace } from "./userns.ts";

export interface RunOptions {
  /** Replaces the image's Cmd (docker: arguments after the image). */
  cmd?: string[];
  /** Replaces the image's Entrypoint (and drops its Cmd unless cmd is given), like docker --entrypoint. */
  entrypoint?: string;
  /** NAME=VALUE, or NAME to pass the host's value through. */
  env?: string[];
  mounts?: Mount[];
  workdir?: string;
  user?: string;
  stdio?: "inherit" | "pipe";
  /** Default "none": only loopback, the host's services unreachable. */
  network?: NetworkMode;
  /** A pseudo-terminal of the container's own (docker -t). */
  tty?: boolean;
}


/** Docker's argv rule: Entrypoint ++ Cmd, where a given CMD replaces Cmd and --entrypoint resets both. */
export function commandLine(config: { Entrypoint?: string[]; Cmd?: string[] }, opts: { cmd?: string[]; entrypoint?: string }): string[] {
  const entry = opts.entrypoint !== undefined ? (opts.entrypoint === "" ? [] : [opts.entrypoint]) : config.Entrypoint ?? [];
  const cmd = opts.cmd && opts.cmd.length ? opts.cmd : opts.entrypoint !== undefined ? [] : config.Cmd ?? [];
  return [...entry, ...cmd];
}

/** Image Env, then -e flags on top (NAME alone takes the host's value); PATH defaults like docker. */
export function environment(imageEnv: string[] | undefined, flags: string[] | undefined, host: NodeJS.ProcessEnv = process.env): string[] {
  const env = new Map<string, string>();
  for (const kv of imageEnv ?? []) {
    const i = kv.indexOf("=");
    if (i > 0) env.set(kv.slice(0, i), kv.slice(i + 1));
  }
  for (const kv of flags ?? []) {
    const i = kv.indexOf("=");
    if (i === 0) throw new RuntimeError(`-e ${JSON.stringify(kv)}: needs NAME=VALUE or NAME`);
    if (i < 0) {
      if (host[kv] !== undefined) env.set(kv, host[kv]!);
    } else env.set(kv.slice(0, i), kv.slice(i + 1));
  }
  if (!env.has("PATH")) env.set("PATH", DEFAULT_PATH);
  if (!env.has("HOSTNAME")) env.set("HOSTNAME", "layerfold");
  return [...env].map(([k, v]) => `${k}=${v}`);
}

/** "user", "uid", "user:group", "uid:gid" resolved with the image's /etc/passwd and /etc/group. */
export async function resolveUser(rootfs: string, spec: string | undefined): Promise<{ uid: number; gid: number; home?: string; groups?: number[] }> {
  if (!spec) return { uid: 0, gid: 0, home: "/root", ...(await supplementary(rootfs, "root", 0)) };
  const [u, g] = spec.split(":", 2) as [string, string | undefined];
  const passwd = (await readImageFile(rootfs, "/etc/passwd")) ?? "";
  const rows = passwd.split("\n").map((l) => l.split(":")).filter((r) => r.length >= 7);
  let uid: number;
  let gid: number | undefined;
  let home: string | undefined;
  const row = /^\d+$/.test(u) ? rows.find((r) => r[2] === u) : rows.find((r) => r[0] === u);
  if (row) {
    uid = Number(row[2]);
    gid = Number(row[3]);
    home = row[5];
  } else if (/^\d+$/.test(u)) {
    uid = Number(u);
  } else {
    throw new RuntimeError(`user ${JSON.stringify(u)} is not in the image's /etc/passwd; use a numeric uid or add the user to the image`);
  }
  if (g !== undefined) {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      const groups = ((await readImageFile(rootfs, "/etc/group")) ?? "").split("\n").map((l) => l.split(":"));
      const grow = groups.find((r) => r[0] === g);
      if (!grow) throw new RuntimeError(`group ${JSON.stringify(g)} is not in the image's /etc/group`);
      gid = Number(grow[2]);
    }
  }
  return { uid, gid: gid ?? uid, home, ...(row ? await supplementary(rootfs, row[0]!, gid ?? uid) : {}) };
}

/** The groups of /etc/group that list the user (docker gives them to the process too). */
async function supplementary(rootfs: string, name: string, gid: number): Promise<{ groups?: number[] }> {
  const groups = ((await readImageFile(rootfs, "/etc/group")) ?? "").split("\n").map((l) => l.split(":"));
  const ids = groups.filter((r) => r.length >= 4 && r[3]!.split(",").includes(name)).map((r) => Number(r[2])).filter((g) => Number.isInteger(g) && g !== gid);
  return ids.length ? { groups: [...new Set(ids)] } : {};
}

/** How the materialised files are owned for this mapping (see rootfs.ts). */
export function ownershipFor(m: IdMapping): RootfsOwnership {
  if (!m.rootless) {
    const nobody = 65534;
    return {
      tag: `u${m.uids[0]!.hostID}g${m.gids[0]!.hostID}`,
      host: (uid, gid) => ({ uid: mapsTo(m.uids, uid) ?? mapsTo(m.uids, nobody)!, gid: mapsTo(m.gids, gid) ?? mapsTo(m.gids, nobody)! }),
    };
  }
  const ranged = m.uids.length > 1;
  return {
    tag: ranged ? `r${m.uids[1]!.hostID}g${m.gids[1]!.hostID}` : "r1",
    // With only the user mapped, every file is the container root's.
    inNamespace: async (entries) => { if (ranged) await chownInNamespace(entries.filter((e) => mapsTo(m.uids, e.uid) !== undefined && mapsTo(m.gids, e.gid) !== undefined)); },
  };
}

export interface Started extends SandboxRun {
  rootfs: Rootfs;
  argv: string[];
}

export async function runImage(store: Store, image: RuntimeImage, opts: RunOptions = {}): Promise<Started> {
  // Before materialising anything: without a runtime or user namespaces nothing below can work.
  const problem = namespaceProblem();
  if (problem) throw noNamespacesError(problem);
  const mapping = hostMapping();
  const rootfs = await materialise(store, image, undefined, ownershipFor(mapping));
  const cfg = image.config.config ?? {};
  const argv = commandLine(cfg, opts);
  if (argv.length === 0) {
    throw new RuntimeError(`${image.ref} has no Entrypoint or Cmd; give a command: layerfold run -- CMD ARGS…`);
  }
  const user = await resolveUser(rootfs.dir, opts.user ?? cfg.User);
  const env = environment(cfg.Env, opts.env);
  if (!env.some((kv) => kv.startsWith("HOME="))) env.push(`HOME=${user.home || "/"}`);
  const cwd = opts.workdir ?? (cfg.WorkingDir || "/");
  if (!cwd.startsWith("/")) throw new RuntimeError(`working directory ${JSON.stringify(cwd)}: give an absolute path in the image`);
  // A program the image lacks is said plainly (127, 126), not by the runtime's exec.
  await checkCommand(rootfs.dir, image.ref, argv[0]!, { env, workdir: cwd, mounts: opts.mounts });
  const run = await startSandbox(
    {
      rootfs: rootfs.dir,
      runDir: store.tmpDir,
      argv,
      env,
      workdir: cwd,
      uid: user.uid,
      gid: user.gid,
      additionalGids: user.groups,
      mounts: opts.mounts,
      hostname: "layerfold",
      network: opts.network ?? "none",
      tty: opts.tty,
      mapping,
      rootOwner: mapping.rootless ? { uid: process.getuid!(), gid: process.getgid!() } : { uid: mapping.uids[0]!.hostID, gid: mapping.gids[0]!.hostID },
    },
    opts.stdio ?? "inherit",
  );
  return { ...run, rootfs, argv };
}

/** Parse -v HOST:CONTAINER[:ro|rw]. */
export function parseVolume(v: string): Mount {
  const parts = v.split(":");
  let readonly = false;
  if (parts.length === 3 && (parts[2] === "ro" || parts[2] === "rw")) readonly = parts.pop() === "ro";
  if (parts.length !== 2 || !parts[0] || !parts[1]?.startsWith("/")) {
    throw new RuntimeError(`-v ${JSON.stringify(v)}: use HOST:CONTAINER[:ro], with an absolute container path`);
  }
  return { host: parts[0], container: parts[1], readonly };
}
