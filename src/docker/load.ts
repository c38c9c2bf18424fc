// Load an image into a Docker engine: a docker-archive is streamed to the
// Engine API (`POST /images/load`) on DOCKER_HOST or the usual sockets
// (docker's, then podman's); when no socket is there but a `docker` CLI is,
// the archive is piped into `docker load`. Nothing is written to disk.

import { spawn } from "node:child_process";
import { stat } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Dispatcher } from "undici";
import { ConfigError, NetworkError, RuntimeError } from "../errors.ts";
import { dockerArchiveStream } from "../oci/archive.ts";
import type { BuiltImage } from "../oci/types.ts";
import { loadUndici } from "../fetch/undici.ts";
import { formatBytes, silentLogger, type Logger } from "../util/log.ts";
import { findOnPath } from "../util/fs.ts";
import { tap } from "../util/stream.ts";

export interface EngineEndpoint {
  /** "unix" socket path, or an http base URL for tcp:// hosts. */
  socketPath?: string;
  baseUrl: string;
  /** How it was found, for messages. */
  source: string;
}

export interface LoadOptions {
  /** Overrides DOCKER_HOST, e.g. "unix:///run/podman/podman.sock". */
  dockerHost?: string;
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  /** "api" forbids the CLI fallback, "cli" skips the API. */
  via?: "auto" | "api" | "cli";
}

export interface LoadResult {
  via: "api" | "cli";
  endpoint: string;
  /** What the engine reports, e.g. ["Loaded image: name:tag"]. */
  messages: string[];
  bytes: number;
  seconds: number;
}

const isSocket = async (p: string) => (await stat(p).catch(() => undefined))?.isSocket() ?? false;

/** Where the engine is: DOCKER_HOST, then docker's and podman's default sockets. Undefined when none. */
export async function findEngine(opts: LoadOptions = {}): Promise<EngineEndpoint | undefined> {
  const env = opts.env ?? process.env;
  const host = opts.dockerHost ?? env.DOCKER_HOST;
  if (host) {
    if (host.startsWith("unix://")) return { socketPath: host.slice("unix://".length), baseUrl: "http://localhost", source: opts.dockerHost ? "--docker-host" : "DOCKER_HOST" };
    if (host.startsWith("tcp://")) {
      const tls = env.DOCKER_TLS_VERIFY === "1";
      if (tls) throw new ConfigError(`DOCKER_HOST ${host} with DOCKER_TLS_VERIFY=1: TLS client certificates are not supported yet; use a unix socket or the docker CLI (--via cli)`);
      return { baseUrl: `http://${host.slice("tcp://".length)}`, source: "DOCKER_HOST" };
    }
    throw new ConfigError(`DOCKER_HOST "${host}" is not supported; use unix:///path/to/socket or tcp://host:port`);
  }
  const candidates = [
    "/var/run/docker.sock",
    env.XDG_RUNTIME_DIR ? path.join(env.XDG_RUNTIME_DIR, "docker.sock") : "",
    env.XDG_RUNTIME_DIR ? path.join(env.XDG_RUNTIME_DIR, "podman", "podman.sock") : "",
    "/run/podman/podman.sock",
  ].filter(Boolean);
  for (const p of candidates) if (await isSocket(p)) return { socketPath: p, baseUrl: "http://localhost", source: p };
  return undefined;
}



/** Read the engine's JSON-lines answer; an errorDetail anywhere is a failure. */
async function engineMessages(body: Dispatcher.ResponseData["body"], endpoint: string): Promise<string[]> {
  const text = await body.text();
  const messages: string[] = [];
  for (const line of text.split(/\r?\n/).filter((l) => l.trim())) {
    let j: { stream?: string; status?: string; error?: string; errorDetail?: { message?: string } };
    try {
      j = JSON.parse(line) as typeof j;
    } catch {
      messages.push(line.trim());
      continue;
    }
    if (j.error || j.errorDetail) throw new RuntimeError(`docker engine at ${endpoint} refused the image: ${j.errorDetail?.message ?? j.error}`);
    const m = (j.stream ?? j.status ?? "").trim();
    if (m) messages.push(m);
  }
  return messages;
}

/** Throw when neither an engine socket (already looked for) nor, where allowed, the docker CLI is there. */
function noEngineProblem(via: "auto" | "api" | "cli", env: NodeJS.ProcessEnv): void {
  if (via === "api") throw new NetworkError("no docker engine socket found (DOCKER_HOST unset, no /var/run/docker.sock or podman socket)");
  if (!findOnPath("docker", env.PATH)) {
    throw new NetworkError("no docker engine found: set DOCKER_HOST (unix:///path/to/docker.sock), start docker or `podman system service`, or install the docker CLI");
  }
}

