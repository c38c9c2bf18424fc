// A private PEP 503 index on loopback that wants Basic auth on every request.
// Credentials are used the way pip uses them (user:password in the index URL,
// else ~/.netrc or $NETRC for the host), and the password never shows up in a
// message, --debug output, the lock, the SBOM, the report or the store.

import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createHash } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { pythonSource, pythonOptionsSchema } from "../../src/sources/python/index.ts";
import { authorizationFor, credentialHint, forgetHttpCredentials, parseNetrc, takeUrlCredentials } from "../../src/fetch/http-auth.ts";
import { redact } from "../../src/util/redact.ts";
import type { LockedPackage } from "../../src/sources/types.ts";
import { makeCtx } from "./helpers/ctx.ts";
import { serveIndex, type IndexServer, type WheelSpec } from "./helpers/wheels.ts";
import { repoRoot, runCli } from "../helpers/cli.ts";

const USER = "idx-user";
const PASSWORD = "idx-Pa55@word/never-shown";
const ENCODED = encodeURIComponent(PASSWORD);
const WHEELS: WheelSpec[] = [{ name: "lib", version: "1.0", requires: ["dep"] }, { name: "dep", version: "2.0" }];

let dir: string;
let server: IndexServer;
let host: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "lf-pyauth-"));
  server = await serveIndex(dir, WHEELS, { basicAuth: { user: USER, password: PASSWORD } });
  host = new URL(server.url).host;
});
after(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => forgetHttpCredentials());

