// Push a built image (or several platforms of one) to a registry.
// Every blob is HEADed first and only missing ones are sent; a blob known to
// live in another repository of the same registry (a base image layer, or a
// record of an earlier push) is mounted instead of uploaded. Blobs go in
// parallel, the config with them (the registry needs it only before the
// manifest); the manifest goes last, then the index for multi-platform.

import { mapPool } from "../util/pool.ts";
import { Readable } from "node:stream";
import { hexOf, MEDIA, type BlobSource, type BuiltImage, type Descriptor, type ImageIndex } from "../oci/types.ts";
import type { Store } from "../store/store.ts";
import { stableJson } from "../util/json.ts";
import { formatBytes, silentLogger, type Logger } from "../util/log.ts";
import { sha256Hex } from "../util/hash.ts";
import type { RegistryClient } from "./client.ts";
import { uploadBlob } from "./upload.ts";
import type { RecordKind } from "../store/record-kinds.ts";

export interface PushOptions {
  client: RegistryClient;
  repository: string;
  tag: string;
  /** Blobs in flight at once. */
  concurrency?: number;
  /** Bytes per PATCH; 0 (default) = each blob in one streamed PATCH. Capped at 4 MiB for ghcr.io. */
  chunkSize?: number;
  monolithic?: boolean;
  logger?: Logger;
  /** Where to remember which repositories hold which blobs, for later cross-repo mounts. */
  store?: Store;
}

export type BlobAction = "exists" | "mounted" | "uploaded";

export interface BlobOutcome {
  digest: string;
  size: number;
  action: BlobAction;
  from?: string;
  seconds: number;
}

export interface PushResult {
  /** registry/repository:tag@digest */
  reference: string;
  /** Digest of what the tag points at (manifest, or index for several platforms). */
  digest: string;
  mediaType: string;
  blobs: BlobOutcome[];
  uploadedBytes: number;
  skippedBytes: number;
  mountedBytes: number;
  seconds: number;
}

const RECORD_KIND = "registry-blobs";
/** Where a blob was seen in registries, remembered while the store keeps the blob. */
export const REGISTRY_BLOB_RECORDS: RecordKind = { kind: RECORD_KIND, keep: (key, _rec, live) => live.blobs.has(key) };
interface BlobLocations { locations: string[] }

/** 0: each blob in one streamed PATCH (what docker and skopeo do; every registry takes it). */
export const DEFAULT_CHUNK_SIZE = 0;
/** GHCR refuses PATCH chunks with a Content-Range larger than this. */
export const GHCR_MAX_CHUNK = 4 * 1024 * 1024;
/**
 * Blobs up to this size (configs, tiny layers) go up in one PUT after the POST: a round trip
 * fewer than POST+PATCH+PUT, and a lost connection costs only a restart of a few packets.
 * (A single POST carrying the body would save one more, but distribution 2.8 ignores the body
 * and answers 202, so every small blob would cross the wire twice.)
 */
export const ONE_PUT_MAX_BYTES = 64 * 1024;
/** Blobs up to this size start at once beside the big layers (their own pool) instead of queueing behind them. */
export const BESIDE_MAX_BYTES = 1024 * 1024;


const short = (digest: string) => digest.slice(7, 19);

/** Same registry, other repository: "host/repo" -> "repo". */
function mountSource(location: string | undefined, registry: string, repository: string): string | undefined {
  if (!location) return undefined;
  const prefix = `${registry}/`;
  if (!location.startsWith(prefix)) return undefined;
  const repo = location.slice(prefix.length);
  return repo && repo !== repository ? repo : undefined;
}

