// Push benchmark, measured against skopeo in the same run:
//  1. full push of a multi-hundred-MB OCI layout to a fresh loopback registry:
//     `layerfold push --from` (library call) vs `skopeo copy oci:DIR docker://...`,
//     each into its own fresh registry (same binary, same storage kind);
//  2. incremental push after changing a MIDDLE layer, from a fresh process with
//     no store: requests and bytes counted by a proxy in front of the registry
//     (target: one HEAD per unchanged blob, only the changed layer uploaded),
//     and skopeo's incremental copy of the same layout for comparison.
//  3. the nix2container path for reference: skopeo handed uncompressed layers
//     (it compresses while pushing), full and incremental.
// Usage: node --import tsx bench/push.ts [--layers 6] [--layer-mib 64] [--no-uncompressed-peer] [--json]

import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { startProxy, startRegistry, type RunningRegistry } from "../test/helpers/registry.ts";
import { makeImage, type LayerSpec } from "../test/registry/image-fixture.ts";
import { RegistryClient } from "../src/registry/client.ts";
import { readLayoutImages } from "../src/registry/layout-source.ts";
import { pushImages } from "../src/registry/push.ts";

const run = promisify(execFile);

export interface PushBenchOptions {
  layers?: number;
  layerMiB?: number;
  /** Which layer changes in the incremental scenario (default: the middle one). */
  changedLayer?: number;
  /** Also measure skopeo pushing an uncompressed layout (the nix2container path). Default true. */
  uncompressedPeer?: boolean;
  log?: (msg: string) => void;
}

export interface PushBenchResult {
  layout: { layers: number; bytes: number };
  full: { layerfoldSeconds: number; skopeoSeconds: number; ratio: number; layerfoldMiBps: number; skopeoMiBps: number; layerfoldPeakRssMiB: number };
  incremental: {
    changedLayer: number;
    changedLayerBytes: number;
    layerfold: { seconds: number; uploadedBytes: number; requests: Record<string, number>; headsPerBlob: number };
    skopeo: { seconds: number; uploadedBytes: number; requests: Record<string, number> };
  };
  /**
   * The nix2container situation: skopeo is handed uncompressed layers and compresses them
   * while pushing, so a fresh runner cannot know the compressed digests and re-uploads.
   */
  skopeoFromUncompressed?: { fullSeconds: number; incrementalSeconds: number; incrementalUploadedBytes: number; requests: Record<string, number> };
}

const layerSpecs = (n: number, mib: number, changed?: number): LayerSpec[] =>
  Array.from({ length: n }, (_, i) => ({ files: { [`data/layer${i}.bin`]: { randomSize: mib * 1048576, seed: `bench-${i}${i === changed ? "-v2" : ""}` } } }));

const countBy = (xs: string[]) => xs.reduce<Record<string, number>>((m, x) => ({ ...m, [x]: (m[x] ?? 0) + 1 }), {});

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t = performance.now();
  const r = await fn();
  return [r, (performance.now() - t) / 1000];
}

async function skopeoCopy(layout: string, tag: string, dest: string): Promise<void> {
  await run("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", `oci:${layout}:${tag}`, `docker://${dest}`], { maxBuffer: 16 << 20 });
}

