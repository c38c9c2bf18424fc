// An OCI distribution-spec client over node:http/https (./http.ts): /v2/ ping, Basic and Bearer
// auth (WWW-Authenticate realm/service/scope), blob HEAD/GET/mount/upload and
// manifest GET/PUT. Uploads stream from a source that can be reopened at an
// offset; a chunked upload that loses its connection asks the registry how far
// it got (GET on the upload URL) and continues from there.

import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { NetworkError, RegistryError, HashMismatchError } from "../errors.ts";
import { errorCode, isFinalNetworkError } from "../fetch/fetch.ts";
import type { Logger } from "../util/log.ts";
import { silentLogger } from "../util/log.ts";
import type { Credential } from "./credentials.ts";
import { HttpPool, type HttpResponse, type RequestBody, type ResponseBody } from "./http.ts";
import { countDownload } from "../util/progress.ts";
import { addSecret, redact } from "../util/redact.ts";
import { apiHost, isLoopback } from "./reference.ts";

export interface RegistryClientOptions {
  /** Registry host as in the reference ("ghcr.io", "127.0.0.1:5000"). */
  registry: string;
  credential?: Credential;
  /** Allow plain HTTP for this registry (loopback always may). */
  insecure?: boolean;
  logger?: Logger;
  /** Attempts for one request on 5xx/429/connection errors. */
  retries?: number;
  /** Base delay for backoff, ms (tests lower it). */
  backoffMs?: number;
}

export interface Challenge {
  scheme: "basic" | "bearer";
  params: Record<string, string>;
}

/** Parse `Bearer realm="...",service="...",scope="a b"` (and Basic). */
export function parseChallenge(header: string | string[] | undefined): Challenge | undefined {
  const h = Array.isArray(header) ? header.find((x) => /^bearer/i.test(x)) ?? header[0] : header;
  if (!h) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/s.exec(h);
  if (!m) return undefined;
  const scheme = m[1].toLowerCase();
  if (scheme !== "basic" && scheme !== "bearer") return undefined;
  const params: Record<string, string> = {};
  const re = /([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m[2]))) params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, "$1") : p[3];
  return { scheme, params };
}

type Body = Exclude<RequestBody, string | undefined>;

export interface SendOptions {
  method: "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Path under the registry ("/v2/...") or an absolute URL (Location headers). */
  url: string;
  headers?: Record<string, string>;
  /** Called for each attempt; a fresh body every time. */
  body?: () => Body;
  /** Retry on 5xx/429/connection errors (only safe when body can be recreated). */
  retry?: boolean;
  /** Statuses that are not errors. */
  ok: number[];
  /** What the request is for, in error messages. */
  what: string;
  /** Follow redirects (blob GETs land on a CDN). Authorization goes only to the registry's own origin. */
  follow?: boolean;
}

export interface SendResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: ResponseBody;
  url: string;
}

const RETRY_STATUS = new Set([408, 429, 500, 502, 503, 504]);
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The registry's error JSON as one short line. */
async function errorText(body: ResponseBody): Promise<string> {
  let text = "";
  try {
    text = (await body.text()).slice(0, 2000);
  } catch { /* connection gone */ }
  try {
    const j = JSON.parse(text) as { errors?: Array<{ code?: string; message?: string; detail?: unknown }> };
    if (j.errors?.length) return j.errors.map((e) => `${e.code ?? "ERROR"}: ${e.message ?? ""}${e.detail && typeof e.detail !== "object" ? ` (${String(e.detail)})` : ""}`).join("; ");
  } catch { /* not JSON */ }
  return text.trim().replace(/\s+/g, " ").slice(0, 300);
}

