// Blob upload: chunked PATCH (default) or one monolithic PUT. Bytes stream
// from a source that can be reopened at an offset. After a dropped connection
// or a 5xx/429 the upload asks the registry how far it got (GET on the upload
// URL) and continues from the Range it reports; if the registry lost the
// upload, a new one starts from zero. The registry checks the digest on the
// final PUT, so a bad resume can never produce a wrong blob.

import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import type { Readable } from "node:stream";
import { LayerfoldError, NetworkError, RegistryError } from "../errors.ts";
import { isFinalNetworkError } from "../fetch/fetch.ts";
import type { BlobSource, Descriptor } from "../oci/types.ts";
import type { RegistryClient } from "./client.ts";

/** A BlobSource that can open a blob at an offset without reading what comes before. */
export interface RangedBlobSource extends BlobSource {
  openRange(desc: Descriptor, start: number): Promise<Readable>;
}

/** Open a blob at `offset`: from its local file, with openRange when the source has it, else by skipping bytes. */
export async function openAt(source: BlobSource, desc: Descriptor, offset: number): Promise<Readable> {
  const local = source.localPath?.(desc);
  if (local) return createReadStream(local, { start: offset, highWaterMark: 1 << 20 });
  const ranged = source as Partial<RangedBlobSource>;
  if (offset > 0 && typeof ranged.openRange === "function") return ranged.openRange(desc, offset);
  const stream = await source.open(desc);
  if (offset === 0) return stream;
  const { Readable } = await import("node:stream");
  const it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  async function* skip(): AsyncGenerator<Buffer> {
    let left = offset;
    try {
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        let buf = r.value;
        if (left > 0) {
          if (buf.length <= left) { left -= buf.length; continue; }
          buf = buf.subarray(left);
          left = 0;
        }
        yield buf;
      }
    } finally {
      stream.destroy();
    }
  }
  return Readable.from(skip(), { objectMode: false });
}

// A local blob is read into a few buffers that are used over and over. A stream
// allocates a fresh buffer per read, and fresh memory costs a page fault per
// 4 KiB: on a VM that gives memory back to its host, that was most of a push's
// CPU time (a 32 MB blob: ~300 ms through createReadStream, ~40 ms this way).
const READ_BUFFER_BYTES = 256 * 1024;
/**
 * Buffers per reader. A chunk is overwritten only this many reads after it was
 * handed out; the HTTP client has written a chunk to the socket before it asks
 * for the next one (it waits for 'drain'), so one would do: the rest is margin.
 */
const READ_RING = 4;
const spareBuffers: Buffer[] = [];

async function* fileChunks(file: string, start: number): AsyncGenerator<Buffer> {
  const fh = await open(file, "r");
  const ring = Array.from({ length: READ_RING }, () => spareBuffers.pop() ?? Buffer.allocUnsafeSlow(READ_BUFFER_BYTES));
  try {
    let pos = start;
    for (let i = 0; ; i = (i + 1) % READ_RING) {
      const buf = ring[i]!;
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) return;
      pos += bytesRead;
      yield buf.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
    spareBuffers.push(...ring);
  }
}

/** The bytes of a blob from `offset`: a local file through reused buffers, else the source's stream. */
async function blobChunks(source: BlobSource, desc: Descriptor, offset: number): Promise<{ chunks: AsyncIterable<Buffer>; close: () => void }> {
  const local = source.localPath?.(desc);
  if (local) {
    const chunks = fileChunks(local, offset);
    return { chunks, close: () => void chunks.return(undefined).catch(() => {}) };
  }
  const stream = await openAt(source, desc, offset);
  return { chunks: stream, close: () => stream.destroy() };
}

/** Hands out consecutive byte ranges of one blob as separate request bodies. */
class ChunkReader {
  private readonly it: AsyncIterator<Buffer>;
  private pending?: Buffer;
  constructor(private readonly source: { chunks: AsyncIterable<Buffer>; close: () => void }) {
    this.it = source.chunks[Symbol.asyncIterator]();
  }
  async *take(n: number, onBytes: (k: number) => void): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      let buf = this.pending;
      this.pending = undefined;
      if (!buf) {
        const r = await this.it.next();
        if (r.done) return;
        buf = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
      }
      if (buf.length > left) {
        this.pending = buf.subarray(left);
        buf = buf.subarray(0, left);
      }
      left -= buf.length;
      onBytes(buf.length);
      yield buf;
    }
  }
  close(): void {
    this.source.close();
  }
}

