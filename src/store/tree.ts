// A package tree: the installed files of one package, immutable once in the
// store. Contents live under root/ as plain files and directories only;
// everything else (modes, owners, symlinks, hardlinks, xattrs) lives in
// tree.json, so nothing a package ships is ever followed on the host.

import { closeSync, createReadStream, createWriteStream, mkdirSync, openSync, writeSync } from "node:fs";
import { createHash } from "node:crypto";
import { copyFile, constants as fsConstants } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { checkNameLengths, DEFAULT_MAX_UNPACKED_BYTES } from "../archive/names.ts";
import { MalformedArchiveError, UnsafeArchiveError } from "../errors.ts";
import { HashingStream, sha256Hex } from "../util/hash.ts";
import { stableJson } from "../util/json.ts";
import { devNull, tap } from "../util/stream.ts";

export type EntryType = "file" | "dir" | "symlink" | "hardlink";

export interface TreeEntry {
  /** Image path, relative to / with no leading slash, e.g. "usr/bin/python3". */
  path: string;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  /** Regular files: byte count and sha256 of the content. */
  size?: number;
  sha256?: string;
  /** Symlinks: link target as written. Hardlinks: image path of the file linked to. */
  target?: string;
  /** Extended attributes, values base64, copied byte-exact into the layer tar. */
  xattrs?: Record<string, string>;
}

export interface TreeManifest {
  version: 1;
  key: string;
  /** The package this tree installs, e.g. "deb:libc6". */
  packageId: string;
  entries: TreeEntry[];
  /** Sum of regular file sizes. */
  size: number;
  /** sha256 of the stable JSON of entries; checked on every read. */
  entriesDigest: string;
}

export interface EntryMeta {
  mode?: number;
  uid?: number;
  gid?: number;
  xattrs?: Record<string, string>;
}

export interface TreeWriterOptions {
  /**
   * "contained": symlinks must be relative and stay inside the tree (archives, local files).
   * "image": absolute symlinks are allowed; they are resolved inside the image, never on the host (.deb packages).
   */
  symlinks?: "contained" | "image";
  /** Refuse to write more than this many content bytes (zip/tar bombs). */
  maxBytes?: number;
}

/** Normalise an archive or config path to an image path; refuse anything that escapes. */
export function normalizeImagePath(raw: string, what: string): string {
  if (raw.includes("\0")) throw new UnsafeArchiveError(`${what}: path ${JSON.stringify(raw)} contains a NUL byte`);
  const parts: string[] = [];
  for (const part of raw.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") throw new UnsafeArchiveError(`${what}: path ${JSON.stringify(raw)} contains "..", which would escape its directory; refusing it`);
    parts.push(part);
  }
  const p = parts.join("/");
  checkNameLengths(p, what);
  return p;
}

/** A host call that failed on a name the filesystem refuses, as a typed error naming the entry. */
function hostNameError(err: unknown, p: string, what: string): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENAMETOOLONG" || code === "EILSEQ") {
    return new MalformedArchiveError(`${what}: entry ${JSON.stringify(p.length > 120 ? `${p.slice(0, 120)}…` : p)} cannot be written in the store (${code}); no image can hold that name`, { cause: err });
  }
  return err;
}

/** Create `file` (mode 0644 before the umask, as writeFile does) holding the pieces in order. */
function writeAllSync(file: string, pieces: Uint8Array[]): void {
  const fd = openSync(file, "w", 0o644);
  try {
    for (const piece of pieces) {
      for (let at = 0; at < piece.length;) at += writeSync(fd, piece, at, piece.length - at);
    }
  } finally {
    closeSync(fd);
  }
}

export class TreeWriter {
  private readonly entries = new Map<string, TreeEntry>();
  private bytes = 0;
  private byteLimit?: number;
  /** Host directories already created, so a wheel's thousands of files cost one mkdir per directory. */
  private readonly madeDirs = new Set<string>();
  constructor(
    /** Directory that receives file contents (the tree's root/). */
    readonly rootDir: string,
    /** Names the package in error messages. */
    readonly what: string,
    private readonly options: TreeWriterOptions = {},
  ) {}

