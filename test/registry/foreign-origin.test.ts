// Registry credentials go only to the registry's own origin. A real registry
// (htpasswd) sits behind a "front" that plays a registry whose blob storage is
// elsewhere: upload Locations and blob GETs point at a "storage" server on
// another port, which accepts a signature in the URL (as S3, GCS and GHCR's CDN
// do) and records every Authorization header it is sent. Push and pull must
// work, and storage must never see the registry's Basic credentials or token.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { startRegistry, hasCommand, type RunningRegistry } from "../helpers/registry.ts";
import { makeImage } from "./image-fixture.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { pushImages } from "../../src/registry/push.ts";
import { pullImage } from "../../src/registry/pull.ts";
import type { Credential } from "../../src/registry/credentials.ts";

const skip = !hasCommand("docker-registry") || !hasCommand("htpasswd") ? "docker-registry or htpasswd missing" : false;

const USER = "pusher";
const PASSWORD = "front-Pa55-never-to-storage";
const TOKEN = "bearer-token-for-front-only-0123456789";
const REG_AUTH = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString("base64")}`;

let tmp: string;
let reg: RunningRegistry;
before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "lf-origin-"));
  if (!skip) reg = await startRegistry({ htpasswd: { [USER]: PASSWORD } });
});
after(async () => {
  await reg?.stop();
  await rm(tmp, { recursive: true, force: true });
});

interface Seen { method: string; url: string; authorization?: string }

const listen = async (server: http.Server) => {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return { port, url: `http://127.0.0.1:${port}`, stop: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }) };
};

/** Forward req to the registry with these headers; rewrite a Location with `relocate`. */
function forward(req: http.IncomingMessage, res: http.ServerResponse, pathAndQuery: string, headers: http.OutgoingHttpHeaders, relocate: (loc: string) => string) {
  const up = http.request(`${reg.url}${pathAndQuery}`, { method: req.method, headers }, (upRes) => {
    const h = { ...upRes.headers };
    if (typeof h.location === "string") h.location = relocate(h.location);
    res.writeHead(upRes.statusCode ?? 502, h);
    upRes.pipe(res);
  });
  up.on("error", () => res.destroy());
  req.pipe(up);
}

/** Blob storage: honours `sig=ok` in the query instead of credentials, and logs what it was sent. */
async function startStorage(opts: { hostile?: boolean } = {}) {
  const seen: Seen[] = [];
  let self = "";
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method!, url: req.url!, authorization: req.headers.authorization });
    const u = new URL(req.url!, "http://x");
    if (opts.hostile) {
      // A storage host that asks for credentials, naming a realm of its own choosing.
      req.resume();
      res.writeHead(401, { "www-authenticate": `Basic realm="${self}/steal"` }).end();
      return;
    }
    if (u.searchParams.get("sig") !== "ok") { req.resume(); res.writeHead(403).end("bad signature"); return; }
    u.searchParams.delete("sig");
    const { authorization: _drop, host: _host, ...rest } = req.headers;
    forward(req, res, `${u.pathname}${u.search}`, { ...rest, authorization: REG_AUTH }, (loc) => signed(self, loc));
  });
  const s = await listen(server);
  self = s.url;
  return { ...s, seen };
}

/** The URL on storage for a registry path, signed. */
function signed(storage: string, loc: string): string {
  const u = new URL(loc, "http://registry.invalid");
  const out = new URL(`${u.pathname}${u.search}`, storage);
  out.searchParams.set("sig", "ok");
  return out.toString();
}

/**
 * The registry the client talks to. "basic": the client's Basic credentials pass through.
 * "bearer": it wants `Bearer TOKEN`, handed out by a token realm (another port) for Basic credentials.
 */
