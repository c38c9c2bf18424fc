// Reading .deb files: an ar archive holding debian-binary, control.tar.* and
// data.tar.* (gzip, xz, zstd, bzip2 or none). The data goes into a package
// tree through merged-/usr canonicalisation; nothing from the control archive
// is ever run. Control members other than "control" are kept where dpkg keeps
// them (var/lib/dpkg/info/<pkg>.<member>), so the image looks installed.

import { createHash } from "node:crypto";
import path from "node:path";
import { Transform, type Readable } from "node:stream";
import { readAr, type ArMember } from "../../archive/ar.ts";
import { compressionFromName, decompressor, xzUncompressedSize } from "../../archive/decompress.ts";
import { readTar, xattrsOf, type TarHeader } from "../../archive/tar.ts";
import { EntrySet } from "../../archive/names.ts";
import { ByteReader } from "../../archive/bytes.ts";
import { PathConflictError, MalformedArchiveError, UnsafeArchiveError } from "../../errors.ts";
import { normalizeImagePath, type TreeWriter } from "../../store/tree.ts";

/** Top-level directories that are symlinks into /usr on a merged-/usr system. */
export const MERGED_DIRS = ["bin", "sbin", "lib", "lib32", "lib64", "libx32", "libo32"];
const MERGED = new Set(MERGED_DIRS);

/** Image path after merged-/usr canonicalisation: "bin/sh" -> "usr/bin/sh". */
export function canonicalPath(p: string): string {
  const top = p.split("/", 1)[0]!;
  return MERGED.has(top) ? `usr/${p}` : p;
}

/**
 * A relative symlink that moved (bin/x -> usr/bin/x) must still point where
 * it pointed: recompute it from the new place. Absolute and unmoved ones stay.
 */
export function canonicalLinkTarget(origPath: string, newPath: string, target: string): string {
  if (target.startsWith("/") || origPath === newPath) return target;
  const abs = path.posix.normalize(path.posix.join("/", path.posix.dirname(origPath), target));
  const canon = "/" + canonicalPath(abs.slice(1));
  return path.posix.relative(path.posix.dirname("/" + newPath), canon) || ".";
}

/** Where a symlink at image path p points, as a canonical image path (for self-link checks). */
function resolvedLink(p: string, target: string): string {
  const abs = target.startsWith("/") ? path.posix.normalize(target) : path.posix.normalize(path.posix.join("/", path.posix.dirname(p), target));
  return canonicalPath(abs.replace(/^\/+/, ""));
}

export interface DebInfo {
  /** The control file text (one paragraph). */
  control: string;
  /** Other control members by name (md5sums, conffiles, postinst, ...). */
  members: Map<string, Buffer>;
  /** Paths as the package lists them (for the .list file), archive order. */
  paths: string[];
}

const MAX_CONTROL_BYTES = 64 * 1024 * 1024;

