// Finds a project's files on the configured indexes (PEP 503 HTML, PEP 691
// JSON; file:// and http(s)://) and find-links locations, and reads each
// candidate's core metadata: PEP 658 when offered, else METADATA from the
// wheel itself (local: central directory + one member; remote: HTTP ranges
// when the server supports them, else a full download into the store).
// Parsed metadata is cached in the store by the wheel's sha256.

import { readdir } from "node:fs/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import { deadHostReason, fetchBytes, fetchRange, fetchToStore, redactUrl } from "../../fetch/fetch.ts";
import { takeUrlCredentials } from "../../fetch/http-auth.ts";
import { MalformedArchiveError, NetworkError } from "../../errors.ts";
import type { Store } from "../../store/store.ts";
import type { Logger } from "../../util/log.ts";
import { sha256Hex } from "../../util/hash.ts";
import { memberFromBuffer, openZip, readCentralDirectory, type ZipEntry } from "../../archive/zip.ts";
import { normalizeName } from "./pep508.ts";
import { parseSdistName, parseWheelName, type WheelName } from "./tags.ts";
import type { RecordKind } from "../../store/record-kinds.ts";

export interface IndexFile {
  file: string;
  url: string;
  sha256?: string;
  requiresPython?: string;
  yanked?: boolean;
  /** URL of PEP 658 metadata, when the index offers it. */
  metadataUrl?: string;
  wheel?: WheelName;
  sdistVersion?: string;
  /** Which index or find-links location listed it. */
  source: string;
}

export interface CoreMetadata {
  name: string;
  version: string;
  requiresDist: string[];
  requiresPython?: string;
  providesExtra: string[];
}

/** Parse METADATA / PKG-INFO headers (RFC 822 style; stops at the body). */
export function parseMetadata(text: string): CoreMetadata {
  const headers: [string, string][] = [];
  for (const line of text.split(/\r?\n/)) {
    if (line === "") break;
    if (/^[ \t]/.test(line) && headers.length) { headers[headers.length - 1]![1] += "\n" + line.trim(); continue; }
    const i = line.indexOf(":");
    if (i > 0) headers.push([line.slice(0, i).toLowerCase(), line.slice(i + 1).trim()]);
  }
  const all = (k: string) => headers.filter(([h]) => h === k).map(([, v]) => v);
  return {
    name: all("name")[0] ?? "",
    version: all("version")[0] ?? "",
    requiresDist: all("requires-dist"),
    requiresPython: all("requires-python")[0] || undefined,
    providesExtra: all("provides-extra").map(normalizeName),
  };
}

const PY_METADATA = "py-metadata";
/** Wheel metadata read from indexes: a cache, dropped by gc --indexes. */
export const PY_METADATA_RECORDS: RecordKind = { kind: PY_METADATA, keep: () => true, index: true };

const ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";

