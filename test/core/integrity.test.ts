// Nothing lost, nothing bad published (issue 16), on examples/hello end to end:
// an output never replaces a directory layerfold did not write; a damaged store
// blob is never reused, exported or pushed, and is rebuilt with one line saying
// so; outputs are copies, not hard links into the store.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { appendFile, mkdir, open, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { Store } from "../../src/store/store.ts";
import { helloExample, repoRoot, runCli, tempDir } from "../helpers/cli.ts";
import { hasCommand, startRegistry, type RunningRegistry } from "../helpers/registry.ts";
import { makeImage } from "../registry/image-fixture.ts";

let tmp: { dir: string; cleanup: () => Promise<void> };
let example: string;
before(async () => {
  tmp = await tempDir();
  example = await helloExample(tmp.dir);
});
after(async () => tmp.cleanup());

interface BuildJson { manifestDigest: string; layers: Array<{ name: string; reused: boolean; digest: string }> }
const storeDir = (name: string) => path.join(tmp.dir, name);
const build = (store: string, output: string) => runCli(["build", "-C", example, "--store", storeDir(store), "-o", output, "--json"]);
const buildOk = async (store: string, output: string): Promise<BuildJson & { stderr: string }> => {
  const r = await build(store, output);
  assert.equal(r.code, 0, r.stderr);
  return { ...(JSON.parse(r.stdout) as BuildJson), stderr: r.stderr };
};
const sha256File = async (file: string) => createHash("sha256").update(await readFile(file)).digest("hex");
const blobFile = (store: string, digest: string) => path.join(storeDir(store), "blobs", "sha256", digest.slice(7));

/** Flip one byte in the middle of a file, in place (as a bad disk or a stray write would). */
async function flipByte(file: string): Promise<void> {
  const fh = await open(file, "r+");
  try {
    const { size } = await fh.stat();
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, Math.floor(size / 2));
    b[0] = b[0]! ^ 0xff;
    await fh.write(b, 0, 1, Math.floor(size / 2));
  } finally {
    await fh.close();
  }
}

/** The biggest layer of a build (the one most worth damaging). */
const biggest = async (store: string, r: BuildJson) => {
  let best = r.layers[0]!;
  for (const l of r.layers) if ((await stat(blobFile(store, l.digest))).size > (await stat(blobFile(store, best.digest))).size) best = l;
  return best;
};

test("build -o oci:DIR refuses a non-empty directory that is not an OCI layout, and touches nothing in it", async () => {
  const project = path.join(tmp.dir, "project");
  await mkdir(path.join(project, "src"), { recursive: true });
  await writeFile(path.join(project, "README.md"), "my notes\n");
  const r = await build("store-o", `oci:${project}`);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`${project.replace(/[/.]/g, "\\$&")} is not empty and is not an OCI layout \\(it holds README\\.md, src\\)`));
  assert.equal(await readFile(path.join(project, "README.md"), "utf8"), "my notes\n");
  assert.deepEqual((await readdir(project)).sort(), ["README.md", "src"]);
  // Refused before any work: nothing was built.
  assert.doesNotMatch(r.stderr, /layer 1\//);
  // A file where the layout would go is refused too.
  const r2 = await build("store-o", `oci:${path.join(project, "README.md")}`);
  assert.equal(r2.code, 2);
  assert.match(r2.stderr, /README\.md exists and is not a directory/);
  assert.equal(await readFile(path.join(project, "README.md"), "utf8"), "my notes\n");
});

test("an OCI layout, and an empty directory, are replaced whole", async () => {
  const out = path.join(tmp.dir, "out-replace");
  await mkdir(out);
  const a = await buildOk("store-o", `oci:${out}`);
  const b = await buildOk("store-o", `oci:${out}`);
  assert.equal(a.manifestDigest, b.manifestDigest);
  assert.deepEqual((await readdir(out)).sort(), ["blobs", "index.json", "oci-layout"]);
  // No temp or old directory left beside it.
  assert.deepEqual((await readdir(tmp.dir)).filter((n) => n.includes("out-replace")), ["out-replace"]);
});

