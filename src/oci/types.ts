// OCI image-spec types and the one interface every output shares.
// Modelled on go-containerregistry: a layer is digest, diffID, size, media
// type and a way to open its bytes; sinks only need has/put blob and put manifest.

import type { Readable } from "node:stream";

export const MEDIA = {
  manifest: "application/vnd.oci.image.manifest.v1+json",
  index: "application/vnd.oci.image.index.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layerTar: "application/vnd.oci.image.layer.v1.tar",
  layerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  layerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
} as const;

export interface Descriptor {
  mediaType: string;
  /** "sha256:<hex>" */
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os: string; architecture: string; variant?: string };
}

export interface ImageConfigFile {
  created?: string;
  architecture: string;
  os: string;
  variant?: string;
  config: {
    Env?: string[];
    Entrypoint?: string[];
    Cmd?: string[];
    WorkingDir?: string;
    User?: string;
    ExposedPorts?: Record<string, Record<string, never>>;
    Labels?: Record<string, string>;
    Volumes?: Record<string, Record<string, never>>;
    StopSignal?: string;
  };
  rootfs: { type: "layers"; diff_ids: string[] };
  history?: Array<{ created?: string; created_by?: string; comment?: string; empty_layer?: boolean }>;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** Where a blob's bytes come from: the local store, or a registry for base layers. */
export interface BlobSource {
  open(desc: Descriptor): Promise<Readable>;
  /** Repository the blob already lives in, when remote (enables cross-repo mount). */
  remoteRepository?(desc: Descriptor): string | undefined;
  /** A local file holding the blob, when there is one (lets layouts hardlink instead of copy). */
  localPath?(desc: Descriptor): string | undefined;
  /** The bytes at localPath did not hash to the digest: forget them (a store drops the blob). */
  damaged?(desc: Descriptor): Promise<void>;
  /** Hash the whole blob; a CorruptStoreError (the blob forgotten) when it does not match. */
  verify?(desc: Descriptor): Promise<void>;
}

/** A layer as the build knows it. */
export interface LayerDescriptor extends Descriptor {
  /** "sha256:<hex>" of the uncompressed tar. */
  diffId: string;
  uncompressedSize: number;
}

/** A finished image: everything an output needs, nothing held in memory but JSON. */
export interface BuiltImage {
  name: string;
  tag: string;
  manifest: Buffer;
  manifestDescriptor: Descriptor;
  config: Buffer;
  configDescriptor: Descriptor;
  layers: LayerDescriptor[];
  blobs: BlobSource;
}

/** The sink interface every output implements (layout dir, archives, registry, engine). */
export interface ImageTarget {
  hasBlob(desc: Descriptor): Promise<boolean>;
  putBlob(desc: Descriptor, open: () => Promise<Readable>): Promise<void>;
  putManifest(manifest: Buffer, desc: Descriptor, tag: string): Promise<void>;
  /** Make the output visible (rename temp dir into place, close archive). */
  commit(): Promise<void>;
  /** Remove anything half-written. */
  abort(): Promise<void>;
}

/** "sha256:<hex>" -> "<hex>" (src/constants.ts). */
export { hexOf } from "../constants.ts";
