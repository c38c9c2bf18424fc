// Entry names, the same rules for every archive format (tar, zip, wheel, .deb):
// - a name is UTF-8, or the archive is refused: decoding bytes such as 0xE9 and
//   0xE8 leniently would turn both into U+FFFD and let one file replace another;
// - a path may appear once per archive: a repeated file, link or a directory
//   that comes back as something else is refused (tar's "last one wins" would let
//   a scanner and the image disagree about what a path holds). A directory that
//   comes back as the same directory (mode and owner unchanged) is harmless;
// - names a Linux filesystem cannot hold (a component over 255 bytes, a path
//   over PATH_LIMIT bytes) are refused with the entry named, before any syscall
//   fails with a bare ENAMETOOLONG.

import { isUtf8 } from "node:buffer";
import { MalformedArchiveError, UnsafeArchiveError } from "../errors.ts";


/** Show bytes that are not UTF-8 as \xNN escapes, the rest as text. */
export function showBytes(b: Uint8Array): string {
  let out = "";
  for (const c of b) out += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, "0")}`;
  return out;
}

/** Decode an entry name (or link target) that must be UTF-8. */
export function decodeName(bytes: Buffer, what: string, field = "name"): string {
  // isUtf8 is native and cheap for the short names of a tar header (a TextDecoder call costs more).
  if (isUtf8(bytes)) return bytes.toString("utf8");
  throw new MalformedArchiveError(`${what}: entry ${field} "${showBytes(bytes)}" is not valid UTF-8; refusing the archive rather than guessing its encoding (two such names could become one). Repack it with UTF-8 names`);
}

/** Longest file name component Linux filesystems hold (NAME_MAX). */
export const NAME_MAX = 255;
/**
 * Longest image path accepted. PATH_MAX is 4096 bytes for the whole host path; the store's
 * tree directory in front of it gets the rest. A fixed number keeps the rule the same for every store.
 */
export const PATH_LIMIT = 3840;

/** Refuse a normalised image path that no Linux filesystem (or the store) could hold. */
export function checkNameLengths(p: string, what: string): void {
  const total = Buffer.byteLength(p);
  if (total > PATH_LIMIT) throw new MalformedArchiveError(`${what}: entry "${p.slice(0, 80)}…" is ${total} bytes long, over the ${PATH_LIMIT}-byte limit for a path; no image can hold it`);
  for (const part of p.split("/")) {
    const n = Buffer.byteLength(part);
    if (n > NAME_MAX) throw new MalformedArchiveError(`${what}: entry "${p.length > 120 ? `${p.slice(0, 120)}…` : p}" has a ${n}-byte name component, over Linux's ${NAME_MAX}-byte limit (NAME_MAX); no filesystem can hold it`);
  }
}

/**
 * What one archive or package may unpack to unless told otherwise (an archive's `maxBytes`).
 * The biggest packages met here: torch 2.14.1's CUDA 13 wheel unpacks to 1.07 GiB, cuDNN's to
 * 0.9 GiB; 16 GiB is 15 times that, and a bomb costs at most that much disk before it is refused.
 */
export const DEFAULT_MAX_UNPACKED_BYTES = 16 * 1024 ** 3;

/** Tracks the paths one archive names, to refuse duplicates (see the rule above). */
export class EntrySet {
  private readonly seen = new Map<string, { dir: boolean; mode: number; uid: number; gid: number }>();
  constructor(private readonly what: string) {}

  /** Record `p` (a normalised path): true the first time, false for a harmless repeated directory; throws otherwise. */
  claim(p: string, e: { dir: boolean; mode?: number; uid?: number; gid?: number }, raw = p): boolean {
    const cur = { dir: e.dir, mode: (e.mode ?? 0) & 0o7777, uid: e.uid ?? 0, gid: e.gid ?? 0 };
    const prev = this.seen.get(p);
    if (prev) {
      if (prev.dir && cur.dir && prev.mode === cur.mode && prev.uid === cur.uid && prev.gid === cur.gid) return false;
      throw new UnsafeArchiveError(`${this.what}: ${JSON.stringify(raw)} appears twice in the archive${prev.dir && cur.dir ? " with different modes or owners" : ""}; refusing it (which one would win is up to the extractor)`);
    }
    this.seen.set(p, cur);
    return true;
  }
}
