// Every credential layerfold touches (registry, index URLs, .netrc) is registered here, and every
// message that may leave the process (errors, --debug lines) goes through
// redact(). A secret then cannot reach the terminal even if it sneaks into a
// URL, a header dump or a registry's error text.

const secrets = new Set<string>();

/** Register a secret (password, token, base64 auth) so redact() hides it. */
export function addSecret(value: string | undefined): void {
  if (!value || value.length < 4) return;
  secrets.add(value);
  // Also hide encodings a secret commonly travels in.
  secrets.add(encodeURIComponent(value));
  secrets.add(Buffer.from(value).toString("base64"));
}

export function redact(text: string): string {
  let out = text;
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) {
    if (out.includes(s)) out = out.split(s).join("***");
  }
  // Authorization values that were never registered (e.g. a token we just received); a plain word
  // after the scheme ("Basic authentication") is text, not a credential.
  out = out.replace(/\b(Basic|Bearer)\s+([A-Za-z0-9._~+/=-]{8,})/gi, (m, scheme: string, value: string) => (/^([a-z]+|[A-Z][a-z]+)$/.test(value) ? m : `${scheme} ***`));
  out = out.replace(/(["']?(?:password|secret|token|access_token|refresh_token|identitytoken|auth)["']?\s*[:=]\s*["']?)[^"'\s,&}]+/gi, "$1***");
  // user:password in a URL; the placeholder "USER:PASSWORD" of a hint stays readable.
  out = out.replace(/(\/\/)(?!USER:PASSWORD@)[^/@\s:]+:[^/@\s]+@/g, "$1***@");
  return out;
}
