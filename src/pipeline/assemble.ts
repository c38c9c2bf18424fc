// Step: assemble. The image config and manifest from the layer descriptors (the
// base image's first), written to the store; the built image reads its blobs from
// the store, base-image layers from the base registry and cached layers from the
// cache repository.

import type { ImageDefinition } from "../config/schema.ts";
import { storeBlobs } from "../catalog/image.ts";
import { hexOf } from "../constants.ts";
import type { BuiltLayer } from "../catalog/records.ts";
import { buildConfig, buildManifest, descriptorOf, toBytes } from "../oci/image.ts";
import { MEDIA, type BlobSource, type BuiltImage, type LayerDescriptor } from "../oci/types.ts";
import type { BaseImage } from "../registry/base.ts";
import type { Store } from "../store/store.ts";
import type { Logger } from "../util/log.ts";
import type { BuildCache } from "./layers.ts";

/** Base-image blobs from the base registry, cached layers from the cache repository. */
function joinSources(base: BlobSource | undefined, cache: BlobSource | undefined, cached: Set<string>): BlobSource | undefined {
  if (!cache || cached.size === 0) return base;
  return {
    open: (d) => (cached.has(d.digest) || !base ? cache.open(d) : base.open(d)),
    remoteRepository: (d) => (cached.has(d.digest) ? cache.remoteRepository?.(d) : base?.remoteRepository?.(d)),
  };
}

export interface AssembleStep {
  store: Store;
  image: ImageDefinition;
  layers: BuiltLayer[];
  base?: BaseImage;
  cache?: BuildCache;
  epoch: number;
  log: Logger;
}

export async function assembleImage(a: AssembleStep): Promise<BuiltImage> {
  const layerDescs: Array<LayerDescriptor & { name: string; comment: string }> = a.layers.map((l) => ({
    mediaType: l.mediaType,
    digest: l.digest,
    size: l.size,
    diffId: l.diffId,
    uncompressedSize: l.uncompressedSize,
    name: l.name,
    comment: `${l.packages.length} packages`,
    ...(l.annotations ? { annotations: l.annotations } : {}),
  }));
  const configBytes = toBytes(buildConfig({ image: a.image, layers: layerDescs, base: a.base?.config, epoch: a.epoch }));
  const configDescriptor = descriptorOf(MEDIA.config, configBytes);
  const allLayers: LayerDescriptor[] = [...(a.base?.layers ?? []), ...layerDescs];
  // Base-image and cached layers the store keeps: a damaged copy is dropped here, and read from its registry again.
  for (const d of allLayers) {
    if (a.layers.some((l) => l.digest === d.digest && !l.cached)) continue;
    if ((await a.store.checkBlob(hexOf(d.digest))) === "damaged") a.log.warn(`layer ${d.digest.slice(7, 19)}: the stored copy is damaged; it is fetched again`);
  }
  const manifestBytes = toBytes(buildManifest(configDescriptor, allLayers, a.image.annotations));
  await a.store.putBlobBytes(configBytes);
  await a.store.putBlobBytes(manifestBytes);
  const cached = new Set(a.layers.filter((l) => l.cached).map((l) => l.digest));
  return {
    name: a.image.name,
    tag: a.image.tag,
    manifest: manifestBytes,
    manifestDescriptor: descriptorOf(MEDIA.manifest, manifestBytes),
    config: configBytes,
    configDescriptor,
    layers: allLayers,
    blobs: storeBlobs(a.store, joinSources(a.base?.blobs, a.cache?.blobSource(), cached)),
  };
}
