// A streaming tar reader (ustar, pax and GNU long names) that installs
// entries into a TreeWriter. Written here rather than taken from a library so
// pax xattrs stay byte-exact and every unsafe entry is refused with a reason.

import type { Readable } from "node:stream";
import { MalformedArchiveError, UnsafeArchiveError } from "../errors.ts";
import { normalizeImagePath, type EntryMeta, type TreeWriter } from "../store/tree.ts";
import { ByteReader } from "./bytes.ts";
import { DEFAULT_MAX_UNPACKED_BYTES, decodeName, EntrySet } from "./names.ts";

export interface TarHeader {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** '0' file, '1' hardlink, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo */
  type: string;
  linkname: string;
  /** Raw pax records (values as bytes, so binary xattrs survive). */
  pax: Map<string, Buffer>;
}

function parseOctal(buf: Buffer, what: string, field: string): number {
  // GNU base-256 for big values: high bit set.
  if (buf[0]! & 0x80) {
    let v = 0;
    for (let i = 1; i < buf.length; i++) v = v * 256 + buf[i]!;
    if (!Number.isSafeInteger(v)) throw new MalformedArchiveError(`${what}: tar header ${field} is too large; the archive is corrupt`);
    return v;
  }
  const s = buf.toString("latin1").replace(/\0.*$/s, "").trim();
  if (s === "") return 0;
  if (!/^[0-7]+$/.test(s)) throw new MalformedArchiveError(`${what}: tar header ${field} is not octal (${JSON.stringify(s.slice(0, 20))}); the archive is corrupt`);
  return parseInt(s, 8);
}

/** A NUL-terminated header field; names must be UTF-8 (archive/names.ts). */
const cstr = (buf: Buffer, what: string, field: string) => {
  const i = buf.indexOf(0);
  return decodeName(i < 0 ? buf : buf.subarray(0, i), what, field);
};

export function parsePax(data: Buffer, what: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let pos = 0;
  while (pos < data.length) {
    const sp = data.indexOf(0x20, pos);
    if (sp < 0) break;
    const len = parseInt(data.subarray(pos, sp).toString("latin1"), 10);
    if (!Number.isSafeInteger(len) || len <= sp - pos || pos + len > data.length) {
      throw new MalformedArchiveError(`${what}: malformed pax header record at offset ${pos}; the archive is corrupt`);
    }
    const rec = data.subarray(sp + 1, pos + len - 1); // drop trailing \n
    const eq = rec.indexOf(0x3d);
    if (eq > 0) out.set(rec.subarray(0, eq).toString("utf8"), Buffer.from(rec.subarray(eq + 1)));
    pos += len;
  }
  return out;
}

function checksumOk(block: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  const stored = parseInt(block.subarray(148, 156).toString("latin1").replace(/\0.*$/s, "").trim(), 8);
  return stored === sum;
}

const MAX_META = 1 << 20; // pax/longname payloads are small; refuse huge ones

/** What may follow the end-of-archive marker (padding to the record size is at most a few KiB). */
const MAX_AFTER_END = 1 << 20;

export interface ReadTarOptions {
  /**
   * Refuse the archive once its entries' data (every body, read or skipped, and metadata records)
   * passes this many bytes, at the header that passes it: a bomb is refused before it is inflated.
   */
  maxBytes?: number;
}