export class RegistryClient {
  readonly registry: string;
  readonly baseUrl: string;
  /** scheme://host:port of the registry: the only origin that gets its credentials and tokens. */
  private readonly origin: string;
  private readonly credential?: Credential;
  private readonly logger: Logger;
  private readonly retries: number;
  /** Base delay for backoff, ms; uploads use it too. */
  readonly backoffMs: number;
  private readonly pool: HttpPool;
  /** Scopes every token request asks for; push adds push+pull and mount sources first. */
  private readonly scopes = new Set<string>();
  private challenge?: Challenge;
  private token?: { value: string; scopes: string; expires: number };
  private tokenInFlight?: Promise<void>;

  constructor(opts: RegistryClientOptions) {
    this.registry = opts.registry;
    const host = apiHost(opts.registry);
    const plain = opts.insecure || isLoopback(opts.registry);
    this.baseUrl = `${plain ? "http" : "https"}://${host}`;
    this.origin = new URL(this.baseUrl).origin;
    this.credential = opts.credential;
    this.logger = opts.logger ?? silentLogger;
    this.retries = opts.retries ?? 6;
    this.backoffMs = opts.backoffMs ?? 300;
    // Idle sockets do not hold the process open, and are closed after a second.
    this.pool = new HttpPool({ connections: 16, headersTimeoutMs: 120_000, bodyTimeoutMs: 300_000, connectTimeoutMs: 10_000, keepAliveMs: 1_000 });
  }

  /** Ask for these scopes ("repository:NAME:pull,push") in every token from now on. */
  addScope(...scopes: string[]): void {
    let grew = false;
    for (const s of scopes) if (!this.scopes.has(s)) { this.scopes.add(s); grew = true; }
    if (grew) this.token = undefined;
  }

  pullScope(repository: string): string { return `repository:${repository}:pull`; }
  pushScope(repository: string): string { return `repository:${repository}:pull,push`; }

  async close(): Promise<void> {
    this.pool.close();
  }

  private absolute(url: string): string {
    return /^https?:\/\//.test(url) ? url : `${this.baseUrl}${url}`;
  }

  /**
   * True for a URL on the registry's own origin (scheme, host and port). Upload Locations and
   * redirects may point elsewhere (blob storage behind signed URLs: S3, GCS, Azure, a CDN); those
   * carry their own signature and get no Authorization, as in go-containerregistry's transports.
   */
  private ours(url: string): boolean {
    return new URL(url).origin === this.origin;
  }

  private basicHeader(): string | undefined {
    const c = this.credential;
    if (c?.kind !== "basic") return undefined;
    const v = Buffer.from(`${c.username}:${c.password}`).toString("base64");
    addSecret(v);
    return `Basic ${v}`;
  }

  private async authorization(): Promise<string | undefined> {
    if (this.credential?.kind === "registryToken") return `Bearer ${this.credential.token}`;
    if (!this.challenge) return undefined;
    if (this.challenge.scheme === "basic") return this.basicHeader();
    const scopes = [...this.scopes].sort().join(" ");
    if (!this.token || this.token.scopes !== scopes || Date.now() > this.token.expires) {
      if (!this.tokenInFlight) this.tokenInFlight = this.fetchToken(this.challenge).finally(() => { this.tokenInFlight = undefined; });
      await this.tokenInFlight;
    }
    return this.token ? `Bearer ${this.token.value}` : undefined;
  }

