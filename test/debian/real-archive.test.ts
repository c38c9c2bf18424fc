// Against the real Debian archive (bookworm + security), when reachable:
// resolve and install python3.11 into an image, then run it in podman.
// The store is kept between runs (LAYERFOLD_TEST_DEBIAN_STORE, or a fixed
// temp dir) so indexes and .debs are fetched once, by their signed hashes.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { request } from "undici";
import { build } from "../../src/pipeline/build.ts";
import { Store } from "../../src/store/store.ts";
import { silentLogger } from "../../src/util/log.ts";
import { havePodman, podman } from "../helpers/engine.ts";
import { repoRoot, runCli, tempDir } from "../helpers/cli.ts";

const ARCHIVE = "http://deb.debian.org/debian";
const KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg";

async function unreachable(): Promise<string | undefined> {
  if (process.env.LAYERFOLD_TEST_OFFLINE) return "LAYERFOLD_TEST_OFFLINE is set";
  try {
    await readFile(KEYRING);
  } catch {
    return `${KEYRING} is missing (apt-get install debian-archive-keyring)`;
  }
  try {
    const res = await request(`${ARCHIVE}/dists/bookworm/Release`, { method: "HEAD", headersTimeout: 5000, bodyTimeout: 5000 });
    res.body.resume();
    if (res.statusCode !== 200) return `${ARCHIVE} answered HTTP ${res.statusCode}`;
  } catch (err) {
    return `${ARCHIVE} is unreachable (${(err as Error).message})`;
  }
  return undefined;
}

const why = await unreachable();
if (why) console.log(`# skipping the real Debian archive test: ${why}`);

test("bookworm: python3.11 resolves, installs and runs ssl + sqlite3 in podman", { skip: why ? `skipped: ${why}` : false, timeout: 15 * 60_000 }, async () => {
  const storeDir = process.env.LAYERFOLD_TEST_DEBIAN_STORE ?? path.join(os.tmpdir(), "layerfold-test-debian-store");
  await mkdir(storeDir, { recursive: true });
  const store = new Store(storeDir);
  const tmp = await tempDir("layerfold-debreal-");
  try {
    await writeFile(path.join(tmp.dir, "layerfold.config.ts"), `export default {
  name: "layerfold-test/python311",
  debian: {
    sources: [
      "deb [signed-by=${KEYRING}] ${ARCHIVE} bookworm main",
      "deb ${ARCHIVE.replace("/debian", "/debian-security")} bookworm-security main",
    ],
  },
  layers: [
    { name: "base", debian: { packages: ["usr-is-merged"], essential: true } },
    { name: "python", debian: ["python3.11"] },
  ],
};
`);
    const pm = havePodman() ? await podman() : undefined;
    const out = pm ? path.join(pm.root, "layout") : path.join(tmp.dir, "out");
    try {
      const r = await build({ dir: tmp.dir, store, output: `oci:${out}`, log: silentLogger });
      const lock = JSON.parse(await readFile(path.join(tmp.dir, "layerfold.lock"), "utf8")) as { packages: { id: string; version: string; artifact?: { sha256?: string } }[] };
      const py = lock.packages.find((p) => p.id === "deb:python3.11");
      assert.ok(py, "python3.11 is locked");
      assert.match(py!.version, /^3\.11\./);
      assert.match(py!.artifact!.sha256!, /^[0-9a-f]{64}$/);
      for (const id of ["deb:libc6", "deb:libssl3", "deb:libsqlite3-0", "deb:bash", "deb:dpkg"]) assert.ok(lock.packages.some((p) => p.id === id), `${id} is in the lock`);
      assert.deepEqual(r.layers.map((l) => l.name), ["base", "python", "generated"]);
      if (!pm) return;
      const run = await pm.exec(["run", "--rm", "--network", "none", `oci:${out}`, "python3.11", "-c", "import ssl, sqlite3; print('ok', sqlite3.sqlite_version)"]);
      assert.match(run.stdout, /^ok 3\./);
      const dpkg = await pm.exec(["run", "--rm", "--network", "none", `oci:${out}`, "sh", "-c", "dpkg-query -W -f '${db:Status-Abbrev}${Package}\\n' | grep -c '^ii '"]);
      assert.equal(Number(dpkg.stdout.trim()), lock.packages.filter((p) => p.id.startsWith("deb:") && p.id !== "deb:layerfold-merged-usr").length, "dpkg lists every installed package");
    } finally {
      await pm?.cleanup();
    }
  } finally {
    await tmp.cleanup();
  }
});

// An example the README says builds must build --frozen: when the archive drops a locked
// version (it did: linux-libc-dev 6.1.192-2), this fails, naming the package and the fix.
test("examples/debian-tools: its lock is current with the archive (lock --check)", { skip: why ? `skipped: ${why}` : false, timeout: 5 * 60_000 }, async () => {
  const storeDir = process.env.LAYERFOLD_TEST_DEBIAN_STORE ?? path.join(os.tmpdir(), "layerfold-test-debian-store");
  const r = await runCli(["lock", "--check", "-q", "-C", path.join(repoRoot, "examples", "debian-tools"), "--store", storeDir]);
  assert.equal(r.code, 0, `examples/debian-tools/layerfold.lock is stale; run the command below and commit the lock:\n${r.stderr}`);
});
