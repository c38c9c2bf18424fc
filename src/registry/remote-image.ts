// An image in a registry, opened by reference: manifest (through an index to
// one platform) and config fetched and verified; layers stay remote and are
// streamed only when someone opens them. Used by base images (`from:`) and pull.

import type { Readable } from "node:stream";
import { ConfigError, RegistryError } from "../errors.ts";
import { MEDIA, type BlobSource, type Descriptor, type ImageConfigFile, type ImageIndex, type ImageManifest, type LayerDescriptor } from "../oci/types.ts";
import type { Logger } from "../util/log.ts";
import { silentLogger } from "../util/log.ts";
import { MAX_MANIFEST_BYTES, RegistryClient } from "./client.ts";
import { findCredentials, type CredentialOptions } from "./credentials.ts";
import { formatReference, parseReference, type ImageReference } from "./reference.ts";

export interface OpenRemoteOptions {
  /** "linux/amd64" (default) or "linux/arm64/v8"; picks a manifest out of an index. */
  platform?: string;
  credentials?: CredentialOptions;
  /** Plain HTTP for this registry. */
  insecure?: boolean;
  logger?: Logger;
  /** Reuse a client (same registry), e.g. the one a push uses. */
  client?: RegistryClient;
}

export interface RemoteImage {
  reference: ImageReference;
  client: RegistryClient;
  /** Digest of the platform manifest. */
  manifestDigest: string;
  manifest: Buffer;
  manifestMediaType: string;
  config: Buffer;
  configDescriptor: Descriptor;
  configFile: ImageConfigFile;
  layers: LayerDescriptor[];
  /** Streams layers from the registry; remoteRepository() = "registry/repository" enables mounts. */
  blobs: BlobSource;
}

const INDEX_TYPES = new Set<string>([MEDIA.index, MEDIA.dockerManifestList]);
const MANIFEST_TYPES = new Set<string>([MEDIA.manifest, MEDIA.dockerManifest]);
/** Docker layer media types have byte-identical OCI equivalents. */
const OCI_EQUIVALENT: Record<string, string> = {
  [MEDIA.dockerLayerGzip]: MEDIA.layerGzip,
  "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
};

function parsePlatform(p: string): { os: string; architecture: string; variant?: string } {
  const [os, architecture, variant] = p.split("/");
  if (!os || !architecture) throw new ConfigError(`platform "${p}" must look like linux/amd64`);
  return { os, architecture, variant };
}

export async function openRemoteImage(ref: string, opts: OpenRemoteOptions = {}): Promise<RemoteImage> {
  const reference = parseReference(ref);
  const log = opts.logger ?? silentLogger;
  const client =
    opts.client ??
    new RegistryClient({
      registry: reference.registry,
      credential: (await findCredentials(reference.registry, opts.credentials)).credential,
      insecure: opts.insecure,
      logger: log,
    });
  const repo = reference.repository;
  client.addScope(client.pullScope(repo));
  const want = parsePlatform(opts.platform ?? "linux/amd64");
  let m = await client.getManifest(repo, reference.digest ?? reference.tag ?? "latest");
  if (INDEX_TYPES.has(m.mediaType)) {
    const index = JSON.parse(m.body.toString("utf8")) as ImageIndex;
    const pick = index.manifests.find(
      (d) => d.platform?.os === want.os && d.platform.architecture === want.architecture && (!want.variant || d.platform.variant === want.variant),
    );
    if (!pick) {
      const have = index.manifests.map((d) => (d.platform ? [d.platform.os, d.platform.architecture, d.platform.variant].filter(Boolean).join("/") : "?")).join(", ");
      throw new RegistryError(`${formatReference(reference)} has no image for ${opts.platform ?? "linux/amd64"} (it has: ${have})`);
    }
    m = await client.getManifest(repo, pick.digest);
  }
  if (!MANIFEST_TYPES.has(m.mediaType)) {
    throw new RegistryError(`${formatReference(reference)}: manifest type ${m.mediaType || "(none)"} is not supported; use an OCI or Docker v2 image`);
  }
  const manifest = JSON.parse(m.body.toString("utf8")) as ImageManifest;
  if (!(manifest.config?.size >= 0) || manifest.config.size > MAX_MANIFEST_BYTES * 4) {
    throw new RegistryError(`${formatReference(reference)}: config blob size ${manifest.config?.size} is not plausible (limit ${MAX_MANIFEST_BYTES * 4} bytes)`);
  }
  const configStream = await client.getBlob(repo, manifest.config.digest);
  const chunks: Buffer[] = [];
  let got = 0;
  for await (const c of configStream) {
    got += (c as Buffer).length;
    if (got > manifest.config.size) {
      configStream.destroy();
      throw new RegistryError(`${formatReference(reference)}: config blob is longer than the ${manifest.config.size} bytes its manifest says`);
    }
    chunks.push(c as Buffer);
  }
  const config = Buffer.concat(chunks);
  const configFile = JSON.parse(config.toString("utf8")) as ImageConfigFile;
  const diffIds = configFile.rootfs?.diff_ids ?? [];
  if (diffIds.length !== manifest.layers.length) {
    throw new RegistryError(`${formatReference(reference)}: config lists ${diffIds.length} layers but the manifest has ${manifest.layers.length}`);
  }
  const layers: LayerDescriptor[] = manifest.layers.map((l, i) => ({
    mediaType: OCI_EQUIVALENT[l.mediaType] ?? l.mediaType,
    digest: l.digest,
    size: l.size,
    ...(l.annotations ? { annotations: l.annotations } : {}),
    diffId: diffIds[i],
    // Not known without downloading; -1 says so.
    uncompressedSize: -1,
  }));
  const location = `${reference.registry}/${repo}`;
  const blobs: BlobSource & { openRange(d: Descriptor, start: number): Promise<Readable> } = {
    open: (d) => client.getBlob(repo, d.digest),
    remoteRepository: () => location,
    openRange: async (d, start) => {
      const r = await client.send({ method: "GET", url: `/v2/${repo}/blobs/${d.digest}`, headers: { range: `bytes=${start}-` }, ok: [206, 200], what: `fetch blob ${d.digest} from ${repo}`, follow: true });
      if (r.status === 206) return r.body;
      // No range support: skip what we already have.
      const { openAt } = await import("./upload.ts");
      r.body.destroy();
      return openAt({ open: blobs.open }, d, start);
    },
  };
  log.debug(`${formatReference(reference)}: manifest ${m.digest}, ${layers.length} layers`);
  return {
    reference,
    client,
    manifestDigest: m.digest,
    manifest: m.body,
    manifestMediaType: m.mediaType,
    config,
    configDescriptor: manifest.config,
    configFile,
    layers,
    blobs,
  };
}
