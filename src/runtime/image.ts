// The image a `run`, `shell` or `check` works on, as an ordered list of
// layers of package trees. A build record gives the store trees directly; an
// OCI layout (e.g. from `layerfold pull`) has its layer tars unpacked into
// store trees once, by digest, with the same safety rules as any archive.

import { readFile } from "node:fs/promises";
import path from "node:path";
import { buildRecordKey, type BuildRecord } from "../build/build.ts";
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { compressionFromMagic, decompressor } from "../archive/decompress.ts";
import { extractTar } from "../archive/tar.ts";
import { loadConfig } from "../config/load.ts";
import { CorruptStoreError, NotFoundError, RuntimeError } from "../errors.ts";
import { hexOf, type ImageConfigFile } from "../oci/types.ts";
import { readLayoutImages } from "../registry/layout-source.ts";
import { sourceKinds } from "../sources/registry.ts";
import type { Store, StoredTree } from "../store/store.ts";
import { HashingStream, sha256Hex } from "../util/hash.ts";
import { stableJson } from "../util/json.ts";

export interface RuntimeLayer {
  name: string;
  /** "sha256:<hex>" of the layer blob. */
  digest: string;
  mediaType: string;
  /** Trees in the order the layer applies them; a package split over several layers appears in each. */
  trees: Array<{ id: string; tree: StoredTree }>;
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

export interface ImageSelector {
  dir?: string;
  config?: string;
  layout?: string;
  /** A positional IMAGE: an OCI layout directory, oci:DIR, or NAME:TAG of a build in the store. */
  image?: string;
}

/** Bump when the layout-layer unpacking changes. */
const LAYOUT_TREE_FORMAT = 1;

export async function openImage(store: Store, sel: ImageSelector): Promise<RuntimeImage> {
  let layout = sel.layout;
  let recordKey: string | undefined;
  let what: string;
  if (sel.image && !layout) {
    const img = sel.image.replace(/^oci:/, "");
    if (await isLayout(img)) layout = img;
    else if (/^[^/].*:[^:/]+$/.test(sel.image)) {
      const i = sel.image.lastIndexOf(":");
      recordKey = buildRecordKey(sel.image.slice(0, i), sel.image.slice(i + 1));
      what = sel.image;
    } else {
      throw new RuntimeError(`${sel.image}: not an OCI layout directory (no index.json) and not NAME:TAG of a build in the store; pass --layout DIR, an image NAME:TAG built here, or run in a directory with layerfold.config.ts`);
    }
  }
  if (layout) return openLayout(store, layout);
  let conflicts: Record<string, string> | undefined;
  if (!recordKey) {
    const cfg = await loadConfig({ dir: sel.dir, file: sel.config }, sourceKinds);
    recordKey = buildRecordKey(cfg.image.name, cfg.image.tag);
    what = `${cfg.image.name}:${cfg.image.tag}`;
    conflicts = cfg.image.conflicts ?? {};
  }
  const rec = await store.getRecord<BuildRecord & { conflicts?: Record<string, string> }>("builds", recordKey);
  if (!rec) throw new NotFoundError(`no build of ${what!} in the store ${store.root}; run \`layerfold build\` first (or pass --store)`);
  return fromRecord(store, rec, rec.conflicts ?? conflicts);
}

async function isLayout(dir: string): Promise<boolean> {
  try {
    await readFile(path.join(dir, "index.json"));
    return true;
  } catch {
    return false;
  }
}

async function fromRecord(store: Store, rec: BuildRecord, conflicts: Record<string, string> | undefined): Promise<RuntimeImage> {
  const cache = new Map<string, StoredTree>();
  const layers: RuntimeLayer[] = [];
  for (const l of rec.layers) {
    const trees: RuntimeLayer["trees"] = [];
    for (const t of l.trees) {
      let tree = cache.get(t.key);
      if (!tree) {
        tree = await store.getTree(t.key);
        if (!tree) throw new CorruptStoreError(`store: the tree of ${t.id} (layer ${l.name}) is missing or corrupt in ${store.root}; run \`layerfold build\` again to reinstall it`);
        cache.set(t.key, tree);
      }
      trees.push({ id: t.id, tree });
    }
    layers.push({ name: l.name, digest: l.digest, mediaType: l.mediaType, trees });
  }
  return {
    ref: `${rec.name}:${rec.tag}`,
    manifestDigest: rec.manifestDigest,
    config: JSON.parse(rec.config) as ImageConfigFile,
    layers,
    kind: "from-build",
    conflicts: conflicts ?? (await conflictsFromConfig(rec.configFile)),
  };
}

/** Build records do not keep the conflict owners; read them from the config when it is still there. */
async function conflictsFromConfig(file: string): Promise<Record<string, string>> {
  try {
    return (await loadConfig({ file }, sourceKinds)).image.conflicts ?? {};
  } catch {
    return {};
  }
}

async function openLayout(store: Store, dir: string): Promise<RuntimeImage> {
  const images = await readLayoutImages(dir);
  const pick = images.find((i) => i.manifestDescriptor.platform?.architecture === "amd64") ?? images[0]!;
  const config = JSON.parse(pick.config.toString("utf8")) as ImageConfigFile;
  const layers: RuntimeLayer[] = [];
  for (const [i, l] of pick.layers.entries()) {
    const file = pick.blobs.localPath!(l)!;
    const id = `layer:${l.digest}`;
    const key = sha256Hex(stableJson({ format: LAYOUT_TREE_FORMAT, layer: l.digest }));
    const { tree } = await store.ensureTree(
      key,
      id,
      async (w) => {
        // Hash the blob while unpacking it: a layout from elsewhere is not trusted.
        const what = `${dir}: layer ${i + 1} (${l.digest})`;
        const head = Buffer.alloc(6);
        const fh = await open(file, "r");
        try { await fh.read(head, 0, 6, 0); } finally { await fh.close(); }
        const hasher = new HashingStream();
        const src = createReadStream(file, { highWaterMark: 1 << 20 });
        const input = src.pipe(hasher).pipe(decompressor(compressionFromMagic(head), what));
        src.on("error", (e) => input.destroy(e));
        await extractTar(input, w, { keepOwners: true, duplicates: "last-wins" });
        if (`sha256:${hasher.hex()}` !== l.digest) throw new CorruptStoreError(`${what}: the blob's sha256 is ${hasher.hex()}; the layout is corrupt (copy it again)`);
      },
      { symlinks: "image" },
    );
    layers.push({ name: `layer ${i + 1} ${hexOf(l.digest).slice(0, 12)}`, digest: l.digest, mediaType: l.mediaType, trees: [{ id, tree }] });
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
