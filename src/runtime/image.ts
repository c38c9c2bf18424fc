// The image a `run`, `shell` or `check` works on, as an ordered list of
// layers of package trees. A build record gives the store trees directly; an
// OCI layout (e.g. from `layerfold pull`) has its layer tars unpacked into
// store trees once, by digest, with the same safety rules as any archive.

import { createReadStream } from "node:fs";
import type { Readable } from "node:stream";
import { decompressor } from "../archive/decompress.ts";
import { extractTar } from "../archive/tar.ts";
import { recordOf, selectImage, type BuildSelector } from "../catalog/find.ts";
import { baseImageOf } from "../catalog/image.ts";
import type { BuildRecord } from "../catalog/records.ts";
import { CorruptStoreError, RuntimeError } from "../errors.ts";
import { hexOf, type Descriptor, type ImageConfigFile, type ImageManifest } from "../oci/types.ts";
import type { BaseImage } from "../registry/base.ts";
import { RegistryClient } from "../registry/client.ts";
import { findCredentials } from "../registry/credentials.ts";
import { parseReference } from "../registry/reference.ts";
import { readLayoutImages } from "../registry/layout-source.ts";
import type { Store, StoredTree } from "../store/store.ts";
import type { TreeWriter } from "../store/tree.ts";
import { HashingStream, sha256Hex } from "../util/hash.ts";
import { stableJson } from "../util/json.ts";

export interface RuntimeLayer {
  name: string;
  /** "sha256:<hex>" of the layer blob. */
  digest: string;
  mediaType: string;
  /** Trees in the order the layer applies them; a package split over several layers appears in each. */
  trees: Array<{ id: string; tree: StoredTree }>;
  /**
   * "trees": the package trees the layer was built from (composed as the planner placed
   * them); "blob": the layer blob unpacked (whiteouts apply, upper wins), for layouts, base
   * images, and a build's layers whose trees this store does not hold.
   */
  source: "trees" | "blob";
  /** A base-image layer (below everything the config builds). */
  base?: boolean;
}

export interface RuntimeImage {
  /** Names the image in messages: name:tag, or the layout directory. */
  ref: string;
  manifestDigest: string;
  config: ImageConfigFile;
  layers: RuntimeLayer[];
  /** "from-build": trees as installed (conflicts decided like the planner); "from-layout": layer tars with whiteouts. */
  kind: "from-build" | "from-layout";
  /** Path owners the config chose for conflicting packages (build records only). */
  conflicts: Record<string, string>;
}

/** A positional IMAGE is an OCI layout directory, oci:DIR, or NAME[:TAG] or a manifest digest of a build in the store. */
export type ImageSelector = BuildSelector;

/** Bump when the layout-layer unpacking changes. */
const LAYOUT_TREE_FORMAT = 1;

export async function openImage(store: Store, sel: ImageSelector): Promise<RuntimeImage> {
  const selected = await selectImage(sel);
  if ("layout" in selected) return openLayout(store, selected.layout, selected.tag);
  return fromRecord(store, await recordOf(store, selected));
}

/**
 * The image a build record describes: every layer of its manifest, base-image layers
 * included. A layer whose package trees are in the store is composed from them; any other
 * (base layers, and layers a shared cache gave a runner that installed nothing) is unpacked
 * from its blob: the store's copy, else fetched from the registry it lives in.
 */
async function fromRecord(store: Store, rec: BuildRecord): Promise<RuntimeImage> {
  // The owners decide which package's copy of a path the image holds.
  if (!rec.conflicts) throw new RuntimeError(`the build record of ${rec.name}:${rec.tag} comes from an older layerfold and lacks the config's path owners; run \`layerfold build\` again (nothing is rebuilt)`);
  const conflicts = rec.conflicts;
  const cache = new Map<string, StoredTree>();
  const layers: RuntimeLayer[] = [];
  const own = new Map(rec.layers.map((l) => [l.digest, l]));
  const manifest = JSON.parse(rec.manifest) as ImageManifest;
  const remote = remoteBlobs(rec);
  try {
    for (const [i, d] of manifest.layers.entries()) {
      const l = own.get(d.digest);
      if (l) {
        const trees: RuntimeLayer["trees"] = [];
        for (const t of l.trees) {
          let tree = cache.get(t.key) ?? (await store.getTree(t.key));
          if (!tree) break;
          cache.set(t.key, tree);
          trees.push({ id: t.id, tree });
        }
        if (trees.length === l.trees.length) {
          layers.push({ name: l.name, digest: l.digest, mediaType: l.mediaType, trees, source: "trees" });
          continue;
        }
      }
      const name = l?.name ?? `base ${i + 1} ${hexOf(d.digest).slice(0, 12)}`;
      const tree = await blobTree(store, d, `${rec.name}:${rec.tag}: layer ${name} (${d.digest})`, () => remote.open(d, l?.cached));
      layers.push({ name, digest: d.digest, mediaType: d.mediaType, trees: [{ id: `layer:${d.digest}`, tree }], source: "blob", ...(l ? {} : { base: true }) });
    }
  } finally {
    await remote.close();
  }
  return {
    ref: `${rec.name}:${rec.tag}`,
    manifestDigest: rec.manifestDigest,
    config: JSON.parse(rec.config) as ImageConfigFile,
    layers,
    kind: "from-build",
    conflicts,
  };
}

