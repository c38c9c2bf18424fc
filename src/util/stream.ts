import { Transform, Writable, type TransformCallback } from "node:stream";

/** A sink that discards; drains a stream through a hasher. */
export const devNull = (): Writable => new Writable({ write: (_c, _e, cb) => cb() });

/** A pass-through that calls `onBytes` per chunk; throwing from it fails the stream. */
export function tap(onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback) {
      try { onBytes(chunk.length); cb(null, chunk); } catch (err) { cb(err as Error); }
    },
  });
}