test("an OCI layout holding several images is refused, not replaced (the others would be lost)", async () => {
  const out = path.join(tmp.dir, "out-shared");
  await buildOk("store-o", `oci:${out}`);
  // Another tool added a second image to the layout (as skopeo copy oci:DIR:TAG does).
  const indexFile = path.join(out, "index.json");
  const index = JSON.parse(await readFile(indexFile, "utf8")) as { manifests: Array<{ annotations?: Record<string, string> }> };
  index.manifests.push({ ...index.manifests[0]!, annotations: { "org.opencontainers.image.ref.name": "other-tag" } });
  await writeFile(indexFile, JSON.stringify(index));
  const before = await readFile(indexFile, "utf8");
  const r = await build("store-o", `oci:${out}`);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /is an OCI layout holding 2 images \(.*other-tag\); layerfold replaces a layout whole/);
  assert.equal(await readFile(indexFile, "utf8"), before, "the layout is untouched");
});

test("OCI outputs are copies: a write to the output does not reach the store", async () => {
  const out = path.join(tmp.dir, "out-copy");
  const r = await buildOk("store-c", `oci:${out}`);
  const l = r.layers[0]!;
  const outBlob = path.join(out, "blobs", "sha256", l.digest.slice(7));
  assert.equal((await stat(outBlob)).nlink, 1, "not a hard link");
  assert.equal((await stat(blobFile("store-c", l.digest))).nlink, 1);
  await appendFile(outBlob, "junk");
  assert.equal(await sha256File(blobFile("store-c", l.digest)), l.digest.slice(7));
  const again = await buildOk("store-c", "none");
  assert.ok(again.layers.every((x) => x.reused));
});

test("a damaged layer blob is not reused: it is rebuilt with one line saying so", async () => {
  const first = await buildOk("store-d", "none");
  const victim = await biggest("store-d", first);
  await flipByte(blobFile("store-d", victim.digest));
  const again = await buildOk("store-d", `oci:${tmp.dir}/out-d`);
  const lines = again.stderr.split("\n").filter((s) => s.includes("damaged"));
  assert.equal(lines.length, 1, again.stderr);
  assert.match(lines[0]!, new RegExp(`layer ${victim.name}: the stored blob ${victim.digest.slice(7, 19)} is damaged .*building it again`));
  assert.equal(again.manifestDigest, first.manifestDigest, "rebuilt to the same bytes");
  assert.equal(again.layers.find((l) => l.name === victim.name)!.reused, false);
  assert.equal(await sha256File(blobFile("store-d", victim.digest)), victim.digest.slice(7));
  for (const l of again.layers) assert.equal(await sha256File(path.join(tmp.dir, "out-d", "blobs", "sha256", l.digest.slice(7))), l.digest.slice(7));
});