  /** Bearer token flow: GET realm?service=&scope= with Basic credentials, or POST a refresh token. */
  private async fetchToken(ch: Challenge): Promise<void> {
    const realm = ch.params.realm;
    if (!realm) throw new RegistryError(`${this.registry}: the registry asks for a bearer token but names no realm`);
    const scopes = [...this.scopes].sort();
    for (const s of (ch.params.scope ?? "").split(" ").filter(Boolean)) if (!scopes.includes(s)) scopes.push(s);
    const service = ch.params.service;
    let res: HttpResponse;
    const realmUrl = new URL(realm);
    if (realmUrl.protocol === "http:" && !isLoopback(realmUrl.host) && this.baseUrl.startsWith("https:")) {
      throw new RegistryError(`${this.registry}: token realm ${realmUrl.origin} is plain HTTP; refusing to send credentials there`);
    }
    const c = this.credential;
    try {
      if (c?.kind === "identityToken") {
        const form = new URLSearchParams({ grant_type: "refresh_token", refresh_token: c.token, client_id: "layerfold", ...(service ? { service } : {}), scope: scopes.join(" ") });
        res = await this.pool.request(realm, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: form.toString() });
      } else {
        const u = new URL(realm);
        if (service) u.searchParams.set("service", service);
        for (const s of scopes) u.searchParams.append("scope", s);
        if (c?.kind === "basic") u.searchParams.set("account", c.username);
        const auth = this.basicHeader();
        res = await this.pool.request(u, { method: "GET", headers: auth ? { authorization: auth } : {} });
      }
    } catch (err) {
      throw new NetworkError(`${this.registry}: cannot reach token server ${realmUrl.origin} (${errorCode(err) ?? (err as Error).message})`, { cause: err });
    }
    if (res.statusCode === 401 || res.statusCode === 403) {
      const detail = redact(await errorText(res.body));
      throw new RegistryError(`${this.registry}: token server ${realmUrl.origin} refused the credentials (${res.statusCode}${detail ? `: ${detail}` : ""}); check them (docker login ${this.registry}, or LAYERFOLD_REGISTRY_USER/PASSWORD)`);
    }
    if (res.statusCode !== 200) {
      const detail = redact(await errorText(res.body));
      throw new RegistryError(`${this.registry}: token server ${realmUrl.origin} answered ${res.statusCode}${detail ? `: ${detail}` : ""}`);
    }
    const j = (await res.body.json()) as { token?: string; access_token?: string; expires_in?: number };
    const value = j.token ?? j.access_token;
    if (!value) throw new RegistryError(`${this.registry}: token server ${realmUrl.origin} returned no token`);
    addSecret(value);
    const ttl = Math.max(30, (j.expires_in ?? 60) - 10) * 1000;
    this.token = { value, scopes: [...this.scopes].sort().join(" "), expires: Date.now() + ttl };
    this.logger.debug(`${this.registry}: got a bearer token for ${scopes.join(" ") || "(no scope)"} from ${realmUrl.origin}`);
  }

  /** One HTTP exchange with auth, retries and redirects. The caller consumes the body. */
  async send(opts: SendOptions): Promise<SendResult> {
    const attempts = opts.retry === false ? 1 : this.retries;
    let lastErr: unknown;
    let authRetried = false;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0) await sleep(this.backoff(attempt, lastErr));
      let url = this.absolute(opts.url);
      const headers: Record<string, string> = { "user-agent": "layerfold", ...(opts.headers ?? {}) };
      delete headers.authorization;
      const auth = this.ours(url) ? await this.authorization() : undefined;
      const withAuth = (u: string) => (auth && this.ours(u) ? { ...headers, authorization: auth } : headers);
      let res: HttpResponse;
      try {
        res = await this.pool.request(url, { method: opts.method, headers: withAuth(url), body: opts.body?.() });
        for (let hop = 0; opts.follow && [301, 302, 303, 307, 308].includes(res.statusCode) && hop < 5; hop++) {
          res.body.resume();
          url = new URL(String(res.headers.location), url).toString();
          res = await this.pool.request(url, { method: opts.method, headers: withAuth(url) });
        }
      } catch (err) {
        lastErr = err;
        this.logger.debug(redact(`${opts.method} ${url}: ${errorCode(err) ?? (err as Error).message}`));
        if (isFinalNetworkError(err)) {
          const hint = /CERT|SELF_SIGNED|VERIFY/.test(errorCode(err) ?? "") ? " The TLS certificate is not trusted; add its CA to the system (NODE_EXTRA_CA_CERTS), or use --insecure for a plain-HTTP registry." : " Is the registry address right and the registry running?";
          throw Object.assign(new NetworkError(`${opts.what}: cannot reach ${this.registry} (${errorCode(err)}).${hint}`, { cause: err }), { final: true });
        }
        continue;
      }
      this.logger.debug(redact(`${opts.method} ${url} -> ${res.statusCode}`));
      if ((res.statusCode === 401 || res.statusCode === 403) && !this.ours(url)) {
        // Another origin's challenge is never answered: its realm could be anyone's.
        res.body.resume();
        const where = new URL(url).origin;
        throw Object.assign(new RegistryError(`${opts.what}: ${where}, where ${this.registry} sent this request, answered ${res.statusCode}; layerfold sends ${this.registry}'s credentials only to ${this.origin}, so blob storage elsewhere must accept the URL's own signature (check the registry's storage redirect settings)`), { httpStatus: res.statusCode });
      }
      if (res.statusCode === 401 && !authRetried) {
        const ch = parseChallenge(res.headers["www-authenticate"]);
        res.body.resume();
        if (ch && (this.credential || ch.scheme === "bearer")) {
          authRetried = true;
          this.challenge = ch;
          this.token = undefined;
          if (opts.body && opts.retry === false) {
            // A streamed body cannot be sent again from here; the upload resumes it (and gets a fresh token).
            throw Object.assign(new RegistryError(`${opts.what}: ${this.registry} asked to authenticate again (token expired?)`), { httpStatus: 401 });
          }
          attempt--; // an auth round trip is not a failure
          continue;
        }
        throw new RegistryError(`${opts.what}: ${this.registry} wants credentials; run docker login ${this.registry}, or set LAYERFOLD_REGISTRY_USER and LAYERFOLD_REGISTRY_PASSWORD`);
      }
      if (opts.ok.includes(res.statusCode)) return { status: res.statusCode, headers: res.headers, body: res.body, url };
      if (RETRY_STATUS.has(res.statusCode) && attempt < attempts - 1) {
        lastErr = Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, retryAfter: res.headers["retry-after"] });
        res.body.resume();
        continue;
      }
      const detail = redact(await errorText(res.body));
      const err = res.statusCode === 401 || res.statusCode === 403
        ? new RegistryError(`${opts.what}: ${this.registry} denied access (${res.statusCode}${detail ? `: ${detail}` : ""}); check the credentials and that they may push/pull this repository`)
        : new RegistryError(`${opts.what}: ${this.registry} answered ${res.statusCode}${detail ? `: ${detail}` : ""}`);
      throw Object.assign(err, { httpStatus: res.statusCode });
    }
    const msg = (lastErr as { status?: number })?.status ? `HTTP ${(lastErr as { status: number }).status}` : (errorCode(lastErr) ?? (lastErr as Error)?.message);
    throw new NetworkError(`${opts.what}: ${this.registry} failed after ${attempts} attempts (${redact(String(msg))})`, { cause: lastErr });
  }

  private backoff(attempt: number, err: unknown): number {
    const ra = (err as { retryAfter?: string })?.retryAfter;
    if (ra && /^\d+$/.test(ra)) return Math.min(Number(ra) * 1000, 30_000);
    return Math.min(10_000, this.backoffMs * 2 ** (attempt - 1)) + Math.random() * this.backoffMs;
  }

  // ---- API ------------------------------------------------------------------

  /** GET /v2/: checks that this is a registry and learns its auth challenge. */
  async ping(): Promise<void> {
    const r = await this.send({ method: "GET", url: "/v2/", ok: [200], what: `ping ${this.registry}` });
    r.body.resume();
  }

  async hasBlob(repository: string, digest: string): Promise<{ exists: boolean; size?: number }> {
    const r = await this.send({ method: "HEAD", url: `/v2/${repository}/blobs/${digest}`, ok: [200, 404], what: `check blob ${digest.slice(0, 19)} in ${repository}`, follow: true });
    r.body.resume();
    const len = Number(r.headers["content-length"]);
    return { exists: r.status === 200, size: Number.isFinite(len) ? len : undefined };
  }

  /**
   * Stream a blob, verifying its digest as it flows; the stream errors on a mismatch. A
   * connection lost mid-body (or a body that ends short) continues from the byte reached
   * with a Range request, up to the client's retry count, so a 2 GB layer on a poor network
   * is not downloaded again from the start; a registry that ignores Range sends it whole,
   * and the bytes already passed on are skipped.
   */
  async getBlob(repository: string, digest: string): Promise<Readable> {
    const what = `fetch blob ${digest} from ${repository}`;
    const get = (from: number) =>
      this.send({ method: "GET", url: `/v2/${repository}/blobs/${digest}`, headers: from ? { range: `bytes=${from}-` } : {}, ok: from ? [200, 206] : [200], what, follow: true });
    const first = await get(0);
    const body = this.resumingBody(first, get, digest, `blob ${digest} from ${this.registry}/${repository}`);
    const size = Number(first.headers["content-length"]);
    return Readable.from(countDownload(body, `${repository}@${digest.slice(7, 19)}`, Number.isFinite(size) ? size : undefined), { objectMode: false });
  }

  private async *resumingBody(first: SendResult, get: (from: number) => Promise<SendResult>, digest: string, what: string): AsyncGenerator<Buffer> {
    const hash = createHash("sha256");
    const total = Number(first.headers["content-length"]);
    let got = 0;
    let res = first;
    let skip = 0; // bytes of a whole-blob answer to a Range request that were passed on already
    for (let resumes = 0; ; resumes++) {
      let lost: unknown;
      try {
        for await (const chunk of res.body as AsyncIterable<Buffer>) {
          let c = chunk;
          if (skip) {
            const n = Math.min(skip, c.length);
            skip -= n;
            c = c.subarray(n);
            if (!c.length) continue;
          }
          hash.update(c);
          got += c.length;
          yield c;
        }
        if (!Number.isFinite(total) || got >= total) break;
        lost = new Error(`the body ended after ${got} of ${total} bytes`);
      } catch (err) {
        if (err instanceof HashMismatchError) throw err;
        lost = err;
      }
      res.body.destroy();
      if (resumes >= this.retries - 1) {
        throw new NetworkError(`${what}: the connection was lost at byte ${got}${Number.isFinite(total) ? ` of ${total}` : ""} ${resumes + 1} times (${redact(errorCode(lost) ?? (lost as Error).message)}); check the network and pull again`, { cause: lost });
      }
      this.logger.debug(`${what}: connection lost at byte ${got} (${errorCode(lost) ?? (lost as Error).message}); resuming`);
      await sleep(this.backoff(resumes + 1, lost));
      res = await get(got);
      if (res.status === 206) {
        const start = /^bytes (\d+)-/.exec(String(res.headers["content-range"] ?? ""))?.[1];
        if (Number(start) !== got) {
          res.body.destroy();
          throw new RegistryError(`${what}: asked for bytes from ${got}, the registry sent Content-Range ${JSON.stringify(res.headers["content-range"] ?? "")}`);
        }
      } else skip = got;
    }
    const hex = hash.digest("hex");
    if (`sha256:${hex}` !== digest) throw new HashMismatchError(`${what}: received content has digest sha256:${hex}`);
  }

  async getManifest(repository: string, reference: string): Promise<{ body: Buffer; mediaType: string; digest: string }> {
    const accept = [
      "application/vnd.oci.image.index.v1+json",
      "application/vnd.oci.image.manifest.v1+json",
      "application/vnd.docker.distribution.manifest.list.v2+json",
      "application/vnd.docker.distribution.manifest.v2+json",
    ].join(", ");
    const r = await this.send({ method: "GET", url: `/v2/${repository}/manifests/${reference}`, headers: { accept }, ok: [200, 404], what: `fetch manifest ${repository}:${reference}` });
    if (r.status === 404) {
      r.body.resume();
      throw new RegistryError(`manifest ${this.registry}/${repository}:${reference} not found; check the name and tag`);
    }
    // Registries cap manifests at 4 MiB; refuse to buffer more from a misbehaving one.
    const len = Number(r.headers["content-length"]);
    if (len > MAX_MANIFEST_BYTES) {
      r.body.destroy();
      throw new RegistryError(`manifest ${this.registry}/${repository}:${reference} is ${len} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit`);
    }
    const parts: Buffer[] = [];
    let got = 0;
    for await (const c of r.body) {
      got += (c as Buffer).length;
      if (got > MAX_MANIFEST_BYTES) {
        r.body.destroy();
        throw new RegistryError(`manifest ${this.registry}/${repository}:${reference} is over the ${MAX_MANIFEST_BYTES}-byte limit`);
      }
      parts.push(c as Buffer);
    }
    const body = Buffer.concat(parts);
    const { createHash } = await import("node:crypto");
    const digest = `sha256:${createHash("sha256").update(body).digest("hex")}`;
    if (reference.startsWith("sha256:") && reference !== digest) {
      throw new HashMismatchError(`manifest ${this.registry}/${repository}@${reference}: the registry sent content with digest ${digest}`);
    }
    let mediaType = String(r.headers["content-type"] ?? "").split(";")[0].trim();
    try {
      const j = JSON.parse(body.toString("utf8")) as { mediaType?: string };
      if (j.mediaType) mediaType = j.mediaType;
    } catch {
      throw new RegistryError(`manifest ${this.registry}/${repository}:${reference} is not JSON`);
    }
    return { body, mediaType, digest };
  }

  async putManifest(repository: string, reference: string, body: Buffer, mediaType: string): Promise<string | undefined> {
    const r = await this.send({
      method: "PUT",
      url: `/v2/${repository}/manifests/${reference}`,
      headers: { "content-type": mediaType, "content-length": String(body.length) },
      body: () => body,
      ok: [201, 200],
      what: `push manifest ${repository}:${reference}`,
    });
    r.body.resume();
    const d = r.headers["docker-content-digest"];
    return typeof d === "string" ? d : undefined;
  }

  /**
   * Try a cross-repository mount. Returns "mounted", or the upload URL the
   * registry opened instead (202) so the caller can upload without another POST.
   */
  async mountBlob(repository: string, digest: string, from: string): Promise<{ mounted: true } | { mounted: false; location: string }> {
    const r = await this.send({
      method: "POST",
      url: `/v2/${repository}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`,
      headers: { "content-length": "0" },
      ok: [201, 202],
      what: `mount blob ${digest.slice(0, 19)} from ${from} into ${repository}`,
    });
    r.body.resume();
    if (r.status === 201) return { mounted: true };
    return { mounted: false, location: this.location(r, `mount ${digest}`) };
  }

  async startUpload(repository: string): Promise<string> {
    const r = await this.send({ method: "POST", url: `/v2/${repository}/blobs/uploads/`, headers: { "content-length": "0" }, ok: [202], what: `start upload to ${repository}` });
    r.body.resume();
    return this.location(r, `start upload to ${repository}`);
  }

  /** Where the registry says an upload stands: next offset and the URL to continue at. */
  async uploadStatus(location: string): Promise<{ offset: number; location: string } | undefined> {
    const r = await this.send({ method: "GET", url: location, ok: [204, 200, 404, 400, 416], what: "query upload status" });
    r.body.resume();
    if (r.status !== 204 && r.status !== 200) return undefined;
    const range = String(r.headers.range ?? "");
    const m = /^(?:bytes=)?0-(\d+)$/.exec(range);
    // distribution writes "0-0" for an empty upload as well as for one byte; take the safe reading
    // (a wrong guess is answered with 416 and the caller starts over).
    const end = m ? Number(m[1]) : -1;
    return { offset: end > 0 ? end + 1 : 0, location: r.headers.location ? this.location(r, "upload status") : location };
  }

  location(r: SendResult, what: string): string {
    const loc = r.headers.location;
    if (typeof loc !== "string" || !loc) throw new RegistryError(`${what}: ${this.registry} sent no Location header`);
    return new URL(loc, r.url).toString();
  }
}
