// Downloads into the store by sha256: file:// and http(s)://, verified,
// retried with backoff where a retry can succeed, resumed with Range after a
// dropped connection. A DNS failure or refused connection is final for that
// host: it is reported once and remembered, so callers move on at once
// instead of stalling on retries (pip's unreachable default index).

import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, rm, stat, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Dispatcher } from "undici";
import { HashMismatchError, NetworkError } from "../errors.ts";
import type { Store } from "../store/store.ts";
import { HashingStream } from "../util/hash.ts";
import { downloads } from "../util/progress.ts";
import { tap } from "../util/stream.ts";
import { authorizationFor, credentialHint, takeUrlCredentials } from "./http-auth.ts";
import { loadUndici } from "./undici.ts";

const FINAL_CODES = new Set(["ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "CERT_HAS_EXPIRED", "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "DEPTH_ZERO_SELF_SIGNED_CERT", "ERR_TLS_CERT_ALTNAME_INVALID"]);
const deadHosts = new Map<string, string>();

export function errorCode(err: unknown): string | undefined {
  let e = err as { code?: string; cause?: unknown } | undefined;
  for (let i = 0; e && i < 5; i++) {
    if (e.code && e.code !== "UND_ERR_SOCKET" && e.code !== "UND_ERR_CONNECT_TIMEOUT") return e.code;
    if (e.code === "UND_ERR_CONNECT_TIMEOUT") return e.code;
    e = e.cause as typeof e;
  }
  return (err as { code?: string })?.code;
}

/** True when retrying cannot help (the host does not exist or refuses). */
export const isFinalNetworkError = (err: unknown): boolean => FINAL_CODES.has(errorCode(err) ?? "");

/** Host of a URL whose earlier failure was final, with the reason; callers skip it. */
export function deadHostReason(url: string): string | undefined {
  try {
    return deadHosts.get(new URL(url).host);
  } catch {
    return undefined;
  }
}

export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.username || u.password) { u.username = "***"; u.password = ""; }
    return u.toString();
  } catch {
    return url;
  }
}

/** The URL as written into the lock: never with a user or password in it. */
export function lockableUrl(url: string): string {
  try {
    const u = new URL(url);
    if (!u.username && !u.password) return url;
    u.username = "";
    u.password = "";
    return u.toString();
  } catch {
    return url;
  }
}

export interface FetchOptions {
  /** Names the thing in errors, e.g. "wheel numpy-2.0.2-...whl for py:numpy". */
  what: string;
  sha256?: string;
  retries?: number;
  headers?: Record<string, string>;
  /** Called with bytes received so far. */
  onProgress?: (bytes: number, total?: number) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const RETRY_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);

class HttpStatusError extends Error {
  /** Where the credentials sent came from, when some were. */
  authSource?: string;
  constructor(readonly status: number, readonly url: string) {
    super(`HTTP ${status}`);
  }
}

// undici 7 follows redirects only through the redirect interceptor. Made on the first download.
let httpAgent: Dispatcher | undefined;

async function openHttp(rawUrl: string, headers: Record<string, string>): Promise<Dispatcher.ResponseData<unknown>> {
  const { Agent, interceptors, request } = await loadUndici();
  httpAgent ??= new Agent().compose(interceptors.redirect({ maxRedirections: 5 }));
  // Credentials go in a header, never in the URL; undici's redirect drops the header on another origin.
  const url = takeUrlCredentials(rawUrl);
  const auth = authorizationFor(url);
  const res = await request(url, { method: "GET", headers: auth ? { ...headers, authorization: auth.header } : headers, dispatcher: httpAgent, headersTimeout: 60_000, bodyTimeout: 120_000 });
  if (res.statusCode >= 300) {
    res.body.resume();
    throw Object.assign(new HttpStatusError(res.statusCode, url), { authSource: auth?.source });
  }
  return res;
}

export async function fetchBytes(url: string, what: string, headers: Record<string, string> = {}, retries = 3): Promise<Buffer> {
  if (url.startsWith("file:")) {
    try {
      return await readFile(fileURLToPath(url));
    } catch (err) {
      throw new NetworkError(`${what}: cannot read ${url}: ${(err as Error).message}`, { cause: err });
    }
  }
  return withRetries(url, what, retries, async () => {
    const res = await openHttp(url, headers);
    return Buffer.from(await res.body.arrayBuffer());
  });
}

