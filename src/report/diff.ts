// `layerfold diff A B`: what changed between two builds or images, per layer,
// and how many bytes a push of B costs where A is already present.
//
// A side is an OCI layout, a registry image (manifest and config only, no
// layer is downloaded) or a build record in the store. Layers are matched by
// name (our manifests annotate each layer with dev.layerfold.layer), by
// position when an image has no names. Packages come from the build record
// when the store has one for that manifest digest.

import { stat } from "node:fs/promises";
import path from "node:path";
import { digestHex, layoutOf, parseNameTag, recordKeyOf } from "../catalog/find.ts";
import { BUILD_RECORDS, type BuildRecord } from "../catalog/records.ts";
import { ANNOTATION, hexOf } from "../constants.ts";
import { ConfigError, LayerfoldError, NotFoundError } from "../errors.ts";
import type { BuiltImage, ImageManifest } from "../oci/types.ts";
import { readLayoutImages } from "../registry/layout-source.ts";
import { DOCKER_HUB, parseReference } from "../registry/reference.ts";
import { openRemoteImage, type OpenRemoteOptions } from "../registry/remote-image.ts";
import { sourceKinds } from "../sources/registry.ts";
import type { SourceKind } from "../sources/types.ts";
import type { Store } from "../store/store.ts";
import { partialPullBytes } from "./partial-pull.ts";

export const LAYER_NAME_ANNOTATION = ANNOTATION.layerName;

export interface SideLayer {
  /** Layer name, or "#N" (1-based position) for an image without names. */
  name: string;
  digest: string;
  size: number;
  /** -1 when unknown (an image we did not build). */
  uncompressedSize: number;
  /** The descriptor's annotations (a zstd:chunked layer's locate its TOC). */
  annotations?: Record<string, string>;
  /** A local file holding the blob (layouts, the store), for the partial-pull estimate. */
  blob?: string;
}

export interface DiffSide {
  /** What the user passed, for display. */
  label: string;
  /** "layout", "registry" or "store". */
  source: string;
  image?: string;
  manifestDigest: string;
  layers: SideLayer[];
  /** Package id -> version and layer; undefined when no build record is known. */
  packages?: Map<string, { version: string; layer: string }>;
}

export interface PackageChange {
  id: string;
  from?: string;
  to?: string;
  /** For a package present on both sides. */
  change?: "upgraded" | "downgraded" | "changed" | "moved";
  /** For "moved": the layer it was in. */
  fromLayer?: string;
}

export interface LayerDiff {
  name: string;
  status: "added" | "removed" | "changed" | "unchanged";
  a?: { digest: string; size: number };
  b?: { digest: string; size: number };
  /** Bytes of this layer a push of B sends (0 when A already has its digest). */
  pushBytes: number;
  packages: { added: PackageChange[]; removed: PackageChange[]; upgraded: PackageChange[] };
}

export interface ImageDiff {
  a: { label: string; source: string; image?: string; manifestDigest: string; layers: number };
  b: { label: string; source: string; image?: string; manifestDigest: string; layers: number };
  identical: boolean;
  /** False when a side has no build record: packages are then not compared. */
  packagesCompared: boolean;
  layers: LayerDiff[];
  pushBytes: number;
  pushLayers: number;
  /**
   * zstd:chunked: what a partial pull of B fetches where A is present (podman/CRI-O with
   * partial pulls), when B's new layers are zstd:chunked and their blobs are local.
   */
  partialPullBytes?: number;
  summary: { layersAdded: number; layersRemoved: number; layersChanged: number; packagesAdded: number; packagesRemoved: number; packagesUpgraded: number };
}

export interface LoadSideOptions extends OpenRemoteOptions {
  store: Store;
  /** Registries (host[:port]) to reach over plain HTTP. */
  insecureRegistries?: string[];
}

function sideFromRecord(label: string, source: string, rec: BuildRecord): DiffSide {
  return {
    label,
    source,
    image: `${rec.name}:${rec.tag}`,
    manifestDigest: rec.manifestDigest,
    layers: rec.layers.map((l) => ({ name: l.name, digest: l.digest, size: l.size, uncompressedSize: l.uncompressedSize, ...(l.annotations ? { annotations: l.annotations } : {}) })),
    packages: new Map(rec.packages.map((p) => [p.id, { version: p.version, layer: p.layer }])),
  };
}

