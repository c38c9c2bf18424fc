// Credentials for index and archive downloads, used the way pip uses them:
// user:password written in an index URL (sent as Basic to URLs on that URL's
// origin; with several on one origin, the one whose path is nearest), else the ~/.netrc entry for the host ($NETRC names another
// file; a `default` entry serves any host). A URL's credentials are taken out
// of it once, where it enters (pip's configuration, the config, a requirements
// file): what travels on into messages, the lock, the SBOM and the store is the
// URL without them, and the secret is registered with redact().

import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { addSecret } from "../util/redact.ts";

interface BasicCredential {
  user: string;
  password: string;
  /** Where it came from, for messages: "the index URL" or the netrc file (never the secret). */
  source: string;
}

/** Credentials taken from URLs, by origin, each with the path of the URL it came with. */
const byOrigin = new Map<string, Array<{ path: string[]; cred: BasicCredential }>>();

const segments = (pathname: string) => pathname.split("/").filter(Boolean);

/**
 * Of the credentials given for url's origin, those of the URL sharing the most leading path
 * segments with it: two indexes on one server (per-project indexes) each get their own, and
 * a file link beside an index gets that index's.
 */
function urlCredentialFor(u: URL): BasicCredential | undefined {
  const want = segments(u.pathname);
  let best: { n: number; cred: BasicCredential } | undefined;
  for (const e of byOrigin.get(u.origin) ?? []) {
    let n = 0;
    while (n < e.path.length && n < want.length && e.path[n] === want[n]) n++;
    if (!best || n > best.n) best = { n, cred: e.cred };
  }
  return best?.cred;
}

function remember(c: BasicCredential): BasicCredential {
  addSecret(c.password);
  if (!c.password) addSecret(c.user); // a token given as the user name alone
  addSecret(`${c.user}:${c.password}`);
  return c;
}

/**
 * The URL without user and password. Credentials it carried are kept for its
 * origin and used by authorizationFor(); a URL without them is returned as is.
 */
export function takeUrlCredentials(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return url;
  }
  if (!u.username && !u.password) return url;
  const decode = (s: string) => { try { return decodeURIComponent(s); } catch { return s; } };
  // The encoded forms too: they are what appears in the URL as written.
  addSecret(u.password);
  if (!u.password) addSecret(u.username);
  const cred = remember({ user: decode(u.username), password: decode(u.password), source: `the credentials in the URL for ${u.origin}` });
  const entries = byOrigin.get(u.origin) ?? [];
  const at = segments(u.pathname);
  byOrigin.set(u.origin, [...entries.filter((e) => e.path.join("/") !== at.join("/")), { path: at, cred }]);
  u.username = "";
  u.password = "";
  return u.toString();
}

/** The netrc file pip (through requests) reads: $NETRC, else ~/.netrc. */
export function netrcPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.NETRC || path.join(env.HOME || os.homedir(), ".netrc");
}

interface NetrcEntry { login: string; password: string }

/** Parse a netrc file: machine/default entries with login, password, account; macdef bodies skipped. */
export function parseNetrc(text: string): { machines: Map<string, NetrcEntry>; fallback?: NetrcEntry } {
  const machines = new Map<string, NetrcEntry>();
  let fallback: NetrcEntry | undefined;
  const lines = text.split(/\r?\n/);
  const tokens: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (/^\s*#/.test(line)) continue;
    const words = line.split(/\s+/).filter(Boolean);
    const m = words.indexOf("macdef");
    if (m >= 0) {
      tokens.push(...words.slice(0, m));
      while (i + 1 < lines.length && lines[i + 1]!.trim() !== "") i++; // the macro runs to a blank line
      continue;
    }
    tokens.push(...words);
  }
  let cur: NetrcEntry | undefined;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t === "machine" && i + 1 < tokens.length) {
      cur = { login: "", password: "" };
      const host = tokens[++i]!;
      if (!machines.has(host)) machines.set(host, cur);
    } else if (t === "default") {
      cur = { login: "", password: "" };
      fallback ??= cur;
    } else if ((t === "login" || t === "password" || t === "account") && cur && i + 1 < tokens.length) {
      const v = tokens[++i]!;
      if (t === "login") cur.login = v;
      else if (t === "password") cur.password = v;
      else if (!cur.login) cur.login = v; // requests takes account when login is empty
    }
  }
  return { machines, fallback };
}

let netrcCache: { file: string; parsed?: ReturnType<typeof parseNetrc> } | undefined;

function netrcFor(host: string): BasicCredential | undefined {
  const file = netrcPath();
  if (netrcCache?.file !== file) {
    let parsed: ReturnType<typeof parseNetrc> | undefined;
    try {
      parsed = parseNetrc(readFileSync(file, "utf8"));
    } catch {
      parsed = undefined; // no netrc: nothing to add, as for pip
    }
    netrcCache = { file, parsed };
  }
  const e = netrcCache.parsed?.machines.get(host) ?? netrcCache.parsed?.fallback;
  if (!e || (!e.login && !e.password)) return undefined;
  return remember({ user: e.login, password: e.password, source: `${file} (machine ${host})` });
}

/** The Authorization header for a request to url, and where its credentials came from. */
export function authorizationFor(url: string): { header: string; source: string } | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") return undefined;
  const c = urlCredentialFor(u) ?? netrcFor(u.hostname);
  if (!c) return undefined;
  const value = Buffer.from(`${c.user}:${c.password}`).toString("base64");
  addSecret(value);
  return { header: `Basic ${value}`, source: c.source };
}

/** What to tell a user whose server answered 401/403, by whether credentials were sent. */
export function credentialHint(url: string, sentFrom: string | undefined): string {
  let host = url;
  try { host = new URL(url).host; } catch { /* keep as is */ }
  if (sentFrom) return `it refused ${sentFrom}; check the user name and password (or token) there`;
  return `it wants credentials: put them in the index URL (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL or index-url in pip.conf, as http://USER:PASSWORD@${host}/...), or in ${netrcPath()} as "machine ${host.replace(/:\d+$/, "")} login USER password PASSWORD" (NETRC names another file)`;
}

/** For tests: forget every credential taken from URLs and the cached netrc. */
export function forgetHttpCredentials(): void {
  byOrigin.clear();
  netrcCache = undefined;
}
