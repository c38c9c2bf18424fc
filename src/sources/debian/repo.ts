// apt repositories: parse sources (one-line or deb822), fetch and verify the
// signed Release, then fetch each Packages index by the hash the Release
// gives (by-hash when the archive offers it) into the store.

import path from "node:path";
import { existsSync } from "node:fs";
import { ConfigError, NetworkError, SignatureError } from "../../errors.ts";
import { fetchBytes, fetchToStore } from "../../fetch/fetch.ts";
import { takeUrlCredentials } from "../../fetch/http-auth.ts";
import { decompressor, compressionFromName } from "../../archive/decompress.ts";
import type { Store } from "../../store/store.ts";
import type { Logger } from "../../util/log.ts";
import { sha256Hex } from "../../util/hash.ts";
import { field, parseDeb822 } from "./deb822.ts";
import { loadIndex, type IndexEntry } from "./index-file.ts";
import { loadKeyring, verifyClearsigned, verifyDetached } from "./signature.ts";

/** A missing file (HTTP 404/410, or an absent file:// path): try the next location. */
const isNotFound = (err: unknown): boolean => err instanceof NetworkError && /not found|does not exist|no such file|ENOENT/i.test(err.message);

export const DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg";

/** One repository after parsing: one URI, one suite, its components. */
export interface RepoSpec {
  uri: string;
  suite: string;
  /** Empty for a flat repository (suite is then a path ending in "/"). */
  components: string[];
  signedBy?: string;
  architectures?: string[];
  /** Accept the repository without a valid signature (explicit opt-in). */
  allowUnsigned?: boolean;
  /** Refuse a Release whose Valid-Until has passed (off for snapshot mirrors). */
  checkValidUntil?: boolean;
}

export interface SourceObject {
  uri: string;
  suites: string[];
  components?: string[];
  signedBy?: string;
  architectures?: string[];
  allowUnsigned?: boolean;
  checkValidUntil?: boolean;
}

/** "deb [signed-by=/k.gpg arch=amd64] http://deb.debian.org/debian bookworm main" */
export function parseOneLineSource(line: string): RepoSpec {
  const m = /^\s*deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
  if (!m) throw new ConfigError(`debian source ${JSON.stringify(line)}: expected "deb [options] URI SUITE [COMPONENT...]"`);
  const spec: RepoSpec = { uri: m[2]!, suite: m[3]!, components: m[4]!.trim().split(/\s+/).filter(Boolean) };
  for (const opt of (m[1] ?? "").trim().split(/\s+/).filter(Boolean)) {
    const eq = opt.indexOf("=");
    const k = opt.slice(0, eq);
    const v = opt.slice(eq + 1);
    if (k === "signed-by") spec.signedBy = v;
    else if (k === "arch") spec.architectures = v.split(",");
    else if (k === "trusted") spec.allowUnsigned = v === "yes";
    else if (k === "check-valid-until") spec.checkValidUntil = v !== "no";
  }
  return spec;
}

/** deb822 .sources text: Types, URIs, Suites, Components, Signed-By, Architectures. */
export function parseDeb822Sources(text: string): RepoSpec[] {
  const out: RepoSpec[] = [];
  for (const p of parseDeb822(text)) {
    const types = (field(p, "Types") ?? "deb").split(/\s+/);
    if (!types.includes("deb") || field(p, "Enabled") === "no") continue;
    const uris = (field(p, "URIs") ?? "").split(/\s+/).filter(Boolean);
    const suites = (field(p, "Suites") ?? "").split(/\s+/).filter(Boolean);
    if (!uris.length || !suites.length) throw new ConfigError(`debian deb822 source needs URIs and Suites fields`);
    const components = (field(p, "Components") ?? "").split(/\s+/).filter(Boolean);
    const signedBy = field(p, "Signed-By");
    const archs = field(p, "Architectures");
    for (const uri of uris) {
      for (const suite of suites) {
        const spec: RepoSpec = { uri, suite, components };
        if (signedBy) spec.signedBy = signedBy.includes("BEGIN PGP") ? signedBy.split("\n").map((l) => (l.trim() === "." ? "" : l)).join("\n") : signedBy.trim();
        if (archs) spec.architectures = archs.split(/\s+/);
        if (field(p, "Trusted") === "yes") spec.allowUnsigned = true;
        if (field(p, "Check-Valid-Until") === "no") spec.checkValidUntil = false;
        out.push(spec);
      }
    }
  }
  return out;
}

