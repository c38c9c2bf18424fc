// A Packages index reduced to what resolution and locking need, parsed
// streaming (the bookworm main index is 50 MB) and cached in the store as a
// record keyed by the index's sha256 from the signed Release, so a second run
// reads one JSON file instead of decompressing and parsing again.

import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import type { Store } from "../../store/store.ts";
import { writeFileAtomic } from "../../util/fs.ts";
import type { RecordKind } from "../../store/record-kinds.ts";

/** One binary package stanza; dependency fields stay as text until needed. */
export interface IndexEntry {
  name: string;
  version: string;
  arch: string;
  filename: string;
  sha256: string;
  size: number;
  multiArch?: string;
  essential?: boolean;
  priority?: string;
  section?: string;
  source?: string;
  provides?: string;
  depends?: string;
  preDepends?: string;
  conflicts?: string;
  breaks?: string;
}

const KEEP: Record<string, keyof IndexEntry> = {
  package: "name",
  version: "version",
  architecture: "arch",
  filename: "filename",
  sha256: "sha256",
  size: "size",
  "multi-arch": "multiArch",
  essential: "essential",
  priority: "priority",
  section: "section",
  source: "source",
  provides: "provides",
  depends: "depends",
  "pre-depends": "preDepends",
  conflicts: "conflicts",
  breaks: "breaks",
};

function finish(raw: Record<string, string>, what: string, out: IndexEntry[]): void {
  if (!raw.name) return;
  for (const k of ["version", "arch", "filename", "sha256", "size"]) {
    if (!raw[k]) throw new Error(`${what}: package ${raw.name} has no ${k} field; the index is malformed`);
  }
  if (!/^[0-9a-f]{64}$/.test(raw.sha256!)) throw new Error(`${what}: package ${raw.name} has a malformed SHA256`);
  const e: IndexEntry = {
    name: raw.name,
    version: raw.version!,
    arch: raw.arch!,
    filename: raw.filename!,
    sha256: raw.sha256!,
    size: Number(raw.size),
  };
  if (raw.multiArch) e.multiArch = raw.multiArch;
  if (raw.essential === "yes") e.essential = true;
  for (const k of ["priority", "section", "source", "provides", "depends", "preDepends", "conflicts", "breaks"] as const) {
    if (raw[k]) e[k] = raw[k];
  }
  out.push(e);
}

/** Parse a decompressed Packages stream, keeping only the fields in KEEP. */
export async function parsePackagesStream(input: Readable, what: string): Promise<IndexEntry[]> {
  const out: IndexEntry[] = [];
  let raw: Record<string, string> = {};
  let last: string | undefined;
  const rl = createInterface({ input, crlfDelay: Infinity });
  for await (const line of rl) {
    if (line === "") {
      finish(raw, what, out);
      raw = {};
      last = undefined;
      continue;
    }
    if (line[0] === " " || line[0] === "\t") {
      // Continuations of kept fields (long Depends lines) are joined; others dropped.
      if (last) raw[last] += " " + line.trim();
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const key = KEEP[line.slice(0, colon).toLowerCase()];
    last = key;
    if (key) raw[key] = line.slice(colon + 1).trim();
  }
  finish(raw, what, out);
  return out;
}

const RECORD_KIND = "debian-index";
/** Parsed Packages indexes: a cache, dropped by gc --indexes. */
export const DEBIAN_INDEX_RECORDS: RecordKind = { kind: RECORD_KIND, keep: () => true, index: true };
const RECORD_VERSION = 1;

/** Parsed index for a verified Packages blob, from the record cache when present. */
export async function loadIndex(store: Store, blobSha256: string, open: () => Promise<Readable>, what: string): Promise<IndexEntry[]> {
  const cached = await store.getRecord<{ v: number; entries: IndexEntry[] }>(RECORD_KIND, blobSha256);
  if (cached && cached.v === RECORD_VERSION && Array.isArray(cached.entries)) return cached.entries;
  const entries = await parsePackagesStream(await open(), what);
  // A cache, not an output: plain JSON (no sorting pass, no indent) keeps it small and quick.
  await writeFileAtomic(store.recordPath(RECORD_KIND, blobSha256), JSON.stringify({ v: RECORD_VERSION, entries }));
  return entries;
}
