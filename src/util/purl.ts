// Package URLs (purl) and the public form of source URLs, for SBOMs: the parts
// every source kind's purl is written with.

/** purl component encoding in the canonical form packageurl-js prints: ':' and '+' stay, the rest is percent-encoded. */
export const purlEncode = (s: string): string => encodeURIComponent(s).replace(/%3A/g, ":").replace(/%2B/g, "+");

/** "?k=v&..." with keys sorted and empty values left out; "" when none. */
export function purlQualifiers(q: Record<string, string | undefined>): string {
  const parts = Object.keys(q)
    .sort()
    .filter((k) => q[k] !== undefined && q[k] !== "")
    .map((k) => `${k}=${encodeURIComponent(q[k]!)}`);
  return parts.length ? `?${parts.join("&")}` : "";
}

/** A URL without user or password: an SBOM is published, a token in a clone URL must not be. */
export function publicUrl(u: string | undefined): string | undefined {
  if (!u) return undefined;
  try {
    const url = new URL(u);
    if (!url.username && !url.password) return u;
    url.username = "";
    url.password = "";
    return url.toString();
  } catch {
    return u.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, "$1");
  }
}

const str = (v: unknown): string | undefined => (typeof v === "string" && v ? v : undefined);

/** Where a package built from a source repository comes from: url and revision, from its lock meta (or artifact). */
export function sourceOrigin(p: { version: string; artifact?: { url?: string }; meta?: Record<string, unknown> }): { url?: string; rev: string } {
  const m = p.meta ?? {};
  return { url: publicUrl(str(m.url) ?? str(m.repo) ?? str(m.repository) ?? p.artifact?.url), rev: str(m.commit) ?? str(m.rev) ?? str(m.revision) ?? p.version };
}
