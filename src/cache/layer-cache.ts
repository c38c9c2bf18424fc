// A shared layer cache in an OCI repository (e.g. ghcr.io/owner/megapak-cache),
// so CI runners that start empty build only what no runner built before.
// Each built layer leaves a small artifact manifest tagged "lf-layer-<key>":
// its one layer is the layer blob itself (which keeps the blob alive in the
// cache repository and lets pushes mount it), and its annotations carry the
// diffID, uncompressed size and compressor. A record that doesn't match what
// this build would produce is a miss, with one line saying why.

import { Readable } from "node:stream";
import { LayerfoldError } from "../errors.ts";
import type { LayerRecord } from "../layer/layer.ts";
import { chunkedAnnotationsOf } from "../layer/chunked.ts";
import type { BuildCache } from "../pipeline/build.ts";
import type { BlobSource, Descriptor } from "../oci/types.ts";
import { RegistryClient } from "../registry/client.ts";
import { findCredentials, type CredentialOptions } from "../registry/credentials.ts";
import { parseReference } from "../registry/reference.ts";
import { uploadBlob } from "../registry/upload.ts";
import { redact } from "../util/redact.ts";
import type { Store } from "../store/store.ts";
import { sha256Hex } from "../util/hash.ts";
import { stableJson } from "../util/json.ts";
import type { Logger } from "../util/log.ts";

export const CACHE_ARTIFACT_TYPE = "application/vnd.layerfold.layer-cache.v1";
const EMPTY = Buffer.from("{}");
const EMPTY_DESC: Descriptor = { mediaType: "application/vnd.oci.empty.v1+json", digest: `sha256:${sha256Hex(EMPTY)}`, size: EMPTY.length };
const A = "dev.layerfold.cache.";
/** Where registry blob locations are remembered for cross-repository mounts (shared with push). */
const BLOB_LOCATIONS = "registry-blobs";

export const cacheTag = (key: string) => `lf-layer-${key}`;

export type CacheLookup = { hit: LayerRecord; parts: number } | { miss: string };
const partKey = (key: string, part: number) => sha256Hex(`${key}:${part}`);