export interface UploadOptions {
  /** Bytes per PATCH; 0 (default) = the whole blob in one streamed PATCH. */
  chunkSize?: number;
  /** One PUT with the whole body instead of POST+PATCH+PUT. */
  monolithic?: boolean;
  /** An upload URL already opened (e.g. by a mount attempt that answered 202). */
  location?: string;
  /** Bytes of this blob the registry has received so far (may go back after a resume). */
  onProgress?: (bytes: number) => void;
  /** Failures in a row before giving up. */
  maxFailures?: number;
  backoffMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Worth another try: a non-final network error, 5xx/429, or an upload the registry lost or disagrees about. */
function retryable(err: unknown): boolean {
  if ((err as { final?: boolean }).final) return false;
  const status = (err as { httpStatus?: number }).httpStatus;
  if (status !== undefined) return status >= 500 || [400, 401, 404, 408, 416, 429].includes(status);
  if (err instanceof LayerfoldError && !(err instanceof NetworkError)) return false;
  return !isFinalNetworkError(err);
}

function withDigest(location: string, digest: string): string {
  const u = new URL(location);
  u.searchParams.set("digest", digest);
  return u.toString();
}

/** Upload one blob to repository. Resolves when the registry has committed it under desc.digest. */
export async function uploadBlob(client: RegistryClient, repository: string, desc: Descriptor, source: BlobSource, opts: UploadOptions = {}): Promise<void> {
  const what = `upload blob ${desc.digest.slice(0, 19)} (${desc.size} bytes) to ${client.registry}/${repository}`;
  const maxFailures = opts.maxFailures ?? 8;
  const backoffMs = opts.backoffMs ?? client.backoffMs;
  let location = opts.location ?? (await client.startUpload(repository));
  let failures = 0;
  const fail = async (err: unknown): Promise<void> => {
    if (!retryable(err) || ++failures > maxFailures) {
      if (err instanceof LayerfoldError) throw err;
      throw new NetworkError(`${what}: ${(err as Error).message}`, { cause: err });
    }
    await sleep(Math.min(10_000, backoffMs * 2 ** (failures - 1)));
  };

  if (opts.monolithic) {
    for (;;) {
      let body: ChunkReader | undefined;
      try {
        body = new ChunkReader(await blobChunks(source, desc, 0));
        const reader = body;
        let sent = 0;
        const r = await client.send({
          method: "PUT",
          url: withDigest(location, desc.digest),
          headers: { "content-type": "application/octet-stream", "content-length": String(desc.size) },
          body: () => reader.take(desc.size, (k) => opts.onProgress?.((sent += k))),
          retry: false,
          ok: [201],
          what,
        });
        r.body.resume();
        body.close();
        return;
      } catch (err) {
        body?.close();
        await fail(err);
        opts.onProgress?.(0);
        location = await client.startUpload(repository);
      }
    }
  }

  const chunkSize = opts.chunkSize && opts.chunkSize > 0 ? opts.chunkSize : Number.MAX_SAFE_INTEGER;
  let offset = 0;
  let furthest = 0;
  while (offset < desc.size) {
    const reader = new ChunkReader(await blobChunks(source, desc, offset));
    try {
      while (offset < desc.size) {
        const len = Math.min(chunkSize, desc.size - offset);
        let sent = offset;
        const r = await client.send({
          method: "PATCH",
          url: location,
          // The whole blob from 0 goes as a streamed PATCH without Content-Range, as docker and skopeo
          // send it (GHCR caps Content-Range chunks at 4 MiB); chunks and resumed uploads carry their range.
          headers: {
            "content-type": "application/octet-stream",
            "content-length": String(len),
            ...(offset === 0 && len === desc.size ? {} : { "content-range": `${offset}-${offset + len - 1}` }),
          },
          body: () => reader.take(len, (k) => opts.onProgress?.((sent += k))),
          retry: false,
          ok: [202, 204],
          what,
        });
        r.body.resume();
        location = client.location(r, what);
        offset += len;
        // Failures count per blob; only progress past the furthest point so far earns a fresh budget,
        // so a registry that loses the upload at the same place every time cannot loop us forever.
        if (offset > furthest) { furthest = offset; failures = 0; }
      }
    } catch (err) {
      reader.close();
      await fail(err);
      // Ask the registry where it stands; start over if it lost the upload.
      // A 416 means the registry disagrees about the offset: do not trust a resume then.
      const disagreed = (err as { httpStatus?: number }).httpStatus === 416;
      const status = disagreed ? undefined : await client.uploadStatus(location).catch(() => undefined);
      if (status && status.offset <= desc.size) {
        offset = status.offset;
        location = status.location;
      } else {
        offset = 0;
        location = await client.startUpload(repository);
      }
      opts.onProgress?.(offset);
      continue;
    }
    reader.close();
  }

  // Commit. If the PUT's answer is lost, the blob may exist already: check before failing.
  for (;;) {
    try {
      const r = await client.send({ method: "PUT", url: withDigest(location, desc.digest), headers: { "content-length": "0" }, retry: false, ok: [201], what });
      r.body.resume();
      return;
    } catch (err) {
      if ((await client.hasBlob(repository, desc.digest).catch(() => ({ exists: false }))).exists) return;
      const status = (err as { httpStatus?: number }).httpStatus;
      if (status === 400 && err instanceof RegistryError && /DIGEST_INVALID|SIZE_INVALID/.test(err.message)) {
        throw new RegistryError(`${what}: the registry computed a different digest for the bytes sent; the local blob is corrupt or changed while uploading (rebuild it)`);
      }
      if (status !== undefined && status < 500 && status !== 429) throw err;
      await fail(err);
    }
  }
}
