// Test helpers for registry work: a real registry (Debian's docker-registry,
// CNCF distribution 2.8) on a free loopback port with filesystem storage in a
// temp dir, and a loopback proxy in front of any HTTP server that counts the
// bytes clients upload and can inject faults (dropped connections, 500, 429).

import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile, readdir, stat } from "node:fs/promises";
import { createServer as createNetServer, type AddressInfo } from "node:net";
import http from "node:http";
import os from "node:os";
import path from "node:path";

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export const hasCommand = (cmd: string): boolean => {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
};

export interface RegistryAuthToken {
  realm: string;
  service: string;
  issuer: string;
  /** PEM bundle of the certificates whose keys sign tokens. */
  rootCertBundle: string;
}

export interface StartRegistryOptions {
  /** Enable Basic auth: users and passwords written with `htpasswd -B`. */
  htpasswd?: Record<string, string>;
  /** Enable token auth (auth.token). */
  token?: RegistryAuthToken;
}

export interface RunningRegistry {
  /** e.g. "http://127.0.0.1:5123" */
  url: string;
  /** e.g. "127.0.0.1:5123" (what goes in an image reference) */
  host: string;
  port: number;
  dataDir: string;
  /** Directory with the registry's storage (docker/registry/v2/...). */
  storageDir: string;
  logFile: string;
  stop(): Promise<void>;
}

