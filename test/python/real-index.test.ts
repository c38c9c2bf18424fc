// Resolves the real torch 2.14.1 + CUDA 13 set from this machine's configured
// pip indexes (whatever `pip config list` and PIP_* say), and installs a few
// small distributions. Skips with a message when those indexes do not offer torch.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { pythonSource, pythonOptionsSchema } from "../../src/sources/python/index.ts";
import { Finder } from "../../src/sources/python/finder.ts";
import { loadPipConfig } from "../../src/sources/python/pipconfig.ts";
import { silentLogger } from "../../src/util/log.ts";
import { makeCtx } from "./helpers/ctx.ts";

async function pipOffersTorch(): Promise<string | undefined> {
  const pip = loadPipConfig();
  const ctx = await makeCtx({ layers: ["x"] });
  const f = new Finder({ indexes: pip.noIndex ? [] : [pip.indexUrl, ...pip.extraIndexUrls], findLinks: pip.findLinks, store: ctx.store, log: silentLogger });
  const files = await f.files("torch");
  if (!files.some((x) => x.wheel?.version === "2.14.1")) return "pip's configured indexes do not offer torch 2.14.1 (or are unreachable); skipping the real-index test";
  return undefined;
}

const skip = await pipOffersTorch();

test("real index: torch 2.14.1 + CUDA 13, numpy, pillow, transformers, safetensors", { skip }, async () => {
  const ctx = await makeCtx({ layers: ["torch", "imaging", "hf"] });
  const o = pythonOptionsSchema.parse({ version: "3.11", fullVersion: "3.11.2", platform: { glibc: "2.36" }, interpreter: "/usr/bin/python3.11", drop: ["cuda-bindings"] });
  const t0 = Date.now();
  const r = await pythonSource.resolve([["torch==2.14.1"], ["numpy", "pillow"], ["transformers", "safetensors"]], o, ctx);
  const secs = (Date.now() - t0) / 1000;
  assert.ok(secs < 60, `resolve took ${secs} s`);
  const v = new Map(r.packages.map((p) => [p.name, p]));
  assert.equal(v.get("torch")!.version, "2.14.1");
  for (const n of ["numpy", "pillow", "transformers", "safetensors", "triton", "nvidia-cudnn-cu13", "nvidia-cublas", "nvidia-cuda-runtime", "nvidia-nccl-cu13", "cuda-toolkit", "tokenizers", "huggingface-hub"]) {
    assert.ok(v.has(n), `${n} is in the resolution`);
  }
  assert.ok(!v.has("cuda-bindings"), "dropped");
  for (const p of r.packages) if (p.name !== "_venv") assert.match(p.artifact!.sha256!, /^[0-9a-f]{64}$/, p.id);
  assert.ok(v.get("torch")!.deps.includes("py:nvidia-cudnn-cu13"));
  assert.deepEqual(r.roots.map((x) => x.length), [2, 2, 2]);

  // Re-resolving hits the metadata cache in the store.
  const t1 = Date.now();
  const again = await pythonSource.resolve([["torch==2.14.1"], ["numpy", "pillow"], ["transformers", "safetensors"]], o, await makeCtx({ layers: ["torch", "imaging", "hf"], store: ctx.store }));
  assert.deepEqual(again.packages.map((p) => `${p.id}@${p.version}`), r.packages.map((p) => `${p.id}@${p.version}`));
  assert.ok(Date.now() - t1 < 10_000);

  // Install a few small ones, including a namespace-package nvidia wheel.
  for (const name of ["safetensors", "nvidia-nvtx", "typing-extensions"]) {
    const p = v.get(name)!;
    const key = createHash("sha256").update(`${await pythonSource.installKey!(p, o, ctx)}${p.id}${p.artifact!.sha256}`).digest("hex");
    const { tree } = await ctx.store.ensureTree(key, p.id, (w) => pythonSource.install(p, w, o, ctx), pythonSource.treeOptions);
    const site = "opt/venv/lib/python3.11/site-packages";
    const dist = tree.manifest.entries.find((e) => e.path.startsWith(site) && e.path.endsWith(".dist-info/RECORD"));
    assert.ok(dist, `${name} has a RECORD`);
    const record = await readFile(path.join(tree.rootDir, dist!.path), "utf8");
    assert.ok(record.split("\n").length > 3);
    if (name === "nvidia-nvtx") assert.ok(tree.manifest.entries.some((e) => e.path.startsWith(`${site}/nvidia/`)));
  }
});
