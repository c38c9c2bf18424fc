// `npm run bench`: every benchmark, written to bench/results/*.json and a table
// in bench/RESULTS.md (date, machine, targets met or not with the figure).
// Usage: node --import tsx bench/run.ts [--runs 3] [--peer-runs 1] [--skip core,push,small,podman,nix,torch,partial,partial-torch]
// Peer (b) runs when LAYERFOLD_BENCH_NIX_STREAM names a copy of nixpkgs'
// stream_layered_image.py (bench/nix.ts; its code is not in this repository).
//
// Both stacks run with the peers: the torch-free one (numpy, pillow,
// transformers, safetensors on the same Debian layers) `--runs` times each, the
// reference torch stack with its peers `--peer-runs` times (default 1: podman
// pip-installs and gzips several GB per run).

import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { benchCore } from "./core.ts";
import { benchPush } from "./push.ts";
import { benchStack, median, prepareExample, timedCmd, warmStore, withoutTorch, type StackResult } from "./stack.ts";
import { benchPodman, pinnedLayers, type PodmanPeerResult } from "./podman.ts";
import { benchNix, nixStreamScript, type NixPeerResult } from "./nix.ts";
import { benchPartial, type PartialResult } from "./partial.ts";
import { startRegistry } from "../test/helpers/registry.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const arg = (name: string, def: string) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1]! : def; };
const runs = Number(arg("runs", "3"));
const peerRuns = Number(arg("peer-runs", "1"));
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