/** Run fn with these pip variables only (no pip.conf, no other PIP_*), restoring the environment after. */
async function withPipEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = { ...process.env };
  for (const k of Object.keys(process.env)) if (k.startsWith("PIP_") || k === "NETRC") delete process.env[k];
  Object.assign(process.env, { PIP_CONFIG_FILE: os.devNull, XDG_CONFIG_DIRS: path.join(dir, "none"), HOME: path.join(dir, "home") }, vars);
  try {
    return await fn();
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

const options = () => pythonOptionsSchema.parse({ version: "3.11", platform: { glibc: "2.36" }, interpreter: "/usr/bin/python3.11" });

async function resolveAndInstall() {
  const ctx = await makeCtx({ layers: ["a"] });
  const o = options();
  const r = await pythonSource.resolve([["lib"]], o, ctx);
  const lib = r.packages.find((p) => p.name === "lib") as LockedPackage;
  const key = createHash("sha256").update(`${await pythonSource.installKey!(lib, o, ctx)}${lib.id}`).digest("hex");
  const { tree } = await ctx.store.ensureTree(key, lib.id, (w) => pythonSource.install(lib, w, o, ctx), pythonSource.treeOptions);
  return { r, tree, ctx };
}

function assertNoSecret(text: string, where: string) {
  for (const s of [PASSWORD, ENCODED, Buffer.from(`${USER}:${PASSWORD}`).toString("base64")]) assert.ok(!text.includes(s), `${where} holds the secret: ${text.slice(0, 2000)}`);
}

test("credentials in PIP_INDEX_URL are sent as Basic auth (index page, metadata ranges, wheel download) and kept out of the lock", async () => {
  await withPipEnv({ PIP_INDEX_URL: `http://${USER}:${ENCODED}@${host}/simple` }, async () => {
    const before = server.log.length;
    const { r, tree } = await resolveAndInstall();
    assert.deepEqual(Object.fromEntries(r.packages.map((p) => [p.name, p.version])), { _venv: "3.11", lib: "1.0", dep: "2.0" });
    assert.ok(tree.manifest.entries.some((e) => e.path.endsWith("lib/__init__.py")));
    const seen = server.log.slice(before);
    assert.ok(seen.some((l) => l.startsWith("GET /simple/lib/")), seen.join("\n"));
    assert.ok(seen.every((l) => l.includes(" auth=Basic ")), `every request carried the credentials:\n${seen.join("\n")}`);
    assertNoSecret(JSON.stringify(r.packages), "the lock entries");
  });
});

test("a wrong password: an error that names the index without the secret and says where the credentials came from", async () => {
  await withPipEnv({ PIP_INDEX_URL: `http://${USER}:wrong-${ENCODED}@${host}/simple` }, async () => {
    await assert.rejects(resolveAndInstall(), (err: Error & { code?: string }) => {
      assert.equal(err.code, "E_NETWORK");
      assert.match(err.message, new RegExp(`${host.replace(/\./g, "\\.")}/simple.* answered 401; it refused the credentials in the URL for http://${host.replace(/\./g, "\\.")}`));
      assertNoSecret(err.message, "the error");
      assert.ok(!err.message.includes("wrong-"), err.message);
      return true;
    });
  });
});

test("no credentials: the error says what to set (the index URL or netrc)", async () => {
  await withPipEnv({ PIP_INDEX_URL: `${server.url}/simple` }, async () => {
    await assert.rejects(resolveAndInstall(), (err: Error) => {
      assert.match(err.message, /answered 401; it wants credentials: put them in the index URL \(PIP_INDEX_URL, PIP_EXTRA_INDEX_URL or index-url in pip\.conf, as http:\/\/USER:PASSWORD@127\.0\.0\.1:\d+\/\.\.\.\), or in .*\.netrc as "machine 127\.0\.0\.1 login USER password PASSWORD"/);
      return true;
    });
  });
});

test("~/.netrc ($NETRC) for the index host, as pip reads it; a wrong one is named", async () => {
  const netrc = path.join(dir, "netrc");
  await writeFile(netrc, `# a comment\nmachine other.example login x password y\nmacdef init\ncd /pub\n\nmachine 127.0.0.1\n  login ${USER}\n  password ${PASSWORD}\n`);
  await withPipEnv({ PIP_INDEX_URL: `${server.url}/simple`, NETRC: netrc }, async () => {
    const { r } = await resolveAndInstall();
    assert.equal(r.packages.find((p) => p.name === "lib")?.version, "1.0");
  });
  forgetHttpCredentials();
  const bad = path.join(dir, "netrc-bad");
  await writeFile(bad, `default login ${USER} password not-it\n`);
  await withPipEnv({ PIP_INDEX_URL: `${server.url}/simple`, NETRC: bad }, async () => {
    await assert.rejects(resolveAndInstall(), new RegExp(`it refused ${bad.replace(/[.]/g, "\\.")} \\(machine 127\\.0\\.0\\.1\\)`));
  });
  assert.deepEqual(parseNetrc("machine h account acct password p\ndefault login d password q").machines.get("h"), { login: "acct", password: "p" });
});

test("files on another origin (links or a redirect) get no credentials", async () => {
  // "files": another origin serving the index's files and pages (as files.pythonhosted.org does),
  // authorised by itself towards the index; it records what it is sent.
  const auth = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString("base64")}`;
  const seenByFiles: (string | undefined)[] = [];
  const proxyTo = (req: http.IncomingMessage, res: http.ServerResponse, rewrite?: (html: string) => string) => {
    const up = http.request(`${server.url}${req.url}`, { headers: { ...req.headers, host: host, authorization: auth, "accept-encoding": "identity" } }, (r) => {
      if (!rewrite) { res.writeHead(r.statusCode!, r.headers); r.pipe(res); return; }
      let body = "";
      r.setEncoding("latin1");
      r.on("data", (c: string) => (body += c));
      r.on("end", () => { const out = rewrite(body); res.writeHead(r.statusCode!, { "content-type": String(r.headers["content-type"]) }).end(out, "latin1"); });
    });
    up.end();
  };
  const files = http.createServer((req, res) => { seenByFiles.push(req.headers.authorization); proxyTo(req, res); });
  await new Promise<void>((r) => files.listen(0, "127.0.0.1", r));
  const filesUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
  // "index": wants the credentials; its pages link to the files origin; /moved/ redirects there.
  const index = http.createServer((req, res) => {
    if (req.headers.authorization !== auth) { res.writeHead(401).end(); return; }
    if (req.url!.startsWith("/moved/")) { res.writeHead(302, { location: `${filesUrl}${req.url!.slice("/moved".length)}` }).end(); return; }
    proxyTo(req, res, (html) => html.replace(/\.\.\/\.\.\/files\//g, `${filesUrl}/files/`));
  });
  await new Promise<void>((r) => index.listen(0, "127.0.0.1", r));
  const indexHost = `127.0.0.1:${(index.address() as AddressInfo).port}`;
  try {
    for (const prefix of ["simple", "moved/simple"]) {
      forgetHttpCredentials();
      seenByFiles.length = 0;
      await withPipEnv({ PIP_INDEX_URL: `http://${USER}:${ENCODED}@${indexHost}/${prefix}` }, async () => {
        const { r } = await resolveAndInstall();
        assert.equal(r.packages.find((p) => p.name === "lib")?.version, "1.0");
      });
      assert.ok(seenByFiles.length > 0, `${prefix}: the files origin was used`);
      assert.deepEqual(seenByFiles.filter((a) => a !== undefined), [], `${prefix}: the files origin got no Authorization`);
    }
  } finally {
    index.closeAllConnections();
    files.closeAllConnections();
    await new Promise<void>((r) => index.close(() => r()));
    await new Promise<void>((r) => files.close(() => r()));
  }
});

