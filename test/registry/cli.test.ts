// The push and pull commands end to end (bin/layerfold.mjs), with credentials
// from the environment and --password-stdin; no secret in any output.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startRegistry, hasCommand, type RunningRegistry } from "../helpers/registry.ts";
import { makeImage } from "./image-fixture.ts";
import { readLayoutImages } from "../../src/registry/layout-source.ts";

const BIN = fileURLToPath(new URL("../../bin/layerfold.mjs", import.meta.url));
const skip = !hasCommand("docker-registry") || !hasCommand("htpasswd") ? "docker-registry or htpasswd missing" : false;
const USER = "pusher";
const PASSWORD = "cli-Secret-pw-987654";

let reg: RunningRegistry;
let tmp: string;
before(async () => {
  if (skip) return;
  reg = await startRegistry({ htpasswd: { [USER]: PASSWORD } });
  tmp = await mkdtemp(path.join(os.tmpdir(), "lf-cli-"));
});
after(async () => {
  if (skip) return;
  await reg.stop();
  await rm(tmp, { recursive: true, force: true });
});

function cli(args: string[], env: NodeJS.ProcessEnv, stdin?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, LAYERFOLD_STORE: path.join(tmp, "store"), DOCKER_CONFIG: path.join(tmp, "no-docker-config"), ...env }, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => { stdout += c.toString(); });
    child.stderr.on("data", (c: Buffer) => { stderr += c.toString(); });
    child.stdin.end(stdin ?? "");
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

test("layerfold push --from LAYOUT with env credentials, --json summary; a second push skips everything", { skip }, async () => {
  const layout = path.join(tmp, "layout");
  const image = await makeImage({ dir: layout, layers: [{ files: { a: "a\n" } }, { files: { b: "b\n" } }], tag: "1.2" });
  const env = { LAYERFOLD_REGISTRY_USER: USER, LAYERFOLD_REGISTRY_PASSWORD: PASSWORD };
  const first = await cli(["push", "--from", layout, `${reg.host}/cli/app`, "--json", "--debug"], env);
  assert.equal(first.code, 0, first.stderr);
  const res = JSON.parse(first.stdout) as { digest: string; reference: string; uploadedBytes: number; blobs: Array<{ action: string }> };
  assert.equal(res.digest, image.manifestDescriptor.digest);
  assert.equal(res.reference, `${reg.host}/cli/app:1.2@${image.manifestDescriptor.digest}`, "tag taken from the layout");
  assert.equal(res.blobs.filter((b) => b.action === "uploaded").length, 3);
  assert.ok(first.stderr.includes("debug:"), "debug lines are printed");
  for (const out of [first.stdout, first.stderr]) {
    assert.ok(!out.includes(PASSWORD));
    assert.ok(!out.includes(Buffer.from(`${USER}:${PASSWORD}`).toString("base64")));
  }

  const second = await cli(["push", "--from", layout, `${reg.host}/cli/app:other`], env);
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, /uploaded 0 blobs \(0 B\), skipped 3 already there/);
});

test("layerfold push with a wrong password exits 12 without printing it; pull with --password-stdin", { skip }, async () => {
  const layout = path.join(tmp, "layout2");
  const image = await makeImage({ dir: layout, layers: [{ files: { c: "c\n" } }] });
  const wrong = "Wrong-pw-should-stay-hidden";
  const bad = await cli(["push", "--from", layout, `${reg.host}/cli/bad:t`, "--debug"], { LAYERFOLD_REGISTRY_USER: USER, LAYERFOLD_REGISTRY_PASSWORD: wrong });
  assert.equal(bad.code, 12, bad.stderr);
  assert.match(bad.stderr, /error\[E_REGISTRY\]/);
  assert.ok(!(bad.stdout + bad.stderr).includes(wrong));

  const ok = await cli(["push", "--from", layout, `${reg.host}/cli/good:t`, "-u", USER, "--password-stdin"], {}, PASSWORD + "\n");
  assert.equal(ok.code, 0, ok.stderr);
  const dir = path.join(tmp, "pulled");
  const pulled = await cli(["pull", `${reg.host}/cli/good:t`, dir, "-u", USER, "--password-stdin", "--json"], {}, PASSWORD);
  assert.equal(pulled.code, 0, pulled.stderr);
  assert.equal((JSON.parse(pulled.stdout) as { digest: string }).digest, image.manifestDescriptor.digest);
  const [back] = await readLayoutImages(dir, "t");
  assert.equal(back.manifestDescriptor.digest, image.manifestDescriptor.digest);

  const anon = await cli(["pull", `${reg.host}/cli/good:t`, path.join(tmp, "anon")], {});
  assert.equal(anon.code, 12);
  assert.match(anon.stderr, /wants credentials/);
});