/** A manifest seen from outside; enriched from the store when we built it. */
async function sideFromManifest(label: string, source: string, manifestDigest: string, manifest: ImageManifest, store: Store, image?: string): Promise<DiffSide> {
  const rec = await store.getRecord<BuildRecord>(BUILD_RECORDS, hexOf(manifestDigest));
  if (rec) return { ...sideFromRecord(label, source, rec), image: image ?? `${rec.name}:${rec.tag}` };
  return {
    label,
    source,
    image,
    manifestDigest,
    layers: manifest.layers.map((l, i) => ({ name: l.annotations?.[LAYER_NAME_ANNOTATION] ?? `#${i + 1}`, digest: l.digest, size: l.size, uncompressedSize: -1, ...(l.annotations ? { annotations: l.annotations } : {}) })),
  };
}

/** Each layer's local blob: in the layout (when given) or else the store. */
async function withBlobs(side: DiffSide, inLayout: ((digest: string) => string) | undefined, store: Store): Promise<DiffSide> {
  const exists = (f: string) => stat(f).then((s) => s.isFile(), () => false);
  for (const l of side.layers) {
    const candidates = [inLayout?.(l.digest), store.blobPath(hexOf(l.digest))];
    for (const c of candidates) if (c && (await exists(c))) { l.blob = c; break; }
  }
  return side;
}

function pickPlatform(images: BuiltImage[], platform = "linux/amd64"): BuiltImage {
  const [os, arch] = platform.split("/");
  return images.find((i) => !i.manifestDescriptor.platform || (i.manifestDescriptor.platform.os === os && i.manifestDescriptor.platform.architecture === arch)) ?? images[0]!;
}

/**
 * Load one side: "oci:DIR[:TAG]" or a layout directory; a manifest digest or
 * NAME:TAG of a build in the store; otherwise a registry reference
 * ("docker://" prefix optional).
 */
