// Load into podman's Docker-compatible API, then `docker run` the image.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startPodmanService, podmanAvailable, type RunningPodman } from "../helpers/podman.ts";
import { hasCommand } from "../helpers/registry.ts";
import { makeImage, shellLayerFiles } from "../registry/image-fixture.ts";
import { loadImage, findEngine } from "../../src/docker/load.ts";

const skip = !podmanAvailable() || !hasCommand("docker") ? "podman, runc or the docker CLI not installed" : false;

let pod: RunningPodman;
let tmp: string;
before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "lf-load-"));
  if (!skip) pod = await startPodmanService();
});
after(async () => {
  if (!skip) await pod?.stop();
  await rm(tmp, { recursive: true, force: true });
});

test("load streams a docker-archive to the Engine API; docker run prints from the image", { skip }, async () => {
  const image = await makeImage({
    dir: path.join(tmp, "img"),
    name: "lf-test/shell",
    tag: "v1",
    layers: [{ files: shellLayerFiles() }, { files: { "etc/greeting": "hello from layerfold\n" } }],
    cmd: ["/bin/sh", "-c", "read x < /etc/greeting; echo \"$x\""],
  });
  const res = await loadImage(image, { dockerHost: pod.dockerHost });
  assert.equal(res.via, "api");
  assert.ok(res.messages.some((m) => /Loaded image/.test(m) && m.includes("lf-test/shell:v1")), res.messages.join("\n"));
  assert.ok(res.bytes > 0);
  const { stdout } = await pod.docker(["run", "--rm", "--network", "none", "lf-test/shell:v1"]);
  assert.equal(stdout.trim(), "hello from layerfold");
  const inspect = JSON.parse((await pod.docker(["image", "inspect", "lf-test/shell:v1"])).stdout) as Array<{ RootFS: { Layers: string[] } }>;
  assert.deepEqual(inspect[0].RootFS.Layers, image.layers.map((l) => l.diffId));
});

test("load falls back to piping into the docker CLI", { skip }, async () => {
  const image = await makeImage({
    dir: path.join(tmp, "img2"),
    name: "lf-test/cli",
    tag: "v2",
    layers: [{ files: shellLayerFiles() }],
    cmd: ["/bin/sh", "-c", "echo via-cli"],
  });
  const res = await loadImage(image, { via: "cli", env: pod.env });
  assert.equal(res.via, "cli");
  const { stdout } = await pod.docker(["run", "--rm", "--network", "none", "lf-test/cli:v2"]);
  assert.equal(stdout.trim(), "via-cli");
});

test("a DOCKER_HOST socket that is not there gives a typed error that names it", async () => {
  const image = await makeImage({ dir: path.join(tmp, "img3"), layers: [{ files: { a: "a" } }] });
  const sock = path.join(tmp, "nope.sock");
  await assert.rejects(loadImage(image, { env: { DOCKER_HOST: `unix://${sock}`, PATH: "" } }), (err: Error & { code?: string }) => {
    assert.equal(err.code, "E_NETWORK");
    assert.ok(err.message.includes(sock), err.message);
    return true;
  });
  await assert.rejects(findEngine({ env: { DOCKER_HOST: "ssh://host" } }), /not supported/);
});

test("layerfold load --from LAYOUT -t NAME:TAG (the command, end to end)", { skip }, async () => {
  const layout = path.join(tmp, "layout-cli");
  await makeImage({ dir: layout, layers: [{ files: shellLayerFiles() }], cmd: ["/bin/sh", "-c", "echo from-cli-load"], tag: "x" });
  const { execFile } = await import("node:child_process");
  const { promisify } = await import("node:util");
  const bin = new URL("../../bin/layerfold.mjs", import.meta.url).pathname;
  const { stdout } = await promisify(execFile)(process.execPath, [bin, "load", "--from", layout, "-t", "lf-test/loaded:cli"], { env: pod.env });
  assert.match(stdout, /Loaded image/);
  const run = await pod.docker(["run", "--rm", "--network", "none", "lf-test/loaded:cli"]);
  assert.equal(run.stdout.trim(), "from-cli-load");
});

test("layerfold build --load builds examples/hello and loads it; docker run runs it", { skip: skip || (!hasCommand("gcc") && "gcc missing") }, async () => {
  const { helloExample, runCli } = await import("../helpers/cli.ts");
  const dir = await helloExample(path.join(tmp, "hello"));
  const r = await runCli(["build", "-C", dir, "--store", path.join(tmp, "store"), "-o", "none", "--load"], { env: pod.env });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Loaded image: .*layerfold-examples\/hello:1\.0/);
  const { stdout } = await pod.docker(["run", "--rm", "--network", "none", "layerfold-examples/hello:1.0"]);
  assert.match(stdout, /hello from layerfold/);
});
