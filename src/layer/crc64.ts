// CRC-64 with the ISO polynomial, as Go's hash/crc64 computes it (crc64.MakeTable(crc64.ISO)):
// tar-split records one per file, and containers/storage checks it when it rebuilds a
// layer's tar from the files of a partial pull. Kept as two 32-bit halves (no BigInt in
// the loop), eight bytes a step (slicing-by-8).

/** Slicing-by-8 tables (high and low halves): table k advances a byte k + 1 places. */
const [HI, LO] = (() => {
  const hi = new Uint32Array(8 * 256);
  const lo = new Uint32Array(8 * 256);
  for (let i = 0; i < 256; i++) {
    let h = 0;
    let l = i;
    for (let k = 0; k < 8; k++) {
      const lsb = l & 1;
      l = ((l >>> 1) | ((h & 1) << 31)) >>> 0;
      h >>>= 1;
      if (lsb) h = (h ^ 0xd8000000) >>> 0;
    }
    hi[i] = h;
    lo[i] = l;
  }
  for (let t = 1; t < 8; t++) {
    for (let i = 0; i < 256; i++) {
      const ph = hi[(t - 1) * 256 + i]!;
      const pl = lo[(t - 1) * 256 + i]!;
      const idx = pl & 0xff;
      hi[t * 256 + i] = ((ph >>> 8) ^ hi[idx]!) >>> 0;
      lo[t * 256 + i] = (((pl >>> 8) | (ph << 24)) ^ lo[idx]!) >>> 0;
    }
  }
  return [hi, lo];
})();

/** A running CRC-64/ISO (Go's crc64.Checksum(data, crc64.MakeTable(crc64.ISO))). */
export class Crc64 {
  // The complemented state, as Go keeps it between updates.
  private hi = 0xffffffff;
  private lo = 0xffffffff;

  update(data: Uint8Array): this {
    let hi = this.hi;
    let lo = this.lo;
    const n = data.length;
    let i = 0;
    for (; i + 8 <= n; i += 8) {
      lo ^= data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
      hi ^= data[i + 4]! | (data[i + 5]! << 8) | (data[i + 6]! << 16) | (data[i + 7]! << 24);
      const h = HI[1792 + (lo & 0xff)]! ^ HI[1536 + ((lo >>> 8) & 0xff)]! ^ HI[1280 + ((lo >>> 16) & 0xff)]! ^ HI[1024 + (lo >>> 24)]!
        ^ HI[768 + (hi & 0xff)]! ^ HI[512 + ((hi >>> 8) & 0xff)]! ^ HI[256 + ((hi >>> 16) & 0xff)]! ^ HI[hi >>> 24]!;
      lo = LO[1792 + (lo & 0xff)]! ^ LO[1536 + ((lo >>> 8) & 0xff)]! ^ LO[1280 + ((lo >>> 16) & 0xff)]! ^ LO[1024 + (lo >>> 24)]!
        ^ LO[768 + (hi & 0xff)]! ^ LO[512 + ((hi >>> 8) & 0xff)]! ^ LO[256 + ((hi >>> 16) & 0xff)]! ^ LO[hi >>> 24]!;
      hi = h;
    }
    for (; i < n; i++) {
      const idx = (lo ^ data[i]!) & 0xff;
      lo = ((lo >>> 8) | (hi << 24)) ^ LO[idx]!;
      hi = (hi >>> 8) ^ HI[idx]!;
    }
    this.hi = hi;
    this.lo = lo;
    return this;
  }

  /** The 8 checksum bytes, big-endian (what Go's Sum appends). */
  digest(): Buffer {
    const out = Buffer.alloc(8);
    out.writeUInt32BE(~this.hi >>> 0, 0);
    out.writeUInt32BE(~this.lo >>> 0, 4);
    return out;
  }
}