export function normalizeSources(sources: Array<string | SourceObject>, allowUnsigned: boolean): RepoSpec[] {
  const out: RepoSpec[] = [];
  for (const s of sources) {
    if (typeof s === "string") {
      if (/^\s*deb\s/.test(s)) out.push(parseOneLineSource(s));
      else out.push(...parseDeb822Sources(s));
    } else {
      for (const suite of s.suites) {
        const spec: RepoSpec = { uri: s.uri, suite, components: s.components ?? [] };
        if (s.signedBy) spec.signedBy = s.signedBy;
        if (s.architectures) spec.architectures = s.architectures;
        if (s.allowUnsigned !== undefined) spec.allowUnsigned = s.allowUnsigned;
        if (s.checkValidUntil !== undefined) spec.checkValidUntil = s.checkValidUntil;
        out.push(spec);
      }
    }
  }
  for (const r of out) {
    // user:password in a URI (apt accepts it; auth.conf is the better place) is sent as Basic to that
    // origin and kept out of the URI, which goes into the lock and messages.
    r.uri = takeUrlCredentials(r.uri).replace(/\/+$/, "");
    if (allowUnsigned && r.allowUnsigned === undefined) r.allowUnsigned = true;
    if (!r.components.length && !r.suite.endsWith("/")) {
      throw new ConfigError(`debian source ${r.uri} ${r.suite}: no components given; name them (e.g. main), or end the suite with "/" for a flat repository`);
    }
  }
  return out;
}

export const repoLabel = (r: RepoSpec): string => `${r.uri} ${r.suite}${r.components.length ? " " + r.components.join(",") : ""}`;

function distsBase(r: RepoSpec): string {
  return r.components.length ? `${r.uri}/dists/${r.suite}` : `${r.uri}/${r.suite.replace(/\/+$/, "")}`;
}

export interface ReleaseFile {
  fields: Map<string, string>;
  /** path relative to the dists dir -> { sha256, size } */
  files: Map<string, { sha256: string; size: number }>;
  byHash: boolean;
}

export function parseRelease(text: string, what: string): ReleaseFile {
  const paras = parseDeb822(text);
  if (!paras.length) throw new NetworkError(`${what}: the Release file is empty`);
  const p = paras[0]!;
  const files = new Map<string, { sha256: string; size: number }>();
  for (const line of (field(p, "SHA256") ?? "").split("\n")) {
    const parts = line.trim().split(/\s+/);
    if (parts.length !== 3) continue;
    if (!/^[0-9a-f]{64}$/.test(parts[0]!)) continue;
    files.set(parts[2]!, { sha256: parts[0]!, size: Number(parts[1]) });
  }
  if (!files.size) throw new NetworkError(`${what}: the Release file lists no SHA256 hashes; refusing a repository that cannot be verified by SHA256`);
  return { fields: p, files, byHash: field(p, "Acquire-By-Hash") === "yes" };
}

/** Everything one repository contributes to resolution. */
export interface LoadedRepo {
  spec: RepoSpec;
  release: ReleaseFile;
  packages: IndexEntry[];
  /** Bytes downloaded for this repository in this run (indexes only). */
  downloaded: number;
}

export interface LoadRepoOptions {
  store: Store;
  log: Logger;
  arch: string;
  configDir: string;
  now?: Date;
}

