// The registry client's HTTP layer (src/registry/http.ts, node:http): timeouts that
// bound the wait for headers and the pauses of a body without cutting a slow but
// live answer, keep-alive reuse, repeated headers, streamed request bodies.

import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { HttpPool } from "../../src/registry/http.ts";

async function serve(handler: http.RequestListener): Promise<{ url: string; connections: () => number; stop: () => void }> {
  let connections = 0;
  const srv = http.createServer(handler);
  srv.on("connection", () => connections++);
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`,
    connections: () => connections,
    stop: () => { srv.closeAllConnections(); srv.close(); },
  };
}

const pool = (o: Partial<ConstructorParameters<typeof HttpPool>[0]> = {}) =>
  new HttpPool({ connections: 4, headersTimeoutMs: 2000, bodyTimeoutMs: 2000, connectTimeoutMs: 2000, keepAliveMs: 100, ...o });

test("a slow answer within the timeouts arrives, though it outlasts the idle-socket timeout", async () => {
  const s = await serve((req, res) => { req.resume(); setTimeout(() => { res.write("a"); setTimeout(() => res.end("b"), 300); }, 400); });
  const p = pool();
  try {
    const r = await p.request(s.url, { method: "POST", body: Buffer.from("x") });
    assert.equal(r.statusCode, 200);
    assert.equal(await r.body.text(), "ab");
  } finally {
    p.close();
    s.stop();
  }
});

test("no headers within headersTimeout, or a body that pauses longer than bodyTimeout, is a retryable ETIMEDOUT", async () => {
  const s = await serve((req, res) => { req.resume(); if (req.url === "/late") setTimeout(() => res.end("late"), 1500); else { res.write("a"); setTimeout(() => res.end("b"), 1500); } });
  const p = pool({ headersTimeoutMs: 300, bodyTimeoutMs: 300 });
  try {
    await assert.rejects(p.request(`${s.url}/late`, { method: "GET" }), (e: Error & { code?: string }) => e.code === "ETIMEDOUT" && /no response within/.test(e.message));
    const r = await p.request(`${s.url}/pause`, { method: "GET" });
    await assert.rejects(r.body.text(), (e: Error & { code?: string }) => e.code === "ETIMEDOUT" && /paused/.test(e.message));
  } finally {
    p.close();
    s.stop();
  }
});

test("keep-alive: consecutive requests share one connection; a repeated header comes back as an array", async () => {
  const s = await serve((req, res) => {
    req.resume();
    res.setHeader("www-authenticate", ['Basic realm="r"', 'Bearer realm="https://auth.example/token"']);
    res.setHeader("location", "/next");
    res.end("ok");
  });
  const p = pool({ keepAliveMs: 5000 });
  try {
    for (let i = 0; i < 3; i++) {
      const r = await p.request(s.url, { method: "GET" });
      assert.deepEqual(r.headers["www-authenticate"], ['Basic realm="r"', 'Bearer realm="https://auth.example/token"']);
      assert.equal(r.headers.location, "/next");
      assert.equal(await r.body.text(), "ok");
    }
    assert.equal(s.connections(), 1);
  } finally {
    p.close();
    s.stop();
  }
});

test("a streamed body (async iterable) arrives whole with its Content-Length; a failing source fails the request", async () => {
  const s = await serve(async (req, res) => {
    let n = 0;
    try {
      for await (const c of req) n += (c as Buffer).length;
    } catch {
      return; // the client gave up (the failing source)
    }
    res.end(`${req.headers["content-length"]} ${req.headers["transfer-encoding"] ?? "-"} ${n}`);
  });
  const p = pool();
  try {
    async function* chunks(fail = false): AsyncGenerator<Buffer> {
      for (let i = 0; i < 40; i++) {
        if (fail && i === 20) throw new Error("the source broke");
        yield Buffer.alloc(256 * 1024, i);
      }
    }
    const r = await p.request(s.url, { method: "PATCH", headers: { "content-length": String(40 * 256 * 1024) }, body: chunks() });
    assert.equal(await r.body.text(), `${40 * 256 * 1024} - ${40 * 256 * 1024}`);
    await assert.rejects(p.request(s.url, { method: "PATCH", headers: { "content-length": String(40 * 256 * 1024) }, body: chunks(true) }), /the source broke/);
  } finally {
    p.close();
    s.stop();
  }
});

test("an error answer mid-body stops the upload: the source is closed and the connection dropped, though the server stops reading", async () => {
  // A server that answers 401 to the request line and then reads nothing more, like a registry whose token expired.
  const sockets: net.Socket[] = [];
  const srv = net.createServer((sock) => {
    sockets.push(sock);
    sock.once("data", () => {
      sock.write("HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}");
      sock.pause();
    });
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const p = pool({ bodyTimeoutMs: 60_000 });
  let closed = false;
  async function* big(): AsyncGenerator<Buffer> {
    try {
      for (let i = 0; i < 400; i++) yield Buffer.alloc(256 * 1024, i); // 100 MiB: far more than socket buffers hold
    } finally {
      closed = true;
    }
  }
  try {
    const t0 = Date.now();
    const r = await p.request(`http://127.0.0.1:${(srv.address() as AddressInfo).port}/v2/x/blobs/uploads/1`, { method: "PATCH", headers: { "content-length": String(400 * 256 * 1024) }, body: big() });
    assert.equal(r.statusCode, 401);
    assert.equal(await r.body.text(), "{}");
    while (!closed && Date.now() - t0 < 5000) await new Promise((res) => setTimeout(res, 20));
    assert.ok(closed, "the body's source was closed soon after the answer, not left waiting for the server to read");
  } finally {
    p.close();
    for (const s of sockets) s.destroy();
    srv.close();
  }
});
