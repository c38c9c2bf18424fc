// Attach a document (an SBOM) to an image in a registry as an OCI artifact:
// an image manifest with `artifactType`, the empty config, one layer holding
// the document, and `subject` pointing at the image's manifest
// (image-spec 1.1). A registry that implements the referrers API says so
// with an OCI-Subject header on the manifest PUT; for one that does not
// (e.g. distribution 2.8), the referrers tag schema is kept by hand: the
// index at tag `sha256-<hex of the subject>` lists every referrer.

import { Readable } from "node:stream";
import { RegistryError } from "../errors.ts";
import { ANNOTATION } from "../constants.ts";
import { descriptorOf, toBytes } from "../oci/image.ts";
import { MEDIA, type Descriptor, type ImageIndex, type ImageManifest } from "../oci/types.ts";
import type { RegistryClient } from "../registry/client.ts";
import { uploadBlob } from "../registry/upload.ts";

export const MEDIA_EMPTY = "application/vnd.oci.empty.v1+json";
const EMPTY = Buffer.from("{}");

export interface AttachInput {
  artifactType: string;
  /** The document's bytes (an SBOM is small; it is held in memory). */
  data: Buffer;
  /** File name for org.opencontainers.image.title. */
  title: string;
  annotations?: Record<string, string>;
}

export interface AttachResult {
  /** Digest of the artifact manifest. */
  digest: string;
  subject: string;
  /** True when the registry answered OCI-Subject (it indexes referrers itself). */
  referrersApi: boolean;
  /** The fallback tag written when the registry has no referrers API. */
  fallbackTag?: string;
}

export const fallbackTagOf = (digest: string): string => digest.replace(":", "-");

async function ensureBlob(client: RegistryClient, repository: string, desc: Descriptor, data: Buffer): Promise<void> {
  if ((await client.hasBlob(repository, desc.digest)).exists) return;
  await uploadBlob(client, repository, desc, { open: async () => Readable.from([data]) }, { monolithic: true });
}

/** The subject's descriptor as the registry serves it; refuses when the image is not there. */
export async function subjectDescriptor(client: RegistryClient, repository: string, digest: string): Promise<Descriptor> {
  const r = await client.send({
    method: "HEAD",
    url: `/v2/${repository}/manifests/${digest}`,
    headers: { accept: [MEDIA.manifest, MEDIA.index, MEDIA.dockerManifest, MEDIA.dockerManifestList].join(", ") },
    ok: [200, 404],
    what: `check manifest ${digest.slice(0, 19)} in ${repository}`,
  });
  r.body.resume();
  if (r.status === 404) throw new RegistryError(`${client.registry}/${repository} has no manifest ${digest}; push the image first (layerfold push), then attach`);
  const size = Number(r.headers["content-length"]);
  const mediaType = String(r.headers["content-type"] ?? MEDIA.manifest).split(";")[0]!.trim();
  if (!Number.isFinite(size) || size <= 0) throw new RegistryError(`${client.registry}/${repository}: HEAD ${digest} gave no Content-Length`);
  return { mediaType, digest, size };
}

async function getIndexAt(client: RegistryClient, repository: string, tag: string): Promise<ImageIndex | undefined> {
  const r = await client.send({ method: "GET", url: `/v2/${repository}/manifests/${tag}`, headers: { accept: MEDIA.index }, ok: [200, 404], what: `fetch referrers index ${repository}:${tag}` });
  if (r.status === 404) {
    r.body.resume();
    return undefined;
  }
  const index = JSON.parse(Buffer.from(await r.body.arrayBuffer()).toString("utf8")) as ImageIndex;
  if (!Array.isArray(index.manifests)) throw new RegistryError(`${repository}:${tag} is not an image index; it cannot be the referrers tag of an image`);
  return index;
}

export async function attachArtifact(client: RegistryClient, repository: string, subject: Descriptor, input: AttachInput): Promise<AttachResult> {
  client.addScope(client.pushScope(repository));
  const configDesc = descriptorOf(MEDIA_EMPTY, EMPTY);
  const layerDesc = descriptorOf(input.artifactType, input.data, { annotations: { [ANNOTATION.title]: input.title } });
  await ensureBlob(client, repository, configDesc, EMPTY);
  await ensureBlob(client, repository, layerDesc, input.data);
  const manifest: ImageManifest & { artifactType: string; subject: Descriptor } = {
    schemaVersion: 2,
    mediaType: MEDIA.manifest,
    artifactType: input.artifactType,
    config: configDesc,
    layers: [layerDesc],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    ...(input.annotations && Object.keys(input.annotations).length ? { annotations: input.annotations } : {}),
  };
  const body = toBytes(manifest);
  const desc = descriptorOf(MEDIA.manifest, body);
  const r = await client.send({
    method: "PUT",
    url: `/v2/${repository}/manifests/${desc.digest}`,
    headers: { "content-type": MEDIA.manifest, "content-length": String(body.length) },
    body: () => body,
    ok: [201, 200],
    what: `push artifact manifest to ${repository}`,
  });
  r.body.resume();
  if (r.headers["oci-subject"]) return { digest: desc.digest, subject: subject.digest, referrersApi: true };

  // No referrers API: add ourselves to the index at the fallback tag.
  const tag = fallbackTagOf(subject.digest);
  const index = (await getIndexAt(client, repository, tag)) ?? { schemaVersion: 2, mediaType: MEDIA.index, manifests: [] };
  const entry: Descriptor & { artifactType: string } = { mediaType: MEDIA.manifest, digest: desc.digest, size: desc.size, artifactType: input.artifactType, ...(manifest.annotations ? { annotations: manifest.annotations } : {}) };
  if (!index.manifests.some((m) => m.digest === desc.digest)) index.manifests.push(entry);
  const indexBody = toBytes({ ...index, mediaType: MEDIA.index });
  await client.putManifest(repository, tag, indexBody, MEDIA.index);
  return { digest: desc.digest, subject: subject.digest, referrersApi: false, fallbackTag: tag };
}

/** Referrers of a manifest: the referrers API when the registry has it, else the fallback tag's index. */
export async function listReferrers(client: RegistryClient, repository: string, digest: string, artifactType?: string): Promise<Array<Descriptor & { artifactType?: string }>> {
  client.addScope(client.pullScope(repository));
  const q = artifactType ? `?artifactType=${encodeURIComponent(artifactType)}` : "";
  const r = await client.send({ method: "GET", url: `/v2/${repository}/referrers/${digest}${q}`, headers: { accept: MEDIA.index }, ok: [200, 404], what: `list referrers of ${digest.slice(0, 19)}` });
  let index: ImageIndex | undefined;
  const type = String(r.headers["content-type"] ?? "");
  if (r.status === 200 && type.startsWith(MEDIA.index)) index = JSON.parse(Buffer.from(await r.body.arrayBuffer()).toString("utf8")) as ImageIndex;
  else {
    r.body.resume();
    index = await getIndexAt(client, repository, fallbackTagOf(digest));
  }
  const all = (index?.manifests ?? []) as Array<Descriptor & { artifactType?: string }>;
  return artifactType ? all.filter((m) => m.artifactType === artifactType) : all;
}
