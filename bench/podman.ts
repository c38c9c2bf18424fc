// Peer (a), the Dockerfile way: `podman build` of a Containerfile that pip-installs
// the same packages (the versions layerfold locked) from the same indexes, in the
// same layer order, on a base of the same Debian layers; then `podman push`.
// It installs exactly the distributions layerfold put in each layer, --no-deps.
// The indexes come from this machine's `pip config list` at bench time and are
// bind-mounted read-only; PyPI itself is left out because it is unreachable here
// and pip would stall on it for minutes. pip runs from the host's pip package,
// bind-mounted from the build context (Debian's python3.11 ships without pip).
// Storage uses the overlay driver, podman's default on this machine (the kernel's
// overlayfs on ext4); vfs, which copies every layer in full, would slow it unfairly.

import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { timedCmd, median } from "./stack.ts";

const run = promisify(execFile);

interface PipIndexes { indexUrls: string[]; findLinks: string[]; constraint?: string; mounts: string[] }

/** pip's configured indexes (file:// ones and find-links dirs become read-only bind mounts). */
export async function pipIndexes(): Promise<PipIndexes> {
  const { stdout } = await run("python3", ["-m", "pip", "config", "list"]);
  const get = (k: string) => [...stdout.matchAll(new RegExp(`^(?:global|:env:|user|site)\\.${k}='([^']*)'`, "gm"))].flatMap((m) => m[1]!.split(/\s+/)).filter(Boolean);
  const indexUrls = [...get("index-url"), ...get("extra-index-url")].filter((u) => !/pypi\.org/.test(u));
  const findLinks = [...new Set(get("find-links"))];
  const constraint = get("constraint")[0];
  const mounts = new Set<string>();
  for (const u of indexUrls) if (u.startsWith("file://")) mounts.add(path.dirname(new URL(u).pathname));
  for (const f of findLinks) mounts.add(f.startsWith("file://") ? new URL(f).pathname : f);
  if (constraint) mounts.add(path.dirname(constraint));
  return { indexUrls, findLinks, constraint, mounts: [...mounts] };
}

export interface PodmanPeerResult {
  fullBuild: { medianSeconds: number; runs: number[]; peakRssMiB: number };
  incrementalBuild: { medianSeconds: number; runs: number[] };
  push: { fullSeconds: number; incrementalSeconds: number };
  imageLayers: number;
}

/**
 * `baseArchive`: an oci-archive with the base + python layers (built by layerfold);
 * `layers`: pip requirement lines per Python layer, in order; `changed`: the same with the incremental change.
 */