export async function loadSide(spec: string, opts: LoadSideOptions): Promise<DiffSide> {
  const { store } = opts;
  const layout = await layoutOf(spec);
  if (layout) {
    const img = pickPlatform(await readLayoutImages(layout.dir, layout.tag), opts.platform);
    const manifest = JSON.parse(img.manifest.toString("utf8")) as ImageManifest;
    const side = await sideFromManifest(spec, "layout", img.manifestDescriptor.digest, manifest, store, img.name ? `${img.name}:${img.tag}` : undefined);
    return withBlobs(side, (d) => path.join(layout.dir, "blobs", "sha256", hexOf(d)), store);
  }
  const hex = digestHex(spec);
  if (hex) {
    const rec = await store.getRecord<BuildRecord>(BUILD_RECORDS, hex);
    if (!rec) throw new NotFoundError(`no build with manifest digest sha256:${hex} in the store ${store.root}; pass --store, or give an OCI layout or a registry reference`);
    return withBlobs(sideFromRecord(spec, "store", rec), undefined, store);
  }
  if (!spec.startsWith("docker://")) {
    const name = spec.replace(/^store:/, "");
    const rec = await store.getRecord<BuildRecord>(BUILD_RECORDS, recordKeyOf(name));
    if (rec) return withBlobs(sideFromRecord(spec, "store", rec), undefined, store);
    const { name: n, tag: t } = parseNameTag(name);
    if (spec.startsWith("store:")) throw new NotFoundError(`no build of ${n}:${t} in the store ${store.root}; run \`layerfold build\` or pass --store`);
  }
  const ref = spec.replace(/^docker:\/\//, "");
  const parsed = parseReference(ref, "diff side");
  const insecure = opts.insecure || Boolean(opts.insecureRegistries?.includes(parsed.registry));
  let remote: Awaited<ReturnType<typeof openRemoteImage>>;
  try {
    remote = await openRemoteImage(ref, { ...opts, insecure });
  } catch (err) {
    // "name:tag" with no registry host was probably meant as a local build or layout.
    const implicitHub = parsed.registry === DOCKER_HUB && !/^(docker:\/\/)?(docker\.io|index\.docker\.io)\//.test(spec);
    if (implicitHub && err instanceof LayerfoldError) {
      throw new ConfigError(`${spec}: not an OCI layout, not a build in the store ${store.root} (NAME:TAG or manifest digest), and as a Docker Hub image: ${err.message}`);
    }
    throw err;
  }
  try {
    const manifest = JSON.parse(remote.manifest.toString("utf8")) as ImageManifest;
    return await sideFromManifest(spec, "registry", remote.manifestDigest, manifest, store, ref);
  } finally {
    if (!opts.client) await remote.client.close();
  }
}

/** Direction of a version change, by the package kind's own ordering (SourceKind.compareVersions), if it has one. */
export function versionChange(id: string, from: string, to: string, kinds: readonly SourceKind[] = sourceKinds): "upgraded" | "downgraded" | "changed" {
  const kind = kinds.find((k) => id.startsWith(`${k.kind}:`));
  let c: number | undefined;
  try {
    c = kind?.compareVersions?.(to, from);
  } catch {
    c = undefined;
  }
  return c === undefined || c === 0 ? "changed" : c > 0 ? "upgraded" : "downgraded";
}

const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

export function diffImages(a: DiffSide, b: DiffSide): ImageDiff {
  const aDigests = new Set(a.layers.map((l) => l.digest));
  const aByName = new Map(a.layers.map((l) => [l.name, l]));
  const bNames = new Set(b.layers.map((l) => l.name));
  const empty = () => ({ added: [] as PackageChange[], removed: [] as PackageChange[], upgraded: [] as PackageChange[] });
  const layers: LayerDiff[] = [];
  const pushed = new Set<string>();
  for (const bl of b.layers) {
    const al = aByName.get(bl.name);
    const status: LayerDiff["status"] = !al ? "added" : al.digest === bl.digest ? "unchanged" : "changed";
    const push = !aDigests.has(bl.digest) && !pushed.has(bl.digest);
    if (push) pushed.add(bl.digest);
    layers.push({
      name: bl.name,
      status,
      ...(al ? { a: { digest: al.digest, size: al.size } } : {}),
      b: { digest: bl.digest, size: bl.size },
      pushBytes: push ? bl.size : 0,
      packages: empty(),
    });
  }
  // Removed layers keep their place after the layer that preceded them in A.
  a.layers.forEach((al, i) => {
    if (bNames.has(al.name)) return;
    const prev = a.layers[i - 1]?.name;
    const after = prev === undefined ? -1 : layers.findIndex((l) => l.name === prev);
    const at = prev === undefined ? 0 : after >= 0 ? after + 1 : layers.length;
    layers.splice(at, 0, { name: al.name, status: "removed", a: { digest: al.digest, size: al.size }, pushBytes: 0, packages: empty() });
  });

  const packagesCompared = Boolean(a.packages && b.packages);
  if (a.packages && b.packages) {
    const layerOf = (name: string) => layers.find((l) => l.name === name) ?? layers[layers.length - 1]!;
    for (const [id, bp] of b.packages) {
      const ap = a.packages.get(id);
      const bucket = layerOf(bp.layer).packages;
      if (!ap) bucket.added.push({ id, to: bp.version });
      else if (ap.version !== bp.version) bucket.upgraded.push({ id, from: ap.version, to: bp.version, change: versionChange(id, ap.version, bp.version) });
      else if (ap.layer !== bp.layer) bucket.upgraded.push({ id, from: ap.version, to: bp.version, change: "moved", fromLayer: ap.layer });
    }
    for (const [id, ap] of a.packages) {
      if (!b.packages.has(id)) layerOf(ap.layer).packages.removed.push({ id, from: ap.version });
    }
    for (const l of layers) for (const list of Object.values(l.packages)) list.sort(byId);
  }
  const count = (s: LayerDiff["status"]) => layers.filter((l) => l.status === s).length;
  const sum = (k: keyof LayerDiff["packages"], change?: (c: PackageChange) => boolean) =>
    layers.reduce((n, l) => n + l.packages[k].filter((c) => !change || change(c)).length, 0);
  const pushLayers = layers.filter((l) => l.pushBytes > 0).length;
  const partial = b.layers.some((l) => l.annotations && !aDigests.has(l.digest)) ? partialPullBytes(a.layers, b.layers) : undefined;
  return {
    a: { label: a.label, source: a.source, image: a.image, manifestDigest: a.manifestDigest, layers: a.layers.length },
    b: { label: b.label, source: b.source, image: b.image, manifestDigest: b.manifestDigest, layers: b.layers.length },
    identical: a.manifestDigest === b.manifestDigest,
    packagesCompared,
    layers,
    pushBytes: layers.reduce((n, l) => n + l.pushBytes, 0),
    pushLayers,
    ...(partial ? { partialPullBytes: partial.bytes } : {}),
    summary: {
      layersAdded: count("added"),
      layersRemoved: count("removed"),
      layersChanged: count("changed"),
      packagesAdded: sum("added"),
      packagesRemoved: sum("removed"),
      packagesUpgraded: sum("upgraded", (c) => c.change !== "moved"),
    },
  };
}
