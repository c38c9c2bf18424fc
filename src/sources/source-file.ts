// Files read from inside another source, e.g. an app's requirements.txt at the
// commit its git source pins: the app brings its own requirements, so they
// cannot drift from a hand-copied list.

import { ConfigError } from "../errors.ts";
import type { LockedPackage, SourceContext, SourceKind } from "./types.ts";

/** Reads `file` from the package `source` (an id such as "git:comfyui", or a bare name) among those resolved so far. */
export async function readSourceFile(
  resolved: Map<string, LockedPackage>,
  kinds: SourceKind[],
  contextFor: (kind: SourceKind) => SourceContext,
  source: string,
  file: string,
  what: string,
): Promise<Buffer | undefined> {
  if (escapes(file)) throw new ConfigError(`${what}: ${JSON.stringify(file)} must be a relative path inside the source, without ".."`);
  const readable = [...resolved.values()].filter((p) => kinds.find((k) => k.kind === p.kind)?.readFile);
  const matches = resolved.has(source) ? [resolved.get(source)!] : [...resolved.values()].filter((p) => p.name === source);
  if (matches.length === 0) {
    throw new ConfigError(`${what}: no source named "${source}" is resolved before it (sources that can provide files: ${readable.map((p) => p.id).join(", ") || "none"}); name a git source of the image, e.g. "git:${readable[0]?.name ?? "app"}"`);
  }
  if (matches.length > 1) throw new ConfigError(`${what}: "${source}" names ${matches.map((p) => p.id).join(" and ")}; use the full id`);
  const pkg = matches[0]!;
  const kind = kinds.find((k) => k.kind === pkg.kind)!;
  if (!kind.readFile) throw new ConfigError(`${what}: ${pkg.id} is a ${pkg.kind} package, which cannot provide files to other sources; use a git source`);
  return kind.readFile(pkg, file, contextFor(kind));
}

function escapes(file: string): boolean {
  return file === "" || file.startsWith("/") || file.split("/").some((p) => p === ".." || p === "") || file.includes("\0");
}