// The base for peer (a): the same Debian layers (base, python), built by layerfold into an oci-archive once.
let podmanBase: string | undefined;
async function podmanBaseArchive(work: string): Promise<string> {
  if (podmanBase) return podmanBase;
  const baseEx = await prepareExample("torch-cuda", path.join(work, "base"), (c) => withoutTorch(c).replace(/\n\s*\{ name: "(imaging|hf)",[^\n]*\n/g, "\n").replace(/\n\s*\{ name: "(imaging|hf)",[^\n]*\n/g, "\n"));
  const archive = path.join(work, "base.tar");
  await timedCmd(process.execPath, [path.join(here, "..", "bin", "layerfold.mjs"), "build", "-C", baseEx, "--store", await warmStore(path.join(work, "base-store")), "-o", `oci-archive:${archive}`, "-q"]);
  return (podmanBase = archive);
}

/** Peer (a) on a stack benchStack has just measured in `lfWork` (its lock and layers say what pip installs). */
async function podmanPeer(stack: "no-torch" | "torch-cuda", lfWork: string, lf: StackResult, peerRuns: number, needGB: number): Promise<PodmanPeerResult | { skipped: string }> {
  if (skip.has("podman")) return { skipped: "--skip podman" };
  if (!checkDisk(needGB, `podman (overlay) on the ${stack} stack`)) return { skipped: `less than ${needGB + 8} GB of free disk` };
  log(`${stack}: peer (a) podman build + push`);
  const baseArchive = await podmanBaseArchive(peerWork);
  const lockFile = path.join(lfWork, "v1", "torch-cuda", "layerfold.lock");
  const names = [...(stack === "torch-cuda" ? ["torch"] : []), "imaging", "hf"];
  const layers = await pinnedLayers(lockFile, lf.layers, names);
  // The incremental change, as in benchStack: six in the imaging layer (its lock is the changed one).
  const changed = await pinnedLayers(lockFile, lf.layers, names, { imaging: ["py:six"] });
  const reg = await startRegistry();
  try {
    return await benchPodman({ baseArchive, layers, changed, registry: reg.host, runs: peerRuns, work: path.join(peerWork, `podman-${stack}`), log });
  } finally {
    await reg.stop();
  }
}

/** Peer (b) from the trees of benchStack's last build in `lfWork`; it drops that store's layer records. */
async function nixPeer(stack: string, lfWork: string, peerRuns: number): Promise<NixPeerResult | { skipped: string }> {
  if (skip.has("nix")) return { skipped: "--skip nix" };
  const script = nixStreamScript();
  if (typeof script !== "string") { log(`${stack}: peer (b) skipped: ${script.skipped}`); return script; }
  log(`${stack}: peer (b) nixpkgs' stream_layered_image.py + skopeo copy, against layerfold, from the same trees`);
  return benchNix({ script, store: path.join(lfWork, "store"), example: path.join(lfWork, "v1", "torch-cuda"), layout: path.join(lfWork, "out-v2"), runs: peerRuns, work: path.join(lfWork, "nix"), log });
}

const ratiosOf = (lf: StackResult, podman: PodmanPeerResult | { skipped: string }) => !("fullBuild" in podman) ? undefined : {
  fullBuildPodmanOverLayerfold: podman.fullBuild.medianSeconds / lf.fullBuild.medianSeconds,
  incrementalBuildPodmanOverLayerfold: podman.incrementalBuild.medianSeconds / lf.incrementalBuild.medianSeconds,
  fullPushPodmanOverLayerfold: podman.push.fullSeconds / lf.push.fullSeconds,
  buildAndPushPodmanOverLayerfold: (podman.fullBuild.medianSeconds + podman.push.fullSeconds) / (lf.fullBuild.medianSeconds + lf.push.fullSeconds),
};

const peerWork = await mkdtemp(path.join(os.tmpdir(), "lf-bench-peers-"));
try {
  if (!skip.has("small") && checkDisk(6, "the torch-free stack")) {
    const work = await mkdtemp(path.join(os.tmpdir(), "lf-bench-small-"));
    try {
      log("small stack (no torch): layerfold");
      const small = await benchStack({ stack: "no-torch", runs, work, log });
      const podman = await podmanPeer("no-torch", work, small, runs, 6);
      // Peer (b) last: it drops the layer records of benchStack's store (keeping its trees).
      const nix = await nixPeer("small stack", work, runs);
      await save("small-stack", { layerfold: small, podman, nix, ratios: ratiosOf(small, podman) });
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  if (!skip.has("torch") && checkDisk(14, "the torch stack")) {
    const work = await mkdtemp(path.join(os.tmpdir(), "lf-bench-torch-"));
    try {
      log("torch stack: layerfold, with the floor");
      const torch = await benchStack({ stack: "torch-cuda", runs, work, log });
      // The peers install and compress several GB each time: `--peer-runs` of them (default 1).
      const podman = await podmanPeer("torch-cuda", work, torch, peerRuns, 16);
      const nix = checkDisk(12, "peer (b) on the torch stack") ? await nixPeer("torch stack", work, peerRuns) : { skipped: "not enough free disk" };
      await save("torch-stack", { layerfold: torch, podman, nix, ratios: ratiosOf(torch, podman) });
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }
  // Partial pulls (zstd:chunked vs zstd): podman pulls v1, then an update with one package changed.
  for (const [stack, key, needGB] of [["no-torch", "partial", 6], ["torch-cuda", "partial-torch", 30]] as const) {
    if (skip.has(key) || !checkDisk(needGB, `partial pulls on the ${stack} stack`)) continue;
    const work = await mkdtemp(path.join(os.tmpdir(), `lf-bench-${key}-`));
    try {
      log(`${stack}: partial pulls, zstd vs zstd:chunked`);
      await save(key === "partial" ? "partial-no-torch" : "partial-torch", await benchPartial({ stack, work, runs, log }));
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }
} finally {
  await rm(peerWork, { recursive: true, force: true });
}

await writeResultsMd();

async function writeResultsMd(): Promise<void> {
  const core = await load<{ ratioVsTarZstd: number; layerBuild: { mbPerSecond: number }; peakRssBytes: number }>("core");
  const push = await load<{ full: { ratio: number; layerfoldSeconds: number; skopeoSeconds: number } }>("push");
  const small = await load<{ layerfold: StackResult; podman: PodmanPeerResult | { skipped: string }; nix?: NixPeerResult | { skipped: string } }>("small-stack");
  const torch = await load<{ layerfold: StackResult; podman?: PodmanPeerResult | { skipped: string }; nix?: NixPeerResult | { skipped: string } }>("torch-stack");
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
    if (peer) {
      const lfBoth = r.fullBuild.medianSeconds + r.push.fullSeconds;
      const pmBoth = peer.fullBuild.medianSeconds + peer.push.fullSeconds;
      lines.push(`| full build + push (the whole of peer (a)) | ${f(lfBoth, 1)} s | podman build + podman push ${f(pmBoth, 1)} s | podman/layerfold time ${f(pmBoth / lfBoth)} | |`);
    }
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
    const peer = torch.podman && "fullBuild" in torch.podman ? torch.podman : undefined;
    const nix = torch.nix && "nix" in torch.nix ? torch.nix : undefined;
    const peerRunsNote = peer ? `, peers ${peer.fullBuild.runs.length} run${peer.fullBuild.runs.length > 1 ? "s" : ""} each` : "";
    stackRows(`Reference stack (examples/torch-cuda: + torch 2.14.1 with CUDA 13 wheels), with peers${peerRunsNote}; layerfold`, torch.layerfold, peer, nix);
    if (!peer) lines.push(`Peer (a) podman: ${torch.podman && "skipped" in torch.podman ? torch.podman.skipped : "not measured"}`, "");
    if (!nix) lines.push(`Peer (b) nixpkgs' stream_layered_image.py: not measured (${torch.nix && "skipped" in torch.nix ? torch.nix.skipped : "no result"}).`, "");
  }
  lines.push(
    "## How to read these",
    "",
    "- Every figure is wall time of the real command (layerfold's include Node start-up and config loading, a few seconds under load), on a 2-core machine, with the load at the start of each section given above it (other jobs on the machine move the figures; the raw runs are in the JSON); with `--runs 1` the median is one run. Compare ratios within one section: they were measured in the same bench run, minutes apart.",
    "- Floor: Python's zipfile inflating the same wheels plus `dpkg-deb -x` of the same .debs, then `tar --sort=name | zstd -3 -T0` of the result. layerfold also hashes every file, verifies wheel RECORDs, writes the trees and the layer blobs, and copies the layout to the output.",
    "- Peer (a): `podman build` (overlay driver, podman's default here) of a Containerfile FROM the same Debian layers (built by layerfold into an oci-archive and pulled before timing), one `RUN pip install --no-deps` per Python layer of exactly the distributions layerfold put in that layer, at the versions it locked, from pip's configured indexes (read at bench time, bind-mounted read-only, PyPI left out; --no-deps because the mirror lacks cuda-bindings, which the config drops and pip's resolver would insist on for torch); then `podman push`. Its incremental build re-runs the changed layer and every layer after it.",
    "- Peer (b): nixpkgs' `stream_layered_image.py` (dockerTools.streamLayeredImage's builder, plain python3; its code is not in this repository, the bench takes it from `LAYERFOLD_BENCH_NIX_STREAM`) over layerfold's installed trees of the stack's last build, one store-path-like directory per package and one layer per layerfold layer, its stream written to a file and pushed with `skopeo copy docker-archive:FILE docker://…` (skopeo 1.9 cannot read it from a pipe), into a fresh registry. Against it: `layerfold build` of the same image from the same trees (layer records dropped) plus `layerfold push`. Both start from installed trees, which is where Nix starts.",
    "- Peer (c): `skopeo copy oci:DIR docker://…` of layerfold's own layout into a fresh registry, against `layerfold push` of the same build into another fresh one; both straight to their registry.",
    "- Cumulative layers: each layer holding the whole environment so far; uncompressed sizes are exact sums, the compressed figure sums our own compressed layer sizes the same way (an estimate).",
    "",
  );
  for (const name of ["partial-no-torch", "partial-torch"]) {
    const r = await load<PartialResult>(name);
    if (!r) continue;
    const z = r.sides.find((x) => x.compression === "zstd");
    const c = r.sides.find((x) => x.compression === "zstd:chunked");
    if (!z || !c) continue;
    lines.push(`## Partial pulls: zstd:chunked vs zstd, ${r.stack === "no-torch" ? "torch-free stack" : "reference stack"} (bench/partial.ts)`, "");
    lines.push(`Measured ${r.date}. Machine: ${(r as unknown as { machine: string }).machine}. Update: ${r.change}; podman 4.3 (overlay, \`enable_partial_images\`) already has v1. Bytes counted by a loopback proxy in front of the registry.`, "");
    lines.push("| figure | zstd | zstd:chunked | chunked/zstd | target |", "|---|---|---|---|---|");
    lines.push(`| update pull: bytes fetched for the changed layer | ${mb(z.update.changedLayerFetched)} | ${mb(c.update.changedLayerFetched)} | ${f(c.update.changedLayerFetched / z.update.changedLayerFetched)} | ≤ 2× pillow's frames + TOC (${mb(r.targetBytes)}): ${yes(c.update.changedLayerFetched <= r.targetBytes)} |`);
    lines.push(`| changed layer (imaging) size | ${mb(z.update.changedLayerBytes)} | ${mb(c.update.changedLayerBytes)} | ${f(c.update.changedLayerBytes / z.update.changedLayerBytes)} | |`);
    lines.push(`| changed package: pillow's files' frames in the layer; its TOC | | ${mb(r.pillow.frameBytes)} (${r.pillow.files} files, ${mb(r.pillow.uncompressedBytes)} uncompressed; wheel ${mb(r.pillow.wheelBytes)}); TOC ${mb(r.tocBytes)} | fetched/frames ${f(c.update.changedLayerFetched / r.pillow.frameBytes)} | |`);
    lines.push(`| update pull: all bytes, time | ${mb(z.update.bytes)}, ${f(z.update.seconds, 1)} s | ${mb(c.update.bytes)}, ${f(c.update.seconds, 1)} s (${c.update.partialBlobs} partial blobs) | ${f(c.update.bytes / z.update.bytes)} | |`);
    lines.push(`| first pull (v1): bytes, time | ${mb(z.v1Pull.bytes)}, ${f(z.v1Pull.seconds, 1)} s | ${mb(c.v1Pull.bytes)}, ${f(c.v1Pull.seconds, 1)} s (${c.v1Pull.partialBlobs} partial blobs) | ${f(c.v1Pull.bytes / z.v1Pull.bytes)} | |`);
    lines.push(`| image size (layer blobs) | ${mb(z.imageBytes)} | ${mb(c.imageBytes)} | ${f(c.imageBytes / z.imageBytes)} | |`);
    lines.push(`| layer build (trees installed, no layer records): wall; CPU (user + sys, with zstd) | ${f(z.layerBuildSeconds, 1)} s; ${f(z.layerBuildCpuSeconds, 1)} s | ${f(c.layerBuildSeconds, 1)} s; ${f(c.layerBuildCpuSeconds, 1)} s | ${f(c.layerBuildSeconds / z.layerBuildSeconds)}; CPU ${f(c.layerBuildCpuSeconds / z.layerBuildCpuSeconds)} | |`);
    lines.push(`| update runs in podman; skopeo copy verifies every digest | ${z.update.runs}; ${z.skopeoCopy.ok ? "copied" : "**failed**"} | ${c.update.runs}; ${c.skopeoCopy.ok ? "copied" : "**failed**"} | | |`);
    lines.push("");
  }
  if (core) lines.push("## Layer building alone (bench/core.ts)", "", `Ratio vs \`tar --sort=name | zstd -3 -T0\` over a store tree holding /usr/lib/x86_64-linux-gnu (1.02 GB): ${f(core.ratioVsTarZstd)}; ${f(core.layerBuild.mbPerSecond, 0)} MB/s; peak RSS ${f(core.peakRssBytes / 2 ** 20, 0)} MiB (${core.date}).`, "");
  if (push) lines.push("## Push alone, synthetic layout (bench/push.ts)", "", `layerfold push ${f(push.full.layerfoldSeconds, 1)} s vs skopeo copy ${f(push.full.skopeoSeconds, 1)} s: ratio ${f(push.full.ratio)} (${push.date}).`, "");
  await writeFile(path.join(here, "RESULTS.md"), lines.join("\n"));
}
