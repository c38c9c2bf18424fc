// The shared layer cache against a real registry: runner A (empty store)
// builds and pushes with --cache; runner B (another empty store) builds zero
// layers and its push uploads zero layer blobs, as the registry-side proxy
// counts. A forged record is detected and the layer rebuilt.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import path from "node:path";
import { after, before, test } from "node:test";
import { helloExample, runCli, tempDir } from "../helpers/cli.ts";
import { hasCommand, startProxy, startRegistry, type RunningProxy, type RunningRegistry } from "../helpers/registry.ts";

const skip = !hasCommand("docker-registry") && "docker-registry not installed";
let tmp: { dir: string; cleanup: () => Promise<void> };
let reg: RunningRegistry;
let proxy: RunningProxy;
let example: string;

before(async () => {
  if (skip) return;
  tmp = await tempDir();
  example = await helloExample(tmp.dir);
  reg = await startRegistry();
  proxy = await startProxy(reg.url);
});
after(async () => {
  if (skip) return;
  await proxy.stop();
  await reg.stop();
  await tmp.cleanup();
});

type Summary = { manifestDigest: string; layers: Array<{ name: string; reused: boolean; cached?: string; digest: string; size: number }> };
const build = async (runner: string, extra: string[] = []) => {
  const r = await runCli(["build", "-C", example, "--store", path.join(tmp.dir, runner), "-o", "none", "--cache", `${proxy.host}/hello-cache`, "--json", ...extra]);
  assert.equal(r.code, 0, r.stderr);
  return { summary: JSON.parse(r.stdout) as Summary, stderr: r.stderr };
};
const push = async (runner: string) => {
  const r = await runCli(["push", "-C", example, "--store", path.join(tmp.dir, runner), `${proxy.host}/hello:1.0`]);
  assert.equal(r.code, 0, r.stderr);
  return r;
};
const layerUploads = (layers: Summary["layers"]) =>
  proxy.requests.filter((r) => (r.method === "PATCH" || r.method === "PUT") && r.bodyBytes > 0 && layers.some((l) => r.bodyBytes === l.size && r.url.includes("blobs"))).length;

test("runner B builds zero layers and uploads zero layer blobs", { skip }, async () => {
  const a = await build("runner-a");
  assert.ok(a.summary.layers.every((l) => !l.reused), "runner A builds everything");
  assert.match(a.stderr, /cache: layer base: not in the cache; building it/);
  proxy.reset();
  await push("runner-a");
  assert.ok(layerUploads(a.summary.layers) <= a.summary.layers.length);

  proxy.reset();
  const b = await build("runner-b");
  assert.equal(b.summary.manifestDigest, a.summary.manifestDigest, "same image");
  assert.deepEqual(b.summary.layers.filter((l) => !l.cached).map((l) => l.name), [], "runner B built no layer");
  assert.equal(proxy.uploadedBytes(), 0, "a cache lookup uploads nothing");
  proxy.reset();
  await push("runner-b");
  const uploads = proxy.requests.filter((r) => (r.method === "PATCH" || r.method === "PUT") && r.url.includes("/blobs/") && r.bodyBytes > 0);
  assert.deepEqual(uploads.map((r) => r.url), [], "runner B's push uploads no blob");
  const info = JSON.parse(execFileSync("skopeo", ["inspect", "--tls-verify=false", `docker://${reg.host}/hello:1.0`], { encoding: "utf8" }));
  assert.equal(info.Digest, a.summary.manifestDigest);
});

