// Core benchmark (issue 3): layer building from already-unpacked trees
// against `tar | zstd -3` over the same bytes, a no-change rebuild, and peak
// memory. Usage: node --import tsx bench/core.ts [HOST_DIR] (default /usr/lib/x86_64-linux-gnu: 1 GB in few files; /usr/share has 47k small ones)

import { execFileSync, spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile, mkdir } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildLayer, layerKey } from "../src/layer/layer.ts";
import { withParents } from "../src/fold/plan.ts";
import { copyHostPath } from "../src/sources/files/index.ts";
import { Store } from "../src/store/store.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..");
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const secs = (t0: number) => (performance.now() - t0) / 1000;

export async function benchCore(hostDir = process.argv[2] ?? "/usr/lib/x86_64-linux-gnu", runs = 3) {
  const tmp = await mkdtemp(path.join(os.tmpdir(), "layerfold-bench-"));
  try {
    const store = new Store(path.join(tmp, "store"));
    const { tree } = await store.ensureTree("bench-tree", "bench:corpus", (w) => copyHostPath(w, hostDir, { dest: "/corpus" }, `bench corpus ${hostDir}`), { symlinks: "image" });
    const bytes = tree.manifest.size;
    const entries = withParents(tree.manifest.entries.map((entry) => ({ entry, rootDir: tree.rootDir, packageId: "bench:corpus", treeKey: tree.key })));

    // Layers are built as a later run would build them: through a Store that did not
    // write the tree, so every file is re-hashed against it (a build's own fresh trees skip that).
    const later = new Store(path.join(tmp, "store"));
    const ours: number[] = [];
    let rss = 0;
    for (let i = 0; i < runs; i++) {
      const input = { name: "bench", packages: ["bench:corpus"], entries, compression: "zstd" as const, mtime: i };
      const t0 = performance.now();
      await buildLayer(later, input, layerKey(input));
      ours.push(secs(t0));
      rss = Math.max(rss, process.resourceUsage().maxRSS * 1024);
    }
    const peer: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      execFileSync("sh", ["-c", `tar -C ${JSON.stringify(tree.rootDir)} --sort=name -cf - . | zstd -3 -T0 -q -c > /dev/null`]);
      peer.push(secs(t0));
    }

    // A build with nothing changed: the hello example, second run in the same store.
    const example = path.join(tmp, "hello");
    execFileSync("cp", ["-r", path.join(repo, "examples/hello"), example]);
    execFileSync("sh", ["-c", `rm -rf out build && mkdir -p build && gcc -static -O2 -o build/hello hello.c`], { cwd: example });
    const cli = (args: string[]) => spawnSync(process.execPath, [path.join(repo, "bin/layerfold.mjs"), ...args], { encoding: "utf8" });
    cli(["build", "-C", example, "--store", path.join(tmp, "store2"), "-o", "none", "--json"]);
    const t0 = performance.now();
    const again = JSON.parse(cli(["build", "-C", example, "--store", path.join(tmp, "store2"), "-o", "none", "--json"]).stdout);
    const noop = secs(t0);
    const rebuilt = again.layers.filter((l: { reused: boolean }) => !l.reused).length;

    const result = {
      corpus: { dir: hostDir, bytes, files: tree.manifest.entries.length },
      layerBuild: { medianSeconds: median(ours), runs: ours, mbPerSecond: bytes / 1e6 / median(ours) },
      tarZstd3: { medianSeconds: median(peer), runs: peer, command: "tar --sort=name -cf - . | zstd -3 -T0" },
      ratioVsTarZstd: median(ours) / median(peer),
      target: "<= 1.3",
      noChangeBuild: { seconds: noop, layersRebuilt: rebuilt, layerWorkSeconds: again.timings.layers, note: "wall time includes node start-up and config loading" },
      peakRssBytes: rss,
    };
    return result;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const r = await benchCore();
  await mkdir(path.join(here, "results"), { recursive: true });
  await writeFile(path.join(here, "results", "core.json"), JSON.stringify({ date: new Date().toISOString(), machine: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB`, ...r }, null, 2));
  console.log(JSON.stringify(r, null, 2));
}
