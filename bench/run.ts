// `npm run bench`: every benchmark, written to bench/results/*.json and a table
// in bench/RESULTS.md (date, machine, targets met or not with the figure).
// Usage: node --import tsx bench/run.ts [--runs 3] [--skip core,push,small,podman,nix,torch]
// Peer (b) runs when LAYERFOLD_BENCH_NIX_STREAM names a copy of nixpkgs'
// stream_layered_image.py (bench/nix.ts; its code is not in this repository).
//
// The peers run on the torch-free stack (numpy, pillow, transformers,
// safetensors on the same Debian layers): podman pip-installing torch and its
// CUDA wheels three times over would take most of an hour here. layerfold runs
// on that same stack (ratios compare like with like) and on the full torch
// stack, reported with its floor.

import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { benchCore } from "./core.ts";
import { benchPush } from "./push.ts";
import { benchStack, median, prepareExample, timedCmd, warmStore, withoutTorch, addToImaging, type StackResult } from "./stack.ts";
import { benchPodman, pinnedLayers, type PodmanPeerResult } from "./podman.ts";
import { benchNix, nixStreamScript, type NixPeerResult } from "./nix.ts";
import { startRegistry } from "../test/helpers/registry.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const arg = (name: string, def: string) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1]! : def; };
const runs = Number(arg("runs", "3"));
const skip = new Set(arg("skip", "").split(",").filter(Boolean));
const log = (m: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${m}\n`);
const freeGB = () => Number(execFileSync("df", ["-B1", "--output=avail", "/"]).toString().split("\n")[1]) / 1e9;
const machine = `${os.cpus().length} cores (${os.cpus()[0]?.model ?? "?"}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, load ${os.loadavg()[0]!.toFixed(1)} at start, Node ${process.version}`;

const resultsDir = path.join(here, "results");
await mkdir(resultsDir, { recursive: true });
async function save(name: string, r: unknown) {
  await writeFile(path.join(resultsDir, `${name}.json`), JSON.stringify({ date: new Date().toISOString(), machine, ...(r as object) }, null, 2) + "\n");
}
async function load<T>(name: string): Promise<(T & { date: string }) | undefined> {
  try { return JSON.parse(await readFile(path.join(resultsDir, `${name}.json`), "utf8")); } catch { return undefined; }
}

function checkDisk(needGB: number, what: string): boolean {
  const free = freeGB();
  if (free - needGB < 8) { log(`skipping ${what}: ${free.toFixed(1)} GB free, it needs about ${needGB} GB and 8 GB must stay free`); return false; }
  return true;
}

if (!skip.has("core")) { log("core: layer building vs tar | zstd"); await save("core", await benchCore("/usr/lib/x86_64-linux-gnu", runs)); }
if (!skip.has("push")) { log("push: layerfold push vs skopeo copy (synthetic layout)"); await save("push", await benchPush({ layers: 6, layerMiB: 48, log })); }

if (!skip.has("small") && checkDisk(6, "the torch-free stack")) {
  const work = await mkdtemp(path.join(os.tmpdir(), "lf-bench-small-"));
  try {
    log("small stack (no torch): layerfold");
    const small = await benchStack({ stack: "no-torch", runs, work: path.join(work, "lf"), log });
    let podman: PodmanPeerResult | { skipped: string } = { skipped: "--skip podman" };
    if (!skip.has("podman") && checkDisk(6, "podman (overlay)")) {
      log("small stack: peer (a) podman build + push");
      // The base: the same Debian layers, built by layerfold into an oci-archive.
      const baseEx = await prepareExample("torch-cuda", path.join(work, "base"), (c) => withoutTorch(c).replace(/\n\s*\{ name: "(imaging|hf)",[^\n]*\n/g, "\n").replace(/\n\s*\{ name: "(imaging|hf)",[^\n]*\n/g, "\n"));
      const baseArchive = path.join(work, "base.tar");
      await timedCmd(process.execPath, [path.join(here, "..", "bin", "layerfold.mjs"), "build", "-C", baseEx, "--store", await warmStore(path.join(work, "base-store")), "-o", `oci-archive:${baseArchive}`, "-q"]);
      const lockFile = path.join(work, "lf", "v1", "torch-cuda", "layerfold.lock");
      const hf = (await readFile(path.join(baseEx, "requirements-hf.txt"), "utf8")).split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
      const layers = await pinnedLayers(lockFile, [["numpy", "pillow"], hf]);
      const changed = await pinnedLayers(lockFile, [["numpy", "pillow", "six"], hf]);
      const reg = await startRegistry();
      try {
        podman = await benchPodman({ baseArchive, layers, changed, registry: reg.host, runs, work: path.join(work, "podman"), log });
      } finally {
        await reg.stop();
      }
      void addToImaging;
    }
    // Peer (b) last: it drops the layer records of benchStack's store (keeping its trees) to build
    // the last image (the incremental one) again from those trees.
    let nix: NixPeerResult | { skipped: string } = { skipped: "--skip nix" };
    if (!skip.has("nix")) {
      const script = nixStreamScript();
      if (typeof script !== "string") {
        nix = script;
        log(`small stack: peer (b) skipped: ${script.skipped}`);
      } else {
        log("small stack: peer (b) nixpkgs' stream_layered_image.py + skopeo copy, against layerfold, from the same trees");
        nix = await benchNix({ script, store: path.join(work, "lf", "store"), example: path.join(work, "lf", "v1", "torch-cuda"), layout: path.join(work, "lf", "out-v2"), runs, work: path.join(work, "nix"), log });
      }
    }
    await save("small-stack", {
      layerfold: small,
      podman,
      nix,
      ratios: !("fullBuild" in podman) ? undefined : {
        fullBuildPodmanOverLayerfold: podman.fullBuild.medianSeconds / small.fullBuild.medianSeconds,
        incrementalBuildPodmanOverLayerfold: podman.incrementalBuild.medianSeconds / small.incrementalBuild.medianSeconds,
        fullPushPodmanOverLayerfold: podman.push.fullSeconds / small.push.fullSeconds,
      },
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (!skip.has("torch") && checkDisk(14, "the torch stack")) {
  const work = await mkdtemp(path.join(os.tmpdir(), "lf-bench-torch-"));
  try {
    log("torch stack: layerfold alone, with the floor");
    await save("torch-stack", { layerfold: await benchStack({ stack: "torch-cuda", runs, work, log }) });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await writeResultsMd();

async function writeResultsMd(): Promise<void> {
  const core = await load<{ ratioVsTarZstd: number; layerBuild: { mbPerSecond: number }; peakRssBytes: number }>("core");
  const push = await load<{ full: { ratio: number; layerfoldSeconds: number; skopeoSeconds: number } }>("push");
  const small = await load<{ layerfold: StackResult; podman: PodmanPeerResult | { skipped: string }; nix?: NixPeerResult | { skipped: string } }>("small-stack");
  const torch = await load<{ layerfold: StackResult }>("torch-stack");
  const f = (x: number | undefined, d = 2) => (x === undefined || !Number.isFinite(x) ? "–" : x.toFixed(d));
  const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
  const yes = (ok: boolean) => (ok ? "met" : "**not met**");
  const lines: string[] = ["# Benchmark results", "", `Generated by \`npm run bench\` (bench/run.ts); raw figures in bench/results/*.json. Medians of the runs shown; peak RSS from GNU time (largest of the process and its children).`, ""];
  const stackRows = (name: string, r: StackResult, peer?: PodmanPeerResult, nix?: NixPeerResult) => {
    lines.push(`## ${name} (${r.runs} run${r.runs > 1 ? "s" : ""}; ${r.layers.length} layers)`, "");
    lines.push("| figure | layerfold | floor / peer | ratio | target |", "|---|---|---|---|---|");
    lines.push(`| full build, warm download cache | ${f(r.fullBuild.medianSeconds, 1)} s | floor ${f(r.floor.medianSeconds, 1)} s (inflate ${f(r.floor.inflateSeconds, 1)} + zstd -3 -T0 ${f(r.floor.compressSeconds, 1)}; ${mb(r.floor.bytes)}) | ${f(r.ratioFullVsFloor)}× floor | ≤ 1.5× floor: ${yes(r.ratioFullVsFloor <= 1.5)} |`);
    if (peer) lines.push(`| full build vs podman build | ${f(r.fullBuild.medianSeconds, 1)} s | podman ${f(peer.fullBuild.medianSeconds, 1)} s | podman/layerfold time ${f(peer.fullBuild.medianSeconds / r.fullBuild.medianSeconds)} | ≥ 5×: ${yes(peer.fullBuild.medianSeconds / r.fullBuild.medianSeconds >= 5)} |`);
    lines.push(`| incremental build (one package more in "imaging") | ${f(r.incrementalBuild.medianSeconds, 1)} s, ${r.incrementalBuild.layersRebuilt} layer rebuilt (${r.incrementalBuild.rebuilt.join(", ")}) | ${f(100 * r.incrementalBuild.fractionOfFull, 1)}% of full | | < 5% of full, one layer: ${yes(r.incrementalBuild.fractionOfFull < 0.05 && r.incrementalBuild.layersRebuilt === 1)} |`);
    if (peer) lines.push(`| incremental build vs podman | ${f(r.incrementalBuild.medianSeconds, 1)} s | podman ${f(peer.incrementalBuild.medianSeconds, 1)} s | podman/layerfold time ${f(peer.incrementalBuild.medianSeconds / r.incrementalBuild.medianSeconds)} | ≥ 20×: ${yes(peer.incrementalBuild.medianSeconds / r.incrementalBuild.medianSeconds >= 20)} |`);
    lines.push(`| full push (loopback registry) | ${f(r.push.fullSeconds, 1)} s, ${mb(r.push.fullUploadedBytes)} | skopeo copy ${f(r.push.skopeoFullSeconds, 1)} s${peer ? `; podman push ${f(peer.push.fullSeconds, 1)} s` : ""} | ${f(r.push.ratioVsSkopeo)}× skopeo | ≤ 1× skopeo: ${yes(r.push.ratioVsSkopeo <= 1)} |`);
    if (nix) lines.push(`| layers from installed trees + push, vs the Nix way | ${f(nix.layerfold.medianSeconds, 1)} s (build ${f(median(nix.layerfold.buildSeconds), 1)} + push ${f(median(nix.layerfold.pushSeconds), 1)}), ${mb(nix.layerfold.uploadedBytes)} zstd | stream_layered_image.py + skopeo copy ${f(nix.nix.medianSeconds, 1)} s, ${mb(nix.nix.uploadedBytes)} gzip | nix/layerfold time ${f(nix.ratio)} | |`);
    lines.push(`| incremental push, warm store | ${f(r.push.incrementalSeconds, 1)} s, ${mb(r.push.incrementalUploadedBytes)} | changed layer ${mb(r.push.changedLayerBytes)} | ${f(r.push.incrementalRatioToChanged, 3)}× | ≤ 1.01×: ${yes(r.push.incrementalRatioToChanged <= 1.01)} |`);
    lines.push(`| incremental push, empty store | ${f(r.push.fromEmptyStoreSeconds, 1)} s, ${mb(r.push.fromEmptyStoreUploadedBytes)} | changed layer ${mb(r.push.changedLayerBytes)} | ${f(r.push.fromEmptyStoreRatioToChanged, 3)}× | ≤ 1.01×: ${yes(r.push.fromEmptyStoreRatioToChanged <= 1.01)} |`);
    lines.push(`| image size (layer blobs) | ${mb(r.size.layerBytes)} (${mb(r.size.layerUncompressedBytes)} uncompressed) | cumulative layers: ${mb(r.size.cumulativeUncompressedBytes)} uncompressed, ~${mb(r.size.cumulativeCompressedEstimateBytes)} compressed (estimate: prefix sums of our layer sizes) | ${f(r.size.cumulativeUncompressedBytes / r.size.layerUncompressedBytes)}× smaller | |`);
    lines.push(`| duplicated file bytes across layers | ${r.size.duplicatedFileBytes} B in ${r.size.duplicatedFiles} files | | | zero: ${yes(r.size.duplicatedFileBytes === 0)} |`);
    lines.push(`| peak RSS | build ${f(r.fullBuild.peakRssMiB, 0)} MiB, incremental ${f(r.incrementalBuild.peakRssMiB, 0)} MiB, push ${f(r.push.peakRssMiB, 0)} MiB${peer ? `; podman build ${f(peer.fullBuild.peakRssMiB, 0)} MiB` : ""} | | | < 400 MB: ${yes(Math.max(r.fullBuild.peakRssMiB, r.incrementalBuild.peakRssMiB, r.push.peakRssMiB) * 1.048576 < 400)} |`);
    lines.push("");
  };
  if (small) {
    lines.push(`Small stack measured ${small.date}. Machine: ${(small as unknown as { machine: string }).machine}.`, "");
    const nix = small.nix && "nix" in small.nix ? small.nix : undefined;
    stackRows("Torch-free stack (bookworm python3.11 + numpy, pillow, transformers, safetensors), with peers", small.layerfold, "fullBuild" in small.podman ? small.podman : undefined, nix);
    if (!("fullBuild" in small.podman)) lines.push(`Peer (a) podman: ${small.podman.skipped}`, "");
    if (!nix) lines.push(`Peer (b) nixpkgs' stream_layered_image.py: not measured (${small.nix && "skipped" in small.nix ? small.nix.skipped : "no result"}).`, "");
  }
  if (torch) {
    lines.push(`Torch stack measured ${torch.date}. Machine: ${(torch as unknown as { machine: string }).machine}.`, "");
    stackRows("Reference stack (examples/torch-cuda: + torch 2.14.1 with CUDA 13 wheels), layerfold alone with its floor", torch.layerfold);
  }
  lines.push(
    "## How to read these",
    "",
    "- Every figure is wall time of the real command (layerfold's include Node start-up and config loading, a few seconds under load), on a 2-core machine, with the load at the start of each section given above it (other jobs on the machine move the figures; the raw runs are in the JSON); with `--runs 1` the median is one run. Compare ratios within one section: they were measured in the same bench run, minutes apart.",
    "- Floor: Python's zipfile inflating the same wheels plus `dpkg-deb -x` of the same .debs, then `tar --sort=name | zstd -3 -T0` of the result. layerfold also hashes every file, verifies wheel RECORDs, writes the trees and the layer blobs, and copies the layout to the output.",
    "- Peer (a): `podman build` (overlay driver, podman's default here) of a Containerfile FROM the same Debian layers (built by layerfold into an oci-archive and pulled before timing), one `RUN pip install` per Python layer with the versions layerfold locked, from pip's configured indexes (read at bench time, bind-mounted read-only, PyPI left out); then `podman push`. Its incremental build re-runs the changed layer and every layer after it.",
    "- Peer (b): nixpkgs' `stream_layered_image.py` (dockerTools.streamLayeredImage's builder, plain python3; its code is not in this repository, the bench takes it from `LAYERFOLD_BENCH_NIX_STREAM`) over layerfold's installed trees of the last small-stack build, one store-path-like directory per package and one layer per layerfold layer, its stream written to a file and pushed with `skopeo copy docker-archive:FILE docker://…` (skopeo 1.9 cannot read it from a pipe), into a fresh registry. Against it: `layerfold build` of the same image from the same trees (layer records dropped) plus `layerfold push`. Both start from installed trees, which is where Nix starts.",
    "- Peer (c): `skopeo copy oci:DIR docker://…` of layerfold's own layout into a fresh registry, against `layerfold push` of the same build into another fresh one; both straight to their registry.",
    "- Cumulative layers: each layer holding the whole environment so far; uncompressed sizes are exact sums, the compressed figure sums our own compressed layer sizes the same way (an estimate).",
    "",
  );
  if (core) lines.push("## Layer building alone (bench/core.ts)", "", `Ratio vs \`tar --sort=name | zstd -3 -T0\` over a store tree holding /usr/lib/x86_64-linux-gnu (1.02 GB): ${f(core.ratioVsTarZstd)}; ${f(core.layerBuild.mbPerSecond, 0)} MB/s; peak RSS ${f(core.peakRssBytes / 2 ** 20, 0)} MiB (${core.date}).`, "");
  if (push) lines.push("## Push alone, synthetic layout (bench/push.ts)", "", `layerfold push ${f(push.full.layerfoldSeconds, 1)} s vs skopeo copy ${f(push.full.skopeoSeconds, 1)} s: ratio ${f(push.full.ratio)} (${push.date}).`, "");
  await writeFile(path.join(here, "RESULTS.md"), lines.join("\n"));
}
