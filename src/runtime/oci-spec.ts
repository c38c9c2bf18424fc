// The OCI runtime spec (config.json) a container runs with: the image's
// command, environment, user and working directory, in the isolation
// container engines give by default: own pid/ipc/uts/mount/cgroup (and, as
// root, user) namespaces, podman's default capabilities, no_new_privs, the
// default seccomp profile, masked and read-only /proc and /sys paths, the
// standard device nodes only, and network none unless asked for the host's.

import path from "node:path";
import type { IdMapping } from "./idmap.ts";
import type { OciSeccomp } from "./seccomp.ts";

export type NetworkMode = "none" | "host";

/** containers.conf's default_capabilities (podman 4): what a container's root may do. */
export const DEFAULT_CAPABILITIES = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_NET_BIND_SERVICE",
  "CAP_SETFCAP",
  "CAP_SETGID",
  "CAP_SETPCAP",
  "CAP_SETUID",
  "CAP_SYS_CHROOT",
];

/** The OCI spec's and podman's defaults: hidden (kernel memory, keys, timers, firmware…). */
export const MASKED_PATHS = [
  "/proc/acpi",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/proc/scsi",
  "/sys/firmware",
  "/sys/fs/selinux",
  "/sys/dev/block",
  "/sys/devices/virtual/powercap",
];
/** …and read-only (kernel knobs such as /proc/sys/kernel/core_pattern). */
export const READONLY_PATHS = ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

export interface BindMount {
  host: string;
  container: string;
  readonly?: boolean;
  /** A -v the user gave: as root it is shown through the container's id mapping (idmapped-mount.ts). */
  volume?: boolean;
}

export interface ContainerConfig {
  /** The root filesystem as the runtime sees it (the overlay's mount point). */
  rootfs: string;
  argv: string[];
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  additionalGids?: number[];
  terminal: boolean;
  hostname: string;
  network: NetworkMode;
  binds: BindMount[];
  mapping: IdMapping;
  seccomp: OciSeccomp;
}

const mapped = (m: IdMapping, gid: number) => m.gids.some((r) => gid >= r.containerID && gid < r.containerID + r.size);

/** Processes (threads included) one container's uid may have; podman's default pids limit is 2048. */
export const MAX_PROCESSES = 4096;

export function runtimeSpec(c: ContainerConfig): Record<string, unknown> {
  const caps = c.uid === 0 ? DEFAULT_CAPABILITIES : [];
  const namespaces = ["pid", "ipc", "uts", "mount", "cgroup"];
  // As root the runtime makes the user namespace; rootless, layerfold already runs it in one.
  if (!c.mapping.rootless) namespaces.push("user");
  if (c.network === "none") namespaces.push("network");
  const mounts: Array<Record<string, unknown>> = [
    { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
    {
      destination: "/dev/pts",
      type: "devpts",
      source: "devpts",
      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", ...(mapped(c.mapping, 5) ? ["gid=5"] : [])],
    },
    { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    // sysfs can only be mounted by a user namespace that owns the network namespace;
    // with the host's network it is the host's /sys, bound read-only (as rootless podman does).
    c.network === "none"
      ? { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] }
      : { destination: "/sys", type: "bind", source: "/sys", options: ["rbind", "nosuid", "noexec", "nodev", "ro"] },
    ...c.binds.map((b) => ({
      destination: b.container,
      type: "bind",
      source: path.resolve(b.host),
      options: ["rbind", b.readonly ? "ro" : "rw", "nosuid", "nodev"],
    })),
  ];
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: c.terminal,
      user: { uid: c.uid, gid: c.gid, ...(c.additionalGids?.length ? { additionalGids: c.additionalGids } : {}) },
      args: c.argv,
      env: c.env,
      cwd: c.cwd,
      capabilities: { bounding: DEFAULT_CAPABILITIES, effective: caps, permitted: caps, inheritable: [], ambient: [] },
      noNewPrivileges: true,
      // A fork loop in image code (a package's import under `check`) must not take the host's
      // PIDs: the count is per host uid, which is the container's own (or, rootless, the user's).
      rlimits: [{ type: "RLIMIT_NPROC", hard: MAX_PROCESSES, soft: MAX_PROCESSES }],
    },
    root: { path: c.rootfs, readonly: false },
    hostname: c.hostname,
    mounts,
    linux: {
      ...(c.mapping.rootless ? {} : { uidMappings: c.mapping.uids, gidMappings: c.mapping.gids }),
      namespaces: namespaces.map((type) => ({ type })),
      // Device cgroup: deny all; the runtime adds the standard nodes (null, zero, full, random, urandom, tty, ptmx).
      resources: { devices: [{ allow: false, access: "rwm" }] },
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
      seccomp: c.seccomp,
    },
  };
}