async function startFront(storage: string, mode: "basic" | "bearer") {
  const seen: Seen[] = [];
  const realmSeen: Seen[] = [];
  const realmServer = http.createServer((req, res) => {
    realmSeen.push({ method: req.method!, url: req.url!, authorization: req.headers.authorization });
    if (req.headers.authorization !== REG_AUTH) { res.writeHead(401).end(); return; }
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token: TOKEN, expires_in: 300 }));
  });
  const realm = await listen(realmServer);
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method!, url: req.url!, authorization: req.headers.authorization });
    const { host: _host, ...headers } = req.headers;
    if (mode === "bearer") {
      if (req.headers.authorization !== `Bearer ${TOKEN}`) {
        req.resume();
        res.writeHead(401, { "www-authenticate": `Bearer realm="${realm.url}/token",service="front"` }).end();
        return;
      }
      headers.authorization = REG_AUTH;
    }
    const u = new URL(req.url!, "http://x");
    if (req.method === "GET" && /\/blobs\/sha256:/.test(u.pathname)) {
      // Blobs are served from storage, by redirect.
      req.resume();
      res.writeHead(307, { location: signed(storage, req.url!) }).end();
      return;
    }
    const toStorage = req.method === "POST" && /\/blobs\/uploads\/$/.test(u.pathname);
    forward(req, res, req.url!, headers, (loc) => (toStorage ? signed(storage, loc) : loc));
  });
  const front = await listen(server);
  return { ...front, host: `127.0.0.1:${front.port}`, seen, realmSeen, stop: async () => { await front.stop(); await realm.stop(); } };
}

for (const mode of ["basic", "bearer"] as const) {
  test(`${mode}: upload Locations and blob redirects to another origin get no credentials; push and pull still work`, { skip }, async () => {
    const storage = await startStorage();
    const front = await startFront(storage.url, mode);
    try {
      const image = await makeImage({ dir: path.join(tmp, mode), layers: [{ files: { a: { randomSize: 200_000, seed: mode } } }, { files: { b: "b\n" } }] });
      const credential: Credential = { kind: "basic", username: USER, password: PASSWORD };
      // Chunked, so PATCH, the status GET and PUT all go to storage.
      const client = new RegistryClient({ registry: front.host, credential, backoffMs: 1 });
      const res = await pushImages([image], { client, repository: `lf/${mode}`, tag: "t", chunkSize: 64 * 1024 });
      await client.close();
      assert.equal(res.digest, image.manifestDescriptor.digest);
      const pulled = await pullImage(`${front.host}/lf/${mode}:t`, path.join(tmp, `${mode}-pull`), { credentials: { username: USER, password: PASSWORD } });
      assert.equal(pulled.digest, image.manifestDescriptor.digest);

      const methods = new Set(storage.seen.map((s) => s.method));
      for (const m of ["PATCH", "PUT", "GET"]) assert.ok(methods.has(m), `storage saw a ${m}: ${JSON.stringify(storage.seen.map((s) => s.method))}`);
      assert.deepEqual(storage.seen.filter((s) => s.authorization !== undefined), [], "storage got no Authorization");
      // The registry itself did get them (so the test would see a client that sends none at all).
      const expected = mode === "basic" ? REG_AUTH : `Bearer ${TOKEN}`;
      assert.ok(front.seen.some((s) => s.authorization === expected));
      if (mode === "bearer") assert.ok(front.realmSeen.length > 0 && front.realmSeen.every((s) => s.authorization === REG_AUTH), "Basic credentials went to the token realm");
    } finally {
      await front.stop();
      await storage.stop();
    }
  });
}

test("a storage origin that answers 401 with its own challenge gets no credentials and no token request; the error names it", { skip }, async () => {
  const storage = await startStorage({ hostile: true });
  const front = await startFront(storage.url, "basic");
  try {
    const image = await makeImage({ dir: path.join(tmp, "hostile"), layers: [{ files: { h: "h\n" } }] });
    const client = new RegistryClient({ registry: front.host, credential: { kind: "basic", username: USER, password: PASSWORD }, backoffMs: 1 });
    await assert.rejects(pushImages([image], { client, repository: "lf/hostile", tag: "t" }), (err: Error) => {
      assert.match(err.message, new RegExp(`${storage.url.replace(/[.:/]/g, "\\$&")}.*answered 401; layerfold sends ${front.host.replace(/\./g, "\\.")}'s credentials only to`));
      assert.ok(!err.message.includes(PASSWORD));
      return true;
    });
    await client.close();
    assert.ok(storage.seen.length > 0);
    assert.deepEqual(storage.seen.filter((s) => s.authorization !== undefined || s.url.startsWith("/steal")), [], "nothing sent to the storage's realm, no credentials to storage");
  } finally {
    await front.stop();
    await storage.stop();
  }
});
