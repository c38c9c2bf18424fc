// Read an OCI image layout directory as BuiltImages, so `push --from DIR`
// can publish what any tool wrote (ours, skopeo, umoci). Blobs stay on disk
// and are streamed (or reopened at an offset) when uploaded.

import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { ANNOTATION } from "../constants.ts";
import { ConfigError } from "../errors.ts";
import { hexOf, MEDIA, type BlobSource, type BuiltImage, type Descriptor, type ImageConfigFile, type ImageIndex, type ImageManifest, type LayerDescriptor } from "../oci/types.ts";
import { sha256Hex } from "../util/hash.ts";

const REF_NAME = ANNOTATION.refName;
const isIndex = (mt: string) => mt === MEDIA.index || mt === MEDIA.dockerManifestList;

export function layoutBlobSource(dir: string): BlobSource {
  const file = (d: Descriptor) => path.join(dir, "blobs", "sha256", hexOf(d.digest));
  return {
    open: async (d) => createReadStream(file(d), { highWaterMark: 1 << 20 }),
    localPath: (d) => file(d),
  };
}

/**
 * The images of a layout: those tagged `tag` (ref.name annotation), or all of
 * index.json when no tag is given. A nested index yields one image per platform.
 */
export async function readLayoutImages(dir: string, tag?: string): Promise<BuiltImage[]> {
  const where = `OCI layout ${dir}`;
  let index: ImageIndex;
  try {
    await stat(path.join(dir, "oci-layout"));
    index = JSON.parse(await readFile(path.join(dir, "index.json"), "utf8")) as ImageIndex;
  } catch {
    throw new ConfigError(`${where}: not an OCI image layout (needs oci-layout and index.json); build one with layerfold build or skopeo copy ... oci:DIR`);
  }
  const blobs = layoutBlobSource(dir);
  const readBlob = async (d: Descriptor): Promise<Buffer> => {
    let buf: Buffer;
    try {
      buf = await readFile(path.join(dir, "blobs", "sha256", hexOf(d.digest)));
    } catch {
      throw new ConfigError(`${where}: blob ${d.digest} is missing`);
    }
    if (`sha256:${sha256Hex(buf)}` !== d.digest) throw new ConfigError(`${where}: blob ${d.digest} does not match its digest (corrupt layout)`);
    return buf;
  };
  let selected = index.manifests ?? [];
  if (tag !== undefined) selected = selected.filter((m) => m.annotations?.[REF_NAME] === tag);
  if (selected.length === 0) {
    const tags = (index.manifests ?? []).map((m) => m.annotations?.[REF_NAME]).filter(Boolean);
    throw new ConfigError(`${where}: no image${tag !== undefined ? ` tagged "${tag}"` : ""}${tags.length ? `; tags there: ${tags.join(", ")}` : ""}`);
  }
  const images: BuiltImage[] = [];
  const visit = async (desc: Descriptor, refName: string | undefined): Promise<void> => {
    const body = await readBlob(desc);
    if (isIndex(desc.mediaType)) {
      const nested = JSON.parse(body.toString("utf8")) as ImageIndex;
      for (const m of nested.manifests) await visit(m, refName);
      return;
    }
    const manifest = JSON.parse(body.toString("utf8")) as ImageManifest;
    const config = await readBlob(manifest.config);
    const cfg = JSON.parse(config.toString("utf8")) as ImageConfigFile;
    const diffIds = cfg.rootfs?.diff_ids ?? [];
    const layers: LayerDescriptor[] = manifest.layers.map((l, i) => ({ ...l, diffId: diffIds[i] ?? "", uncompressedSize: -1 }));
    const full = refName ?? "";
    const name = full.includes(":") ? full.slice(0, full.lastIndexOf(":")) : "";
    images.push({
      name,
      tag: full.includes(":") ? full.slice(full.lastIndexOf(":") + 1) : full || "latest",
      manifest: body,
      manifestDescriptor: { mediaType: manifest.mediaType ?? desc.mediaType, digest: desc.digest, size: desc.size, ...(desc.platform ? { platform: desc.platform } : {}) },
      config,
      configDescriptor: manifest.config,
      layers,
      blobs,
    });
  };
  for (const m of selected) await visit(m, m.annotations?.[REF_NAME]);
  return images;
}