/** Before a build with --load: is there anything to load into? The same errors a load would give, without the build first. */
export async function checkLoadTarget(opts: LoadOptions = {}): Promise<void> {
  const via = opts.via ?? "auto";
  if (via !== "cli" && (await findEngine(opts))) return;
  noEngineProblem(via, opts.env ?? process.env);
}

/**
 * Stream a docker-archive (the `docker save` format) into the engine.
 * `open` is called once; its stream is consumed as the engine reads.
 */
export async function loadDockerArchive(open: () => Readable | Promise<Readable>, opts: LoadOptions = {}): Promise<LoadResult> {
  const log = opts.logger ?? silentLogger;
  const env = opts.env ?? process.env;
  const started = Date.now();
  let bytes = 0;
  const counter = tap((n) => { bytes += n; });
  const via = opts.via ?? "auto";
  const engine = via === "cli" ? undefined : await findEngine(opts);

  if (engine) {
    const where = engine.socketPath ? `unix://${engine.socketPath}` : engine.baseUrl;
    const { Agent, request } = await loadUndici();
    const dispatcher = new Agent({ ...(engine.socketPath ? { connect: { socketPath: engine.socketPath } } : {}), headersTimeout: 0, bodyTimeout: 0 });
    try {
      const source = await open();
      source.on("error", (e) => counter.destroy(e));
      const body = source.pipe(counter);
      let res: Dispatcher.ResponseData;
      try {
        res = await request(`${engine.baseUrl}/images/load?quiet=0`, { method: "POST", headers: { "content-type": "application/x-tar" }, body, dispatcher });
      } catch (err) {
        const code = (err as { code?: string }).code ?? (err as { cause?: { code?: string } }).cause?.code;
        if (code === "ENOENT" || code === "ECONNREFUSED" || code === "EACCES") {
          throw new NetworkError(`cannot connect to the docker engine at ${where} (${code}, from ${engine.source}); is docker (or podman system service) running, and may this user use the socket?`, { cause: err });
        }
        throw err;
      }
      if (res.statusCode !== 200) {
        const detail = (await res.body.text()).trim().slice(0, 500);
        throw new RuntimeError(`docker engine at ${where} answered ${res.statusCode} to /images/load: ${detail}`);
      }
      const messages = await engineMessages(res.body, where);
      for (const m of messages) log.info(m);
      log.info(`loaded ${formatBytes(bytes)} into ${where} in ${((Date.now() - started) / 1000).toFixed(1)}s`);
      return { via: "api", endpoint: where, messages, bytes, seconds: (Date.now() - started) / 1000 };
    } finally {
      await dispatcher.close().catch(() => {});
    }
  }

  noEngineProblem(via, env);
  // Fallback: pipe into `docker load`, which knows contexts and TLS setups we do not.
  const child = spawn("docker", ["load"], { stdio: ["pipe", "pipe", "pipe"], env });
  let out = "";
  let err = "";
  child.stdout.on("data", (c: Buffer) => { out += c.toString(); });
  child.stderr.on("data", (c: Buffer) => { err += c.toString(); });
  const exit = new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", resolve);
  });
  try {
    await pipeline(await open(), counter, child.stdin);
  } catch (e) {
    // docker stopped reading (its stdin closed under the pipeline): what it said is the error, not
    // "Premature close". Anything else failed on our side: docker is stopped.
    const stopped = ["EPIPE", "ERR_STREAM_PREMATURE_CLOSE", "ERR_STREAM_DESTROYED"].includes((e as NodeJS.ErrnoException).code ?? "") || child.exitCode !== null;
    if (!stopped) child.kill();
    const code = await exit.catch(() => null);
    if (!stopped) throw e;
    throw dockerLoadFailed(code, err.trim() || out.trim() || `it stopped reading the image (${(e as Error).message})`);
  }
  const code = await exit;
  if (code !== 0) throw dockerLoadFailed(code, err.trim() || out.trim());
  const messages = out.split("\n").map((l) => l.trim()).filter(Boolean);
  for (const m of messages) log.info(m);
  return { via: "cli", endpoint: "docker load", messages, bytes, seconds: (Date.now() - started) / 1000 };
}

/** docker load's own words: no daemon is a network error (what to start or set), the rest the engine's refusal. */
function dockerLoadFailed(code: number | null, said: string): Error {
  if (/Cannot connect to the Docker daemon|Is the docker daemon running|error during connect/i.test(said)) {
    return new NetworkError(`docker load: ${said}\nStart the docker daemon (or \`podman system service\`), or point DOCKER_HOST (or --docker-host) at a running engine's socket.`);
  }
  return new RuntimeError(`docker load failed (exit ${code ?? "killed"}): ${said}`);
}

/** Load a built image (docker-archive streamed from the store). */
export function loadImage(image: BuiltImage, opts: LoadOptions = {}): Promise<LoadResult> {
  return loadDockerArchive(() => dockerArchiveStream(image), opts);
}