test("a blob damaged without a trace in its stat (bit rot) is caught by the hash of every export, never shipped", async () => {
  const first = await buildOk("store-r", "none");
  const victim = await biggest("store-r", first);
  const file = blobFile("store-r", victim.digest);
  // Damage it, then record its new stat as if it had been written so: only a full hash can tell.
  await flipByte(file);
  new Store(storeDir("store-r")).recordBlob(victim.digest.slice(7));
  for (const output of [`oci:${tmp.dir}/out-r`, `oci-archive:${tmp.dir}/r.oci.tar`, `docker-archive:${tmp.dir}/r.docker.tar`]) {
    const r = await build("store-r", output);
    assert.equal(r.code, 10, `${output}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`blob sha256:${victim.digest.slice(7)} is damaged`));
    assert.doesNotMatch(r.stderr, /EPIPE/);
    await assert.rejects(stat(output.slice(output.indexOf(":") + 1)), "nothing written");
    // The damaged blob was removed: the next build rebuilds it. Damage it again for the next output.
    const fixed = await buildOk("store-r", "none");
    assert.equal(fixed.layers.find((l) => l.name === victim.name)!.reused, false);
    await flipByte(file);
    new Store(storeDir("store-r")).recordBlob(victim.digest.slice(7));
  }
});

test("check on a damaged layer blob says which layer, and no bare EPIPE", async () => {
  const first = await buildOk("store-k", "none");
  const victim = await biggest("store-k", first);
  await flipByte(blobFile("store-k", victim.digest));
  const r = await runCli(["check", "-C", example, "--store", storeDir("store-k"), "--no-imports", "--no-libs"]);
  assert.equal(r.code, 10, r.stderr + r.stdout);
  assert.match(r.stderr, new RegExp(`the blob of layer ${victim.name} \\(${victim.digest}\\) is damaged`));
  assert.doesNotMatch(r.stderr, /EPIPE/);
});

const skipRegistry = !hasCommand("docker-registry") && "docker-registry not installed";
let reg: RunningRegistry | undefined;
after(async () => reg?.stop());

test("push refuses a damaged blob before sending anything; pull REF . refuses a project directory; pull over a layout works and re-fetches a damaged stored blob", { skip: skipRegistry }, async () => {
  reg = await startRegistry();
  const ref = `${reg.host}/hello/integrity:1.0`;
  const first = await buildOk("store-p", "none");
  const victim = await biggest("store-p", first);
  await flipByte(blobFile("store-p", victim.digest));
  const push = await runCli(["push", ref, "-C", example, "--store", storeDir("store-p")]);
  assert.equal(push.code, 10, push.stderr);
  assert.match(push.stderr, new RegExp(`layer ${victim.name} \\(${victim.digest}\\) is damaged.*run \`layerfold build\``));
  await buildOk("store-p", "none");
  const pushed = await runCli(["push", ref, "-C", example, "--store", storeDir("store-p")]);
  assert.equal(pushed.code, 0, pushed.stderr);

  // pull into the current directory of a project: refused, nothing touched.
  const project = path.join(tmp.dir, "pull-project");
  await mkdir(project);
  await writeFile(path.join(project, "layerfold.config.ts"), "// mine\n");
  const pull = await runCli(["pull", ref, ".", "--store", storeDir("store-p")], { cwd: project });
  assert.equal(pull.code, 2, pull.stderr);
  assert.match(pull.stderr, new RegExp(`${project.replace(/[/.]/g, "\\$&")} is not empty and is not an OCI layout \\(it holds layerfold\\.config\\.ts\\)`));
  assert.deepEqual(await readdir(project), ["layerfold.config.ts"]);

  // Pulled into a layout twice (replaced), with the store's copy of a layer damaged in between: fetched again.
  const layout = path.join(tmp.dir, "pulled");
  const p1 = await runCli(["pull", ref, layout, "--store", storeDir("store-p")]);
  assert.equal(p1.code, 0, p1.stderr);
  await flipByte(blobFile("store-p", victim.digest));
  new Store(storeDir("store-p")).recordBlob(victim.digest.slice(7));
  const p2 = await runCli(["pull", ref, layout, "--store", storeDir("store-p")]);
  assert.equal(p2.code, 0, p2.stderr);
  assert.match(p2.stderr, new RegExp(`damaged +${victim.digest.slice(7, 19)}: the store's copy does not match its digest; removed, pulling it again`));
  assert.equal(await sha256File(path.join(layout, "blobs", "sha256", victim.digest.slice(7))), victim.digest.slice(7));
  assert.equal(await sha256File(blobFile("store-p", victim.digest)), victim.digest.slice(7), "the store holds the good copy again");
});

