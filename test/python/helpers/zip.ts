// A minimal zip writer for tests: real deflate, real CRCs, and knobs to make
// hostile archives (lying sizes, shared data, bad names).
import zlib from "node:zlib";

export interface Member {
  /** Raw bytes for names that are not UTF-8. */
  name: string | Buffer;
  data: Buffer | string;
  /** 0 stored, 8 deflate (default). */
  method?: 0 | 8;
  /** Lie about the uncompressed size in the central directory. */
  declaredSize?: number;
  /** Unix mode bits (e.g. 0o755). */
  mode?: number;
}

export function makeZip(members: Member[], opts: { shareDataOf?: [number, number] } = {}): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  const offsets: number[] = [];
  let offset = 0;
  members.forEach((m) => {
    const data = Buffer.from(m.data);
    const method = m.method ?? 8;
    const comp = method === 8 ? zlib.deflateRawSync(data) : data;
    const crc = zlib.crc32(data) >>> 0;
    const name = typeof m.name === "string" ? Buffer.from(m.name, "utf8") : m.name;
    const size = m.declaredSize ?? data.length;
    const lfh = Buffer.alloc(30);
    lfh.writeUInt32LE(0x04034b50, 0);
    lfh.writeUInt16LE(20, 4);
    lfh.writeUInt16LE(0x800, 6);
    lfh.writeUInt16LE(method, 8);
    lfh.writeUInt32LE(crc, 14);
    lfh.writeUInt32LE(comp.length, 18);
    lfh.writeUInt32LE(size, 22);
    lfh.writeUInt16LE(name.length, 26);
    const cdh = Buffer.alloc(46);
    cdh.writeUInt32LE(0x02014b50, 0);
    cdh.writeUInt16LE((3 << 8) | 20, 4);
    cdh.writeUInt16LE(20, 6);
    cdh.writeUInt16LE(0x800, 8);
    cdh.writeUInt16LE(method, 10);
    cdh.writeUInt32LE(crc, 16);
    cdh.writeUInt32LE(comp.length, 20);
    cdh.writeUInt32LE(size, 24);
    cdh.writeUInt16LE(name.length, 28);
    cdh.writeUInt32LE((((m.mode ?? (name.at(-1) === 0x2f ? 0o40755 : 0o100644)) & 0xffff) << 16) >>> 0, 38);
    cdh.writeUInt32LE(offset, 42);
    offsets.push(offset);
    locals.push(lfh, name, comp);
    centrals.push(cdh, name);
    offset += 30 + name.length + comp.length;
  });
  if (opts.shareDataOf) {
    // Point member b's central entry at member a's local header.
    const [a, b] = opts.shareDataOf;
    centrals[b * 2]!.writeUInt32LE(offsets[a]!, 42);
  }
  const cd = Buffer.concat(centrals);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(members.length, 8);
  eocd.writeUInt16LE(members.length, 10);
  eocd.writeUInt32LE(cd.length, 12);
  eocd.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, eocd]);
}
