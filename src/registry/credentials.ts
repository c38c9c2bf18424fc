// Where registry credentials come from, in order:
//  1. explicit options (CLI flags --username/--password-stdin),
//  2. LAYERFOLD_REGISTRY_USER / LAYERFOLD_REGISTRY_PASSWORD (CI),
//  3. GITHUB_TOKEN for ghcr.io (with --ghcr, or when nothing else is configured for ghcr.io),
//  4. docker's config.json ($DOCKER_CONFIG/config.json or ~/.docker/config.json):
//     credHelpers[host], then credsStore, then auths[host] (auth, username/password,
//     identitytoken, registrytoken). Helpers are docker-credential-* processes.
// Every secret found is registered with redact() before it goes anywhere.

import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { ConfigError, RegistryError } from "../errors.ts";
import { addSecret } from "../util/redact.ts";
import { DOCKER_HUB } from "./reference.ts";

export type Credential =
  | { kind: "basic"; username: string; password: string }
  /** An OAuth2 refresh token (docker login with an identity provider); exchanged at the token endpoint. */
  | { kind: "identityToken"; username?: string; token: string }
  /** A bearer token sent as is. */
  | { kind: "registryToken"; token: string };

export interface CredentialOptions {
  username?: string;
  password?: string;
  /** Use GITHUB_TOKEN for ghcr.io. */
  ghcr?: boolean;
  env?: NodeJS.ProcessEnv;
  /** Directory holding config.json; default $DOCKER_CONFIG or ~/.docker. */
  dockerConfigDir?: string;
}

export interface FoundCredential {
  credential?: Credential;
  /** Where it came from, for --debug (never the secret itself). */
  source: string;
}

interface DockerAuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
}

interface DockerConfigFile {
  auths?: Record<string, DockerAuthEntry>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
}

const HUB_KEY = "https://index.docker.io/v1/";

/** docker keys auths by "host", "https://host", "http://host/v1/" ...; compare by host. */
function keyHost(key: string): string {
  const k = key.replace(/^[a-z]+:\/\//i, "").replace(/\/.*$/, "");
  return k === "index.docker.io" || k === "registry-1.docker.io" ? DOCKER_HUB : k;
}

function remember(cred: Credential): Credential {
  if (cred.kind === "basic") {
    addSecret(cred.password);
    addSecret(`${cred.username}:${cred.password}`);
  } else {
    addSecret(cred.token);
  }
  return cred;
}

export function dockerConfigPath(opts: CredentialOptions = {}): string {
  const env = opts.env ?? process.env;
  const dir = opts.dockerConfigDir ?? env.DOCKER_CONFIG ?? path.join(os.homedir(), ".docker");
  return path.join(dir, "config.json");
}

async function readDockerConfig(file: string): Promise<DockerConfigFile | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new ConfigError(`docker config ${file}: cannot read it (${(err as Error).message})`);
  }
  try {
    return JSON.parse(text) as DockerConfigFile;
  } catch {
    throw new ConfigError(`docker config ${file}: not valid JSON; fix or remove it (docker login rewrites it)`);
  }
}

