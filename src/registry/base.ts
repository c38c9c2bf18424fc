// Base images for `from: "registry/repo:tag@sha256:..."`. The manifest and
// config are pulled and verified; the layers are kept by reference: their
// BlobSource names the repository they live in, so a push to the same
// registry mounts them (or finds them with HEAD) and downloads nothing, and a
// push elsewhere streams them through from the base registry.

import type { BlobSource, ImageConfigFile, LayerDescriptor } from "../oci/types.ts";
import { silentLogger } from "../util/log.ts";
import { openRemoteImage, type OpenRemoteOptions } from "./remote-image.ts";

export interface BaseImage {
  config: ImageConfigFile;
  layers: LayerDescriptor[];
  blobs: BlobSource;
  /** Digest of the platform manifest the base resolved to (record it in the lock). */
  manifestDigest: string;
  /** Close the registry connection once nothing will open base blobs any more (optional; idle sockets close after 1 s anyway). */
  close(): Promise<void>;
}

export type LoadBaseImageOptions = OpenRemoteOptions;

export async function loadBaseImage(ref: string, opts: LoadBaseImageOptions = {}): Promise<BaseImage> {
  const log = opts.logger ?? silentLogger;
  if (!ref.includes("@sha256:")) {
    log.warn(`base image ${ref} is not pinned by digest; builds are only reproducible with "${ref}@sha256:..."`);
  }
  const img = await openRemoteImage(ref, opts);
  return { config: img.configFile, layers: img.layers, blobs: img.blobs, manifestDigest: img.manifestDigest, close: () => (opts.client ? Promise.resolve() : img.client.close()) };
}
