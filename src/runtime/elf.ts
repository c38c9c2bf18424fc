// A small ELF reader: just enough of the headers to say what a file needs at
// load time (PT_INTERP, DT_NEEDED, DT_RPATH, DT_RUNPATH, DT_SONAME). It reads
// the ELF header, the program headers, the dynamic segment and the few
// strings it names, never the whole file, so thousands of files take seconds.

import { open, type FileHandle } from "node:fs/promises";

export interface ElfInfo {
  class: 32 | 64;
  /** e_machine, e.g. 62 for x86-64, 183 for aarch64. */
  machine: number;
  /** e_type: 2 executable, 3 shared object (or PIE). */
  type: number;
  interp?: string;
  needed: string[];
  rpath?: string[];
  runpath?: string[];
  soname?: string;
}

export type ElfResult = { elf: ElfInfo } | { notElf: true } | { error: string };

const PT_LOAD = 1, PT_DYNAMIC = 2, PT_INTERP = 3;
const DT_NULL = 0, DT_NEEDED = 1, DT_STRTAB = 5, DT_STRSZ = 10, DT_SONAME = 14, DT_RPATH = 15, DT_RUNPATH = 29;
const MAX_PHDRS = 4096;
const MAX_DYNAMIC = 1 << 20;

async function readAt(fh: FileHandle, pos: number, len: number): Promise<Buffer> {
  const buf = Buffer.alloc(len);
  const { bytesRead } = await fh.read(buf, 0, len, pos);
  return buf.subarray(0, bytesRead);
}

/** Read a NUL-terminated string at pos, in small steps (string tables of C++ libraries are tens of MB). */
async function readString(fh: FileHandle, pos: number, limit: number): Promise<string> {
  let out = Buffer.alloc(0);
  while (out.length < limit) {
    const chunk = await readAt(fh, pos + out.length, Math.min(256, limit - out.length));
    if (chunk.length === 0) break;
    const nul = chunk.indexOf(0);
    if (nul >= 0) return Buffer.concat([out, chunk.subarray(0, nul)]).toString("utf8");
    out = Buffer.concat([out, chunk]);
  }
  throw new Error("unterminated string in the dynamic string table");
}

export async function readElf(file: string): Promise<ElfResult> {
  let fh: FileHandle;
  try {
    fh = await open(file, "r");
  } catch (err) {
    return { error: (err as Error).message };
  }
  try {
    const h = await readAt(fh, 0, 64);
    if (h.length < 52 || h[0] !== 0x7f || h[1] !== 0x45 || h[2] !== 0x4c || h[3] !== 0x46) return { notElf: true };
    const is64 = h[4] === 2;
    if (h[4] !== 1 && h[4] !== 2) return { error: `unknown ELF class ${h[4]}` };
    if (h[5] !== 1 && h[5] !== 2) return { error: `unknown ELF data encoding ${h[5]}` };
    if (is64 && h.length < 64) return { error: "truncated ELF header" };
    const le = h[5] === 1;
    const u16 = (b: Buffer, o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
    const u32 = (b: Buffer, o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
    const u64 = (b: Buffer, o: number) => Number(le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o));
    const word = (b: Buffer, o: number) => (is64 ? u64(b, o) : u32(b, o));
    const type = u16(h, 16);
    const machine = u16(h, 18);
    const phoff = is64 ? u64(h, 32) : u32(h, 28);
    const phentsize = u16(h, is64 ? 54 : 42);
    const phnum = u16(h, is64 ? 56 : 44);
    const info: ElfInfo = { class: is64 ? 64 : 32, machine, type, needed: [] };
    if (type !== 2 && type !== 3) return { elf: info }; // relocatable objects, core files: nothing to load
    if (phnum === 0 || phnum > MAX_PHDRS || phentsize < (is64 ? 56 : 32)) return { error: "no or malformed program headers" };
    const ph = await readAt(fh, phoff, phnum * phentsize);
    if (ph.length < phnum * phentsize) return { error: "program headers run past the end of the file" };
    const loads: Array<{ vaddr: number; offset: number; filesz: number }> = [];
    let dyn: { offset: number; filesz: number } | undefined;
    for (let i = 0; i < phnum; i++) {
      const o = i * phentsize;
      const pType = u32(ph, o);
      const offset = is64 ? u64(ph, o + 8) : u32(ph, o + 4);
      const vaddr = is64 ? u64(ph, o + 16) : u32(ph, o + 8);
      const filesz = is64 ? u64(ph, o + 32) : u32(ph, o + 16);
      if (pType === PT_LOAD) loads.push({ vaddr, offset, filesz });
      else if (pType === PT_DYNAMIC) dyn = { offset, filesz };
      else if (pType === PT_INTERP) info.interp = (await readAt(fh, offset, Math.min(filesz, 4096))).toString("latin1").replace(/\0.*$/s, "");
    }
    if (!dyn) return { elf: info }; // static
    const dynData = await readAt(fh, dyn.offset, Math.min(dyn.filesz, MAX_DYNAMIC));
    const entSize = is64 ? 16 : 8;
    const tags: Array<[number, number]> = [];
    let strtab: number | undefined;
    let strsz = 1 << 16;
    for (let o = 0; o + entSize <= dynData.length; o += entSize) {
      const tag = word(dynData, o);
      const val = word(dynData, o + entSize / 2);
      if (tag === DT_NULL) break;
      if (tag === DT_STRTAB) strtab = val;
      else if (tag === DT_STRSZ) strsz = val;
      else if (tag === DT_NEEDED || tag === DT_RPATH || tag === DT_RUNPATH || tag === DT_SONAME) tags.push([tag, val]);
    }
    if (tags.length === 0) return { elf: info };
    if (strtab === undefined) return { error: "dynamic section has no string table" };
    // DT_STRTAB is an address: map it to a file offset through the PT_LOAD segments.
    const seg = loads.find((l) => strtab! >= l.vaddr && strtab! < l.vaddr + l.filesz);
    if (!seg) return { error: "dynamic string table is outside every loaded segment (a debug-only file?)" };
    const strOff = strtab - seg.vaddr + seg.offset;
    for (const [tag, val] of tags) {
      if (val >= strsz) return { error: "dynamic string offset past the string table" };
      const s = await readString(fh, strOff + val, Math.min(4096, strsz - val));
      if (tag === DT_NEEDED) info.needed.push(s);
      else if (tag === DT_SONAME) info.soname = s;
      else if (tag === DT_RPATH) info.rpath = s.split(":").filter(Boolean);
      else info.runpath = s.split(":").filter(Boolean);
    }
    return { elf: info };
  } catch (err) {
    return { error: (err as Error).message };
  } finally {
    await fh.close();
  }
}

/** e_machine of an OCI architecture name. */
export const MACHINE_OF_ARCH: Record<string, number> = { amd64: 62, arm64: 183, "386": 3, arm: 40, ppc64le: 21, s390x: 22, riscv64: 243 };