function decodeEntities(s: string): string {
  return s.replace(/&(amp|lt|gt|quot|#39|#x27);/g, (_m, e: string) => ({ amp: "&", lt: "<", gt: ">", quot: '"', "#39": "'", "#x27": "'" })[e]!);
}

/** Parse a PEP 503 HTML page or PEP 691 JSON document into files. */
export function parseProjectPage(body: string, pageUrl: string, source: string): IndexFile[] {
  const out: IndexFile[] = [];
  const trimmed = body.trimStart();
  if (trimmed.startsWith("{")) {
    const doc = JSON.parse(trimmed) as { files?: Array<{ filename: string; url: string; hashes?: Record<string, string>; "requires-python"?: string; yanked?: boolean | string; "core-metadata"?: boolean | Record<string, string>; "dist-info-metadata"?: boolean | Record<string, string> }> };
    for (const f of doc.files ?? []) {
      const url = new URL(f.url, pageUrl).href;
      const meta = f["core-metadata"] ?? f["dist-info-metadata"];
      out.push({ file: f.filename, url, sha256: f.hashes?.sha256, requiresPython: f["requires-python"] || undefined, yanked: Boolean(f.yanked), metadataUrl: meta ? `${url}.metadata` : undefined, source });
    }
  } else {
    for (const m of body.matchAll(/<a\s([^>]*)>([^<]*)<\/a>/gi)) {
      const attrs = new Map<string, string>();
      for (const a of m[1]!.matchAll(/([a-zA-Z-]+)\s*=\s*("([^"]*)"|'([^']*)')/g)) attrs.set(a[1]!.toLowerCase(), decodeEntities(a[3] ?? a[4] ?? ""));
      const href = attrs.get("href");
      if (!href) continue;
      const abs = new URL(href, pageUrl);
      const frag = abs.hash.slice(1);
      abs.hash = "";
      const file = decodeURIComponent(abs.pathname.split("/").pop() ?? "");
      const sha = /(?:^|&)sha256=([0-9a-f]{64})/.exec(frag)?.[1];
      const meta = attrs.get("data-core-metadata") ?? attrs.get("data-dist-info-metadata");
      out.push({ file, url: abs.href, sha256: sha, requiresPython: attrs.get("data-requires-python") || undefined, yanked: attrs.has("data-yanked"), metadataUrl: meta && meta !== "false" ? `${abs.href}.metadata` : undefined, source });
    }
  }
  return out;
}

export interface FinderOptions {
  indexes: string[];
  findLinks: string[];
  store: Store;
  log: Logger;
}

export class Finder {
  private readonly pages = new Map<string, Promise<IndexFile[]>>();
  private findLinksFiles?: Promise<IndexFile[]>;
  private readonly warned = new Set<string>();
  /** Indexes that could not be read, with the reason (for "no index offers" messages). */
  readonly unreachable = new Map<string, string>();
  private readonly metadata = new Map<string, Promise<CoreMetadata>>();

  readonly opts: FinderOptions;

  constructor(opts: FinderOptions) {
    // Index URLs with user:password lose them here; they are sent as a header to that origin only.
    this.opts = { ...opts, indexes: [...new Set(opts.indexes.map(takeUrlCredentials))], findLinks: [...new Set(opts.findLinks.map(takeUrlCredentials))] };
  }

  private warnOnce(source: string, msg: string): void {
    if (this.warned.has(source)) return;
    this.warned.add(source);
    this.opts.log.warn(msg);
  }

  /** Every file for the project across all indexes and find-links, wheels and sdists only. */
  files(key: string): Promise<IndexFile[]> {
    let p = this.pages.get(key);
    if (!p) {
      p = this.loadFiles(key);
      this.pages.set(key, p);
    }
    return p;
  }

  private async loadFiles(key: string): Promise<IndexFile[]> {
    const lists = await Promise.all([...this.opts.indexes.map((ix) => this.indexPage(ix, key)), this.findLinks()]);
    const out: IndexFile[] = [];
    for (const f of lists.flat()) {
      const wheel = parseWheelName(f.file);
      if (wheel) {
        if (wheel.key === key) out.push({ ...f, wheel });
        continue;
      }
      const sd = parseSdistName(f.file, key);
      if (sd) out.push({ ...f, sdistVersion: sd.version });
    }
    return out;
  }

  private async indexPage(index: string, key: string): Promise<IndexFile[]> {
    const base = index.endsWith("/") ? index : `${index}/`;
    const dead = deadHostReason(base);
    if (dead) {
      this.unreachable.set(index, dead);
      this.warnOnce(index, `python index ${redactUrl(index)} is unreachable (${dead}); using the other indexes`);
      return [];
    }
    let url = `${base}${key}/`;
    if (url.startsWith("file:")) {
      const dir = fileURLToPath(url);
      try {
        const names = await readdir(dir);
        if (!names.includes("index.html") && !names.includes("index.json")) return [];
        url = `${url}${names.includes("index.json") ? "index.json" : "index.html"}`;
      } catch {
        return [];
      }
    }
    try {
      const body = (await fetchBytes(url, `python index ${redactUrl(base)}`, { accept: ACCEPT })).toString("utf8");
      return parseProjectPage(body, url, index);
    } catch (err) {
      const msg = (err as Error).message;
      // Missing or refused credentials are the user's to fix, not an index to skip quietly.
      if ((err as { authFailed?: boolean }).authFailed) throw err;
      if (/answered 40[34]|not found/.test(msg)) return [];
      const reason = deadHostReason(base) ?? msg;
      this.unreachable.set(index, reason);
      this.warnOnce(index, `python index ${redactUrl(index)} is unreachable (${reason}); using the other indexes`);
      return [];
    }
  }

  private findLinks(): Promise<IndexFile[]> {
    this.findLinksFiles ??= (async () => {
      const all: IndexFile[] = [];
      for (const loc of this.opts.findLinks) {
        try {
          if (loc.startsWith("file:")) {
            const dir = fileURLToPath(loc);
            for (const name of (await readdir(dir)).sort()) all.push({ file: name, url: pathToFileURL(`${dir.replace(/\/$/, "")}/${name}`).href, source: loc });
          } else {
            if (deadHostReason(loc)) continue;
            const body = (await fetchBytes(loc, `find-links page ${redactUrl(loc)}`, { accept: "text/html" })).toString("utf8");
            all.push(...parseProjectPage(body, loc, loc));
          }
        } catch (err) {
          if ((err as { authFailed?: boolean }).authFailed) throw err;
          this.unreachable.set(loc, (err as Error).message);
          this.warnOnce(loc, `find-links location ${redactUrl(loc)} cannot be read (${(err as Error).message}); skipping it`);
        }
      }
      return all;
    })();
    return this.findLinksFiles;
  }

  /** Core metadata of one candidate file (a wheel), cached in memory and in the store by sha256. */
  coreMetadata(f: IndexFile): Promise<CoreMetadata> {
    const key = f.sha256 ?? sha256Hex(f.url);
    let p = this.metadata.get(key);
    if (!p) {
      p = this.loadMetadata(f, key);
      this.metadata.set(key, p);
      p.catch(() => this.metadata.delete(key));
    }
    return p;
  }

  private async loadMetadata(f: IndexFile, cacheKey: string): Promise<CoreMetadata> {
    const store = this.opts.store;
    const cached = await store.getRecord<CoreMetadata>(PY_METADATA, cacheKey);
    if (cached) return cached;
    const what = `metadata of ${f.file}`;
    let text: string | undefined;
    if (f.metadataUrl) {
      try {
        text = (await fetchBytes(f.metadataUrl, what)).toString("utf8");
      } catch (err) {
        this.opts.log.debug(`${what}: PEP 658 metadata failed (${(err as Error).message}); reading the wheel`);
      }
    }
    if (text === undefined && f.url.startsWith("file:")) text = await metadataFromLocalWheel(fileURLToPath(f.url), f.file);
    if (text === undefined && f.sha256 && (await store.hasBlob(f.sha256))) text = await metadataFromLocalWheel(store.blobPath(f.sha256), f.file);
    if (text === undefined) text = await metadataByRanges(f.url, f.file).catch(() => undefined);
    if (text === undefined) {
      const { hex } = await fetchToStore(store, f.url, { what: `wheel ${f.file}`, sha256: f.sha256 });
      text = await metadataFromLocalWheel(store.blobPath(hex), f.file);
    }
    const meta = parseMetadata(text);
    if (f.sha256) await store.putRecord(PY_METADATA, cacheKey, meta);
    return meta;
  }
}

/** The dist-info METADATA member of a wheel: "<name>-<version>.dist-info/METADATA" at the top level. */
function findMetadataMember(entries: ZipEntry[], file: string): ZipEntry {
  const w = parseWheelName(file);
  const cands = entries.filter((e) => /^[^/]+\.dist-info\/METADATA$/.test(e.name));
  const exact = w && cands.find((e) => normalizeName(e.name.split("-")[0]!) === w.key);
  const hit = exact ?? cands[0];
  if (!hit) throw new MalformedArchiveError(`${file}: no .dist-info/METADATA inside; it is not a valid wheel`);
  return hit;
}

export async function metadataFromLocalWheel(p: string, file: string): Promise<string> {
  const z = await openZip(p, { what: file });
  try {
    return (await z.read(findMetadataMember(z.entries, file), 16 * 1024 * 1024)).toString("utf8");
  } finally {
    await z.close();
  }
}

/** Read METADATA of a remote wheel with Range requests: the tail, then the one member. */
async function metadataByRanges(url: string, file: string): Promise<string | undefined> {
  const what = `metadata of ${file}`;
  const tail = await fetchRange(url, what, "bytes=-65536");
  if (!tail || !Number.isFinite(tail.totalSize)) return undefined;
  const size = tail.totalSize;
  const tailStart = size - tail.data.length;
  const readAt = async (pos: number, len: number): Promise<Buffer> => {
    if (pos >= tailStart) return tail.data.subarray(pos - tailStart, pos - tailStart + len);
    const r = await fetchRange(url, what, `bytes=${pos}-${pos + len - 1}`);
    if (!r) throw new NetworkError(`${what}: server stopped honouring ranges`);
    return r.data;
  };
  const { entries } = await readCentralDirectory(readAt, size, file);
  const e = findMetadataMember(entries, file);
  const buf = await readAt(e.offset, 30 + 1024 + e.compressedSize);
  return memberFromBuffer(buf, e, file).toString("utf8");
}
