// podman as a real engine for tests, with the flags these machines need
// (DESIGN.md): vfs storage, runc, cgroupfs, no default ulimits, and a private
// storage root per test so runs never collide.

import { execFile } from "node:child_process";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { hasCommand } from "./registry.ts";

const run = promisify(execFile);

export interface Podman {
  /** Run podman with the isolation flags; resolves with stdout. */
  exec(args: string[], opts?: { env?: NodeJS.ProcessEnv }): Promise<{ stdout: string; stderr: string }>;
  root: string;
  env: NodeJS.ProcessEnv;
  flags: string[];
  cleanup(): Promise<void>;
}

export const havePodman = () => hasCommand("podman") && hasCommand("runc");

/**
 * `partialPulls`: overlay storage with containers/storage's partial pulls on (zstd:chunked
 * layers are then fetched file by file with HTTP ranges); the default is vfs, which
 * has no partial pulls.
 * `storageDriver: "overlay"` for big images (vfs stores every layer as a full copy of its
 * parents: the megapak would take ~51 GiB instead of ~8); the root then goes under /var/tmp.
 */
export async function podman(opts: { partialPulls?: boolean; storageDriver?: "vfs" | "overlay" } = {}): Promise<Podman> {
  const driver = opts.partialPulls ? "overlay" : (opts.storageDriver ?? "vfs");
  // overlay needs a real filesystem under its root (not tmpfs or another overlay), which /var/tmp is on these machines.
  const base = opts.storageDriver === "overlay" ? (process.env.LAYERFOLD_PODMAN_TMP ?? "/var/tmp") : os.tmpdir();
  // Lowercase on purpose: podman refuses oci:PATH references with capitals.
  const root = path.join(base, `layerfold-podman-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
  await mkdir(root, { recursive: true });
  const conf = path.join(root, "containers.conf");
  await writeFile(conf, "[containers]\ndefault_ulimits = []\n");
  const env: NodeJS.ProcessEnv = { ...process.env, CONTAINERS_CONF: conf };
  if (opts.partialPulls) {
    const storageConf = path.join(root, "storage.conf");
    await writeFile(storageConf, [
      "[storage]",
      'driver = "overlay"',
      `graphroot = "${path.join(root, "storage")}"`,
      `runroot = "${path.join(root, "run")}"`,
      "[storage.options]",
      'pull_options = {enable_partial_images = "true", use_hard_links = "false", ostree_repos = ""}',
      "",
    ].join("\n"));
    env.CONTAINERS_STORAGE_CONF = storageConf;
  }
  const flags = ["--root", path.join(root, "storage"), "--runroot", path.join(root, "run"), "--storage-driver", driver, "--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--tmpdir", path.join(root, "tmp")];
  return {
    root,
    env,
    flags,
    exec: (args, opts) => run("podman", [...flags, ...args], { env: { ...env, ...opts?.env }, maxBuffer: 64 << 20 }),
    // No `podman system reset`: with a shared tmpdir it would pull the state out from under other podman instances.
    // Retried: after `run --rm` returns, podman's detached container cleanup can still be writing
    // under storage/, and the first pass then meets ENOTEMPTY (seen once in a clean-clone CI run).
    async cleanup() {
      if (driver === "overlay") {
        // Containers left running hold overlay mounts under the root; rm -rf would stop at them.
        await run("podman", [...flags, "rm", "--all", "--force", "--time", "0"], { env }).catch(() => {});
        const mounts = (await readFile("/proc/mounts", "utf8")).split("\n").map((l) => l.split(" ")[1] ?? "").filter((m) => m.startsWith(`${root}/`));
        for (const m of mounts.sort().reverse()) await run("umount", ["-l", m]).catch(() => {});
      }
      await rm(root, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
    },
  };
}
