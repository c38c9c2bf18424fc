// layerfold check on real images: a dynamic program with and without its
// shared library, a layout whose layers share a path, and a Debian Python
// with one distribution that imports and one that does not.

import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { after, before, test } from "node:test";
import tarStream from "tar-stream";
import { runCli, tempDir } from "../helpers/cli.ts";
import { checkImage } from "../../src/runtime/check.ts";
import { openImage } from "../../src/runtime/image.ts";
import { runImage } from "../../src/runtime/run.ts";
import { namespaceProblem } from "../../src/runtime/sandbox.ts";
import { defaultStoreDir, Store } from "../../src/store/store.ts";
import { sha256Hex } from "../../src/util/hash.ts";
import { compileProbe, debianReachable, libImage, pythonImage } from "./images.ts";

const noNs = namespaceProblem();
let tmp: { dir: string; cleanup: () => Promise<void> };
let store: string;
before(async () => {
  tmp = await tempDir("layerfold-check-");
  store = path.join(tmp.dir, "store");
});
after(async () => tmp?.cleanup());

const build = async (dir: string, storeDir = store) => {
  const r = await runCli(["build", "-C", dir, "--store", storeDir, "-o", "none", "-q"]);
  assert.equal(r.code, 0, r.stderr);
};

test("library check passes when every DT_NEEDED resolves, and the program really runs", async () => {
  const dir = await libImage(path.join(tmp.dir, "good"), true);
  await build(dir);
  const s = new Store(store);
  const image = await openImage(s, { image: "layerfold-tests/greet:good" });
  const report = await checkImage(s, image, { imports: false });
  assert.equal(report.ok, true, JSON.stringify(report.libraries?.problems));
  assert.equal(report.libraries!.elfFiles, 4); // greet, libgreet.so, libc.so.6, ld-linux
  assert.equal(report.duplicates!.duplicates.length, 0);
  if (!noNs) {
    const started = await runImage(s, image, { stdio: "pipe" });
    started.stdin!.end();
    let out = "";
    started.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    assert.equal(await started.done, 0);
    assert.equal(out, "hello from libgreet\n");
  }
});

test("library check fails naming the file, its package and the missing library", async () => {
  const dir = await libImage(path.join(tmp.dir, "bad"), false);
  await build(dir);
  const r = await runCli(["check", "-C", dir, "--store", store, "--no-imports"]);
  assert.equal(r.code, 15, r.stdout + r.stderr);
  assert.match(r.stdout, /FAIL  libraries: 1 unresolved in 1 of 3 ELF files/);
  assert.match(r.stderr, /error\[E_CHECK_FAILED\]: check of .* failed: 1 unresolved libraries/);
  assert.match(r.stdout, /\/usr\/bin\/greet \(file:greet\) needs libgreet\.so: not found/);
  assert.match(r.stdout, /^ok    duplication/m);
  assert.match(r.stdout, /^FAILED in/m);
  const j = await runCli(["check", "-C", dir, "--store", store, "--no-imports", "--json"]);
  assert.equal(j.code, 15, "check failed: E_CHECK_FAILED");
  const report = JSON.parse(j.stdout);
  assert.deepEqual(report.libraries.problems.map((p: { file: string; missing: string }) => [p.file, p.missing]), [["/usr/bin/greet", "libgreet.so"]]);
  // Allowed on request.
  const allowed = await runCli(["check", "-C", dir, "--store", store, "--no-imports", "--allow-missing", "libgreet.so*"]);
  assert.equal(allowed.code, 0, allowed.stdout);
});

