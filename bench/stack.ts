// Stack benchmark (issue 8): layerfold on a real stack (examples/torch-cuda, or
// the same stack without torch), from a warm download cache:
//   full build (artifacts in the store, no trees/layers), incremental build
//   after adding one small package to the middle "imaging" layer, full and
//   incremental push to a loopback registry (bytes counted by a proxy), the
//   incremental push from an empty store, skopeo copy of the same layout (peer
//   c), image size against cumulative layers, duplicated file bytes across
//   layers, peak RSS; and the floor: inflating the same wheels/.debs and
//   compressing the same bytes with zstd -3 -T0.

import { execFile, execFileSync } from "node:child_process";
import { cp, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { startProxy, startRegistry, type RunningRegistry } from "../test/helpers/registry.ts";
import { defaultStoreDir } from "../src/store/store.ts";

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, "..");
const cli = path.join(repo, "bin", "layerfold.mjs");
export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export interface Timed { seconds: number; peakRssMiB: number; stdout: string; stderr: string }

/** Run a command under GNU time -v: wall seconds and peak RSS (the largest of the process and its children). */
export async function timedCmd(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Timed> {
  const t0 = performance.now();
  try {
    const r = await run("/usr/bin/time", ["-v", cmd, ...args], { cwd: opts.cwd, env: { ...process.env, ...opts.env }, maxBuffer: 256 << 20 });
    const rss = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)?.[1] ?? 0) / 1024;
    return { seconds: (performance.now() - t0) / 1000, peakRssMiB: rss, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    // The command's own message comes before GNU time's report.
    const own = e.stderr?.split("\n\tCommand being timed")[0]?.split("\n").slice(-25).join("\n");
    throw new Error(`${cmd} ${args.join(" ")} failed: ${own || e.message}`);
  }
}

const lf = (args: string[]) => timedCmd(process.execPath, [cli, ...args]);

export interface LayerInfo { name: string; digest: string; size: number; uncompressedSize: number; reused: boolean; seconds?: number; packages?: string[] }

/** A copy of an example in `dir` (its `import "layerfold"` gets the running CLI's copy); `edit` rewrites its config text. */
export async function prepareExample(name: string, dir: string, edit: (cfg: string) => string = (c) => c): Promise<string> {
  const ex = path.join(dir, name);
  await cp(path.join(repo, "examples", name), ex, { recursive: true, filter: (s) => !/\/out$/.test(s) });
  const cfg = path.join(ex, "layerfold.config.ts");
  await writeFile(cfg, edit(await readFile(cfg, "utf8")));
  return ex;
}