  private checkParents(p: string): void {
    const parts = p.split("/");
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join("/");
      const e = this.entries.get(parent);
      if (e && e.type !== "dir") {
        throw new UnsafeArchiveError(`${this.what}: ${JSON.stringify(p)} lies under ${JSON.stringify(parent)}, which is a ${e.type}; writing through it could escape the tree`);
      }
    }
  }

  private prepare(raw: string): string {
    const p = normalizeImagePath(raw, this.what);
    if (p === "") throw new UnsafeArchiveError(`${this.what}: an entry names the root directory itself as a file`);
    this.checkParents(p);
    return p;
  }

  private meta(m: EntryMeta | undefined, defMode: number) {
    const out: Pick<TreeEntry, "mode" | "uid" | "gid" | "xattrs"> = {
      mode: (m?.mode ?? defMode) & 0o7777,
      uid: m?.uid ?? 0,
      gid: m?.gid ?? 0,
    };
    if (m?.xattrs && Object.keys(m.xattrs).length) out.xattrs = m.xattrs;
    return out;
  }

  has(p: string): boolean {
    return this.entries.has(normalizeImagePath(p, this.what));
  }

  get(p: string): TreeEntry | undefined {
    return this.entries.get(normalizeImagePath(p, this.what));
  }

  async addDir(raw: string, meta?: EntryMeta): Promise<void> {
    const p = normalizeImagePath(raw, this.what);
    if (p === "") return; // the root itself: owned by the image, not a package
    this.checkParents(p);
    const prev = this.entries.get(p);
    if (prev && prev.type !== "dir") throw new UnsafeArchiveError(`${this.what}: ${JSON.stringify(p)} is both a ${prev.type} and a directory`);
    try {
      this.makeDir(path.join(this.rootDir, p));
    } catch (err) {
      throw hostNameError(err, p, this.what);
    }
    this.entries.set(p, { path: p, type: "dir", ...this.meta(meta, 0o755) });
  }

  /** mkdir -p, once per host directory: a wheel's thousands of files share a few hundred. */
  private makeDir(dir: string): void {
    if (this.madeDirs.has(dir)) return;
    mkdirSync(dir, { recursive: true });
    this.madeDirs.add(dir);
  }

  /** The content bytes this tree may hold (an archive's own maxBytes, above or below the default). */
  setByteLimit(max: number): void {
    this.byteLimit = max;
  }

  private countBytes(n: number): void {
    this.bytes += n;
    const max = this.byteLimit ?? this.options.maxBytes ?? DEFAULT_MAX_UNPACKED_BYTES;
    if (this.bytes > max) {
      throw new UnsafeArchiveError(`${this.what}: unpacks to more than ${max} bytes; refusing it as a possible archive bomb (raise the limit if this is expected)`);
    }
  }

  /** Stream content into the tree; counts and hashes it. */
  async addFile(raw: string, content: Readable | Uint8Array | string | Uint8Array[], meta?: EntryMeta): Promise<TreeEntry> {
    // A stream may fail before the pipeline below is attached (while directories are made);
    // keep that error on the stream for the pipeline to report instead of crashing the process.
    if (content instanceof Readable) content.on("error", () => {});
    const p = this.prepare(raw);
    const prev = this.entries.get(p);
    if (prev && prev.type === "dir") throw new UnsafeArchiveError(`${this.what}: ${JSON.stringify(p)} is both a directory and a file`);
    const dest = path.join(this.rootDir, p);
    try {
      return await this.writeFile(p, dest, content, meta);
    } catch (err) {
      throw hostNameError(err, p, this.what);
    }
  }

  private async writeFile(p: string, dest: string, content: Readable | Uint8Array | string | Uint8Array[], meta?: EntryMeta): Promise<TreeEntry> {
    this.makeDir(path.dirname(dest));
    let size: number;
    let sha256: string;
    if (typeof content === "string" || content instanceof Uint8Array || Array.isArray(content)) {
      // In-memory content (whole, or pieces as they arrived): one synchronous write. Small
      // files dominate packages, and for them the thread pool's round trips (open, write,
      // close) cost more than the write.
      const pieces = typeof content === "string" ? [Buffer.from(content)] : Array.isArray(content) ? content : [content];
      const hash = createHash("sha256");
      size = 0;
      for (const piece of pieces) {
        hash.update(piece);
        size += piece.length;
      }
      this.countBytes(size);
      writeAllSync(dest, pieces);
      sha256 = hash.digest("hex");
    } else {
      const hasher = new HashingStream();
      const limiter = tap((n) => this.countBytes(n));
      await pipeline(content, limiter, hasher, createWriteStream(dest, { mode: 0o644 }));
      size = hasher.bytes;
      sha256 = hasher.hex();
    }
    const entry: TreeEntry = { path: p, type: "file", ...this.meta(meta, 0o644), size, sha256 };
    this.entries.set(p, entry);
    return entry;
  }

  /** Copy a host file (reflink where the filesystem can), hashing it. */
  async addFileFromHost(raw: string, hostPath: string, meta?: EntryMeta): Promise<TreeEntry> {
    const p = this.prepare(raw);
    const dest = path.join(this.rootDir, p);
    this.makeDir(path.dirname(dest));
    await copyFile(hostPath, dest, fsConstants.COPYFILE_FICLONE);
    const hasher = new HashingStream();
    await pipeline(createReadStream(dest), hasher, devNull());
    this.countBytes(hasher.bytes);
    const entry: TreeEntry = { path: p, type: "file", ...this.meta(meta, 0o644), size: hasher.bytes, sha256: hasher.hex() };
    this.entries.set(p, entry);
    return entry;
  }

  addSymlink(raw: string, target: string, meta?: EntryMeta): void {
    const p = this.prepare(raw);
    if (target === "" || target.includes("\0")) throw new UnsafeArchiveError(`${this.what}: symlink ${JSON.stringify(p)} has an empty or NUL target`);
    if ((this.options.symlinks ?? "contained") === "contained") {
      if (target.startsWith("/")) {
        throw new UnsafeArchiveError(`${this.what}: symlink ${JSON.stringify(p)} points to the absolute path ${JSON.stringify(target)}; only relative links inside the tree are allowed here`);
      }
      // Walk the target from the link's directory; popping past the root escapes.
      const stack = p.split("/").slice(0, -1);
      for (const part of target.split("/")) {
        if (part === "" || part === ".") continue;
        if (part !== "..") { stack.push(part); continue; }
        if (stack.length === 0) throw new UnsafeArchiveError(`${this.what}: symlink ${JSON.stringify(p)} -> ${JSON.stringify(target)} escapes the tree`);
        stack.pop();
      }
    }
    this.entries.set(p, { path: p, type: "symlink", ...this.meta(meta, 0o777), target });
  }

  addHardlink(raw: string, rawTarget: string): void {
    const p = this.prepare(raw);
    const target = normalizeImagePath(rawTarget, this.what);
    const t = this.entries.get(target);
    if (!t || t.type !== "file") {
      throw new UnsafeArchiveError(`${this.what}: hardlink ${JSON.stringify(p)} -> ${JSON.stringify(rawTarget)} does not point at a regular file earlier in the same archive`);
    }
    this.entries.set(p, { path: p, type: "hardlink", mode: t.mode, uid: t.uid, gid: t.gid, target });
  }

  /** Apply a permission/ownership override to entries already written (like nix2container's perms). */
  override(pred: (e: TreeEntry) => boolean, meta: EntryMeta): void {
    for (const e of this.entries.values()) {
      if (!pred(e)) continue;
      if (meta.mode !== undefined) e.mode = meta.mode & 0o7777;
      if (meta.uid !== undefined) e.uid = meta.uid;
      if (meta.gid !== undefined) e.gid = meta.gid;
    }
  }

  /** Clear mode bits (setuid/setgid by a policy) on the entries written so far that match. */
  clearModeBits(pred: (e: TreeEntry) => boolean, bits: number): void {
    for (const e of this.entries.values()) if (pred(e)) e.mode &= ~bits;
  }

  list(): TreeEntry[] {
    return [...this.entries.values()];
  }

  /** Sorted entries plus the digest stored in tree.json. */
  manifest(key: string, packageId: string): TreeManifest {
    const entries = [...this.entries.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    const size = entries.reduce((n, e) => n + (e.type === "file" ? e.size ?? 0 : 0), 0);
    return { version: 1, key, packageId, entries, size, entriesDigest: sha256Hex(stableJson(entries)) };
  }
}
