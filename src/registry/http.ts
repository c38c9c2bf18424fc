// HTTP/1.1 exchanges for the registry client, over node:http and node:https:
// keep-alive connection pools, request bodies from buffers, strings, streams and
// async iterables, and timeouts. Node's own modules load in a few milliseconds,
// where undici costs ~150 ms of every push's start (src/fetch/undici.ts).
// A streamed body is written with backpressure: a chunk is on the socket before
// the next one is asked for, which the upload's reused read buffers rely on.

import http from "node:http";
import https from "node:https";
import type { Readable } from "node:stream";

export type RequestBody = Buffer | string | Readable | AsyncIterable<Buffer> | null | undefined;

/** The response body: a stream, plus the readers the client needs for small documents. */
export interface ResponseBody extends Readable {
  text(): Promise<string>;
  json(): Promise<unknown>;
  arrayBuffer(): Promise<ArrayBuffer>;
}

export interface HttpResponse {
  statusCode: number;
  /** Lower-case names; a header sent more than once is an array (WWW-Authenticate may be). */
  headers: Record<string, string | string[] | undefined>;
  body: ResponseBody;
}

export interface HttpPoolOptions {
  /** Sockets per host. */
  connections: number;
  /** Longest wait for the response headers (also bounds the connect). */
  headersTimeoutMs: number;
  /** Longest pause while the response body streams. */
  bodyTimeoutMs: number;
  connectTimeoutMs: number;
  /** An idle socket is closed after this; idle sockets never hold the process open. */
  keepAliveMs: number;
}

const timeoutError = (message: string, code: string) => Object.assign(new Error(message), { code });

async function readAll(res: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of res) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

function withReaders(res: http.IncomingMessage): ResponseBody {
  return Object.assign(res, {
    text: async () => (await readAll(res)).toString("utf8"),
    json: async () => JSON.parse((await readAll(res)).toString("utf8")) as unknown,
    arrayBuffer: async () => {
      const b = await readAll(res);
      return b.buffer.slice(b.byteOffset, b.byteOffset + b.length) as ArrayBuffer;
    },
  });
}

function headersOf(res: http.IncomingMessage): HttpResponse["headers"] {
  const out: HttpResponse["headers"] = {};
  for (const [k, v] of Object.entries(res.headersDistinct)) if (v) out[k] = v.length === 1 ? v[0] : v;
  return out;
}

/** Resolves on 'drain', or on 'close' (the request failed: the caller stops writing). */
const drained = (req: http.ClientRequest) =>
  new Promise<void>((resolve) => {
    const done = () => {
      req.off("drain", done);
      req.off("close", done);
      resolve();
    };
    req.on("drain", done);
    req.on("close", done);
  });

async function writeBody(req: http.ClientRequest, body: RequestBody, unwanted: () => boolean): Promise<void> {
  if (body === null || body === undefined) return void req.end();
  if (typeof body === "string" || Buffer.isBuffer(body)) return void req.end(body);
  for await (const chunk of body as AsyncIterable<Buffer>) {
    if (req.destroyed || unwanted()) return;
    if (!req.write(chunk)) await drained(req);
  }
  if (!req.destroyed) req.end();
}

export class HttpPool {
  private readonly agents: { http: http.Agent; https: https.Agent };

  constructor(private readonly opts: HttpPoolOptions) {
    const agent = { keepAlive: true, maxSockets: opts.connections, timeout: opts.keepAliveMs, scheduling: "lifo" as const };
    this.agents = { http: new http.Agent(agent), https: new https.Agent(agent) };
  }

  /**
   * One exchange. Resolves with the status and headers; the caller consumes the body
   * (or resumes or destroys it), which hands the socket back to the pool.
   */
  request(url: string | URL, o: { method: string; headers?: Record<string, string>; body?: RequestBody }): Promise<HttpResponse> {
    const u = typeof url === "string" ? new URL(url) : url;
    const secure = u.protocol === "https:";
    if (!secure && u.protocol !== "http:") return Promise.reject(new Error(`${u.protocol} URLs are not supported (${u.origin})`));
    const headers: Record<string, string> = { ...o.headers };
    if ((typeof o.body === "string" || Buffer.isBuffer(o.body)) && headers["content-length"] === undefined) headers["content-length"] = String(Buffer.byteLength(o.body));
    return new Promise((resolve, reject) => {
      let res: http.IncomingMessage | undefined;
      let unwanted = false;
      const req = (secure ? https : http).request(u, { method: o.method, headers, agent: secure ? this.agents.https : this.agents.http });
      // One listener for the socket's idle timer: first the wait for headers, then the body's pauses.
      req.setTimeout(this.opts.headersTimeoutMs);
      req.on("timeout", () => {
        req.destroy(res ? timeoutError(`the response body paused for over ${this.opts.bodyTimeoutMs / 1000}s`, "ETIMEDOUT") : timeoutError(`no response within ${this.opts.headersTimeoutMs / 1000}s`, "ETIMEDOUT"));
      });
      req.on("socket", (socket) => {
        if (!socket.connecting) return;
        const timer = setTimeout(() => req.destroy(timeoutError(`connecting to ${u.host} took over ${this.opts.connectTimeoutMs / 1000}s`, "ETIMEDOUT")), this.opts.connectTimeoutMs);
        const clear = () => clearTimeout(timer);
        socket.once(secure ? "secureConnect" : "connect", clear);
        socket.once("close", clear);
      });
      // After the response, an error reaches its reader through the body (IncomingMessage drops it when nobody listens).
      req.on("error", (err) => (res ? res.destroy(err) : reject(err)));
      req.on("response", (r) => {
        res = r;
        req.setTimeout(this.opts.bodyTimeoutMs);
        // An error answer before the whole body was sent (a 401 mid-upload): the rest is not wanted, and
        // a server that stops reading would leave the write waiting. Stop, and drop the connection (it is
        // mid-body, not reusable) once the answer has been read.
        if (!req.writableEnded && (r.statusCode ?? 0) >= 300) {
          unwanted = true;
          r.once("end", () => req.destroy());
        }
        resolve({ statusCode: r.statusCode ?? 0, headers: headersOf(r), body: withReaders(r) });
      });
      writeBody(req, o.body, () => unwanted).catch((err: unknown) => req.destroy(err as Error));
    });
  }

  /** Close every socket, idle or not. */
  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }
}