/** The tar entries of a decompressed byte source; what follows the end-of-archive marker is drained. */
async function* tarEntries(bytes: AsyncIterable<Buffer>, what: string): AsyncGenerator<{ header: TarHeader; body: ByteReader }> {
  const it = bytes[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const once: AsyncIterable<Buffer> = { [Symbol.asyncIterator]: () => it };
  yield* readTar(once, what);
  while (!(await it.next()).done) { /* discard */ }
}

function tarOfMember(m: ArMember, what: string): AsyncGenerator<{ header: TarHeader; body: ByteReader }> {
  const kind = m.name === "data.tar" || m.name === "control.tar" ? "none" : compressionFromName(m.name);
  if (kind === "none" && !/\.tar$/.test(m.name)) throw new MalformedArchiveError(`${what}: member ${m.name} uses an unsupported compression`);
  const dec = decompressor(kind, `${what}: ${m.name}`);
  const src = m.body.stream(m.size);
  src.on("error", (e) => dec.destroy(e));
  src.pipe(dec);
  return tarEntries(dec, `${what}: ${m.name}`);
}

/**
 * control.tar.xz and data.tar.xz through one xz process: xz decodes concatenated
 * streams, and control's index says where its tar ends. A process start costs
 * milliseconds per 100 MB of this process's memory, so this halves that cost.
 */
async function controlAndDataXz(controlXz: Buffer, controlSize: number, data: ArMember, what: string) {
  const dec = decompressor("xz", `${what}: control.tar.xz + ${data.name}`);
  const src = data.body.stream(data.size);
  src.on("error", (e) => dec.destroy(e));
  dec.write(controlXz);
  src.pipe(dec);
  const out = new ByteReader(dec, `${what}: control.tar.xz`);
  try {
    const controlTar = await out.mustRead(controlSize);
    const ctl = await parseControlTar(tarEntries(oneChunk(controlTar), `${what}: control.tar.xz`), what);
    return { ctl, dataEntries: tarEntries(out.rest(), `${what}: ${data.name}`) };
  } catch (err) {
    dec.destroy();
    throw err;
  }
}

async function* oneChunk(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}

/** control.tar.xz decompressed on its own (its index unreadable, or a data.tar that is not xz). */
function decompressedBuffer(bytes: Buffer, what: string): AsyncIterable<Buffer> {
  const dec = decompressor("xz", `${what}: control.tar.xz`);
  dec.end(bytes);
  return dec;
}

function readControlTar(m: ArMember, what: string): Promise<{ control: string; members: Map<string, Buffer> }> {
  return parseControlTar(tarOfMember(m, what), what);
}

async function parseControlTar(entries: AsyncIterable<{ header: TarHeader; body: ByteReader }>, what: string): Promise<{ control: string; members: Map<string, Buffer> }> {
  const members = new Map<string, Buffer>();
  let total = 0;
  for await (const { header, body } of entries) {
    if (header.type === "5") continue;
    const name = normalizeImagePath(header.name, what);
    if (header.type !== "0" || name.includes("/")) continue;
    total += header.size;
    if (total > MAX_CONTROL_BYTES) throw new UnsafeArchiveError(`${what}: control archive is larger than ${MAX_CONTROL_BYTES} bytes`);
    members.set(name, header.size ? Buffer.from(await body.mustRead(header.size)) : Buffer.alloc(0));
  }
  const control = members.get("control");
  if (!control) throw new MalformedArchiveError(`${what}: control archive has no control file; not a valid .deb`);
  members.delete("control");
  return { control: control.toString("utf8"), members };
}

async function checkBinary(m: ArMember, what: string): Promise<void> {
  const v = (await m.body.mustRead(Math.min(m.size, 64))).toString("latin1").trim();
  if (!v.startsWith("2.")) throw new MalformedArchiveError(`${what}: unsupported .deb format version ${JSON.stringify(v)} (expected 2.x)`);
}

/** Read only the control part of a .deb (for status files when no record is cached). */
export async function readDebControl(input: Readable, what: string): Promise<{ control: string; members: Map<string, Buffer> }> {
  try {
    for await (const m of readAr(input, what)) {
      if (m.name === "debian-binary") await checkBinary(m, what);
      else if (m.name.startsWith("control.tar")) return await readControlTar(m, what);
    }
  } finally {
    input.destroy();
  }
  throw new UnsafeArchiveError(`${what}: no control archive; not a valid .deb`);
}

/** Install a .deb's data into a tree with merged-/usr canonicalisation; returns its control data. */
export async function installDeb(input: Readable, tree: TreeWriter, what: string): Promise<DebInfo> {
  let ctl: { control: string; members: Map<string, Buffer> } | undefined;
  let sawData = false;
  let sawBinary = false;
  const paths: string[] = [];
  /** control.tar.xz, held back to be decoded with data.tar.xz by one process. */
  let controlXz: { bytes: Buffer; size: number } | undefined;
  for await (const m of readAr(input, what)) {
    if (m.name === "debian-binary") {
      await checkBinary(m, what);
      sawBinary = true;
    } else if (m.name.startsWith("control.tar")) {
      if (m.name === "control.tar.xz" && m.size <= MAX_CONTROL_BYTES) {
        const bytes = Buffer.from(await m.body.mustRead(m.size));
        const size = xzUncompressedSize(bytes);
        if (size !== undefined && size <= MAX_CONTROL_BYTES) { controlXz = { bytes, size }; continue; }
        ctl = await parseControlTar(tarEntries(decompressedBuffer(bytes, what), `${what}: control.tar.xz`), what);
      } else {
        ctl = await readControlTar(m, what);
      }
    } else if (m.name.startsWith("data.tar")) {
      if (!sawBinary || (!ctl && !controlXz)) throw new MalformedArchiveError(`${what}: data archive comes before debian-binary/control; not a valid .deb`);
      let entries;
      if (controlXz && m.name === "data.tar.xz") {
        ({ ctl, dataEntries: entries } = await controlAndDataXz(controlXz.bytes, controlXz.size, m, what));
      } else {
        if (controlXz) ctl = await parseControlTar(tarEntries(decompressedBuffer(controlXz.bytes, what), `${what}: control.tar.xz`), what);
        entries = tarOfMember(m, what);
      }
      controlXz = undefined;
      // dpkg -V and scanners want md5sums; packages built without dh_md5sums lack them.
      const md5s = ctl!.members.has("md5sums") ? undefined : new Map<string, string>();
      await extractData(entries, tree, what, paths, md5s);
      if (md5s) ctl!.members.set("md5sums", Buffer.from([...md5s].map(([p, h]) => `${h}  ${p}\n`).join("")));
      sawData = true;
    } else if (!m.name.startsWith("_")) {
      throw new MalformedArchiveError(`${what}: unexpected member ${JSON.stringify(m.name)}; not a .deb this tool understands`);
    }
  }
  if (!ctl || !sawData) throw new MalformedArchiveError(`${what}: missing ${ctl ? "data" : "control"} archive; the .deb is truncated or corrupt`);
  return { ...ctl, paths };
}

/** Files up to this size are read whole into memory. */
const SMALL_MEMBER = 1 << 20;

async function extractData(entries: AsyncIterable<{ header: TarHeader; body: ByteReader }>, tree: TreeWriter, what: string, paths: string[], md5s?: Map<string, string>): Promise<void> {
  /** canonical path -> original path, for non-directories, to catch /bin/x vs /usr/bin/x. */
  const written = new Map<string, { orig: string; link?: string }>();
  const names = new EntrySet(what);
  for await (const { header: h, body } of entries) {
    if (h.name.startsWith("/")) throw new UnsafeArchiveError(`${what}: data entry ${JSON.stringify(h.name)} is absolute; refusing the package`);
    const orig = normalizeImagePath(h.name, what);
    if (orig === "") continue;
    const meta = { mode: h.mode, uid: h.uid, gid: h.gid, xattrs: xattrsOf(h.pax) };
    if (!names.claim(orig, { dir: h.type === "5", ...meta }, h.name)) continue;
    paths.push("/" + orig);
    const p = canonicalPath(orig);
    if (MERGED.has(orig)) {
      // The top-level dir or alias symlink itself belongs to the merged-/usr base.
      if (h.type === "5" || (h.type === "2" && resolvedLink(orig, h.linkname) === `usr/${orig}`)) continue;
      throw new UnsafeArchiveError(`${what}: /${orig} is a ${h.type === "2" ? `symlink to ${h.linkname}` : "file"}, which contradicts merged-/usr`);
    }
    if (h.type === "5") {
      await tree.addDir(p, meta);
      continue;
    }
    const prev = written.get(p);
    if (prev) {
      // Both /bin/x and /usr/bin/x: fine only if one is a link to the other.
      const selfLink = h.type === "2" && resolvedLink(orig, h.linkname) === p;
      if (selfLink) continue;
      if (!(prev.link !== undefined && resolvedLink(prev.orig, prev.link) === p)) {
        throw new PathConflictError(`${what}: ships both /${prev.orig} and /${orig}, which are the same file on merged-/usr; the package cannot be installed on a merged-/usr image`);
      }
    }
    written.set(p, { orig, link: h.type === "2" ? h.linkname : undefined });
    switch (h.type) {
      case "0": {
        if (h.size <= SMALL_MEMBER) {
          // Most package files are small: one buffer, no stream set-up.
          const pieces = await body.readPieces(h.size);
          await tree.addFile(p, pieces, meta);
          if (md5s) {
            const md5 = createHash("md5");
            for (const piece of pieces) md5.update(piece);
            md5s.set(orig, md5.digest("hex"));
          }
          break;
        }
        if (!md5s) {
          await tree.addFile(p, body.stream(h.size), meta);
          break;
        }
        const md5 = createHash("md5");
        const hashing = new Transform({ transform(c: Buffer, _e, cb) { md5.update(c); cb(null, c); } });
        const src = body.stream(h.size);
        src.on("error", (e) => hashing.destroy(e));
        await tree.addFile(p, src.pipe(hashing), meta);
        md5s.set(orig, md5.digest("hex"));
        break;
      }
      case "2":
        tree.addSymlink(p, canonicalLinkTarget(orig, p, h.linkname), meta);
        break;
      case "1":
        tree.addHardlink(p, canonicalPath(normalizeImagePath(h.linkname, what)));
        break;
      case "3":
      case "4":
        throw new UnsafeArchiveError(`${what}: ${JSON.stringify(h.name)} is a device node; packages may not create devices in an image`);
      case "6":
        throw new UnsafeArchiveError(`${what}: ${JSON.stringify(h.name)} is a FIFO; refusing it`);
      default:
        throw new MalformedArchiveError(`${what}: ${JSON.stringify(h.name)} has unsupported tar type ${JSON.stringify(h.type)}`);
    }
  }
}

/** dpkg's name for per-package files: "libc6:amd64" for Multi-Arch: same, else the bare name. */
export function dpkgInfoName(name: string, arch: string, multiArch: string | undefined): string {
  return multiArch === "same" ? `${name}:${arch}` : name;
}

/** Write the dpkg database files that belong to one package into its own tree. */
export async function writeDpkgInfo(tree: TreeWriter, infoName: string, info: DebInfo): Promise<void> {
  const dir = "var/lib/dpkg/info";
  for (const d of ["var", "var/lib", "var/lib/dpkg", dir]) await tree.addDir(d, { mode: 0o755 });
  const list = ["/.", ...info.paths.map((p) => p.replace(/\/$/, ""))].join("\n") + "\n";
  await tree.addFile(`${dir}/${infoName}.list`, list, { mode: 0o644 });
  for (const [name, data] of [...info.members].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (!/^[a-z0-9_.+-]+$/.test(name)) continue;
    const script = ["preinst", "postinst", "prerm", "postrm", "config"].includes(name);
    await tree.addFile(`${dir}/${infoName}.${name}`, data, { mode: script ? 0o755 : 0o644 });
  }
}