test("a path under a lower layer's symlink is a path conflict at plan time (exit 5), naming both packages and layers and the real path", async () => {
  const dir = path.join(tmp.dir, "merged-usr");
  await mkdir(path.join(dir, "root", "usr", "bin"), { recursive: true });
  await symlink("usr/bin", path.join(dir, "root", "bin"));
  await writeFile(path.join(dir, "root", "usr", "bin", "sh"), "#!/bin/sh\n");
  await writeFile(path.join(dir, "layerfold.config.ts"), `import { defineImage } from ${JSON.stringify(path.join(repoRoot, "src", "index.ts"))};
export default defineImage({
  name: "t/merged-usr", tag: "1",
  layers: [
    { name: "base", files: [{ src: "./root", dest: "/", name: "usr-is-merged" }] },
    { name: "tools", inline: [{ path: "/bin/mytool", text: "#!/bin/sh\\necho hi\\n", mode: 0o755 }] },
  ],
});
`);
  const r = await runCli(["build", "-C", dir, "--store", storeDir("store-m"), "-o", "none"]);
  assert.equal(r.code, 5, r.stderr);
  // The build failed: it left no layerfold.lock behind.
  assert.doesNotMatch(r.stdout + r.stderr, /lock: wrote/);
  await assert.rejects(stat(path.join(dir, "layerfold.lock")), /ENOENT/);
  assert.match(r.stderr, /error\[E_PATH_CONFLICT\]: \/bin\/mytool \(inline:\/bin\/mytool, layer tools\) lies under \/bin, which is a symlink to usr\/bin in file:usr-is-merged \(layer base\)\..* Put it at the real path \/usr\/bin\/mytool instead\./);
});

test("check fails on an image whose layer puts a directory over a lower layer's symlink (what podman shows: /bin holding only mytool)", async () => {
  const layout = path.join(tmp.dir, "shadowed-layout");
  await makeImage({ dir: layout, tag: "1", layers: [{ files: { bin: { symlink: "usr/bin" }, "usr/bin/sh": "#!/bin/sh\n" } }, { files: { "bin/mytool": "#!/bin/sh\n" } }] });
  const r = await runCli(["check", "--layout", layout, "--store", storeDir("store-m"), "--no-imports", "--no-libs"]);
  assert.equal(r.code, 15, r.stdout + r.stderr);
  assert.match(r.stdout, /FAIL  paths: 1 paths lie under a symlink or file of another layer, or hide one/);
  assert.match(r.stdout, /\/bin: a directory in layer 2 [0-9a-f]{12} replaces the symlink to usr\/bin of layer 1 [0-9a-f]{12}, hiding what was there/);
  assert.match(r.stderr, /1 paths under a symlink or file of another layer/);
});

test("a build writes layerfold.lock once the image is built; an output that fails after that says the lock was updated", async () => {
  const dir = path.join(tmp.dir, "lock-late");
  await mkdir(dir);
  await writeFile(path.join(dir, "layerfold.config.ts"), `import { defineImage } from ${JSON.stringify(path.join(repoRoot, "src", "index.ts"))};
export default defineImage({ name: "t/lock-late", tag: "1", layers: [{ name: "one", inline: [{ path: "/etc/motd", text: "hi\\n" }] }] });
`);
  await writeFile(path.join(dir, "not-a-dir"), "x");
  const r = await runCli(["build", "-C", dir, "--store", storeDir("store-l"), "-o", `oci-archive:${path.join(dir, "not-a-dir", "out.tar")}`]);
  assert.notEqual(r.code, 0);
  assert.match(r.stdout + r.stderr, /lock: wrote .*layerfold\.lock/);
  assert.match(r.stderr, new RegExp(`\\(the image was built, so ${path.join(dir, "layerfold.lock").replace(/[/.]/g, "\\$&")} was updated before the output failed\\)`));
  await stat(path.join(dir, "layerfold.lock"));
});

test("a damaged artifact in the store (the vendored archive) is fetched again when a tree is installed from it", async () => {
  const first = await buildOk("store-a", "none");
  // The archive's bytes, by the sha256 the config pins; its tree removed so it must be installed again.
  const archive = "253b1bfa78273bd549810b018771fe17921803b14e88428f369ca8414354a997";
  const file = path.join(storeDir("store-a"), "blobs", "sha256", archive);
  await flipByte(file);
  await rm(path.join(storeDir("store-a"), "trees"), { recursive: true, force: true });
  await rm(path.join(storeDir("store-a"), "layers"), { recursive: true, force: true });
  const again = await buildOk("store-a", "none");
  assert.equal(again.manifestDigest, first.manifestDigest);
  assert.equal(await sha256File(file), archive, "the store holds the good bytes again");
});
