import { createHash, type Hash } from "node:crypto";
import { open } from "node:fs/promises";
import { Transform, type TransformCallback } from "node:stream";

export const sha256Hex = (data: string | Uint8Array): string => createHash("sha256").update(data).digest("hex");

/** A pass-through stream that hashes and counts what flows through it. */
export class HashingStream extends Transform {
  private readonly hash: Hash = createHash("sha256");
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }
  /** Valid once the stream has finished. */
  hex(): string {
    return this.hash.copy().digest("hex");
  }
}

/** sha256 hex of a whole file, read through one reused buffer. */
export async function hashFile(file: string): Promise<string> {
  const h = createHash("sha256");
  const fh = await open(file, "r");
  const buf = Buffer.allocUnsafe(1 << 20);
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) return h.digest("hex");
      h.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
}
