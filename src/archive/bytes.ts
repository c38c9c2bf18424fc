// Pull exact byte counts from a stream: the base of the tar and ar readers.

import { Readable } from "node:stream";
import { UnsafeArchiveError } from "../errors.ts";

export class ByteReader {
  private readonly it: AsyncIterator<Buffer>;
  private buf: Buffer = Buffer.alloc(0);
  private done = false;
  /** Bytes consumed so far (for error messages). */
  offset = 0;
  constructor(input: AsyncIterable<Buffer>, readonly what: string) {
    this.it = input[Symbol.asyncIterator]();
  }

  private async fill(min: number): Promise<boolean> {
    if (this.buf.length >= min || this.done) return this.buf.length >= min;
    // Gather the chunks first and join once: joining per chunk copies a large read many times.
    const parts = this.buf.length ? [this.buf] : [];
    let have = this.buf.length;
    while (have < min) {
      const r = await this.it.next();
      if (r.done) { this.done = true; break; }
      const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
      parts.push(chunk);
      have += chunk.length;
    }
    this.buf = parts.length === 1 ? parts[0]! : Buffer.concat(parts, have);
    return have >= min;
  }

  /** Exactly n bytes, or undefined at a clean end of stream (nothing left). */
  async readExact(n: number): Promise<Buffer | undefined> {
    if (!(await this.fill(n))) {
      if (this.buf.length === 0) return undefined;
      throw new UnsafeArchiveError(`${this.what}: truncated at byte ${this.offset + this.buf.length} (wanted ${n} more bytes)`);
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    this.offset += n;
    return out;
  }

  async mustRead(n: number): Promise<Buffer> {
    const b = await this.readExact(n);
    if (!b) throw new UnsafeArchiveError(`${this.what}: truncated at byte ${this.offset}`);
    return b;
  }

  /** The next n bytes as a stream; it must be drained before reading on. */
  stream(n: number): Readable {
    const self = this;
    async function* gen() {
      let left = n;
      while (left > 0) {
        if (self.buf.length === 0 && !(await self.fill(1))) {
          throw new UnsafeArchiveError(`${self.what}: truncated inside an entry at byte ${self.offset}`);
        }
        const take = Math.min(left, self.buf.length);
        const out = self.buf.subarray(0, take);
        self.buf = self.buf.subarray(take);
        self.offset += take;
        left -= take;
        yield out;
      }
    }
    return Readable.from(gen(), { objectMode: false });
  }

  /** Everything left, as it arrives. */
  async *rest(): AsyncGenerator<Buffer> {
    if (this.buf.length) {
      const b = this.buf;
      this.buf = Buffer.alloc(0);
      this.offset += b.length;
      yield b;
    }
    while (!this.done) {
      const r = await this.it.next();
      if (r.done) { this.done = true; break; }
      const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
      this.offset += chunk.length;
      yield chunk;
    }
  }

  async skip(n: number): Promise<void> {
    for await (const _ of this.stream(n)) { /* discard */ }
  }
}
