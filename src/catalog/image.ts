// A build record turned back into an image that push, load and export take:
// its manifest and config from the record, its layer blobs from the store, and
// base-image layers (which a build keeps by reference) from the base registry.

import { loadConfig } from "../config/load.ts";
import { hexOf } from "../constants.ts";
import { CorruptStoreError } from "../errors.ts";
import type { BlobSource, BuiltImage, Descriptor, ImageConfigFile, ImageManifest, LayerDescriptor } from "../oci/types.ts";
import { loadBaseImage, type BaseImage } from "../registry/base.ts";
import { readLayoutImages } from "../registry/layout-source.ts";
import { sourceKinds } from "../sources/registry.ts";
import { damagedLayerError, type Store } from "../store/store.ts";
import { findBuildRecord, type BuildSelector } from "./find.ts";
import type { BuildRecord } from "./records.ts";

/**
 * Store-backed blob source: layouts copy from it, pushes and archives stream from it. Every
 * blob is checked before it is read (its stat signature, else a rehash) and hashed as it streams.
 */
export function storeBlobs(store: Store, extra?: BlobSource): BlobSource {
  return {
    async open(d: Descriptor) {
      const hex = hexOf(d.digest);
      const state = await store.checkBlob(hex);
      if (state === "ok") return store.openVerified(hex, `blob ${d.digest}`);
      // A base-image or shared-cache layer: kept in the store as it streams, so it is read from the registry once.
      if (extra) return store.teeBlob(await extra.open(d), hex);
      throw new CorruptStoreError(`store: blob ${d.digest} is ${state === "missing" ? "missing from" : "damaged (removed) in"} ${store.root}; run \`layerfold build\` again to rebuild it`);
    },
    localPath: (d: Descriptor) => store.localBlobPath(hexOf(d.digest)),
    damaged: (d: Descriptor) => store.dropBlob(hexOf(d.digest)),
    async verify(d: Descriptor) {
      if (!(await store.verifyBlob(hexOf(d.digest)))) throw new CorruptStoreError(`store: blob ${d.digest} is damaged: its bytes no longer hash to its digest. It was removed from ${store.root}; run \`layerfold build\` again to rebuild it`);
    },
    remoteRepository: extra?.remoteRepository?.bind(extra),
  };
}

/** The base image (`from`) a record was built on, for its platform; undefined without one. Records of older versions name it only in their config. */
export async function baseImageOf(rec: BuildRecord): Promise<BaseImage | undefined> {
  const from = "from" in rec || "conflicts" in rec ? rec.from : (await loadConfig({ file: rec.configFile }, sourceKinds)).image.from;
  if (!from) return undefined;
  const c = JSON.parse(rec.config) as ImageConfigFile;
  return loadBaseImage(from, { platform: [c.os, c.architecture, c.variant].filter(Boolean).join("/") });
}

export async function imageFromRecord(store: Store, rec: BuildRecord): Promise<BuiltImage> {
  const manifest = JSON.parse(rec.manifest) as ImageManifest;
  const diffIds = (JSON.parse(rec.config) as ImageConfigFile).rootfs.diff_ids;
  const ours = new Map(rec.layers.map((l) => [l.digest, l]));
  const layers: LayerDescriptor[] = manifest.layers.map((d, i) => ({ ...d, diffId: diffIds[i] ?? "", uncompressedSize: ours.get(d.digest)?.uncompressedSize ?? -1 }));
  // Base image layers are not in the store until read once; they come from the base registry (mounted when possible).
  let base: BlobSource | undefined;
  if (layers.some((l) => !ours.has(l.digest))) base = (await baseImageOf(rec))?.blobs;
  // Nothing damaged is published: each stored layer passes its stat-signature check (else a rehash) first.
  for (const l of rec.layers) {
    if ((await store.checkBlob(hexOf(l.digest))) === "damaged") throw damagedLayerError(l.name, l.digest, "try again");
  }
  const manifestBuf = Buffer.from(rec.manifest);
  return {
    name: rec.name,
    tag: rec.tag,
    manifest: manifestBuf,
    manifestDescriptor: { mediaType: manifest.mediaType, digest: rec.manifestDigest, size: manifestBuf.length },
    config: Buffer.from(rec.config),
    configDescriptor: manifest.config,
    layers,
    blobs: storeBlobs(store, base),
  };
}

export interface LocalImageSelector extends BuildSelector {
  /** An OCI layout to read instead of a build (push --from, load --from). */
  from?: string;
  fromTag?: string;
}

/** The image(s) to publish: those of an OCI layout, or a build from the store. */
export async function localImages(store: Store, sel: LocalImageSelector): Promise<BuiltImage[]> {
  if (sel.from) return readLayoutImages(sel.from, sel.fromTag);
  return [await imageFromRecord(store, await findBuildRecord(store, sel))];
}
