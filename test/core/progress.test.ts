// Downloads show progress: a redrawn line on a terminal, plain lines in CI logs.

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createReadStream, statSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { test } from "node:test";
import type { Logger } from "../../src/util/log.ts";
import { Transfers } from "../../src/util/progress.ts";
import { cliPath, repoRoot, runCli, tempDir } from "../helpers/cli.ts";

function recorder(tty: boolean) {
  const lines: string[] = [];
  const drawn: string[] = [];
  const log: Logger = { tty, info: (m) => lines.push(m), warn() {}, debug() {}, progress: (id, m) => drawn.push(`${id}: ${m}`) };
  return { log, lines, drawn };
}

test("on a terminal: one redrawn line with files in flight, bytes, rate and the biggest file's share", () => {
  const t = new Transfers();
  const r = recorder(true);
  t.attach(r.log);
  const a = t.start("wheel torch-2.14.1-cp311-cp311-linux_x86_64.whl");
  a.update(1 << 20, 4 << 20);
  assert.equal(r.drawn.length, 1);
  assert.match(r.drawn[0]!, /^download: 1 file, 1\.0 MiB at [\d.]+ \w?i?B\/s; wheel torch-2\.14\.1-cp311-cp311-linux_x86_64\.whl 25%$/);
  a.update(2 << 20, 4 << 20); // within 250 ms of the last draw: not redrawn
  assert.equal(r.drawn.length, 1);
  a.done();
  assert.deepEqual(r.lines, [], "no plain lines on a terminal");
});

test("in CI: a line when a big download ends, none for small ones", () => {
  const t = new Transfers();
  const r = recorder(false);
  t.attach(r.log);
  const small = t.start("small.deb");
  small.update(1000);
  small.done();
  const big = t.start("blob big");
  big.update(40 << 20, 40 << 20);
  big.done();
  assert.equal(r.lines.length, 1, r.lines.join("\n"));
  assert.match(r.lines[0]!, /^downloaded blob big: 40\.0 MiB in [\d.]+s \([\d.]+ \w?i?B\/s\)$/);
  assert.deepEqual(r.drawn, []);
});

test("a build that downloads a big archive says so: a line in a log, a progress line on a terminal", async () => {
  const { dir, cleanup } = await tempDir();
  const server = http.createServer((req, res) => {
    const file = path.join(dir, "big.tar.gz");
    res.writeHead(200, { "content-length": statSync(file).size });
    createReadStream(file).pipe(res);
  });
  try {
    execFileSync("python3", ["-c", "import tarfile, io, os\nwith tarfile.open('big.tar.gz', 'w:gz') as t:\n    d = os.urandom(40 << 20); i = tarfile.TarInfo('data'); i.size = len(d); t.addfile(i, io.BytesIO(d))"], { cwd: dir });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/big.tar.gz`;
    await writeFile(path.join(dir, "layerfold.config.ts"), `import { defineImage } from ${JSON.stringify(path.join(repoRoot, "src", "index.ts"))};\nexport default defineImage({ name: "t/progress", layers: [{ name: "a", archives: [{ url: ${JSON.stringify(url)}, dest: "/opt" }] }] });\n`);
    const plain = await runCli(["lock", "-C", dir, "--store", path.join(dir, "store-1")]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /^downloaded archive .*big.*: 40\.\d MiB in [\d.]+s/m);
    // Under a pseudo-terminal (script(1)), the same download draws its progress line.
    await rm(path.join(dir, "layerfold.lock"));
    // (Not spawnSync: this process serves the download.)
    const pty = await new Promise<{ status: number | null; stdout: string }>((resolve, reject) => {
      const child = spawn("script", ["-qec", `${process.execPath} ${cliPath} lock -C ${dir} --store ${path.join(dir, "store-2")}`, "/dev/null"]);
      let stdout = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.on("error", reject);
      child.on("close", (status) => resolve({ status, stdout }));
    });
    assert.equal(pty.status, 0, pty.stdout);
    assert.match(pty.stdout, /\r\x1b\[Kdownload: 1 file, [\d.]+ \w?i?B at [\d.]+ \w?i?B\/s; archive .*big/);
    assert.doesNotMatch(pty.stdout, /^downloaded archive/m, "no plain line on a terminal");
  } finally {
    server.close();
    await cleanup();
  }
});
