// Image references as docker writes them: [registry/]repository[:tag][@digest].
// A first component with a '.' or ':' or equal to "localhost" is a registry;
// otherwise the image lives on Docker Hub (library/ for single names).

import { ConfigError } from "../errors.ts";

export interface ImageReference {
  /** Registry host[:port] as written, e.g. "ghcr.io", "127.0.0.1:5000", "docker.io". */
  registry: string;
  /** Repository path, e.g. "library/ubuntu", "owner/name". */
  repository: string;
  tag?: string;
  /** "sha256:<hex>" */
  digest?: string;
}

const REPO = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;

export const DOCKER_HUB = "docker.io";

export function parseReference(ref: string, what = "image reference"): ImageReference {
  let rest = ref.trim();
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw new ConfigError(`${what} "${ref}": digest "${digest}" must be sha256: followed by 64 lowercase hex digits`);
  }
  let tag: string | undefined;
  const slash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw new ConfigError(`${what} "${ref}": tag "${tag}" is not a valid tag (letters, digits, '_', '.', '-'; at most 128)`);
  }
  const parts = rest.split("/");
  let registry = DOCKER_HUB;
  if (parts.length > 1 && (parts[0].includes(".") || parts[0].includes(":") || parts[0] === "localhost")) {
    registry = parts.shift()!;
  }
  let repository = parts.join("/");
  if (registry === DOCKER_HUB && parts.length === 1) repository = `library/${repository}`;
  if (!REPO.test(repository)) {
    throw new ConfigError(`${what} "${ref}": repository "${repository}" must be lowercase letters, digits and separators (e.g. ghcr.io/owner/name:tag)`);
  }
  return { registry, repository, tag, digest };
}

export function formatReference(r: ImageReference): string {
  return `${r.registry}/${r.repository}${r.tag ? `:${r.tag}` : ""}${r.digest ? `@${r.digest}` : ""}`;
}

/** The host the v2 API is served from (Docker Hub's API lives elsewhere). */
export const apiHost = (registry: string): string => (registry === DOCKER_HUB || registry === "index.docker.io" ? "registry-1.docker.io" : registry);

/** True for 127.0.0.0/8, ::1 and localhost, where plain HTTP is allowed without --insecure. */
export function isLoopback(registry: string): boolean {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(registry);
  const host = bracketed ? bracketed[1] : registry.replace(/:\d+$/, "");
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}