/** Iterate tar entries; the consumer must drain `body` (or call skip) before the next. */
export async function* readTar(input: AsyncIterable<Buffer>, what: string, opts: ReadTarOptions = {}): AsyncGenerator<{ header: TarHeader; body: ByteReader }> {
  const r = new ByteReader(input, what);
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_UNPACKED_BYTES;
  let total = 0;
  const count = (n: number, name: string | undefined) => {
    total += n;
    if (total > maxBytes) {
      throw new UnsafeArchiveError(`${what}: unpacks to more than ${maxBytes} bytes${name ? ` (at entry ${JSON.stringify(name)})` : ""}; refusing it as a possible archive bomb (raise maxBytes if this size is expected)`);
    }
  };
  let globalPax = new Map<string, Buffer>();
  let pendingPax: Map<string, Buffer> | undefined;
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    const block = await r.readExact(512);
    if (!block) return;
    if (block.every((b) => b === 0)) {
      // End of archive. What follows (the second zero block, padding to the record size) is read to the
      // end: git archive writes its last record apart, and a child whose output arrived after this block
      // and was left unread never closed (a git source hung); a hashing stage upstream sees every byte.
      // Bounded: a record is at most a few KiB of padding; gigabytes of zeros packed after the
      // marker would otherwise be inflated here for nothing.
      let after = 0;
      for await (const c of r.rest()) {
        after += c.length;
        if (after > MAX_AFTER_END) throw new UnsafeArchiveError(`${what}: more than ${MAX_AFTER_END >> 20} MiB follow the end-of-archive marker; the archive is corrupt, concatenated or hostile`);
      }
      return;
    }
    r.entry = undefined;
    if (!checksumOk(block)) throw new MalformedArchiveError(`${what}: bad tar header checksum at byte ${r.offset - 512}; the archive is corrupt or not a tar`);
    const type = String.fromCharCode(block[156] || 0x30);
    const size = parseOctal(block.subarray(124, 136), what, "size");
    const padded = Math.ceil(size / 512) * 512;
    if (type === "x" || type === "g" || type === "L" || type === "K") {
      if (size > MAX_META) throw new UnsafeArchiveError(`${what}: a tar metadata record of ${size} bytes is too large`);
      count(padded, undefined);
      const data = (await r.mustRead(padded)).subarray(0, size);
      if (type === "x") pendingPax = parsePax(data, what);
      else if (type === "g") globalPax = new Map([...globalPax, ...parsePax(data, what)]);
      else if (type === "L") longName = cstr(data, what, "name (GNU long name)");
      else longLink = cstr(data, what, "link target (GNU long link)");
      continue;
    }
    const pax = new Map([...globalPax, ...(pendingPax ?? [])]);
    const magic = block.subarray(257, 263).toString("latin1");
    // The name that counts is decoded (and checked as UTF-8); the ones it overrides are not.
    let name: string;
    if (pax.has("path")) name = decodeName(pax.get("path")!, what, "name (pax path)");
    else if (longName !== undefined) name = longName;
    else {
      name = cstr(block.subarray(0, 100), what, "name");
      if (magic.startsWith("ustar")) {
        const prefix = cstr(block.subarray(345, 500), what, "name (ustar prefix)");
        if (prefix) name = `${prefix}/${name}`;
      }
    }
    let linkname: string;
    if (pax.has("linkpath")) linkname = decodeName(pax.get("linkpath")!, what, "link target (pax linkpath)");
    else linkname = longLink ?? cstr(block.subarray(157, 257), what, "link target");
    const paxSize = pax.get("size");
    const realSize = paxSize ? Number(paxSize.toString()) : size;
    const header: TarHeader = {
      name,
      mode: parseOctal(block.subarray(100, 108), what, "mode"),
      uid: pax.has("uid") ? Number(pax.get("uid")!.toString()) : parseOctal(block.subarray(108, 116), what, "uid"),
      gid: pax.has("gid") ? Number(pax.get("gid")!.toString()) : parseOctal(block.subarray(116, 124), what, "gid"),
      size: type === "0" || type === "\0" || type === "7" ? realSize : 0,
      type: type === "\0" || type === "7" ? "0" : type,
      linkname,
      pax,
    };
    pendingPax = undefined;
    longName = undefined;
    longLink = undefined;
    const dataLen = type === "0" || type === "\0" || type === "7" ? realSize : size;
    if (!Number.isSafeInteger(dataLen) || dataLen < 0) throw new MalformedArchiveError(`${what}: entry ${JSON.stringify(name)} has a bad size ${JSON.stringify(paxSize?.toString() ?? String(size))}; the archive is corrupt`);
    count(Math.ceil(dataLen / 512) * 512, name);
    r.entry = name;
    const before = r.offset;
    yield { header, body: r };
    // Skip whatever the consumer left unread of the body and its padding.
    const consumed = r.offset - before;
    const total = Math.ceil(dataLen / 512) * 512;
    if (consumed < total) await r.skip(total - consumed);
  }
}

