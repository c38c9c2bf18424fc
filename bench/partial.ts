// Partial pulls (issue 22): the same stack built with zstd and with zstd:chunked,
// pushed to a loopback registry; podman (overlay, partial pulls on) pulls v1, then
// the update v2 where one package of the middle "imaging" layer changed (pillow
// OLD -> NEW). A counting proxy in front of the registry gives the bytes podman
// fetched, against the changed layer's size and the changed package's own
// compressed bytes (its files' frames in the chunked layer). Also: the layer
// build time and image size of each compression (trees installed, layers built
// from scratch), the update image running in podman, and skopeo copying it with
// every digest verified.

import { execFile } from "node:child_process";
import { copyFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { podman } from "../test/helpers/engine.ts";
import { startProxy, startRegistry } from "../test/helpers/registry.ts";
import { CHUNKED_ANNOTATIONS } from "../src/layer/chunked.ts";
import { median, prepareExample, repo, timedCmd, warmStore, withoutTorch, type LayerInfo } from "./stack.ts";

const run = promisify(execFile);
const cli = path.join(repo, "bin", "layerfold.mjs");
const lf = (args: string[]) => timedCmd(process.execPath, [cli, ...args]);

export const OLD_PILLOW = "11.3.0";
export const NEW_PILLOW = "12.3.0";
/** pillow's files in the venv: the package whose bytes the update should cost. */
const PILLOW_PATH = /\/site-packages\/(PIL\/|pillow-[^/]*\.dist-info\/|pillow\.libs\/)/;
const COMPRESSIONS = ["zstd", "zstd:chunked"] as const;
/** What a build leaves for the next one to reuse: dropped before each timed layer build. */
const LAYER_STATE = ["layers", "plans", "zstd-frames", "zstd-chunked-segments", "builds"];

export interface PartialSide {
  compression: string;
  layerBuildSeconds: number;
  /** CPU seconds (user + system, layerfold and its zstd processes) of that build: steadier than wall time on a shared machine. */
  layerBuildCpuSeconds: number;
  imageBytes: number;
  layers: LayerInfo[];
  v1Pull: { seconds: number; bytes: number; partialBlobs: number };
  update: {
    seconds: number;
    /** Every byte podman fetched for v2 (manifest, config, blobs). */
    bytes: number;
    /** Bytes fetched of the changed imaging layer's blob, and that blob's size. */
    changedLayerFetched: number;
    changedLayerBytes: number;
    changedLayers: string[];
    partialBlobs: number;
    runs: string;
  };
  skopeoCopy: { seconds: number; ok: boolean };
}

export interface PartialResult {
  stack: string;
  change: string;
  /** pillow NEW in the chunked layer: its content frames (compressed) and its files' bytes; its TOC's compressed size. */
  pillow: { frameBytes: number; uncompressedBytes: number; files: number; wheelBytes: number };
  tocBytes: number;
  /** Target: the update fetches at most 2x pillow's frames plus the TOC, for the changed layer. */
  targetBytes: number;
  sides: PartialSide[];
}

const pinPillow = (edit: (c: string) => string, version: string) => (c: string) => {
  const out = edit(c).replace('python: ["numpy", "pillow"]', `python: ["numpy", "pillow==${version}"]`);
  if (out === edit(c)) throw new Error("bench: the imaging layer of examples/torch-cuda is not python: [\"numpy\", \"pillow\"] any more");
  return out;
};

async function pillowInChunkedLayer(store: string, digest: string, annotations: Record<string, string>) {
  const blob = await readFile(path.join(store, "blobs", "sha256", digest.slice(7)));
  const [off, len] = annotations[CHUNKED_ANNOTATIONS.tocPosition]!.split(":").map(Number) as [number, number];
  const json = await new Promise<string>((resolve, reject) => {
    const child = execFile("zstd", ["-dcq"], { maxBuffer: 1 << 30 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
    child.stdin!.end(blob.subarray(off, off + len));
  });
  const entries = (JSON.parse(json) as { entries: Array<{ type: string; name: string; size?: number; offset?: number; endOffset?: number }> }).entries;
  let frameBytes = 0;
  let uncompressedBytes = 0;
  let files = 0;
  for (const e of entries) {
    if (e.type !== "reg" || !PILLOW_PATH.test(`/${e.name}`)) continue;
    files++;
    uncompressedBytes += e.size ?? 0;
    if (e.size) frameBytes += e.endOffset! - e.offset!;
  }
  return { frameBytes, uncompressedBytes, files, tocBytes: len };
}

export async function benchPartial(opts: { stack: "no-torch" | "torch-cuda"; work: string; runs?: number; log: (m: string) => void }): Promise<PartialResult> {
  const { work, log } = opts;
  const base = opts.stack === "no-torch" ? withoutTorch : (c: string) => c;
  const ex = await prepareExample("torch-cuda", path.join(work, "v"), pinPillow(base, OLD_PILLOW));
  const cfg = path.join(ex, "layerfold.config.ts");
  const lock = path.join(ex, "layerfold.lock");
  const store = await warmStore(path.join(work, "store"));
  const common = ["-C", ex, "--store", store];
  // Both locks, made once (untimed): v1 with the old pillow, v2 with the new one.
  await lf(["lock", ...common, "-q"]);
  const v1Cfg = await readFile(cfg, "utf8");
  const v1Lock = path.join(work, "v1.lock");
  await copyFile(lock, v1Lock);
  const v2Cfg = v1Cfg.replace(`pillow==${OLD_PILLOW}`, `pillow==${NEW_PILLOW}`);
  await writeFile(cfg, v2Cfg);
  await lf(["lock", ...common, "-q"]);
  const v2Lock = path.join(work, "v2.lock");
  await copyFile(lock, v2Lock);
  const use = async (v: 1 | 2) => { await writeFile(cfg, v === 1 ? v1Cfg : v2Cfg); await copyFile(v === 1 ? v1Lock : v2Lock, lock); };
  // Trees of both versions installed once, untimed: the timed builds below build layers only.
  for (const v of [1, 2] as const) { await use(v); await lf(["build", ...common, "--frozen", "-o", "none", "-q"]); }
  const wheel = JSON.parse(await readFile(v2Lock, "utf8")) as { packages: Array<{ id: string; artifact?: { sha256: string } }> };
  const pillowWheel = wheel.packages.find((p) => p.id === "py:pillow")!.artifact!.sha256;
  const wheelBytes = (await readFile(path.join(store, "blobs", "sha256", pillowWheel))).length;

  const sides: PartialSide[] = [];
  let pillow = { frameBytes: 0, uncompressedBytes: 0, files: 0, wheelBytes };
  let tocBytes = 0;
  for (const compression of COMPRESSIONS) {
    const reg = await startRegistry();
    const proxy = await startProxy(reg.url);
    const pm = await podman({ partialPulls: true });
    try {
      const ref = (v: number) => `${reg.host}/bench/partial:v${v}`;
      const viaProxy = (v: number) => `${proxy.host}/bench/partial:v${v}`;
      const built: LayerInfo[][] = [];
      let layerBuildSeconds = 0;
      let layerBuildCpuSeconds = 0;
      for (const v of [1, 2] as const) {
        await use(v);
        // v1's layers are built `runs` times (the medians are reported), v2's once.
        const walls: number[] = [];
        const cpus: number[] = [];
        let t: Awaited<ReturnType<typeof lf>> | undefined;
        for (let i = 0; i < (v === 1 ? opts.runs ?? 1 : 1); i++) {
          for (const sub of LAYER_STATE) await rm(path.join(store, sub), { recursive: true, force: true });
          t = await lf(["build", ...common, "--frozen", "--compression", compression, "-o", "none", "--json", "-q"]);
          const cpu = (what: string) => Number(new RegExp(`${what} time \\(seconds\\): ([\\d.]+)`).exec(t!.stderr)?.[1] ?? NaN);
          walls.push(t.seconds);
          cpus.push(cpu("User") + cpu("System"));
        }
        if (v === 1) {
          layerBuildSeconds = median(walls);
          layerBuildCpuSeconds = median(cpus);
        }
        built.push(JSON.parse(t!.stdout).layers);
        await lf(["push", ...common, ref(v), "-q"]);
        log(`[partial ${opts.stack} ${compression}] v${v} built (${walls.map((w) => w.toFixed(1)).join(", ")} s; CPU ${cpus.map((c) => c.toFixed(1)).join(", ")} s) and pushed`);
      }
      const [l1, l2] = built as [LayerInfo[], LayerInfo[]];
      const changed = l2.filter((l) => !l1.some((o) => o.digest === l.digest));
      const imaging = l2.find((l) => l.name === "imaging")!;
      if (compression === "zstd:chunked") {
        const manifest = JSON.parse((await run("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${ref(2)}`])).stdout) as { layers: Array<{ digest: string; annotations?: Record<string, string> }> };
        const got = await pillowInChunkedLayer(store, imaging.digest, manifest.layers.find((l) => l.digest === imaging.digest)!.annotations!);
        pillow = { frameBytes: got.frameBytes, uncompressedBytes: got.uncompressedBytes, files: got.files, wheelBytes };
        tocBytes = got.tocBytes;
      }
      const pull = async (v: number) => {
        proxy.reset();
        const t0 = performance.now();
        const out = await pm.exec(["--log-level", "debug", "pull", "--tls-verify=false", viaProxy(v)]);
        const seconds = (performance.now() - t0) / 1000;
        const bytes = proxy.requests.reduce((n, r) => n + r.responseBytes, 0);
        const partialBlobs = out.stderr.split("\n").filter((l) => l.includes("Retrieved partial blob")).length;
        // podman's debug log, for a look at why a layer was not pulled partially.
        if (process.env.LAYERFOLD_BENCH_PODMAN_LOGS) await writeFile(path.join(process.env.LAYERFOLD_BENCH_PODMAN_LOGS, `pull-${opts.stack}-${compression.replace(":", "-")}-v${v}.log`), out.stderr);
        return { seconds, bytes, partialBlobs };
      };
      const v1Pull = await pull(1);
      log(`[partial ${opts.stack} ${compression}] podman pull v1: ${v1Pull.seconds.toFixed(1)} s, ${v1Pull.bytes} B, ${v1Pull.partialBlobs} partial blobs`);
      const upd = await pull(2);
      const changedLayerFetched = proxy.requests.filter((r) => r.url.endsWith(imaging.digest)).reduce((n, r) => n + r.responseBytes, 0);
      const ran = await pm.exec(["run", "--rm", "--network", "none", viaProxy(2), "python", "-c", "import PIL, numpy; print(PIL.__version__, numpy.__version__)"]);
      log(`[partial ${opts.stack} ${compression}] podman pull v2: ${upd.seconds.toFixed(1)} s, ${upd.bytes} B in all, ${changedLayerFetched} B of the ${imaging.size}-byte imaging layer; runs: ${ran.stdout.trim()}`);
      const copyDir = path.join(work, `copy-${compression.replace(":", "-")}`);
      const sk = await timedCmd("skopeo", ["copy", "--quiet", "--src-tls-verify=false", `docker://${ref(2)}`, `oci:${copyDir}`]).then((t) => ({ seconds: t.seconds, ok: true }), (err: Error) => { log(`skopeo copy failed: ${err.message}`); return { seconds: 0, ok: false }; });
      await rm(copyDir, { recursive: true, force: true });
      sides.push({
        compression,
        layerBuildSeconds,
        layerBuildCpuSeconds,
        imageBytes: l1.reduce((n, l) => n + l.size, 0),
        layers: l1,
        v1Pull,
        update: { seconds: upd.seconds, bytes: upd.bytes, changedLayerFetched, changedLayerBytes: imaging.size, changedLayers: changed.map((l) => l.name), partialBlobs: upd.partialBlobs, runs: ran.stdout.trim() },
        skopeoCopy: sk,
      });
    } finally {
      await pm.exec(["rmi", "-a", "-f"]).catch(() => {});
      await pm.cleanup();
      await proxy.stop();
      await reg.stop();
    }
  }
  return {
    stack: opts.stack,
    change: `pillow ${OLD_PILLOW} -> ${NEW_PILLOW} in the imaging layer`,
    pillow,
    tocBytes,
    targetBytes: 2 * pillow.frameBytes + tocBytes,
    sides,
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const stack = (process.argv[2] ?? "no-torch") as "torch-cuda" | "no-torch";
  const parent = process.env.LAYERFOLD_BENCH_WORK ?? os.tmpdir();
  await mkdir(parent, { recursive: true });
  const work = await import("node:fs/promises").then((f) => f.mkdtemp(path.join(parent, "lf-bench-partial-")));
  try {
    console.log(JSON.stringify(await benchPartial({ stack, work, runs: Number(process.argv[3] ?? 1), log: (m) => process.stderr.write(m + "\n") }), null, 2));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