async function fetchRelease(r: RepoSpec, opts: LoadRepoOptions, what: string): Promise<{ text: string; bytes: number }> {
  const base = distsBase(r);
  const signedBy = r.signedBy ?? DEFAULT_KEYRING;
  let inRelease: Buffer | undefined;
  try {
    inRelease = await fetchBytes(`${base}/InRelease`, `${what}: InRelease`);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  if (inRelease) {
    if (r.allowUnsigned && !existsSync(path.resolve(opts.configDir, signedBy)) && !signedBy.includes("BEGIN PGP")) {
      opts.log.warn(`${what}: signature NOT checked (allowUnsigned)`);
      return { text: stripClearsign(inRelease.toString("utf8")), bytes: inRelease.length };
    }
    const keyring = await loadKeyring(signedBy, opts.configDir, what);
    try {
      const v = await verifyClearsigned(inRelease, keyring, `${what}: InRelease`);
      opts.log.debug(`${what}: InRelease signed by ${v.signers.join(", ")}`);
      return { text: v.text, bytes: inRelease.length };
    } catch (err) {
      if (!r.allowUnsigned) throw err;
      opts.log.warn(`${what}: ${(err as Error).message} — continuing because allowUnsigned is set`);
      return { text: stripClearsign(inRelease.toString("utf8")), bytes: inRelease.length };
    }
  }
  const release = await fetchBytes(`${base}/Release`, `${what}: Release`);
  let sig: Buffer | undefined;
  try {
    sig = await fetchBytes(`${base}/Release.gpg`, `${what}: Release.gpg`);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  if (!sig) {
    if (r.allowUnsigned) {
      opts.log.warn(`${what}: repository is unsigned; using it because allowUnsigned is set`);
      return { text: release.toString("utf8"), bytes: release.length };
    }
    throw new SignatureError(`${what}: the repository has neither InRelease nor Release.gpg, so it cannot be verified; set allowUnsigned: true only if you trust it`);
  }
  const keyring = await loadKeyring(signedBy, opts.configDir, what);
  const v = await verifyDetached(release, sig, keyring, `${what}: Release`);
  return { text: v.text, bytes: release.length + sig.length };
}

function stripClearsign(text: string): string {
  const m = /-----BEGIN PGP SIGNED MESSAGE-----\r?\n(?:[^\n]+\n)*\r?\n([\s\S]*?)\r?\n-----BEGIN PGP SIGNATURE-----/.exec(text);
  return m ? m[1]!.replace(/^- /gm, "") : text;
}

function checkReleaseDates(rel: ReleaseFile, r: RepoSpec, what: string, now: Date): void {
  const until = field(rel.fields, "Valid-Until");
  if (until && r.checkValidUntil !== false) {
    const t = Date.parse(until);
    if (!Number.isNaN(t) && t < now.getTime()) {
      throw new SignatureError(`${what}: the Release expired at ${until} (Valid-Until); a mirror may be serving stale data. For snapshot URIs set checkValidUntil: false.`);
    }
  }
}

/** Fetch, verify and parse one repository's Packages indexes for an architecture. */
export async function loadRepo(r: RepoSpec, opts: LoadRepoOptions): Promise<LoadedRepo> {
  const what = `debian repository ${repoLabel(r)}`;
  if (r.architectures && !r.architectures.includes(opts.arch)) {
    throw new ConfigError(`${what}: is limited to architectures ${r.architectures.join(",")}, but the image is ${opts.arch}`);
  }
  const rel = await fetchRelease(r, opts, what);
  const release = parseRelease(rel.text, what);
  checkReleaseDates(release, r, what, opts.now ?? new Date());
  const base = distsBase(r);
  const comps = r.components.length ? r.components : [""];
  // Like apt: a separate binary-all index only when the Release lists "all"
  // as an architecture and does not fold it into the per-arch indexes.
  const archs = (field(release.fields, "Architectures") ?? "").split(/\s+/);
  const noAll = !archs.includes("all") || (field(release.fields, "No-Support-for-Architecture-all") ?? "").includes("Packages");
  const packages: IndexEntry[] = [];
  let downloaded = rel.bytes;
  for (const comp of comps) {
    const dirs = [r.components.length ? `${comp}/binary-${opts.arch}` : ""];
    if (r.components.length && !noAll && [...release.files.keys()].some((k) => k.startsWith(`${comp}/binary-all/Packages`))) dirs.push(`${comp}/binary-all`);
    for (const dir of dirs) {
      const stem = dir ? `${dir}/Packages` : "Packages";
      // gzip decompresses in-process (fastest); xz and plain as fallbacks.
      const name = [`${stem}.gz`, `${stem}.xz`, stem].find((n) => release.files.has(n));
      if (!name) {
        if (dir.endsWith("binary-all")) continue;
        throw new NetworkError(`${what}: the signed Release lists no ${stem}(.gz|.xz); check the component "${comp}" and architecture ${opts.arch}`);
      }
      const { sha256, size } = release.files.get(name)!;
      const idxWhat = `${what}: ${name}`;
      if ((await opts.store.checkBlob(sha256)) !== "ok") {
        const plain = `${base}/${name}`;
        const hashed = `${base}/${path.posix.dirname(name)}/by-hash/SHA256/${sha256}`;
        const urls = release.byHash ? [hashed, plain] : [plain];
        let lastErr: unknown;
        for (const url of urls) {
          try {
            await fetchToStore(opts.store, url, { what: idxWhat, sha256 });
            downloaded += size;
            lastErr = undefined;
            break;
          } catch (err) {
            lastErr = err;
            if (!isNotFound(err)) break;
          }
        }
        if (lastErr) throw lastErr;
      }
      const entries = await loadIndex(opts.store, sha256, async () => {
        const dec = decompressor(compressionFromName(name), idxWhat);
        const src = opts.store.openBlob(sha256);
        src.on("error", (e) => dec.destroy(e));
        return src.pipe(dec);
      }, idxWhat);
      for (const e of entries) packages.push(e);
    }
  }
  opts.log.debug(`${what}: ${packages.length} packages`);
  return { spec: r, release, packages, downloaded };
}