test("a forged cache record is detected and the layer rebuilt", { skip }, async () => {
  // Re-tag the record of the "app" layer with one whose blob size lies.
  const a = await build("runner-c");
  const tags = JSON.parse(execFileSync("skopeo", ["list-tags", "--tls-verify=false", `docker://${reg.host}/hello-cache`], { encoding: "utf8" })).Tags as string[];
  assert.ok(tags.length >= a.summary.layers.length);
  const forged = tags[0]!;
  const raw = JSON.parse(execFileSync("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/hello-cache:${forged}`], { encoding: "utf8" }));
  raw.layers[0].size += 1;
  const body = JSON.stringify(raw);
  const res = await fetch(`${reg.url}/v2/hello-cache/manifests/${forged}`, { method: "PUT", headers: { "content-type": raw.mediaType }, body });
  assert.equal(res.status, 201, await res.text());
  const again = await build("runner-d");
  assert.match(again.stderr, /the cached blob is \d+ bytes, the record says \d+|cache record/);
  assert.equal(again.summary.layers.filter((l) => !l.cached).length, 1, "exactly the forged layer is rebuilt");
  assert.equal(again.summary.manifestDigest, a.summary.manifestDigest, "and it comes out the same");
});

test("per-platform builds from two runners merge into one index that skopeo reads per arch", { skip }, async () => {
  for (const [arch, runner] of [["amd64", "runner-x"], ["arm64", "runner-y"]] as const) {
    const r = await runCli(["build", "-C", example, "--store", path.join(tmp.dir, runner), "-o", "none", "--platform", `linux/${arch}`, "--cache", `${reg.host}/hello-cache`, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const p = await runCli(["push", "-C", example, "--store", path.join(tmp.dir, runner), `${reg.host}/multi:1.0-${arch}`]);
    assert.equal(p.code, 0, p.stderr);
  }
  const m = await runCli(["index", "push", `${reg.host}/multi:1.0`, `${reg.host}/multi:1.0-amd64`, `${reg.host}/multi:1.0-arm64`, "--json"]);
  assert.equal(m.code, 0, m.stderr);
  const raw = JSON.parse(execFileSync("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/multi:1.0`], { encoding: "utf8" }));
  assert.equal(raw.mediaType, "application/vnd.oci.image.index.v1+json");
  assert.deepEqual(raw.manifests.map((d: { platform: { architecture: string } }) => d.platform.architecture).sort(), ["amd64", "arm64"]);
  for (const arch of ["amd64", "arm64"]) {
    const info = JSON.parse(execFileSync("skopeo", ["inspect", "--tls-verify=false", "--override-arch", arch, `docker://${reg.host}/multi:1.0`], { encoding: "utf8" }));
    assert.equal(info.Architecture, arch);
  }  // Two images of one platform: both are named.
  const again = await runCli(["push", "-C", example, "--store", path.join(tmp.dir, "runner-x"), `${reg.host}/multi:1.0-other`]);
  assert.equal(again.code, 0, again.stderr);
  const dup = await runCli(["index", "push", `${reg.host}/multi:dup`, `${reg.host}/multi:1.0-amd64`, `${reg.host}/multi:1.0-other`]);
  assert.equal(dup.code, 2, dup.stderr);
  assert.match(dup.stderr, new RegExp(`error\\[E_USAGE\\]: ${reg.host}/multi:1\\.0-amd64 and ${reg.host}/multi:1\\.0-other are both linux/amd64 images`));
});

test("an unreachable cache is said once and the build goes on without it", { skip }, async () => {
  const r = await runCli(["build", "-C", example, "--store", path.join(tmp.dir, "runner-z"), "-o", "none", "--cache", "127.0.0.1:9/nowhere-cache", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr.match(/unreachable/g)?.length, 1, r.stderr);
  assert.match(r.stderr, /cache 127\.0\.0\.1:9\/nowhere-cache unreachable .*; building without it/);
  assert.ok(JSON.parse(r.stdout).layers.every((l: { cached?: string }) => !l.cached));
});

test("zstd:chunked layers come from the cache with their TOC annotations: the same manifest", { skip }, async () => {
  const a = await build("runner-chunked-a", ["--compression", "zstd:chunked"]);
  assert.ok(a.summary.layers.every((l) => !l.cached), "runner A builds everything");
  const b = await build("runner-chunked-b", ["--compression", "zstd:chunked"]);
  assert.deepEqual(b.summary.layers.filter((l) => !l.cached).map((l) => l.name), [], "runner B built no layer");
  // The manifest holds each layer's zstd:chunked annotations: equal digests mean they came through.
  assert.equal(b.summary.manifestDigest, a.summary.manifestDigest);
  const chunked = (b.summary.layers as Array<{ chunked?: { toc: string } }>).filter((l) => l.chunked?.toc.startsWith("sha256:"));
  assert.equal(chunked.length, b.summary.layers.length, "every cached layer says it is zstd:chunked");
});