async function waitForHttp(url: string, child: ChildProcess, logFile: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  child.once("exit", () => { exited = true; });
  while (Date.now() < deadline) {
    if (exited) break;
    const ok = await new Promise<boolean>((resolve) => {
      const req = http.get(url, (res) => { res.resume(); resolve(true); });
      req.on("error", () => resolve(false));
      req.setTimeout(1000, () => { req.destroy(); resolve(false); });
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  const log = await import("node:fs/promises").then((f) => f.readFile(logFile, "utf8")).catch(() => "");
  child.kill("SIGKILL");
  throw new Error(`registry did not come up at ${url}${exited ? " (process exited)" : ""}:\n${log.slice(-2000)}`);
}

/** The port the registry logged it listens on. */
async function listeningPort(child: ChildProcess, logFile: string, timeoutMs = 15_000): Promise<number> {
  const { readFile } = await import("node:fs/promises");
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && child.exitCode === null) {
    const m = /listening on 127\.0\.0\.1:(\d+)/.exec(await readFile(logFile, "utf8").catch(() => ""));
    if (m) return Number(m[1]);
    await new Promise((r) => setTimeout(r, 50));
  }
  const log = await readFile(logFile, "utf8").catch(() => "");
  child.kill("SIGKILL");
  throw new Error(`registry did not say which port it listens on:\n${log.slice(-2000)}`);
}

/** Kill a helper's child if the test process exits without stopping it (a failed or killed test). */
export function killOnExit(child: ChildProcess): void {
  const kill = () => { if (child.exitCode === null) child.kill("SIGKILL"); };
  process.once("exit", kill);
  child.once("exit", () => process.removeListener("exit", kill));
}

/** Start `docker-registry serve CONFIG.yml` on a free loopback port. */
export async function startRegistry(opts: StartRegistryOptions = {}): Promise<RunningRegistry> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "lf-registry-"));
  const storageDir = path.join(dataDir, "storage");
  // Port 0: the registry picks a free port itself and logs it. Choosing one up
  // front raced with other test files, and a registry that lost the race left
  // its test talking to another test's registry.
  const lines = [
    "version: 0.1",
    "log:",
    "  level: info",
    "  accesslog:",
    "    disabled: true",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${storageDir}`,
    "  delete:",
    "    enabled: true",
    "http:",
    "  addr: 127.0.0.1:0",
    "  secret: layerfold-test-secret",
  ];
  if (opts.htpasswd) {
    const file = path.join(dataDir, "htpasswd");
    let content = "";
    for (const [user, pass] of Object.entries(opts.htpasswd)) {
      content += execFileSync("htpasswd", ["-Bbn", user, pass], { encoding: "utf8" }).trim() + "\n";
    }
    await writeFile(file, content);
    lines.push("auth:", "  htpasswd:", "    realm: layerfold-test", `    path: ${file}`);
  } else if (opts.token) {
    const bundle = path.join(dataDir, "token-root.pem");
    await writeFile(bundle, opts.token.rootCertBundle);
    lines.push(
      "auth:",
      "  token:",
      `    realm: ${opts.token.realm}`,
      `    service: ${opts.token.service}`,
      `    issuer: ${opts.token.issuer}`,
      `    rootcertbundle: ${bundle}`,
    );
  }
  const configFile = path.join(dataDir, "config.yml");
  await writeFile(configFile, lines.join("\n") + "\n");
  const logFile = path.join(dataDir, "registry.log");
  const { openSync, closeSync } = await import("node:fs");
  const fd = openSync(logFile, "a");
  const child = spawn("docker-registry", ["serve", configFile], { stdio: ["ignore", fd, fd], detached: false });
  closeSync(fd);
  killOnExit(child);
  const port = await listeningPort(child, logFile);
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/v2/`, child, logFile);
  return {
    url,
    host: `127.0.0.1:${port}`,
    port,
    dataDir,
    storageDir,
    logFile,
    async stop() {
      if (child.exitCode === null) {
        const done = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 3000);
        await done;
        clearTimeout(t);
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Digests ("sha256:...") of every blob the registry stores. */
export async function registryBlobDigests(reg: RunningRegistry): Promise<string[]> {
  const base = path.join(reg.storageDir, "docker/registry/v2/blobs/sha256");
  const out: string[] = [];
  for (const prefix of await readdir(base).catch(() => [] as string[])) {
    for (const hex of await readdir(path.join(base, prefix))) {
      if ((await stat(path.join(base, prefix, hex, "data")).catch(() => undefined))?.isFile()) out.push(`sha256:${hex}`);
    }
  }
  return out.sort();
}

// ---- counting / fault-injecting proxy -------------------------------------

export interface ProxyRequestInfo {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  /** Request body bytes the proxy received from the client. */
  bodyBytes: number;
  /** Response body bytes the proxy passed on to the client. */
  responseBytes: number;
  status?: number;
  fault?: string;
}

export type Fault =
  | { kind: "status"; status: number; retryAfter?: number; headers?: Record<string, string> }
  /** Forward this many body bytes, then cut both connections. */
  | { kind: "drop"; afterBytes: number }
  /** Reset the client's connection at once (TCP RST), before any answer. */
  | { kind: "reset" }
  /** Forward normally, but hold the response this long first. */
  | { kind: "slow"; delayMs: number }
  /** Forward the answer's headers and this many body bytes, then cut the client's connection. */
  | { kind: "cut"; afterBytes: number };

export interface ProxyOptions {
  /** Decide per request whether to inject a fault; n counts requests from 1. */
  fault?: (req: { method: string; url: string; n: number; range?: string }) => Fault | undefined;
  /** Drop Range headers: the upstream then answers as a server without range support. */
  ignoreRange?: boolean;
}

export interface RunningProxy {
  url: string;
  host: string;
  port: number;
  requests: ProxyRequestInfo[];
  /** Sum of request body bytes of PATCH/PUT/POST requests that reached the upstream. */
  uploadedBytes(): number;
  reset(): void;
  stop(): Promise<void>;
}

/** A loopback HTTP proxy in front of `target` (e.g. a registry's url). The Host header is kept, so Location URLs point back at the proxy. */
export async function startProxy(target: string, opts: ProxyOptions = {}): Promise<RunningProxy> {
  const t = new URL(target);
  const requests: ProxyRequestInfo[] = [];
  let n = 0;
  // A large header limit, as Go's servers (the registry's) have: partial pulls of zstd:chunked layers
  // ask for hundreds of ranges in one Range header, past Node's 16 KiB default.
  const server = http.createServer({ maxHeaderSize: 1 << 20 }, (req, res) => {
    const info: ProxyRequestInfo = { method: req.method ?? "GET", url: req.url ?? "/", headers: req.headers, bodyBytes: 0, responseBytes: 0 };
    requests.push(info);
    const fault = opts.fault?.({ method: info.method, url: info.url, n: ++n, range: req.headers.range });
    if (opts.ignoreRange) delete req.headers.range;
    if (fault?.kind === "status") {
      info.fault = `status ${fault.status}`;
      info.status = fault.status;
      req.resume();
      req.on("end", () => {
        res.writeHead(fault.status, { "content-type": "application/json", ...(fault.retryAfter !== undefined ? { "retry-after": String(fault.retryAfter) } : {}), ...(fault.headers ?? {}) });
        res.end(JSON.stringify({ errors: [{ code: "UNKNOWN", message: "injected fault" }] }));
      });
      return;
    }
    if (fault?.kind === "reset") {
      info.fault = "reset";
      req.socket.resetAndDestroy();
      return;
    }
    if (fault?.kind === "slow") info.fault = `slow ${fault.delayMs}`;
    const up = http.request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers }, (upRes) => {
      info.status = upRes.statusCode;
      const answer = () => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.on("data", (chunk: Buffer) => {
          if (fault?.kind === "cut" && info.responseBytes + chunk.length > fault.afterBytes) {
            const keep = fault.afterBytes - info.responseBytes;
            info.responseBytes += keep;
            info.fault = `cut after ${fault.afterBytes}`;
            // A FIN after the bytes (not a reset, which would drop what the client has not read yet).
            res.write(chunk.subarray(0, keep), () => { res.socket?.end(); up.destroy(); });
            upRes.pause();
            return;
          }
          info.responseBytes += chunk.length;
          if (!res.write(chunk)) { upRes.pause(); res.once("drain", () => upRes.resume()); }
        });
        upRes.on("end", () => { if (!info.fault?.startsWith("cut")) res.end(); });
      };
      if (fault?.kind === "slow") setTimeout(answer, fault.delayMs);
      else answer();
    });
    up.on("error", () => res.destroy());
    req.on("data", (chunk: Buffer) => {
      if (fault?.kind === "drop" && info.bodyBytes + chunk.length > fault.afterBytes) {
        const keep = Math.max(0, fault.afterBytes - info.bodyBytes);
        if (keep > 0) up.write(chunk.subarray(0, keep));
        info.bodyBytes += keep;
        info.fault = `drop after ${fault.afterBytes}`;
        req.pause();
        // Let the upstream see the partial body, then cut both sides.
        setTimeout(() => { up.destroy(); req.socket.destroy(); }, 50);
        return;
      }
      info.bodyBytes += chunk.length;
      up.write(chunk);
    });
    req.on("end", () => { if (!info.fault?.startsWith("drop")) up.end(); });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    port,
    requests,
    uploadedBytes: () => requests.filter((r) => ["PATCH", "PUT", "POST"].includes(r.method)).reduce((a, r) => a + r.bodyBytes, 0),
    reset: () => { requests.length = 0; },
    stop: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}
