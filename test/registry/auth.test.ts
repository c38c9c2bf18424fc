// Auth against a real registry: Basic (htpasswd -B) and the Bearer token flow
// with a token server the test runs (RS256 JWTs, cert made with openssl).
// Credentials come from flags, env, docker config.json and a credential helper
// process. No credential may appear in errors or --debug output.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createSign, randomBytes, X509Certificate } from "node:crypto";
import { mkdtemp, rm, writeFile, readFile, chmod, mkdir } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { startRegistry, startProxy, hasCommand, type RunningRegistry } from "../helpers/registry.ts";
import { makeImage } from "./image-fixture.ts";
import { RegistryClient, parseChallenge } from "../../src/registry/client.ts";
import { findCredentials } from "../../src/registry/credentials.ts";
import { pushImages } from "../../src/registry/push.ts";
import { pullImage } from "../../src/registry/pull.ts";
import { redact } from "../../src/util/redact.ts";
import type { Logger } from "../../src/util/log.ts";

const skip = !hasCommand("docker-registry") || !hasCommand("htpasswd") || !hasCommand("openssl") ? "docker-registry, htpasswd or openssl missing" : false;

const USER = "ci-bot";
const PASSWORD = "s3cret-Pa55word-do-not-print";
const REFRESH_TOKEN = "refresh-tok-0123456789abcdef";
let tmp: string;
before(async () => { tmp = await mkdtemp(path.join(os.tmpdir(), "lf-auth-")); });
after(async () => { await rm(tmp, { recursive: true, force: true }); });

/** A logger that keeps every line, to check nothing secret is printed. */
function capture(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, info: (m) => lines.push(m), warn: (m) => lines.push(m), debug: (m) => lines.push(m), progress: (_i, m) => lines.push(m) };
}

test("parseChallenge reads Bearer and Basic challenges", () => {
  assert.deepEqual(parseChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'), {
    scheme: "bearer",
    params: { realm: "https://auth.example/token", service: "registry.example", scope: "repository:a/b:pull,push" },
  });
  assert.equal(parseChallenge('Basic realm="x"')?.scheme, "basic");
  assert.equal(parseChallenge(undefined), undefined);
});

test("Basic auth with htpasswd: push and pull work, a wrong password fails without printing it", { skip }, async () => {
  const reg = await startRegistry({ htpasswd: { [USER]: PASSWORD } });
  try {
    const image = await makeImage({ dir: path.join(tmp, "basic"), layers: [{ files: { a: "a\n" } }] });
    const log = capture();
    const { credential } = await findCredentials(reg.host, { env: { LAYERFOLD_REGISTRY_USER: USER, LAYERFOLD_REGISTRY_PASSWORD: PASSWORD } });
    const client = new RegistryClient({ registry: reg.host, credential, logger: log });
    const res = await pushImages([image], { client, repository: "lf/basic", tag: "t", logger: log });
    await client.close();
    assert.equal(res.digest, image.manifestDescriptor.digest);
    const pulled = await pullImage(`${reg.host}/lf/basic:t`, path.join(tmp, "basic-pull"), { credentials: { username: USER, password: PASSWORD } });
    assert.equal(pulled.digest, image.manifestDescriptor.digest);

    // Anonymous: a clear error.
    const anon = new RegistryClient({ registry: reg.host });
    await assert.rejects(pushImages([image], { client: anon, repository: "lf/basic", tag: "t" }), /wants credentials/);
    await anon.close();

    const wrong = "wrong-Pa55word-never-shown";
    const bad = new RegistryClient({ registry: reg.host, credential: (await findCredentials(reg.host, { username: USER, password: wrong })).credential, logger: log });
    await assert.rejects(pushImages([image], { client: bad, repository: "lf/basic", tag: "t" }), (err: Error) => {
      assert.ok(!err.message.includes(wrong), err.message);
      assert.ok(!err.message.includes(Buffer.from(`${USER}:${wrong}`).toString("base64")));
      return true;
    });
    await bad.close();
    const all = log.lines.join("\n");
    assert.ok(log.lines.some((l) => l.startsWith("GET ") || l.includes("->")), "debug lines were produced");
    for (const secret of [PASSWORD, wrong, Buffer.from(`${USER}:${PASSWORD}`).toString("base64")]) assert.ok(!all.includes(secret), "no secret in debug output");
  } finally {
    await reg.stop();
  }
});