export async function benchPush(opts: PushBenchOptions = {}): Promise<PushBenchResult> {
  const n = opts.layers ?? 6;
  const mib = opts.layerMiB ?? 64;
  const changed = opts.changedLayer ?? Math.floor(n / 2);
  const log = opts.log ?? ((m: string) => process.stderr.write(m + "\n"));
  const tmp = await mkdtemp(path.join(os.tmpdir(), "lf-bench-push-"));
  const regs: RunningRegistry[] = [];
  try {
    log(`making a ${n} x ${mib} MiB layout (v1) and the same with layer ${changed} changed (v2)...`);
    const v1 = await makeImage({ dir: path.join(tmp, "v1"), layers: layerSpecs(n, mib), compression: "gzip", tag: "v1" });
    const v2dir = path.join(tmp, "v2");
    await makeImage({ dir: v2dir, layers: layerSpecs(n, mib, changed), compression: "gzip", tag: "v2" });
    const bytes = v1.layers.reduce((s, l) => s + l.size, 0);

    // 1. Full push, each tool into its own fresh registry. skopeo first, then us.
    const regSkopeo = await startRegistry();
    const regLf = await startRegistry();
    regs.push(regSkopeo, regLf);
    log("full push: skopeo copy ...");
    const [, skopeoSeconds] = await timed(() => skopeoCopy(path.join(tmp, "v1"), "v1", `${regSkopeo.host}/bench/app:v1`));
    log(`  skopeo ${skopeoSeconds.toFixed(2)}s`);
    log("full push: layerfold ...");
    const rssBefore = process.memoryUsage().rss;
    let peakRss = rssBefore;
    const sampler = setInterval(() => { peakRss = Math.max(peakRss, process.memoryUsage().rss); }, 50);
    const images = await readLayoutImages(path.join(tmp, "v1"), "v1");
    const c1 = new RegistryClient({ registry: regLf.host });
    const [, lfSeconds] = await timed(() => pushImages(images, { client: c1, repository: "bench/app", tag: "v1" }));
    clearInterval(sampler);
    await c1.close();
    log(`  layerfold ${lfSeconds.toFixed(2)}s`);

    // 2. Incremental push of v2 from a fresh client and no store (a new CI runner), through counting proxies.
    const pLf = await startProxy(regLf.url);
    const pSk = await startProxy(regSkopeo.url);
    try {
      const v2images = await readLayoutImages(v2dir, "v2");
      const c2 = new RegistryClient({ registry: pLf.host });
      const [, incLf] = await timed(() => pushImages(v2images, { client: c2, repository: "bench/app", tag: "v2" }));
      await c2.close();
      const [, incSk] = await timed(() => skopeoCopy(v2dir, "v2", `${pSk.host}/bench/app:v2`));
      const reqs = (p: typeof pLf) => countBy(p.requests.map((r) => r.method));
      const result: PushBenchResult = {
        layout: { layers: n, bytes },
        full: {
          layerfoldSeconds: lfSeconds,
          skopeoSeconds,
          ratio: lfSeconds / skopeoSeconds,
          layerfoldMiBps: bytes / 1048576 / lfSeconds,
          skopeoMiBps: bytes / 1048576 / skopeoSeconds,
          layerfoldPeakRssMiB: peakRss / 1048576,
        },
        incremental: {
          changedLayer: changed,
          changedLayerBytes: v2images[0]!.layers[changed]!.size,
          layerfold: {
            seconds: incLf,
            uploadedBytes: pLf.uploadedBytes(),
            requests: reqs(pLf),
            headsPerBlob: (reqs(pLf).HEAD ?? 0) / (n + 1),
          },
          skopeo: { seconds: incSk, uploadedBytes: pSk.uploadedBytes(), requests: reqs(pSk) },
        },
      };
      if (opts.uncompressedPeer !== false) {
        log("nix2container-like: skopeo from an uncompressed layout ...");
        const u1 = path.join(tmp, "u1");
        const u2 = path.join(tmp, "u2");
        await makeImage({ dir: u1, layers: layerSpecs(n, mib), compression: "none", tag: "v1" });
        await makeImage({ dir: u2, layers: layerSpecs(n, mib, changed), compression: "none", tag: "v2" });
        const regU = await startRegistry();
        regs.push(regU);
        const [, fullU] = await timed(() => skopeoCopy(u1, "v1", `${regU.host}/bench/app:v1`));
        const pU = await startProxy(regU.url);
        try {
          const [, incU] = await timed(() => skopeoCopy(u2, "v2", `${pU.host}/bench/app:v2`));
          result.skopeoFromUncompressed = { fullSeconds: fullU, incrementalSeconds: incU, incrementalUploadedBytes: pU.uploadedBytes(), requests: reqs(pU) };
        } finally {
          await pU.stop();
        }
      }
      return result;
    } finally {
      await pLf.stop();
      await pSk.stop();
    }
  } finally {
    for (const r of regs) await r.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await benchPush({ layers: Number(arg("--layers") ?? 6), layerMiB: Number(arg("--layer-mib") ?? 64), uncompressedPeer: !process.argv.includes("--no-uncompressed-peer") });
  if (process.argv.includes("--json")) {
    process.stdout.write(JSON.stringify(r, null, 2) + "\n");
  } else {
    const mb = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;
    console.log(`layout: ${r.layout.layers} layers, ${mb(r.layout.bytes)}`);
    console.log(`full push   layerfold ${r.full.layerfoldSeconds.toFixed(2)}s (${r.full.layerfoldMiBps.toFixed(0)} MiB/s, peak RSS ${r.full.layerfoldPeakRssMiB.toFixed(0)} MiB)`);
    console.log(`            skopeo    ${r.full.skopeoSeconds.toFixed(2)}s (${r.full.skopeoMiBps.toFixed(0)} MiB/s)   ratio ${r.full.ratio.toFixed(2)}`);
    const i = r.incremental;
    console.log(`incremental (layer ${i.changedLayer} of ${r.layout.layers} changed, ${mb(i.changedLayerBytes)}):`);
    console.log(`            layerfold ${i.layerfold.seconds.toFixed(2)}s, uploaded ${mb(i.layerfold.uploadedBytes)}, requests ${JSON.stringify(i.layerfold.requests)}`);
    console.log(`            skopeo    ${i.skopeo.seconds.toFixed(2)}s, uploaded ${mb(i.skopeo.uploadedBytes)}, requests ${JSON.stringify(i.skopeo.requests)}`);
    const u = r.skopeoFromUncompressed;
    if (u) console.log(`nix2container-like (skopeo given uncompressed layers): full ${u.fullSeconds.toFixed(2)}s; incremental ${u.incrementalSeconds.toFixed(2)}s, uploaded ${mb(u.incrementalUploadedBytes)}, requests ${JSON.stringify(u.requests)}`);
  }
}
