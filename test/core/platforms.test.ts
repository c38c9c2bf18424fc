// Builds of one tag for two platforms in one store: every command that reads a build
// must be told which (--platform), instead of acting on whichever was built last.

import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { repoRoot, runCli, tempDir } from "../helpers/cli.ts";

let tmp: { dir: string; cleanup: () => Promise<void> };
let at: string[];
const digests: Record<string, string> = {};

before(async () => {
  tmp = await tempDir();
  const dir = path.join(tmp.dir, "img");
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, "layerfold.config.ts"), `import { defineImage } from ${JSON.stringify(path.join(repoRoot, "src", "index.ts"))};\nexport default defineImage({ name: "t/multi", tag: "1.0", layers: [{ name: "a", inline: [{ path: "/etc/a", text: "a" }] }] });\n`);
  at = ["-C", dir, "--store", path.join(tmp.dir, "store")];
  for (const p of ["linux/amd64", "linux/arm64"]) {
    const r = await runCli(["build", ...at, "-o", "none", "--platform", p, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    digests[p] = (JSON.parse(r.stdout) as { manifestDigest: string }).manifestDigest;
  }
  assert.notEqual(digests["linux/amd64"], digests["linux/arm64"]);
});
after(async () => tmp?.cleanup());

test("without --platform, a command reading the build lists the platforms and stops (push before any upload)", async () => {
  for (const cmd of [["inspect"], ["why", "inline:/etc/a"], ["sbom"], ["report", "-o", path.join(tmp.dir, "r.html")], ["push", "127.0.0.1:9/t/multi:1.0"], ["check", "--no-imports", "--no-libs"]]) {
    const r = await runCli([...cmd, ...at]);
    assert.equal(r.code, 2, `${cmd[0]}: ${r.stderr}`);
    assert.match(r.stderr, /error\[E_USAGE\]: the store holds builds of t\/multi:1\.0 for linux\/amd64 and linux\/arm64; say which with --platform/, cmd[0]);
  }
});

test("--platform picks that build; a platform the store lacks is E_NOT_FOUND naming those it has", async () => {
  for (const p of ["linux/amd64", "linux/arm64"]) {
    const r = await runCli(["inspect", ...at, "--platform", p, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { manifestDigest: string }).manifestDigest, digests[p], p);
  }
  const missing = await runCli(["inspect", ...at, "--platform", "linux/s390x"]);
  assert.equal(missing.code, 14, missing.stderr);
  assert.match(missing.stderr, /error\[E_NOT_FOUND\]: no linux\/s390x build of t\/multi:1\.0 in the store .* \(it has linux\/amd64, linux\/arm64\)/);
  // A build named by its digest needs no platform.
  const byDigest = await runCli(["why", "inline:/etc/a", "--store", at[3]!, "--image", digests["linux/arm64"]!, "--json"]);
  assert.equal(byDigest.code, 0, byDigest.stderr);
});