/** Push one image, or several images (one per platform) under one index. */
export async function pushImages(images: BuiltImage[], opts: PushOptions): Promise<PushResult> {
  if (images.length === 0) throw new Error("pushImages: no image given");
  const { client, repository, tag } = opts;
  const log = opts.logger ?? silentLogger;
  const started = Date.now();
  const here = `${client.registry}/${repository}`;

  // Every distinct blob, with the image whose BlobSource can open it.
  const blobs = new Map<string, { desc: Descriptor; image: BuiltImage }>();
  for (const image of images) {
    for (const desc of [...image.layers, image.configDescriptor]) if (!blobs.has(desc.digest)) blobs.set(desc.digest, { desc, image });
  }

  // Mount candidates decide the token scopes, so find them before the first request.
  const mountFrom = new Map<string, string>();
  await Promise.all([...blobs].map(async ([digest, { desc, image }]) => {
    const isConfig = digest === image.configDescriptor.digest;
    let from = isConfig ? undefined : mountSource(image.blobs.remoteRepository?.(desc), client.registry, repository);
    if (!from && opts.store) {
      const rec = await opts.store.getRecord<BlobLocations>(RECORD_KIND, hexOf(digest));
      from = rec?.locations.map((l) => mountSource(l, client.registry, repository)).find(Boolean);
    }
    if (from) mountFrom.set(digest, from);
  }));
  client.addScope(client.pushScope(repository), ...[...new Set(mountFrom.values())].map((r) => client.pullScope(r)));
  await client.ping();

  const outcomes: BlobOutcome[] = [];
  const active = new Map<string, { size: number; bytes: number; start: number }>();
  let lastDraw = 0;
  const draw = (force = false) => {
    const now = Date.now();
    if (!force && now - lastDraw < 200) return;
    lastDraw = now;
    const parts = [...active.entries()].map(([d, a]) => {
      const rate = a.bytes / Math.max(0.001, (now - a.start) / 1000);
      return `${short(d)} ${formatBytes(a.bytes)}/${formatBytes(a.size)} ${formatBytes(Math.round(rate))}/s`;
    });
    if (parts.length) log.progress("push", parts.join(" | "));
  };

  const pushBlob = async (digest: string) => {
    const { desc, image } = blobs.get(digest)!;
    // The config is in memory already; layers come from the image's BlobSource.
    const source: BlobSource = digest === image.configDescriptor.digest ? { open: async () => Readable.from([image.config]) } : image.blobs;
    const t0 = Date.now();
    const done = (action: BlobAction, from?: string) => {
      const seconds = (Date.now() - t0) / 1000;
      outcomes.push({ digest, size: desc.size, action, from, seconds });
      const rate = action === "uploaded" && seconds > 0 ? ` (${formatBytes(Math.round(desc.size / seconds))}/s)` : "";
      log.info(`  ${action.padEnd(8)} ${short(digest)}  ${formatBytes(desc.size).padStart(10)}${from ? `  from ${from}` : ""}${action === "uploaded" ? ` in ${seconds.toFixed(1)}s${rate}` : ""}`);
    };
    if ((await client.hasBlob(repository, digest)).exists) return done("exists");
    let location: string | undefined;
    const from = mountFrom.get(digest);
    if (from) {
      const m = await client.mountBlob(repository, digest, from);
      if (m.mounted) return done("mounted", from);
      location = m.location;
    }
    active.set(digest, { size: desc.size, bytes: 0, start: Date.now() });
    try {
      await uploadBlob(client, repository, desc, source, {
        chunkSize: client.registry === "ghcr.io" && opts.chunkSize ? Math.min(opts.chunkSize, GHCR_MAX_CHUNK) : opts.chunkSize ?? DEFAULT_CHUNK_SIZE,
        monolithic: opts.monolithic || desc.size <= ONE_PUT_MAX_BYTES,
        location,
        onProgress: (b) => { active.get(digest)!.bytes = b; draw(); },
      });
    } finally {
      active.delete(digest);
    }
    done("uploaded");
  };

  // Big blobs largest first (keeps the pipe full); small ones beside them, each pool with its own limit.
  const bySize = [...blobs.keys()].sort((a, b) => blobs.get(b)!.desc.size - blobs.get(a)!.desc.size);
  const small = (d: string) => blobs.get(d)!.desc.size <= BESIDE_MAX_BYTES;
  const pools = await Promise.allSettled([
    mapPool(bySize.filter((d) => !small(d)), opts.concurrency ?? 4, pushBlob),
    mapPool(bySize.filter(small), opts.concurrency ?? 4, pushBlob),
  ]);
  for (const p of pools) if (p.status === "rejected") throw p.reason;

  // Where the blobs live is recorded while the manifest goes up: they are in the repository either way.
  const recording = opts.store ? recordLocations(opts.store, outcomes, here) : Promise.resolve();
  recording.catch(() => {}); // awaited below; a failed manifest must not leave it unhandled

  let digest: string;
  let mediaType: string;
  if (images.length === 1) {
    const image = images[0];
    mediaType = image.manifestDescriptor.mediaType;
    await client.putManifest(repository, tag, image.manifest, mediaType);
    digest = image.manifestDescriptor.digest;
  } else {
    const manifests: Descriptor[] = await Promise.all(images.map(async (image) => {
      await client.putManifest(repository, image.manifestDescriptor.digest, image.manifest, image.manifestDescriptor.mediaType);
      return { ...image.manifestDescriptor, platform: image.manifestDescriptor.platform ?? platformOf(image) };
    }));
    const index: ImageIndex = { schemaVersion: 2, mediaType: MEDIA.index, manifests };
    const body = Buffer.from(stableJson(index));
    mediaType = MEDIA.index;
    await client.putManifest(repository, tag, body, mediaType);
    digest = `sha256:${sha256Hex(body)}`;
  }

  await recording;

  const sum = (a: BlobAction) => outcomes.filter((o) => o.action === a).reduce((s, o) => s + o.size, 0);
  const result: PushResult = {
    reference: `${here}:${tag}@${digest}`,
    digest,
    mediaType,
    blobs: outcomes.sort((a, b) => a.digest.localeCompare(b.digest)),
    uploadedBytes: sum("uploaded"),
    skippedBytes: sum("exists"),
    mountedBytes: sum("mounted"),
    seconds: (Date.now() - started) / 1000,
  };
  const count = (a: BlobAction) => outcomes.filter((o) => o.action === a).length;
  log.info(
    `pushed ${result.reference}: uploaded ${count("uploaded")} blobs (${formatBytes(result.uploadedBytes)}), ` +
      `skipped ${count("exists")} already there (${formatBytes(result.skippedBytes)}), mounted ${count("mounted")} (${formatBytes(result.mountedBytes)}) in ${result.seconds.toFixed(1)}s`,
  );
  return result;
}

/** Remember that these blobs live in `here`, for later cross-repository mounts. One record per blob, each written atomically: all at once. */
async function recordLocations(store: Store, outcomes: BlobOutcome[], here: string): Promise<void> {
  await Promise.all(outcomes.map(async (o) => {
    const rec = (await store.getRecord<BlobLocations>(RECORD_KIND, hexOf(o.digest))) ?? { locations: [] };
    if (!rec.locations.includes(here)) {
      rec.locations = [...rec.locations, here].sort();
      await store.putRecord(RECORD_KIND, hexOf(o.digest), rec);
    }
  }));
}

function platformOf(image: BuiltImage): Descriptor["platform"] {
  const cfg = JSON.parse(image.config.toString("utf8")) as { os?: string; architecture?: string; variant?: string };
  return { os: cfg.os ?? "linux", architecture: cfg.architecture ?? "amd64", ...(cfg.variant ? { variant: cfg.variant } : {}) };
}