/** Where a record's layers that are not in the store come from: the cache repository they were taken from, or the base image's registry. */
function remoteBlobs(rec: BuildRecord): { open(d: Descriptor, cached?: string): Promise<Readable>; close(): Promise<void> } {
  const clients: RegistryClient[] = [];
  let base: Promise<BaseImage> | undefined;
  return {
    async open(d, cached) {
      if (cached) {
        const r = parseReference(cached, "cache repository");
        const found = await findCredentials(r.registry, {});
        const client = new RegistryClient({ registry: r.registry, credential: found.credential });
        clients.push(client);
        return client.getBlob(r.repository, d.digest);
      }
      base ??= baseImageOf(rec).then((b) => {
        if (!b) throw new Error("the build names no base image");
        return b;
      });
      const img = await base.catch((err: unknown) => {
        throw new CorruptStoreError(`${rec.name}:${rec.tag}: layer ${d.digest} is not in the store, and its base image cannot be opened from ${rec.configFile} (${(err as Error).message}); run \`layerfold build\` again`);
      });
      return img.blobs.open(d);
    },
    async close() {
      await Promise.all(clients.map((c) => c.close()));
      if (base) await base.then((b) => b.close(), () => undefined);
    },
  };
}

/**
 * A layer blob unpacked into a store tree, once per digest: the store's copy when it is
 * intact, else `fetch` (kept in the store as it streams). Hashed while it is unpacked.
 */
async function blobTree(store: Store, d: Descriptor, what: string, fetch: () => Promise<Readable>): Promise<StoredTree> {
  const hex = hexOf(d.digest);
  const key = sha256Hex(stableJson({ format: LAYOUT_TREE_FORMAT, layer: d.digest }));
  const { tree } = await store.ensureTree(
    key,
    `layer:${d.digest}`,
    async (w) => {
      const src = (await store.checkBlob(hex)) === "ok" ? store.openBlob(hex) : store.teeBlob(await fetch(), hex);
      await unpackBlob(src, d, what, w);
    },
    { symlinks: "image" },
  );
  return tree;
}

/** Unpack a layer blob's tar into a tree, hashing it on the way: a blob from elsewhere is not trusted. */
async function unpackBlob(src: Readable, d: Descriptor, what: string, w: TreeWriter): Promise<void> {
  const hasher = new HashingStream();
  const kind = /gzip/.test(d.mediaType) ? "gzip" : /zstd/.test(d.mediaType) ? "zstd" : "none";
  const input = src.pipe(hasher).pipe(decompressor(kind, what));
  src.on("error", (e) => input.destroy(e));
  await extractTar(input, w, { keepOwners: true, duplicates: "last-wins" });
  if (`sha256:${hasher.hex()}` !== d.digest) throw new CorruptStoreError(`${what}: the blob's sha256 is ${hasher.hex()}, not its digest; get it again (copy the layout, or build again)`);
}

async function openLayout(store: Store, dir: string, tag?: string): Promise<RuntimeImage> {
  const images = await readLayoutImages(dir, tag);
  const pick = images.find((i) => i.manifestDescriptor.platform?.architecture === "amd64") ?? images[0]!;
  const config = JSON.parse(pick.config.toString("utf8")) as ImageConfigFile;
  const layers: RuntimeLayer[] = [];
  for (const [i, l] of pick.layers.entries()) {
    const file = pick.blobs.localPath!(l)!;
    const id = `layer:${l.digest}`;
    const key = sha256Hex(stableJson({ format: LAYOUT_TREE_FORMAT, layer: l.digest }));
    const what = `${dir}: layer ${i + 1} (${l.digest})`;
    const { tree } = await store.ensureTree(key, id, (w) => unpackBlob(createReadStream(file, { highWaterMark: 1 << 20 }), l, what, w), { symlinks: "image" });
    layers.push({ name: `layer ${i + 1} ${hexOf(l.digest).slice(0, 12)}`, digest: l.digest, mediaType: l.mediaType, trees: [{ id, tree }], source: "blob" });
  }
  return {
    ref: dir,
    manifestDigest: pick.manifestDescriptor.digest,
    config,
    layers,
    kind: "from-layout",
    conflicts: {},
  };
}