export interface ExtractOptions {
  /** Drop this many leading path components (like tar --strip-components). */
  stripComponents?: number;
  /** Image directory to extract under, e.g. "opt/app". */
  prefix?: string;
  /** Keep uid/gid from the archive (true for .debs); otherwise 0. */
  keepOwners?: boolean;
  /** Map each entry path before writing (merged-/usr canonicalisation); return undefined to skip. */
  mapPath?: (p: string) => string | undefined;
  /** Names the archive in errors (default: the tree's package id). */
  what?: string;
  /** Refuse the archive past this many bytes of entry data (readTar's maxBytes). */
  maxBytes?: number;
  /**
   * A path named twice: "refuse" (packages and archives: archive/names.ts), or "last-wins" for OCI
   * layers, where a later entry replacing an earlier one is how tar layers have always been read.
   */
  duplicates?: "refuse" | "last-wins";
}

export function xattrsOf(pax: Map<string, Buffer>): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const [k, v] of pax) {
    if (k.startsWith("SCHILY.xattr.")) out[k.slice(13)] = v.toString("base64");
  }
  return Object.keys(out).length ? out : undefined;
}

/** Extract a tar stream into a tree. Devices and fifos are refused. */
export async function extractTar(input: Readable, tree: TreeWriter, opts: ExtractOptions = {}): Promise<void> {
  const what = opts.what ?? tree.what;
  const strip = opts.stripComponents ?? 0;
  const mapName = (raw: string): string | undefined => {
    let parts = raw.split("/").filter((p) => p !== "" && p !== ".");
    if (parts.includes("..")) throw new UnsafeArchiveError(`${what}: entry ${JSON.stringify(raw)} contains "..", which would escape the tree; refusing the archive`);
    if (parts.length <= strip) return undefined;
    parts = parts.slice(strip);
    let p = parts.join("/");
    if (opts.prefix) p = `${opts.prefix.replace(/^\/+|\/+$/g, "")}/${p}`;
    return opts.mapPath ? opts.mapPath(p) : p;
  };
  const names = opts.duplicates === "last-wins" ? undefined : new EntrySet(what);
  for await (const { header: h, body } of readTar(input, what, { maxBytes: opts.maxBytes })) {
    if (h.name.startsWith("/")) {
      throw new UnsafeArchiveError(`${what}: entry ${JSON.stringify(h.name)} has an absolute path; refusing the archive`);
    }
    const p = mapName(h.name);
    if (p === undefined) continue;
    const meta: EntryMeta = { mode: h.mode, uid: opts.keepOwners ? h.uid : 0, gid: opts.keepOwners ? h.gid : 0, xattrs: xattrsOf(h.pax) };
    const norm = normalizeImagePath(p, what);
    if (norm !== "") names?.claim(norm, { dir: h.type === "5", ...meta }, h.name);
    switch (h.type) {
      case "0":
        await tree.addFile(p, body.stream(h.size), meta);
        break;
      case "5":
        await tree.addDir(p, meta);
        break;
      case "2":
        tree.addSymlink(p, h.linkname, meta);
        break;
      case "1": {
        const target = mapName(h.linkname);
        if (target === undefined) throw new UnsafeArchiveError(`${what}: hardlink ${JSON.stringify(h.name)} points outside the extracted part`);
        tree.addHardlink(p, target);
        break;
      }
      case "3":
      case "4":
        throw new UnsafeArchiveError(`${what}: entry ${JSON.stringify(h.name)} is a device node; packages may not create devices`);
      case "6":
        throw new UnsafeArchiveError(`${what}: entry ${JSON.stringify(h.name)} is a FIFO; refusing it`);
      default:
        throw new MalformedArchiveError(`${what}: entry ${JSON.stringify(h.name)} has tar type ${JSON.stringify(h.type)}, which layerfold does not unpack (files, directories, symlinks and hardlinks only)`);
    }
  }
}