test("redaction keeps the hint readable (USER:PASSWORD placeholder, plain words after Basic) and hides real values", () => {
  const hint = credentialHint(`${server.url}/simple`, undefined);
  assert.equal(redact(hint), hint);
  assert.equal(redact("the index wants Basic authentication"), "the index wants Basic authentication");
  assert.equal(redact("Authorization: Basic dXNlcjpwYXNz"), "Authorization: Basic ***");
  assert.equal(redact("http://someone:hunter2@host/simple"), "http://***@host/simple");
});

/** Every file under dir, read as text (binary files too: a secret would show as its bytes). */
async function allText(d: string): Promise<string> {
  let out = "";
  for (const e of await readdir(d, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out += (await readFile(path.join(e.parentPath, e.name))).toString("latin1");
  }
  return out;
}

test("CLI with --debug: the password is in no output, message, lock, SBOM, report or store file", async () => {
  const work = path.join(dir, "cli");
  await mkdir(work, { recursive: true });
  const lib = path.join(repoRoot, "src", "index.ts");
  const config = (req: string) => `import { defineImage } from ${JSON.stringify(lib)};\nexport default defineImage({ name: "auth/case", compression: "gzip", python: { version: "3.11", platform: { glibc: "2.36" }, interpreter: "/usr/bin/python3.11" }, layers: [{ name: "py", python: [${JSON.stringify(req)}] }] });\n`;
  await writeFile(path.join(work, "layerfold.config.ts"), config("lib"));
  const store = path.join(dir, "cli-store");
  const env = { PIP_CONFIG_FILE: os.devNull, XDG_CONFIG_DIRS: path.join(dir, "none"), PIP_INDEX_URL: `http://${USER}:${ENCODED}@${host}/simple`, PIP_EXTRA_INDEX_URL: "", HOME: path.join(dir, "home") };
  const out = path.join(work, "out");
  const built = await runCli(["build", "-C", work, "--store", store, "-o", `oci:${out}`, "--debug"], { env });
  assert.equal(built.code, 0, built.stderr);
  const sbom = await runCli(["sbom", "-C", work, "--store", store, "-o", path.join(work, "sbom.json")], { env });
  assert.equal(sbom.code, 0, sbom.stderr);
  const report = await runCli(["report", "-C", work, "--store", store, "-o", path.join(work, "report.html")], { env });
  assert.equal(report.code, 0, report.stderr);
  // A project no index offers: the message lists the searched index.
  await writeFile(path.join(work, "layerfold.config.ts"), config("no-such-project"));
  const failed = await runCli(["build", "-C", work, "--store", store, "-o", `oci:${path.join(work, "out2")}`, "--debug"], { env });
  assert.notEqual(failed.code, 0);
  assert.match(failed.stderr, new RegExp(`searched: http://${host.replace(/\./g, "\\.")}/simple`), failed.stderr);
  // The image's layers are gzip: unpack them so their contents are searched as well.
  const layers = path.join(work, "layers");
  await mkdir(layers, { recursive: true });
  for (const blob of await readdir(path.join(out, "blobs", "sha256"))) {
    try { execFileSync("sh", ["-c", `gzip -dc < ${path.join(out, "blobs", "sha256", blob)} > ${path.join(layers, blob)}`], { stdio: "ignore" }); } catch { /* not gzip (config, manifest) */ }
  }
  for (const [what, text] of [["build output", built.stdout + built.stderr], ["sbom/report output", sbom.stdout + sbom.stderr + report.stdout + report.stderr], ["failed build output", failed.stdout + failed.stderr], ["config dir (lock, SBOM, report, image)", await allText(work)], ["store", await allText(store)]] as const) {
    assertNoSecret(text, what);
  }
  assert.match(built.stderr, /debug: /, "debug output was produced");
});

test("two indexes on one server with their own credentials: each index (and its files) gets its own, never the other's", () => {
  forgetHttpCredentials();
  const one = takeUrlCredentials("http://alice:token-one@127.0.0.1:9/projects/1/packages/pypi/simple");
  const two = takeUrlCredentials("http://bob:token-two@127.0.0.1:9/projects/2/packages/pypi/simple");
  assert.equal(one, "http://127.0.0.1:9/projects/1/packages/pypi/simple");
  const basic = (u: string) => Buffer.from(authorizationFor(u)!.header.slice("Basic ".length), "base64").toString();
  assert.equal(basic("http://127.0.0.1:9/projects/1/packages/pypi/simple/torch/"), "alice:token-one");
  assert.equal(basic("http://127.0.0.1:9/projects/1/packages/pypi/files/abc/torch.whl"), "alice:token-one");
  assert.equal(basic("http://127.0.0.1:9/projects/2/packages/pypi/simple/torch/"), "bob:token-two");
  assert.equal(authorizationFor("http://127.0.0.2:9/projects/1/packages/pypi/simple/"), undefined, "another origin gets none");
  forgetHttpCredentials();
});