/** The torch-free variant: same layers and order, without the torch layer. */
export const withoutTorch = (cfg: string) => cfg.replace(/\n\s*\{ name: "torch",[^\n]*\n/, "\n");
/** The incremental change: one small package more in the middle ("imaging") layer. */
export const addToImaging = (cfg: string) => cfg.replace('python: ["numpy", "pillow"]', 'python: ["numpy", "pillow", "six"]');

/** A store that shares the downloaded artifacts of the user's store (hardlinks), with no trees or layers. */
export async function warmStore(dir: string): Promise<string> {
  const src = defaultStoreDir();
  await mkdir(dir, { recursive: true });
  for (const sub of ["blobs", "debian-index", "py-metadata"]) if (existsSync(path.join(src, sub))) execFileSync("cp", ["-al", path.join(src, sub), path.join(dir, sub)]);
  return dir;
}

/** Forget everything built (trees, layer plans and records, zstd frames, build records), keep the downloads. */
export async function coolStore(store: string): Promise<void> {
  for (const sub of ["trees", "layers", "plans", "zstd-frames", "builds", "rootfs", "elf-scan", "tmp", "registry-blobs"]) await rm(path.join(store, sub), { recursive: true, force: true });
}

/** What a build leaves for the next one to reuse: restored before each incremental run. */
const BUILD_STATE = ["layers", "plans", "zstd-frames"];

interface LockPkg { id: string; kind: string; artifact?: { file: string; sha256: string } }

/** The floor: inflate every wheel and .deb of the lock with the standard tools, then tar | zstd -3 -T0 the result. */
export async function floor(lockFile: string, store: string, work: string): Promise<{ inflateSeconds: number; compressSeconds: number; seconds: number; bytes: number; artifacts: number }> {
  const lock = JSON.parse(await readFile(lockFile, "utf8")) as { packages: LockPkg[] };
  const blob = (hex: string) => path.join(store, "blobs", "sha256", hex);
  const wheels = lock.packages.filter((p) => p.artifact?.file.endsWith(".whl")).map((p) => blob(p.artifact!.sha256));
  const debs = lock.packages.filter((p) => p.artifact?.file.endsWith(".deb")).map((p) => blob(p.artifact!.sha256));
  const out = path.join(work, "floor");
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  const t0 = performance.now();
  // Python's zipfile inflates the wheels (what pip's installer does), dpkg-deb -x the .debs.
  await run("python3", ["-c", "import sys, zipfile\nfor w in sys.argv[2:]:\n    zipfile.ZipFile(w).extractall(sys.argv[1])", path.join(out, "venv"), ...wheels], { maxBuffer: 16 << 20 });
  for (const d of debs) await run("dpkg-deb", ["-x", d, path.join(out, "root")]);
  const inflateSeconds = (performance.now() - t0) / 1000;
  const bytes = Number((await run("du", ["-sb", out])).stdout.split("\t")[0]);
  const t1 = performance.now();
  await run("sh", ["-c", `tar -C "$1" --sort=name -cf - . | zstd -3 -T0 -q -c > /dev/null`, "sh", out]);
  const compressSeconds = (performance.now() - t1) / 1000;
  await rm(out, { recursive: true, force: true });
  return { inflateSeconds, compressSeconds, seconds: inflateSeconds + compressSeconds, bytes, artifacts: wheels.length + debs.length };
}

/** Sum the bytes of regular files whose path appears in more than one layer (after the first). */
export async function duplicatedBytes(layout: string, layers: LayerInfo[]): Promise<{ bytes: number; files: number }> {
  const seen = new Map<string, number>();
  let bytes = 0;
  let files = 0;
  for (const l of layers) {
    const file = path.join(layout, "blobs", "sha256", l.digest.slice(7));
    const { stdout } = await run("sh", ["-c", `zstd -dcq "$1" | tar -tvf -`, "sh", file], { maxBuffer: 1 << 30 });
    for (const line of stdout.split("\n")) {
      const m = /^-\S+\s+\S+\s+(\d+)\s+\S+\s+\S+\s+(.*)$/.exec(line);
      if (!m) continue;
      const p = m[2]!.replace(/^\.?\//, "");
      if (seen.has(p)) { bytes += Number(m[1]); files++; }
      else seen.set(p, Number(m[1]));
    }
  }
  return { bytes, files };
}

/** Bytes of the blobs a registry holds (its storage, every repository). */
export async function registryBlobBytes(reg: RunningRegistry): Promise<number> {
  const { stdout } = await run("find", [path.join(reg.storageDir, "docker/registry/v2/blobs"), "-type", "f", "-name", "data", "-printf", "%s\n"]);
  return stdout.split("\n").filter(Boolean).reduce((a, b) => a + Number(b), 0);
}

export interface StackResult {
  stack: string;
  runs: number;
  fullBuild: { medianSeconds: number; runs: number[]; peakRssMiB: number; layers: number };
  floor: { medianSeconds: number; runs: number[]; inflateSeconds: number; compressSeconds: number; bytes: number; artifacts: number };
  ratioFullVsFloor: number;
  incrementalBuild: { lockSeconds: number; medianSeconds: number; runs: number[]; layersRebuilt: number; rebuilt: string[]; fractionOfFull: number; peakRssMiB: number };
  push: {
    fullSeconds: number; fullUploadedBytes: number; peakRssMiB: number;
    skopeoFullSeconds: number; ratioVsSkopeo: number;
    incrementalSeconds: number; incrementalUploadedBytes: number; changedLayerBytes: number; incrementalRatioToChanged: number;
    fromEmptyStoreSeconds: number; fromEmptyStoreUploadedBytes: number; fromEmptyStoreRatioToChanged: number;
  };
  size: { layerBytes: number; layerUncompressedBytes: number; cumulativeUncompressedBytes: number; cumulativeCompressedEstimateBytes: number; duplicatedFileBytes: number; duplicatedFiles: number };
  layers: LayerInfo[];
}

export async function benchStack(opts: { stack: "torch-cuda" | "no-torch"; runs: number; work: string; log: (m: string) => void }): Promise<StackResult> {
  const { runs, work, log } = opts;
  const edit = opts.stack === "no-torch" ? withoutTorch : (c: string) => c;
  const ex = await prepareExample("torch-cuda", path.join(work, "v1"), edit);
  const store = await warmStore(path.join(work, "store"));
  const out1 = path.join(work, "out-v1");
  const common = ["-C", ex, "--store", store];
  if (opts.stack === "no-torch") {
    log(`[${opts.stack}] locking the torch-free variant (untimed)`);
    await lf(["lock", ...common, "-q"]);
  }

  // 1. Full build from a warm download cache.
  const full: Timed[] = [];
  let layers: LayerInfo[] = [];
  for (let i = 0; i < runs; i++) {
    await coolStore(store);
    await rm(out1, { recursive: true, force: true });
    const t = await lf(["build", ...common, "--frozen", "-o", `oci:${out1}`, "--json", "-q"]);
    full.push(t);
    layers = JSON.parse(t.stdout).layers;
    log(`[${opts.stack}] full build ${i + 1}/${runs}: ${t.seconds.toFixed(1)} s, peak RSS ${t.peakRssMiB.toFixed(0)} MiB, layers built ${layers.filter((l) => !l.reused).length}/${layers.length}`);
  }

  // The floor, interleaved in the same run.
  const floors = [];
  for (let i = 0; i < runs; i++) {
    floors.push(await floor(path.join(ex, "layerfold.lock"), store, work));
    log(`[${opts.stack}] floor ${i + 1}/${runs}: ${floors.at(-1)!.seconds.toFixed(1)} s (inflate ${floors.at(-1)!.inflateSeconds.toFixed(1)} + zstd ${floors.at(-1)!.compressSeconds.toFixed(1)}), ${(floors.at(-1)!.bytes / 1e9).toFixed(2)} GB`);
  }

  // 3a. Full push, and skopeo copy of the same layout to a second fresh registry. Both go straight to
  // their registry: a counting proxy in this process would tax one side only (it copied every byte once
  // more, on the same 2 cores). The bytes are what the registry stored.
  const regs: RunningRegistry[] = [];
  try {
    const reg = await startRegistry();
    regs.push(reg);
    const tag = JSON.parse(full.at(-1)!.stdout).image.split(":").at(-1);
    const pushFull = await lf(["push", ...common, `${reg.host}/bench/stack:v1`, "-q"]);
    const fullUploaded = await registryBlobBytes(reg);
    log(`[${opts.stack}] layerfold push (full): ${pushFull.seconds.toFixed(1)} s, ${(fullUploaded / 1e6).toFixed(0)} MB uploaded`);
    const reg2 = await startRegistry();
    regs.push(reg2);
    const sk = await timedCmd("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", `oci:${out1}:${tag}`, `docker://${reg2.host}/bench/stack:v1`]);
    log(`[${opts.stack}] skopeo copy (full): ${sk.seconds.toFixed(1)} s`);
    // A third registry for the "fresh CI runner" flow: it has v1, the runner has an empty store.
    const reg3 = await startRegistry();
    regs.push(reg3);
    await lf(["push", ...common, `${reg3.host}/bench/stack:v1`, "-q"]);

    // 2. Incremental build: one small package more in the middle layer.
    await writeFile(path.join(ex, "layerfold.config.ts"), addToImaging(await readFile(path.join(ex, "layerfold.config.ts"), "utf8")));
    const lockT = await lf(["lock", ...common, "-q"]);
    const out2 = path.join(work, "out-v2");
    const inc: Timed[] = [];
    let incLayers: LayerInfo[] = [];
    // Each run starts from the v1 state: its layer records, plans and zstd frames, as v1's build left them.
    for (const sub of BUILD_STATE) if (existsSync(path.join(store, sub))) execFileSync("cp", ["-a", path.join(store, sub), path.join(store, `${sub}.v1`)]);
    for (let i = 0; i < runs; i++) {
      if (i > 0) {
        for (const sub of BUILD_STATE) {
          await rm(path.join(store, sub), { recursive: true, force: true });
          if (existsSync(path.join(store, `${sub}.v1`))) execFileSync("cp", ["-a", path.join(store, `${sub}.v1`), path.join(store, sub)]);
        }
      }
      await rm(out2, { recursive: true, force: true });
      const t = await lf(["build", ...common, "--frozen", "-o", `oci:${out2}`, "--json", "-q"]);
      inc.push(t);
      incLayers = JSON.parse(t.stdout).layers;
      log(`[${opts.stack}] incremental build ${i + 1}/${runs}: ${t.seconds.toFixed(1)} s, rebuilt ${incLayers.filter((l) => !l.reused).map((l) => l.name).join(", ")}`);
    }
    const rebuilt = incLayers.filter((l) => !l.reused);
    const changed = rebuilt.filter((l) => l.name !== "generated" && !layers.some((o) => o.digest === l.digest));
    const changedBytes = changed.reduce((s, l) => s + l.size, 0);

    // 3b. Incremental push from the warm store, through a proxy that counts the bytes sent.
    const proxy = await startProxy(reg.url);
    const pushInc = await lf(["push", ...common, `${proxy.host}/bench/stack:v2`, "-q"]);
    const incUploaded = proxy.uploadedBytes();
    // 4. Incremental push from an empty store in a second directory (fresh CI runner), of the v2 layout.
    const proxy3 = await startProxy(reg3.url);
    const empty = path.join(work, "empty-store");
    const pushCold = await lf(["push", "--store", empty, "--from", out2, `${proxy3.host}/bench/stack:v2`, "-q"]);
    const coldUploaded = proxy3.uploadedBytes();
    log(`[${opts.stack}] incremental push: warm ${pushInc.seconds.toFixed(1)} s / ${incUploaded} B, empty store ${pushCold.seconds.toFixed(1)} s / ${coldUploaded} B; changed layer(s) ${changedBytes} B`);
    await proxy.stop();
    await proxy3.stop();

    // 5. Size against cumulative layers, and duplicated file bytes.
    const sizes = layers.map((l) => l.size);
    const usizes = layers.map((l) => l.uncompressedSize);
    const prefix = (xs: number[]) => xs.reduce((acc, _x, i) => acc + xs.slice(0, i + 1).reduce((a, b) => a + b, 0), 0);
    const dup = await duplicatedBytes(out1, layers);

    const fullS = full.map((t) => t.seconds);
    const floorS = floors.map((f) => f.seconds);
    const incS = inc.map((t) => t.seconds);
    const fl = floors[floors.length >> 1]!;
    return {
      stack: opts.stack,
      runs,
      fullBuild: { medianSeconds: median(fullS), runs: fullS, peakRssMiB: Math.max(...full.map((t) => t.peakRssMiB)), layers: layers.length },
      floor: { medianSeconds: median(floorS), runs: floorS, inflateSeconds: fl.inflateSeconds, compressSeconds: fl.compressSeconds, bytes: fl.bytes, artifacts: fl.artifacts },
      ratioFullVsFloor: median(fullS) / median(floorS),
      incrementalBuild: { lockSeconds: lockT.seconds, medianSeconds: median(incS), runs: incS, layersRebuilt: changed.length, rebuilt: rebuilt.map((l) => l.name), fractionOfFull: median(incS) / median(fullS), peakRssMiB: Math.max(...inc.map((t) => t.peakRssMiB)) },
      push: {
        fullSeconds: pushFull.seconds, fullUploadedBytes: fullUploaded, peakRssMiB: pushFull.peakRssMiB,
        skopeoFullSeconds: sk.seconds, ratioVsSkopeo: pushFull.seconds / sk.seconds,
        incrementalSeconds: pushInc.seconds, incrementalUploadedBytes: incUploaded, changedLayerBytes: changedBytes, incrementalRatioToChanged: incUploaded / changedBytes,
        fromEmptyStoreSeconds: pushCold.seconds, fromEmptyStoreUploadedBytes: coldUploaded, fromEmptyStoreRatioToChanged: coldUploaded / changedBytes,
      },
      size: {
        layerBytes: sizes.reduce((a, b) => a + b, 0),
        layerUncompressedBytes: usizes.reduce((a, b) => a + b, 0),
        cumulativeUncompressedBytes: prefix(usizes),
        cumulativeCompressedEstimateBytes: prefix(sizes),
        duplicatedFileBytes: dup.bytes,
        duplicatedFiles: dup.files,
      },
      layers,
    };
  } finally {
    for (const r of regs) await r.stop();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const stack = (process.argv[2] ?? "no-torch") as "torch-cuda" | "no-torch";
  const work = await import("node:fs/promises").then((f) => f.mkdtemp(path.join(os.tmpdir(), "lf-bench-stack-")));
  try {
    const r = await benchStack({ stack, runs: Number(process.argv[3] ?? 1), work, log: (m) => process.stderr.write(m + "\n") });
    console.log(JSON.stringify(r, null, 2));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