/** Run `docker-credential-NAME get` with the server URL on stdin. Undefined when it has nothing for that server. */
export async function runCredentialHelper(name: string, serverUrl: string, env: NodeJS.ProcessEnv = process.env): Promise<Credential | undefined> {
  const bin = `docker-credential-${name}`;
  const { code, stdout, stderr, spawnError } = await new Promise<{ code: number | null; stdout: string; stderr: string; spawnError?: Error }>((resolve) => {
    const child = spawn(bin, ["get"], { stdio: ["pipe", "pipe", "pipe"], env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => { stdout += c.toString(); });
    child.stderr.on("data", (c: Buffer) => { stderr += c.toString(); });
    child.on("error", (err) => resolve({ code: null, stdout, stderr, spawnError: err }));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.on("error", () => {});
    child.stdin.end(serverUrl);
  });
  if (spawnError) {
    throw new ConfigError(`credential helper ${bin} (from docker config) cannot be started: ${(spawnError as NodeJS.ErrnoException).code ?? spawnError.message}. Install it or remove it from config.json.`);
  }
  if (code !== 0) {
    const msg = (stdout + stderr).trim();
    if (/not found|no credentials/i.test(msg)) return undefined;
    // The helper's output may echo a secret; say only that it failed.
    throw new RegistryError(`credential helper ${bin} failed for ${serverUrl} (exit ${code}); run "echo ${serverUrl} | ${bin} get" to see why`);
  }
  let parsed: { Username?: string; Secret?: string };
  try {
    parsed = JSON.parse(stdout) as typeof parsed;
  } catch {
    throw new RegistryError(`credential helper ${bin} printed something that is not JSON for ${serverUrl}`);
  }
  if (!parsed.Secret) return undefined;
  if (parsed.Username === "<token>") return remember({ kind: "identityToken", token: parsed.Secret });
  return remember({ kind: "basic", username: parsed.Username ?? "", password: parsed.Secret });
}

function fromAuthEntry(entry: DockerAuthEntry, file: string, key: string): Credential | undefined {
  if (entry.identitytoken) {
    let username: string | undefined;
    if (entry.auth) username = Buffer.from(entry.auth, "base64").toString("utf8").split(":")[0];
    return remember({ kind: "identityToken", token: entry.identitytoken, username: username ?? entry.username });
  }
  if (entry.registrytoken) return remember({ kind: "registryToken", token: entry.registrytoken });
  if (entry.auth) {
    addSecret(entry.auth);
    const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
    const i = decoded.indexOf(":");
    if (i < 0) throw new ConfigError(`docker config ${file}: auths["${key}"].auth is not base64 of "user:password"; run docker login again`);
    return remember({ kind: "basic", username: decoded.slice(0, i), password: decoded.slice(i + 1) });
  }
  if (entry.username && entry.password) return remember({ kind: "basic", username: entry.username, password: entry.password });
  return undefined;
}

/** Find credentials for a registry host (as written in the reference, e.g. "ghcr.io"). */
export async function findCredentials(registry: string, opts: CredentialOptions = {}): Promise<FoundCredential> {
  const env = opts.env ?? process.env;
  if (opts.username !== undefined || opts.password !== undefined) {
    if (!opts.username || !opts.password) throw new ConfigError("registry credentials: give both a username and a password (or neither)");
    return { credential: remember({ kind: "basic", username: opts.username, password: opts.password }), source: "command-line options" };
  }
  if (env.LAYERFOLD_REGISTRY_USER || env.LAYERFOLD_REGISTRY_PASSWORD) {
    if (!env.LAYERFOLD_REGISTRY_USER || !env.LAYERFOLD_REGISTRY_PASSWORD) {
      throw new ConfigError("registry credentials: set both LAYERFOLD_REGISTRY_USER and LAYERFOLD_REGISTRY_PASSWORD (or neither)");
    }
    return { credential: remember({ kind: "basic", username: env.LAYERFOLD_REGISTRY_USER, password: env.LAYERFOLD_REGISTRY_PASSWORD }), source: "LAYERFOLD_REGISTRY_USER/PASSWORD" };
  }
  const ghcrToken = registry === "ghcr.io" ? env.GITHUB_TOKEN : undefined;
  if (opts.ghcr && registry === "ghcr.io") {
    if (!ghcrToken) throw new ConfigError("--ghcr: GITHUB_TOKEN is not set; in GitHub Actions pass `env: GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}` and grant `packages: write`");
    return { credential: remember({ kind: "basic", username: env.GITHUB_ACTOR || env.GITHUB_REPOSITORY_OWNER || "token", password: ghcrToken }), source: "GITHUB_TOKEN" };
  }

  const file = dockerConfigPath(opts);
  const cfg = await readDockerConfig(file);
  if (cfg) {
    const serverUrl = registry === DOCKER_HUB ? HUB_KEY : registry;
    const helper = Object.entries(cfg.credHelpers ?? {}).find(([k]) => keyHost(k) === registry)?.[1];
    if (helper) {
      const c = await runCredentialHelper(helper, serverUrl, env);
      if (c) return { credential: c, source: `credential helper docker-credential-${helper}` };
    }
    const entry = Object.entries(cfg.auths ?? {}).find(([k]) => keyHost(k) === registry);
    if (entry) {
      const c = fromAuthEntry(entry[1], file, entry[0]);
      if (c) return { credential: c, source: `${file} auths` };
    }
    if (cfg.credsStore) {
      const c = await runCredentialHelper(cfg.credsStore, serverUrl, env);
      if (c) return { credential: c, source: `credential store docker-credential-${cfg.credsStore}` };
    }
  }
  if (ghcrToken) {
    return { credential: remember({ kind: "basic", username: env.GITHUB_ACTOR || env.GITHUB_REPOSITORY_OWNER || "token", password: ghcrToken }), source: "GITHUB_TOKEN" };
  }
  return { source: "anonymous" };
}