/** An OCI layout with two gzip layers; the second repeats /etc/dup.txt and whites out /etc/gone.txt. */
async function dupLayout(dir: string): Promise<string> {
  const probe = await compileProbe(path.join(dir, "src"));
  const { readFile } = await import("node:fs/promises");
  const tar = async (files: Array<{ name: string; body?: Buffer | string; mode?: number; type?: "directory" }>) => {
    const pack = tarStream.pack();
    const chunks: Buffer[] = [];
    pack.on("data", (c: unknown) => { chunks.push(c as Buffer); });
    const end = new Promise<void>((r) => pack.on("end", () => r()));
    for (const f of files) pack.entry({ name: f.name, mode: f.mode ?? (f.type ? 0o755 : 0o644), type: f.type ?? "file", mtime: new Date(0) }, f.body as Buffer);
    pack.finalize();
    await end;
    return Buffer.concat(chunks);
  };
  const layout = path.join(dir, "layout");
  await mkdir(path.join(layout, "blobs", "sha256"), { recursive: true });
  const put = async (buf: Buffer) => {
    const hex = sha256Hex(buf);
    await writeFile(path.join(layout, "blobs", "sha256", hex), buf);
    return { digest: `sha256:${hex}`, size: buf.length };
  };
  const l1 = await tar([
    { name: "etc", type: "directory" },
    { name: "etc/dup.txt", body: "lower\n" },
    { name: "etc/gone.txt", body: "gone\n" },
    { name: "usr", type: "directory" },
    { name: "usr/bin", type: "directory" },
    { name: "usr/bin/probe", body: await readFile(probe), mode: 0o755 },
  ]);
  const l2 = await tar([{ name: "etc/dup.txt", body: "upper\n" }, { name: "etc/.wh.gone.txt", body: "" }]);
  const layers = [];
  const diffIds = [];
  for (const t of [l1, l2]) {
    layers.push({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...(await put(gzipSync(t))) });
    diffIds.push(`sha256:${sha256Hex(t)}`);
  }
  const config = await put(Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", config: { Entrypoint: ["/usr/bin/probe"] }, rootfs: { type: "layers", diff_ids: diffIds } })));
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config }, layers }));
  const m = await put(manifest);
  await writeFile(path.join(layout, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", ...m }] }));
  await writeFile(path.join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  return layout;
}

test("duplication audit fails on a path shipped in two layers; run --layout applies whiteouts", async () => {
  const layout = await dupLayout(path.join(tmp.dir, "dup"));
  const r = await runCli(["check", "--layout", layout, "--store", store, "--no-imports"]);
  assert.equal(r.code, 15, r.stdout + r.stderr);
  assert.match(r.stdout, /FAIL  duplication: 1 paths are in more than one layer \(6 B shipped twice\)/);
  assert.match(r.stdout, /\/etc\/dup\.txt  in layers layer 1 [0-9a-f]{12}, layer 2 [0-9a-f]{12}/);
  assert.match(r.stdout, /^ok    libraries: 1 ELF files/m);
  if (noNs) return;
  const up = await runCli(["run", "--store", store, layout, "--", "cat", "/etc/dup.txt"]);
  assert.equal(up.stdout, "upper\n", up.stderr);
  const gone = await runCli(["run", "--store", store, "--layout", layout, "--", "cat", "/etc/gone.txt"]);
  assert.equal(gone.code, 2);
  assert.match(gone.stderr, /No such file or directory/);
});

test("import check: every distribution's top-level modules, each failure with its error", { skip: noNs ?? (await debianReachable()) }, async () => {
  // The user's store, so the Debian indexes and packages already fetched there are reused.
  const shared = process.env.LAYERFOLD_STORE ?? defaultStoreDir();
  const dir = await pythonImage(path.join(tmp.dir, "py"));
  await build(dir, shared);
  const r = await runCli(["check", "-C", dir, "--store", shared, "--json"]);
  assert.equal(r.code, 15, r.stdout + r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.imports.distributions, 2);
  assert.equal(report.imports.imported, 1);
  assert.deepEqual(report.imports.failures.map((f: { module: string; distributions: string[]; error: string }) => [f.module, f.distributions, f.error]), [
    ["bad_mod", ["bad_mod-2.0"]],
  ].map(([m, d]) => [m, d, "ModuleNotFoundError: No module named 'module_that_is_not_installed'"]));
  assert.equal(report.libraries.problems.length, 0, JSON.stringify(report.libraries.problems));
  assert.deepEqual(report.imports.interpreters, { "/usr/bin/python3.11": 2 });
  const skipped = await runCli(["check", "-C", dir, "--store", shared, "--skip-import", "bad_mod", "--no-dups"]);
  assert.equal(skipped.code, 0, skipped.stdout + skipped.stderr);
  assert.match(skipped.stdout, /ok    imports: 1 modules of 2 distributions imported/);
});