async function withRetries<T>(url: string, what: string, retries: number, fn: () => Promise<T>): Promise<T> {
  let host = "";
  try { host = new URL(url).host; } catch { /* file path */ }
  const dead = deadHosts.get(host);
  if (dead) throw new NetworkError(`${what}: ${redactUrl(url)} is unreachable (${dead}, seen earlier in this run)`);
  let lastErr: unknown;
  for (let attempt = 0; attempt <= retries; attempt++) {
    try {
      return await fn();
    } catch (err) {
      lastErr = err;
      if (err instanceof HashMismatchError) throw err;
      if (err instanceof HttpStatusError) {
        if (err.status === 404 || err.status === 410) throw new NetworkError(`${what}: ${redactUrl(url)} answered ${err.status} (not found); check the URL or the index it came from`);
        if (err.status === 401 || (err.status === 403 && err.authSource)) {
          throw Object.assign(new NetworkError(`${what}: ${redactUrl(url)} answered ${err.status}; ${credentialHint(url, err.authSource)}`), { httpStatus: err.status, authFailed: true });
        }
        if (!RETRY_STATUS.has(err.status)) throw new NetworkError(`${what}: ${redactUrl(url)} answered HTTP ${err.status}`);
      } else if (isFinalNetworkError(err)) {
        const reason = errorCode(err) ?? "unreachable";
        deadHosts.set(host, reason);
        throw new NetworkError(`${what}: cannot reach ${host} (${reason}); it will not be retried. Check the network or configure a mirror.`, { cause: err });
      }
      if (attempt < retries) await sleep(Math.min(8000, 250 * 2 ** attempt) + Math.random() * 100);
    }
  }
  const msg = lastErr instanceof HttpStatusError ? `HTTP ${lastErr.status}` : (errorCode(lastErr) ?? (lastErr as Error)?.message);
  throw new NetworkError(`${what}: ${redactUrl(url)} failed after ${retries + 1} attempts (${msg})`, { cause: lastErr });
}

/**
 * Fetch url into the store, verifying sha256 when given. Returns the digest.
 * Already-stored blobs with the expected hash cost nothing.
 */
export async function fetchToStore(store: Store, url: string, opts: FetchOptions): Promise<{ hex: string; size: number }> {
  if (opts.sha256) {
    // Intact (stat signature, else a rehash): reused; damaged: removed, and fetched again below.
    const size = (await store.checkBlob(opts.sha256)) === "ok" ? await store.blobSize(opts.sha256) : undefined;
    if (size !== undefined) return { hex: opts.sha256, size };
  }
  const transfer = downloads.start(opts.what);
  if (url.startsWith("file:") || url.startsWith("/")) {
    const p = url.startsWith("file:") ? fileURLToPath(url) : url;
    let size: number;
    try {
      size = (await stat(p)).size;
    } catch {
      transfer.done();
      throw new NetworkError(`${opts.what}: ${p} does not exist`);
    }
    let got = 0;
    const counted = tap((n) => transfer.update((got += n), size));
    try {
      return await store.putBlob(createReadStream(p).on("error", (e) => counted.destroy(e)).pipe(counted), { expected: opts.sha256, what: opts.what });
    } finally {
      transfer.done();
    }
  }
  // HTTP: download to a partial file we can resume with Range, then hash into the store.
  await mkdir(store.tmpDir, { recursive: true });
  const part = path.join(store.tmpDir, `dl-${process.pid}-${Math.random().toString(36).slice(2)}`);
  try {
    let total: number | undefined;
    await withRetries(url, opts.what, opts.retries ?? 4, async () => {
      const have = await stat(part).then((s) => s.size, () => 0);
      const headers = { ...(opts.headers ?? {}), ...(have > 0 ? { range: `bytes=${have}-` } : {}) };
      const res = await openHttp(url, headers);
      const append = have > 0 && res.statusCode === 206;
      const len = Number(res.headers["content-length"] ?? NaN);
      if (!Number.isNaN(len)) total = (append ? have : 0) + len;
      let got = append ? have : 0;
      const counter = new HashingStream();
      counter.on("data", (c: Buffer) => { got += c.length; opts.onProgress?.(got, total); transfer.update(got, total); });
      await pipeline(res.body, counter, createWriteStream(part, { flags: append ? "a" : "w" }));
      if (total !== undefined && got !== total) throw Object.assign(new Error(`short read ${got}/${total}`), { code: "ECONNRESET" });
    });
    return await store.putBlob(createReadStream(part), { expected: opts.sha256, what: opts.what });
  } finally {
    transfer.done();
    await rm(part, { force: true });
  }
}

/**
 * GET a byte range of an http(s) resource (for reading a remote wheel's
 * METADATA without downloading it). `range` is an HTTP range spec such as
 * "bytes=-65536". Returns undefined when the server ignores ranges (answers
 * 200), so the caller downloads the whole file instead.
 */
export async function fetchRange(url: string, what: string, range: string): Promise<{ data: Buffer; totalSize: number } | undefined> {
  return withRetries(url, what, 3, async () => {
    const res = await openHttp(url, { range, "accept-encoding": "identity" });
    if (res.statusCode !== 206) {
      res.body.destroy();
      return undefined;
    }
    const total = /\/(\d+)\s*$/.exec(String(res.headers["content-range"] ?? ""));
    const data = Buffer.from(await res.body.arrayBuffer());
    return { data, totalSize: total ? Number(total[1]) : NaN };
  });
}
