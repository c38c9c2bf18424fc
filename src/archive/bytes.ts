// Pull exact byte counts from a stream: the base of the tar and ar readers.
// Chunks are kept as they arrive and handed out as views; only a read that
// straddles chunks copies, and then only the bytes it asked for (a fresh
// buffer costs a page fault per 4 KiB on this kind of VM).

import { Readable } from "node:stream";
import { LayerfoldError, MalformedArchiveError } from "../errors.ts";

export class ByteReader {
  private readonly it: AsyncIterator<Buffer>;
  /** Unread chunks; the first may be partly read. */
  private chunks: Buffer[] = [];
  private buffered = 0;
  private done = false;
  /** Bytes consumed so far (for error messages). */
  offset = 0;
  /** The entry being read, named in errors (set by the tar and ar readers). */
  entry?: string;
  constructor(input: AsyncIterable<Buffer>, readonly what: string) {
    this.it = input[Symbol.asyncIterator]();
  }

  /** Where a failure happened: the archive, and the entry when one is being read. */
  private where(): string {
    return this.entry === undefined ? this.what : `${this.what}, entry ${JSON.stringify(this.entry)}`;
  }

  private truncated(detail: string): MalformedArchiveError {
    return new MalformedArchiveError(`${this.where()}: truncated ${detail}; the archive is cut short or corrupt (download it again, or check its source)`);
  }

  /**
   * The next input chunk. A decompressor's failure (zlib's "unexpected end of file", a corrupt
   * xz or zstd stream) becomes a typed error naming the archive and the entry; a host I/O error
   * stays what it is.
   */
  private async next(): Promise<IteratorResult<Buffer>> {
    try {
      return await this.it.next();
    } catch (err) {
      if (err instanceof MalformedArchiveError && this.entry !== undefined && !err.message.includes(JSON.stringify(this.entry))) {
        throw new MalformedArchiveError(`${err.message} (while reading entry ${JSON.stringify(this.entry)})`, { cause: err });
      }
      if (err instanceof LayerfoldError || (err as NodeJS.ErrnoException).syscall) throw err;
      const code = (err as { code?: string }).code;
      throw new MalformedArchiveError(`${this.where()}: the data does not decompress (${code ? `${code}: ` : ""}${(err as Error).message}); the archive is truncated or corrupt (download it again, or check its source)`, { cause: err });
    }
  }

  private async fill(min: number): Promise<boolean> {
    while (this.buffered < min && !this.done) {
      const r = await this.next();
      if (r.done) { this.done = true; break; }
      const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
      if (chunk.length === 0) continue;
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    return this.buffered >= min;
  }

  /** Take up to n buffered bytes from the front as views. */
  private take(n: number): Buffer[] {
    const out: Buffer[] = [];
    while (n > 0 && this.chunks.length) {
      const c = this.chunks[0]!;
      if (c.length <= n) {
        out.push(c);
        this.chunks.shift();
        n -= c.length;
        this.buffered -= c.length;
        this.offset += c.length;
      } else {
        out.push(c.subarray(0, n));
        this.chunks[0] = c.subarray(n);
        this.buffered -= n;
        this.offset += n;
        n = 0;
      }
    }
    return out;
  }

  /** Exactly n bytes, or undefined at a clean end of stream (nothing left). */
  async readExact(n: number): Promise<Buffer | undefined> {
    if (!(await this.fill(n))) {
      if (this.buffered === 0) return undefined;
      throw this.truncated(`at byte ${this.offset + this.buffered} (wanted ${n} more bytes)`);
    }
    const parts = this.take(n);
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
  }

  async mustRead(n: number): Promise<Buffer> {
    const b = await this.readExact(n);
    if (!b) throw this.truncated(`at byte ${this.offset}`);
    return b;
  }

  /** Exactly n bytes as views of the chunks they arrived in: no copy. */
  async readPieces(n: number): Promise<Buffer[]> {
    if (n === 0) return [];
    if (!(await this.fill(n))) throw this.truncated(`inside the entry at byte ${this.offset + this.buffered}`);
    return this.take(n);
  }

  /** The next n bytes as a stream; it must be drained before reading on. */
  stream(n: number): Readable {
    const self = this;
    async function* gen() {
      let left = n;
      while (left > 0) {
        if (self.buffered === 0 && !(await self.fill(1))) {
          throw self.truncated(`inside the entry at byte ${self.offset}`);
        }
        const parts = self.take(Math.min(left, self.buffered));
        for (const p of parts) {
          left -= p.length;
          yield p;
        }
      }
    }
    return Readable.from(gen(), { objectMode: false });
  }

  /** Everything left, as it arrives. */
  async *rest(): AsyncGenerator<Buffer> {
    for (const c of this.take(this.buffered)) yield c;
    while (!this.done) {
      const r = await this.next();
      if (r.done) { this.done = true; break; }
      const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
      this.offset += chunk.length;
      yield chunk;
    }
  }

  async skip(n: number): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.buffered === 0 && !(await this.fill(1))) {
        throw this.truncated(`inside the entry at byte ${this.offset}`);
      }
      for (const p of this.take(Math.min(left, this.buffered))) left -= p.length;
    }
  }
}