export async function benchPodman(opts: { baseArchive: string; layers: string[][]; changed: string[][]; registry: string; runs: number; work: string; log: (m: string) => void }): Promise<PodmanPeerResult> {
  // podman refuses a runroot path longer than 50 characters: a short directory of its own.
  const root = await mkdtemp(path.join(os.tmpdir(), "lfpm-"));
  const conf = path.join(root, "containers.conf");
  await writeFile(conf, "[containers]\ndefault_ulimits = []\n");
  const flags = ["--root", path.join(root, "storage"), "--runroot", path.join(root, "run"), "--storage-driver", "overlay", "--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--tmpdir", path.join(root, "tmp")];
  await mkdir(path.join(root, "tmp"), { recursive: true });
  const env = { CONTAINERS_CONF: conf };
  const pm = (args: string[]) => timedCmd("podman", [...flags, ...args], { env });
  try {
    const idx = await pipIndexes();
    const ctx = path.join(opts.work, "ctx");
    await mkdir(ctx, { recursive: true });
    const pipDir = (await run("python3", ["-c", "import pip, os; print(os.path.dirname(pip.__file__))"])).stdout.trim();
    await cp(pipDir, path.join(ctx, "pip"), { recursive: true });
    const pipArgs = [
      "--no-cache-dir", "--disable-pip-version-check", "--no-compile", "--no-deps", "--prefix", "/opt/venv",
      "--index-url", idx.indexUrls[0]!, ...idx.indexUrls.slice(1).flatMap((u) => ["--extra-index-url", u]),
      ...idx.findLinks.flatMap((f) => ["--find-links", f]),
      ...(idx.constraint ? ["-c", idx.constraint] : []),
    ];
    const containerfile = (layers: string[][]) =>
      [`FROM oci-archive:${opts.baseArchive}`, "ENV PIP_CONFIG_FILE=/dev/null PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", ...layers.map((reqs) => `RUN --mount=type=bind,source=pip,target=/opt/pip-src/pip PYTHONPATH=/opt/pip-src python3.11 -m pip install ${pipArgs.join(" ")} ${reqs.map((r) => JSON.stringify(r)).join(" ")}`), ""].join("\n");
    await writeFile(path.join(ctx, "Containerfile.v1"), containerfile(opts.layers));
    await writeFile(path.join(ctx, "Containerfile.v2"), containerfile(opts.changed));
    const volumes = idx.mounts.flatMap((m) => ["-v", `${m}:${m}:ro`]);
    // The base is in podman's storage before timing, as a Dockerfile user's cached base image would be.
    await pm(["pull", "-q", `oci-archive:${opts.baseArchive}`]);
    const full: number[] = [];
    const inc: number[] = [];
    let rss = 0;
    for (let i = 0; i < opts.runs; i++) {
      await pm(["rmi", "-f", "bench/peer:v1", "bench/peer:v2"]).catch(() => undefined);
      await pm(["image", "prune", "-f"]).catch(() => undefined);
      const b = await pm(["build", "-q", "--layers", ...volumes, "-f", path.join(ctx, "Containerfile.v1"), "-t", "bench/peer:v1", ctx]);
      full.push(b.seconds);
      rss = Math.max(rss, b.peakRssMiB);
      opts.log(`[podman] full build ${i + 1}/${opts.runs}: ${b.seconds.toFixed(1)} s`);
      const b2 = await pm(["build", "-q", "--layers", ...volumes, "-f", path.join(ctx, "Containerfile.v2"), "-t", "bench/peer:v2", ctx]);
      inc.push(b2.seconds);
      opts.log(`[podman] incremental build ${i + 1}/${opts.runs}: ${b2.seconds.toFixed(1)} s`);
    }
    const p1 = await pm(["push", "-q", "--tls-verify=false", "bench/peer:v1", `docker://${opts.registry}/bench/peer:v1`]);
    const p2 = await pm(["push", "-q", "--tls-verify=false", "bench/peer:v2", `docker://${opts.registry}/bench/peer:v2`]);
    opts.log(`[podman] push full ${p1.seconds.toFixed(1)} s, incremental ${p2.seconds.toFixed(1)} s`);
    const layers = JSON.parse((await pm(["image", "inspect", "bench/peer:v1"])).stdout)[0].RootFS.Layers.length;
    return { fullBuild: { medianSeconds: median(full), runs: full, peakRssMiB: rss }, incrementalBuild: { medianSeconds: median(inc), runs: inc }, push: { fullSeconds: p1.seconds, incrementalSeconds: p2.seconds }, imageLayers: layers };
  } finally {
    await run("podman", [...flags, "system", "reset", "--force"], { env: { ...process.env, ...env } }).catch(() => undefined);
    await rm(root, { recursive: true, force: true });
  }
}

/**
 * pip requirement lines per Python layer: exactly the distributions layerfold put in each of
 * `layerNames` (its build's layer list), pinned to the locked versions. pip installs them with
 * --no-deps, so both sides install the same set (the mirror lacks some optional dependencies
 * that the config drops, which pip's own resolver would insist on).
 */
export async function pinnedLayers(lockFile: string, layers: Array<{ name: string; packages?: string[] }>, layerNames: string[], extra: Record<string, string[]> = {}): Promise<string[][]> {
  const lock = JSON.parse(await readFile(lockFile, "utf8")) as { packages: { id: string; name: string; version: string }[] };
  const pinned = (id: string) => {
    const p = lock.packages.find((x) => x.id === id);
    if (!p) throw new Error(`bench podman: ${id} is not in ${lockFile}`);
    return `${p.name}==${p.version}`;
  };
  return layerNames.map((name) => {
    const layer = layers.find((l) => l.name === name);
    if (!layer?.packages) throw new Error(`bench podman: the build has no layer "${name}" with packages`);
    return [...layer.packages.filter((id) => id.startsWith("py:") && id !== "py:_venv").map(pinned), ...(extra[name] ?? []).map(pinned)];
  });
}
