// `layerfold pull REF DIR`: one platform of a remote image into an OCI layout
// directory. Blobs are verified as they stream in (and those taken from the store are hashed as they are copied); the layout is written in a
// temp dir and renamed into place, so a failed pull leaves nothing behind.

import { Readable } from "node:stream";
import { CorruptStoreError } from "../errors.ts";
import { OciLayoutTarget, refuseForeignOutput } from "../oci/layout.ts";
import { hexOf } from "../oci/types.ts";
import type { Store } from "../store/store.ts";
import { formatBytes, silentLogger } from "../util/log.ts";
import { openRemoteImage, type OpenRemoteOptions } from "./remote-image.ts";

export interface PullOptions extends OpenRemoteOptions {
  concurrency?: number;
  /** Keep blobs here as they arrive (and take them from here): a pull that fails keeps the layers it completed, and pulling again fetches only the rest. */
  store?: Store;
}

export interface PullResult {
  digest: string;
  tag: string;
  bytes: number;
  layers: number;
}

export async function pullImage(ref: string, dir: string, opts: PullOptions = {}): Promise<PullResult> {
  const log = opts.logger ?? silentLogger;
  const started = Date.now();
  await refuseForeignOutput(dir);
  const img = await openRemoteImage(ref, opts);
  const tag = img.reference.tag ?? "latest";
  const store = opts.store;
  const target = new OciLayoutTarget(dir, store && {
    localPath: (d) => store.localBlobPath(hexOf(d.digest)),
    damaged: (d) => store.dropBlob(hexOf(d.digest)),
  });
  try {
    const queue = [...new Map(img.layers.map((l) => [l.digest, l])).values()];
    let bytes = 0;
    const worker = async () => {
      for (let l = queue.shift(); l; l = queue.shift()) {
        const layer = l;
        if (await target.hasBlob(layer)) continue;
        if (store?.localBlobPath(hexOf(layer.digest))) {
          try {
            await target.putBlob(layer, () => img.blobs.open(layer)); // copied from the store, hashed
            log.info(`  stored   ${layer.digest.slice(7, 19)}  ${formatBytes(layer.size).padStart(10)}`);
            continue;
          } catch (err) {
            if (!(err instanceof CorruptStoreError)) throw err;
            log.warn(`  damaged  ${layer.digest.slice(7, 19)}: the store's copy does not match its digest; removed, pulling it again`);
          }
        }
        await target.putBlob(layer, async () => (store ? store.teeBlob(await img.blobs.open(layer), hexOf(layer.digest)) : img.blobs.open(layer)));
        bytes += layer.size;
        log.info(`  pulled   ${layer.digest.slice(7, 19)}  ${formatBytes(layer.size).padStart(10)}`);
      }
    };
    await Promise.all(Array.from({ length: opts.concurrency ?? 4 }, worker));
    await target.putBlob(img.configDescriptor, async () => Readable.from([img.config]));
    await target.putManifest(img.manifest, { mediaType: img.manifestMediaType, digest: img.manifestDigest, size: img.manifest.length }, tag);
    await target.commit();
    log.info(`pulled ${img.reference.registry}/${img.reference.repository}:${tag}@${img.manifestDigest} into ${dir}: ${img.layers.length} layers, ${formatBytes(bytes)} in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    return { digest: img.manifestDigest, tag, bytes, layers: img.layers.length };
  } catch (err) {
    await target.abort();
    throw err;
  } finally {
    if (!opts.client) await img.client.close();
  }
}