/** A token server: checks Basic credentials, signs RS256 JWTs with an x5c header. */
async function startTokenServer(keyPem: string, certPem: string, service: string, issuer: string) {
  const requests: Array<{ scopes: string[]; user?: string; grant?: string }> = [];
  const der = new X509Certificate(certPem).raw.toString("base64");
  const b64u = (b: Buffer | string) => Buffer.from(b).toString("base64url");
  const server = http.createServer(async (req, res) => {
    const u = new URL(req.url ?? "/", "http://x");
    const auth = req.headers.authorization ?? "";
    let [user, pass] = auth.startsWith("Basic ") ? Buffer.from(auth.slice(6), "base64").toString().split(":") : [];
    let scopes = u.searchParams.getAll("scope");
    let grant: string | undefined;
    if (req.method === "POST") {
      // OAuth2 refresh-token grant (docker login identity tokens).
      let body = "";
      for await (const c of req) body += c;
      const form = new URLSearchParams(body);
      grant = form.get("grant_type") ?? undefined;
      scopes = (form.get("scope") ?? "").split(" ").filter(Boolean);
      if (grant !== "refresh_token" || form.get("refresh_token") !== REFRESH_TOKEN) {
        res.writeHead(401).end(JSON.stringify({ details: "bad refresh token" }));
        requests.push({ scopes, grant });
        return;
      }
      user = USER;
      pass = PASSWORD;
    }
    requests.push({ scopes, user, grant });
    if (user !== undefined && (user !== USER || pass !== PASSWORD)) {
      res.writeHead(401, { "content-type": "application/json" });
      res.end(JSON.stringify({ details: "incorrect username or password" }));
      return;
    }
    const access = scopes.map((s) => {
      const [type, name, actions] = s.split(":");
      // Anonymous users may only pull.
      const allowed = actions.split(",").filter((a) => user !== undefined || a === "pull");
      return { type, name, actions: allowed };
    });
    const now = Math.floor(Date.now() / 1000);
    const header = b64u(JSON.stringify({ alg: "RS256", typ: "JWT", x5c: [der] }));
    const claims = b64u(JSON.stringify({ iss: issuer, sub: user ?? "", aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString("hex"), access }));
    const sig = createSign("RSA-SHA256").update(`${header}.${claims}`).sign(keyPem).toString("base64url");
    res.writeHead(200, { "content-type": "application/json" });
    const token = `${header}.${claims}.${sig}`;
    res.end(JSON.stringify(grant ? { access_token: token, expires_in: 300 } : { token, expires_in: 300 }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return { realm: `http://127.0.0.1:${port}/token`, requests, stop: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}

test("token auth: Bearer flow with push+pull and mount scopes against a token server", { skip }, async () => {
  const keyFile = path.join(tmp, "key.pem");
  const certFile = path.join(tmp, "cert.pem");
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", keyFile, "-out", certFile, "-days", "1", "-subj", "/CN=layerfold-test-token-issuer"], { stdio: "ignore" });
  const keyPem = await readFile(keyFile, "utf8");
  const certPem = await readFile(certFile, "utf8");
  const service = "layerfold-test-registry";
  const issuer = "layerfold-test-issuer";
  const ts = await startTokenServer(keyPem, certPem, service, issuer);
  const reg = await startRegistry({ token: { realm: ts.realm, service, issuer, rootCertBundle: certPem } });
  try {
    // Credentials from a docker config with a credential helper process (a real docker-credential-* executable).
    const bin = path.join(tmp, "bin");
    await mkdir(bin, { recursive: true });
    const helper = path.join(bin, "docker-credential-lftest");
    await writeFile(helper, `#!/bin/sh\nread server\nif [ "$server" = "${reg.host}" ]; then printf '{"ServerURL":"%s","Username":"${USER}","Secret":"${PASSWORD}"}' "$server"; else echo "credentials not found in native keychain"; exit 1; fi\n`);
    await chmod(helper, 0o755);
    const cfgDir = path.join(tmp, "docker-config");
    await mkdir(cfgDir, { recursive: true });
    await writeFile(path.join(cfgDir, "config.json"), JSON.stringify({ credHelpers: { [reg.host]: "lftest" } }));
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${bin}:${process.env.PATH}`, DOCKER_CONFIG: cfgDir };
    delete env.LAYERFOLD_REGISTRY_USER;
    delete env.LAYERFOLD_REGISTRY_PASSWORD;
    const found = await findCredentials(reg.host, { env });
    assert.equal(found.source, "credential helper docker-credential-lftest");

    const log = capture();
    const image = await makeImage({ dir: path.join(tmp, "tok"), layers: [{ files: { t: "t\n" } }, { files: { u: "u\n" } }] });
    const client = new RegistryClient({ registry: reg.host, credential: found.credential, logger: log });
    const res = await pushImages([image], { client, repository: "lf/tok", tag: "t", logger: log });
    assert.equal(res.digest, image.manifestDescriptor.digest);
    assert.ok(ts.requests.some((r) => r.user === USER && r.scopes.includes("repository:lf/tok:pull,push")), JSON.stringify(ts.requests));

    // A mount asks for pull on the source repository in the same token.
    const { Store } = await import("../../src/store/store.ts");
    const store = new Store(path.join(tmp, "tok-store"));
    await pushImages([image], { client, repository: "lf/tok", tag: "t", store });
    const client2 = new RegistryClient({ registry: reg.host, credential: found.credential, logger: log });
    const res2 = await pushImages([image], { client: client2, repository: "lf/tok2", tag: "t", store });
    await client.close();
    await client2.close();
    assert.ok(res2.blobs.every((b) => b.action === "mounted"), JSON.stringify(res2.blobs));
    assert.ok(ts.requests.some((r) => r.scopes.includes("repository:lf/tok:pull") && r.scopes.includes("repository:lf/tok2:pull,push")));

    // Anonymous pull is allowed by this token server; anonymous push is not.
    const pulled = await pullImage(`${reg.host}/lf/tok:t`, path.join(tmp, "tok-pull"), { credentials: { env: {}, dockerConfigDir: path.join(tmp, "none") } });
    assert.equal(pulled.digest, image.manifestDescriptor.digest);
    const anon = new RegistryClient({ registry: reg.host });
    await assert.rejects(pushImages([image], { client: anon, repository: "lf/anon", tag: "t" }), (err: Error & { code?: string }) => err.code === "E_REGISTRY");
    await anon.close();

    // An identity token from docker login goes to the token endpoint as a refresh-token grant.
    const idClient = new RegistryClient({ registry: reg.host, credential: { kind: "identityToken", token: REFRESH_TOKEN }, logger: log });
    const res3 = await pushImages([image], { client: idClient, repository: "lf/idtok", tag: "t" });
    await idClient.close();
    assert.equal(res3.digest, image.manifestDescriptor.digest);
    assert.ok(ts.requests.some((r) => r.grant === "refresh_token" && r.scopes.includes("repository:lf/idtok:pull,push")));

    // A mount the registry cannot do (the source lacks the blob) answers 202 with an upload URL; that upload is used.
    await store.putRecord("registry-blobs", image.layers[0].digest.slice(7), { locations: [`${reg.host}/lf/nowhere`] });
    const fresh = await makeImage({ dir: path.join(tmp, "tok-fresh"), layers: [{ files: { t: "t\n" } }] });
    const c4 = new RegistryClient({ registry: reg.host, credential: found.credential, logger: log });
    const res4 = await pushImages([fresh], { client: c4, repository: "lf/tok3", tag: "t", store });
    await c4.close();
    assert.equal(res4.blobs.find((b) => b.digest === image.layers[0].digest)?.action, "uploaded");
    assert.ok(ts.requests.some((r) => r.scopes.includes("repository:lf/nowhere:pull")), "the mount source was in the token scope");

    // The registry asks to authenticate again in the middle of a streamed upload (an expired token):
    // the upload gets a new token and resumes.
    let patches = 0;
    const proxy = await startProxy(reg.url, {
      fault: ({ method }) =>
        method === "PATCH" && ++patches === 1
          ? { kind: "status", status: 401, headers: { "www-authenticate": `Bearer realm="${ts.realm}",service="${service}",scope="repository:lf/tok401:pull,push"` } }
          : undefined,
    });
    try {
      const big = await makeImage({ dir: path.join(tmp, "tok401"), layers: [{ files: { big: { randomSize: 300_000, seed: "401" } } }] });
      const before = ts.requests.length;
      const c5 = new RegistryClient({ registry: proxy.host, credential: found.credential, logger: log, backoffMs: 1 });
      const res5 = await pushImages([big], { client: c5, repository: "lf/tok401", tag: "t" });
      await c5.close();
      assert.equal(res5.digest, big.manifestDescriptor.digest);
      assert.ok(proxy.requests.some((r) => r.fault === "status 401"));
      assert.ok(ts.requests.length - before >= 2, "a second token was fetched after the 401");
    } finally {
      await proxy.stop();
    }

    const all = log.lines.join("\n");
    assert.ok(!all.includes(PASSWORD));
    assert.ok(!all.includes(REFRESH_TOKEN));
    assert.ok(!/Bearer [A-Za-z0-9_-]{20,}/.test(all), "no bearer token printed");
  } finally {
    await reg.stop();
    await ts.stop();
  }
});

test("docker config.json auths (auth, identitytoken) and GITHUB_TOKEN for --ghcr; redact hides them all", async () => {
  const dir = path.join(tmp, "cfg2");
  await mkdir(dir, { recursive: true });
  const auth = Buffer.from(`someone:${PASSWORD}`).toString("base64");
  await writeFile(
    path.join(dir, "config.json"),
    JSON.stringify({ auths: { "https://index.docker.io/v1/": { auth }, "registry.example:5000": { identitytoken: "idtok-abcdef-123456" } } }),
  );
  const hub = await findCredentials("docker.io", { env: {}, dockerConfigDir: dir });
  assert.deepEqual(hub.credential, { kind: "basic", username: "someone", password: PASSWORD });
  const idt = await findCredentials("registry.example:5000", { env: {}, dockerConfigDir: dir });
  assert.equal(idt.credential?.kind, "identityToken");
  const gh = await findCredentials("ghcr.io", { ghcr: true, env: { GITHUB_TOKEN: "ghp_abcdefghijklmnop1234", GITHUB_REPOSITORY_OWNER: "octo" }, dockerConfigDir: dir });
  assert.deepEqual(gh.credential, { kind: "basic", username: "octo", password: "ghp_abcdefghijklmnop1234" });
  await assert.rejects(findCredentials("ghcr.io", { ghcr: true, env: {}, dockerConfigDir: dir }), /GITHUB_TOKEN is not set/);
  await assert.rejects(findCredentials("x.example", { username: "only-user", env: {} }), /both a username and a password/);
  const leaked = `failed: ${PASSWORD} ${auth} idtok-abcdef-123456 ghp_abcdefghijklmnop1234 Authorization: Bearer eyJhbGciOi.eyJzdWIi.sig https://u:p4ss@h/x`;
  const clean = redact(leaked);
  for (const s of [PASSWORD, auth, "idtok-abcdef-123456", "ghp_abcdefghijklmnop1234", "eyJhbGciOi", "p4ss"]) assert.ok(!clean.includes(s), `${s} hidden in: ${clean}`);
});
