// Peer (b), the Nix way without Nix: nixpkgs' stream_layered_image.py (the
// builder behind dockerTools.streamLayeredImage) over the same installed trees,
// its docker-archive stream written to a file and pushed with `skopeo copy
// docker-archive:FILE docker://…` (why not a pipe: see below). Nix hands the
// script store paths it has already built; layerfold has its package trees in
// its store. Each tree becomes one store-path-like directory (hardlinks, plus
// the symlinks and hardlinks its tree.json records), each layer the list of its
// packages' paths, as buildLayeredImage groups them. The customisation layer is
// empty.
//
// Against it, like for like: layerfold building the same layers from the same
// trees (its layer records dropped, the trees kept) and pushing them.
//
// The script is not in this repository (its licence is not ours to vendor):
// LAYERFOLD_BENCH_NIX_STREAM names a copy of nixpkgs'
// pkgs/build-support/docker/stream_layered_image.py. It needs python3 alone.
//
// Usage: LAYERFOLD_BENCH_NIX_STREAM=/path/stream_layered_image.py node --import tsx bench/nix.ts [runs]
// (standalone: builds the torch-free stack first, untimed).

import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { link, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { Store } from "../src/store/store.ts";
import type { BuildRecord } from "../src/catalog/records.ts";
import { startRegistry } from "../test/helpers/registry.ts";
import { median, prepareExample, registryBlobBytes, repo, timedCmd, warmStore, withoutTorch } from "./stack.ts";

const run = promisify(execFile);
const cli = path.join(repo, "bin", "layerfold.mjs");

export const NIX_STREAM_ENV = "LAYERFOLD_BENCH_NIX_STREAM";

/** The script's path, or why the peer is skipped. */
export function nixStreamScript(env: NodeJS.ProcessEnv = process.env): string | { skipped: string } {
  const p = env[NIX_STREAM_ENV];
  if (!p) return { skipped: `${NIX_STREAM_ENV} is not set; point it at a copy of nixpkgs' pkgs/build-support/docker/stream_layered_image.py (its code may not be committed here)` };
  if (!existsSync(p)) return { skipped: `${NIX_STREAM_ENV}=${p}: no such file` };
  return path.resolve(p);
}

export interface NixPeerResult {
  runs: number;
  layers: number;
  storePaths: number;
  /** stream_layered_image.py | skopeo copy docker-archive:/dev/stdin docker://… into a fresh registry. */
  nix: { medianSeconds: number; runs: number[]; peakRssMiB: number; uploadedBytes: number };
  /** layerfold build from the same trees (layer records dropped), then push into a fresh registry. */
  layerfold: { medianSeconds: number; runs: number[]; buildSeconds: number[]; pushSeconds: number[]; layersBuilt: number; peakRssMiB: number; uploadedBytes: number };
  /** nix time / layerfold time. */
  ratio: number;
}

/** One store-path-like directory per package tree: its files hardlinked, its symlinks and hardlinks made. */
async function storePaths(store: Store, layers: BuildRecord["layers"], nixStore: string): Promise<string[][]> {
  await mkdir(nixStore, { recursive: true });
  const out: string[][] = [];
  for (const layer of layers) {
    const paths: string[] = [];
    for (const t of layer.trees) {
      const tree = await store.getTree(t.key);
      if (!tree) throw new Error(`bench nix: tree ${t.key} of ${t.id} (layer ${layer.name}) is not in ${store.root}; build the image there first`);
      const dir = path.join(nixStore, `${t.key.slice(0, 32)}-${t.id.replace(/[^A-Za-z0-9+._-]/g, "-")}`);
      if (!existsSync(dir)) {
        if (existsSync(tree.rootDir)) await run("cp", ["-al", tree.rootDir, dir]);
        else await mkdir(dir);
        for (const e of tree.manifest.entries) {
          const at = path.join(dir, e.path);
          if (e.type !== "symlink" && e.type !== "hardlink") continue;
          await mkdir(path.dirname(at), { recursive: true });
          if (e.type === "symlink") await symlink(e.target!, at).catch(() => undefined);
          else await link(path.join(dir, e.target!), at).catch(() => undefined);
        }
      }
      paths.push(dir);
    }
    out.push(paths);
  }
  return out;
}

export async function benchNix(opts: { script: string; store: string; example: string; layout: string; runs: number; work: string; log: (m: string) => void }): Promise<NixPeerResult> {
  const { runs, work, log } = opts;
  const store = new Store(opts.store);
  const index = JSON.parse(await readFile(path.join(opts.layout, "index.json"), "utf8")) as { manifests: Array<{ digest: string }> };
  const rec = await store.getRecord<BuildRecord>("builds", index.manifests[0]!.digest.slice(7));
  if (!rec) throw new Error(`bench nix: no build record of ${opts.layout} in ${opts.store}`);
  await mkdir(work, { recursive: true });

  // Untimed, as Nix has its store paths before streamLayeredImage runs.
  const layers = await storePaths(store, rec.layers, path.join(work, "nix", "store"));
  const custom = path.join(work, "customisation");
  await mkdir(custom, { recursive: true });
  await run("tar", ["-cf", path.join(custom, "layer.tar"), "-T", "/dev/null"]);
  await writeFile(path.join(custom, "checksum"), (await run("sha256sum", [path.join(custom, "layer.tar")])).stdout.split(" ")[0]!);
  const cfg = JSON.parse(rec.config) as { architecture: string; config: unknown };
  const conf = path.join(work, "stream.json");
  await writeFile(conf, JSON.stringify({
    architecture: cfg.architecture,
    config: cfg.config,
    created: "1970-01-01T00:00:01+00:00",
    mtime: "1970-01-01T00:00:01+00:00",
    uid: 0, gid: 0, uname: "root", gname: "root",
    store_dir: path.join(work, "nix", "store"),
    from_image: null,
    store_layers: layers,
    customisation_layer: custom,
    repo_tag: "bench/nix:v1",
  }, null, 2));
  const tmp = path.join(work, "tmp");
  await mkdir(tmp, { recursive: true });

  const nix: number[] = [];
  let nixRss = 0;
  let nixBytes = 0;
  for (let i = 0; i < runs; i++) {
    const reg = await startRegistry();
    try {
      // The stream goes to a file, then skopeo pushes it (gzip-compressing each layer as it goes). skopeo 1.9
      // cannot take it from a pipe: it sniffs docker-archive:/dev/stdin for compression, then reopens the
      // path and finds the bytes gone ("invalid tar header"), with or without `gzip |` in front; newer
      // skopeo spools a piped archive to a temp file itself, the same work as this.
      const archive = path.join(tmp, "image.tar");
      const t = await timedCmd("bash", ["-c", 'timeout 1800 python3 "$1" "$2" 2>/dev/null > "$3" && timeout 1800 skopeo copy --quiet --dest-tls-verify=false "docker-archive:$3" "docker://$4"', "bash", opts.script, conf, archive, `${reg.host}/bench/nix:v1`], { env: { TMPDIR: tmp } });
      await rm(archive, { force: true });
      nix.push(t.seconds);
      nixRss = Math.max(nixRss, t.peakRssMiB);
      nixBytes = await registryBlobBytes(reg);
      log(`[nix] stream_layered_image.py > file; skopeo copy ${i + 1}/${runs}: ${t.seconds.toFixed(1)} s, ${(nixBytes / 1e6).toFixed(1)} MB in the registry`);
    } finally {
      await reg.stop();
    }
  }

  const lf: number[] = [];
  const lfBuild: number[] = [];
  const lfPush: number[] = [];
  let lfRss = 0;
  let lfBytes = 0;
  let built = 0;
  for (let i = 0; i < runs; i++) {
    // Keep the trees and downloads; forget the layers (and their plans and zstd frames), so the build makes
    // and compresses every layer again from the trees.
    for (const sub of ["layers", "builds", "registry-blobs", "plans", "zstd-frames"]) await rm(path.join(opts.store, sub), { recursive: true, force: true });
    const reg = await startRegistry();
    try {
      const b = await timedCmd(process.execPath, [cli, "build", "-C", opts.example, "--store", opts.store, "--frozen", "-o", "none", "--json", "-q"]);
      const p = await timedCmd(process.execPath, [cli, "push", "-C", opts.example, "--store", opts.store, `${reg.host}/bench/lf:v1`, "-q"]);
      built = (JSON.parse(b.stdout) as { layers: Array<{ reused: boolean }> }).layers.filter((l) => !l.reused).length;
      lfBuild.push(b.seconds);
      lfPush.push(p.seconds);
      lf.push(b.seconds + p.seconds);
      lfRss = Math.max(lfRss, b.peakRssMiB, p.peakRssMiB);
      lfBytes = await registryBlobBytes(reg);
      log(`[nix] layerfold from the same trees ${i + 1}/${runs}: build ${b.seconds.toFixed(1)} s (${built} layers built) + push ${p.seconds.toFixed(1)} s, ${(lfBytes / 1e6).toFixed(1)} MB in the registry`);
    } finally {
      await reg.stop();
    }
  }
  return {
    runs,
    layers: layers.length,
    storePaths: layers.flat().length,
    nix: { medianSeconds: median(nix), runs: nix, peakRssMiB: nixRss, uploadedBytes: nixBytes },
    layerfold: { medianSeconds: median(lf), runs: lf, buildSeconds: lfBuild, pushSeconds: lfPush, layersBuilt: built, peakRssMiB: lfRss, uploadedBytes: lfBytes },
    ratio: median(nix) / median(lf),
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const script = nixStreamScript();
  if (typeof script !== "string") {
    process.stderr.write(`bench nix: skipped: ${script.skipped}\n`);
    process.exit(0);
  }
  const log = (m: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${m}\n`);
  const work = await mkdtemp(path.join(os.tmpdir(), "lf-bench-nix-"));
  try {
    log("preparing the torch-free stack (lock and build, untimed)");
    const example = await prepareExample("torch-cuda", path.join(work, "ex"), withoutTorch);
    const store = await warmStore(path.join(work, "store"));
    const layout = path.join(work, "out");
    await timedCmd(process.execPath, [cli, "lock", "-C", example, "--store", store, "-q"]);
    await timedCmd(process.execPath, [cli, "build", "-C", example, "--store", store, "--frozen", "-o", `oci:${layout}`, "-q"]);
    const r = await benchNix({ script, store, example, layout, runs: Number(process.argv[2] ?? 1), work: path.join(work, "peer"), log });
    console.log(JSON.stringify(r, null, 2));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