export class LayerCache implements BuildCache {
  /** Set once the cache could not be reached: later layers skip it without asking again. */
  private unreachable?: string;
  private constructor(
    readonly client: RegistryClient,
    readonly repository: string,
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  static async open(ref: string, opts: { store: Store; log: Logger; credentials?: CredentialOptions; insecure?: boolean }): Promise<LayerCache> {
    const r = parseReference(ref, "--cache");
    const found = await findCredentials(r.registry, opts.credentials ?? {});
    const client = new RegistryClient({ registry: r.registry, credential: found.credential, insecure: opts.insecure, logger: opts.log });
    return new LayerCache(client, r.repository, opts.store, opts.log);
  }

  get location(): string {
    return `${this.client.registry}/${this.repository}`;
  }

  /** Look a layer key up; anything but a record that fits exactly is a miss with a reason. */
  async lookup(key: string, expect: { compressor: string; mediaType: string }): Promise<CacheLookup> {
    if (this.unreachable) return { miss: this.unreachable };
    let manifest: { layers?: Descriptor[]; annotations?: Record<string, string>; artifactType?: string };
    try {
      const m = await this.client.getManifest(this.repository, cacheTag(key));
      manifest = JSON.parse(m.body.toString("utf8"));
    } catch (err) {
      const msg = err instanceof LayerfoldError ? err.message : String(err);
      if (/not found/.test(msg)) return { miss: "not in the cache" };
      // Lookups run in parallel: only the first failure is reported.
      if (!this.unreachable) {
        this.unreachable = `cache ${this.location} unreachable (${redact(msg).split("\n")[0]!.replace(/^fetch manifest [^:]*:[^:]*: /, "")})`;
        this.log.warn(`${this.unreachable}; building without it`);
      }
      return { miss: this.unreachable };
    }
    const a = manifest.annotations ?? {};
    const layer = manifest.layers?.[0];
    if (manifest.artifactType !== CACHE_ARTIFACT_TYPE || manifest.layers?.length !== 1 || !layer) return { miss: "the cache entry is not a layerfold layer record" };
    if (a[`${A}key`] !== key) return { miss: "the cache record names another key" };
    if (a[`${A}compressor`] !== expect.compressor) return { miss: `the cache record was made with ${a[`${A}compressor`]}, this build uses ${expect.compressor}` };
    if (layer.mediaType !== expect.mediaType) return { miss: `the cached layer is ${layer.mediaType}, this build makes ${expect.mediaType}` };
    if (!/^sha256:[0-9a-f]{64}$/.test(layer.digest) || !/^sha256:[0-9a-f]{64}$/.test(a[`${A}diffId`] ?? "")) return { miss: "the cache record has a malformed digest" };
    const uncompressedSize = Number(a[`${A}uncompressedSize`]);
    if (!Number.isSafeInteger(uncompressedSize) || uncompressedSize < 0) return { miss: "the cache record has no uncompressed size" };
    // The record must point at a blob the cache really holds, with the recorded size.
    const head = await this.client.hasBlob(this.repository, layer.digest).catch(() => ({ exists: false, size: undefined }));
    if (!head.exists) return { miss: `the cached blob ${layer.digest.slice(7, 19)} is missing from ${this.location}` };
    if (head.size !== undefined && head.size !== layer.size) return { miss: `the cached blob is ${head.size} bytes, the record says ${layer.size}` };
    // A zstd:chunked layer is only whole with the annotations that locate its TOC.
    const chunked = chunkedAnnotationsOf(layer.annotations);
    if (/ chunked$/.test(expect.compressor) && !chunked) return { miss: "the cached zstd:chunked layer has no TOC annotations" };
    await this.rememberLocation(layer.digest);
    const parts = Number(a[`${A}parts`] ?? 1);
    return {
      parts: Number.isSafeInteger(parts) && parts >= 1 && parts < 1000 ? parts : 1,
      hit: {
        key,
        name: a[`${A}name`] ?? "",
        mediaType: layer.mediaType,
        digest: layer.digest,
        size: layer.size,
        diffId: a[`${A}diffId`]!,
        uncompressedSize,
        compressor: expect.compressor,
        packages: JSON.parse(a[`${A}packages`] ?? "[]") as string[],
        fileCount: Number(a[`${A}fileCount`] ?? 0),
        ...(chunked ? { annotations: chunked } : {}),
      },
    };
  }

  /** Upload a built layer (if the cache lacks it) and its record. */
  async put(record: LayerRecord, key: string, parts = 1): Promise<void> {
    const desc: Descriptor = { mediaType: record.mediaType, digest: record.digest, size: record.size, ...(record.annotations ? { annotations: record.annotations } : {}) };
    const local: BlobSource = { open: async () => this.store.openBlob(record.digest.slice(7)) };
    if (!(await this.client.hasBlob(this.repository, desc.digest)).exists) await uploadBlob(this.client, this.repository, desc, local);
    if (!(await this.client.hasBlob(this.repository, EMPTY_DESC.digest)).exists) {
      await uploadBlob(this.client, this.repository, EMPTY_DESC, { open: async () => Readable.from([EMPTY]) });
    }
    const manifest = {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      artifactType: CACHE_ARTIFACT_TYPE,
      config: EMPTY_DESC,
      // A zstd:chunked layer's descriptor keeps its TOC annotations.
      layers: [desc],
      annotations: {
        [`${A}key`]: key,
        [`${A}name`]: record.name,
        [`${A}diffId`]: record.diffId,
        [`${A}uncompressedSize`]: String(record.uncompressedSize),
        [`${A}compressor`]: record.compressor,
        [`${A}packages`]: JSON.stringify(record.packages),
        [`${A}fileCount`]: String(record.fileCount),
        [`${A}parts`]: String(parts),
      },
    };
    await this.client.putManifest(this.repository, cacheTag(key), Buffer.from(stableJson(manifest)), manifest.mediaType);
    await this.rememberLocation(record.digest);
  }

  /**
   * A folded layer may have been split into parts: part 0 sits under the
   * layer's key and says how many parts there are; part p under key:p.
   */
  async lookupLayer(key: string, expect: { compressor: string; mediaType: string }): Promise<{ hit: LayerRecord[] } | { miss: string }> {
    const first = await this.lookup(key, expect);
    if ("miss" in first) return first;
    const parts = [first.hit];
    for (let p = 1; p < first.parts; p++) {
      const more = await this.lookup(partKey(key, p), expect);
      if ("miss" in more) return { miss: `part ${p + 1}: ${more.miss}` };
      parts.push(more.hit);
    }
    return { hit: parts };
  }

  /** Store a built layer's parts; a cache that fails is reported once and never fails the build. */
  async putLayer(key: string, parts: LayerRecord[]): Promise<void> {
    if (this.unreachable) return;
    try {
      for (const [p, rec] of parts.entries()) await this.put(rec, p === 0 ? key : partKey(key, p), p === 0 ? parts.length : 1);
      this.log.info(`cache: stored ${parts.map((r) => r.name).join(", ")} in ${this.location}`);
    } catch (err) {
      this.unreachable = `cache ${this.location}: storing ${parts[0]?.name} failed (${redact(err instanceof Error ? err.message : String(err)).split("\n")[0]})`;
      this.log.warn(`${this.unreachable}; the build goes on without storing layers`);
    }
  }

  /** Blobs not in the local store stream from the cache repository (digest-verified). */
  blobSource(): BlobSource {
    return {
      open: (d) => this.client.getBlob(this.repository, d.digest),
      remoteRepository: () => this.location,
    };
  }

  /** Let a later push to the same registry mount the blob from the cache repository. */
  private async rememberLocation(digest: string): Promise<void> {
    const hex = digest.slice(7);
    const rec = (await this.store.getRecord<{ locations: string[] }>(BLOB_LOCATIONS, hex)) ?? { locations: [] };
    if (!rec.locations.includes(this.location)) {
      rec.locations = [...rec.locations, this.location].sort();
      await this.store.putRecord(BLOB_LOCATIONS, hex, rec);
    }
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}
