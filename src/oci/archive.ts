// The archive outputs: oci-archive (a tar of an OCI layout) and
// docker-archive (the `docker load` format). Both stream blobs from the store
// into a temp file that is renamed into place only when complete.

import { createWriteStream } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import path from "node:path";
import { PassThrough, Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { decompressor } from "../archive/decompress.ts";
import { ANNOTATION } from "../constants.ts";
import { tempName } from "../util/fs.ts";
import { buildIndex } from "./image.ts";
import { archiveTar, type ArchiveMember } from "./tar-stream-writer.ts";
import { hexOf, MEDIA, type BuiltImage, type Descriptor } from "./types.ts";

const bytesMember = (p: string, data: Buffer | string): ArchiveMember => {
  const buf = Buffer.from(data);
  return { path: p, size: buf.length, open: () => Readable.from([buf]) };
};

export function ociArchiveMembers(image: BuiltImage): ArchiveMember[] {
  const index = buildIndex([{ ...image.manifestDescriptor, annotations: { [ANNOTATION.refName]: image.tag } }]);
  const blobs = new Map<string, ArchiveMember>();
  for (const l of image.layers) blobs.set(l.digest, { path: `blobs/sha256/${hexOf(l.digest)}`, size: l.size, open: () => image.blobs.open(l) });
  blobs.set(image.configDescriptor.digest, bytesMember(`blobs/sha256/${hexOf(image.configDescriptor.digest)}`, image.config));
  blobs.set(image.manifestDescriptor.digest, bytesMember(`blobs/sha256/${hexOf(image.manifestDescriptor.digest)}`, image.manifest));
  return [
    bytesMember("oci-layout", JSON.stringify({ imageLayoutVersion: "1.0.0" })),
    bytesMember("index.json", JSON.stringify(index)),
    ...[...blobs.values()].sort((a, b) => (a.path < b.path ? -1 : 1)),
  ];
}

/**
 * docker-archive members. Docker's loader wants uncompressed or gzip layer
 * tars: gzip blobs go in as they are, zstd blobs are decompressed on the fly.
 */
export function dockerArchiveMembers(image: BuiltImage): ArchiveMember[] {
  const layers: ArchiveMember[] = image.layers.map((l) => {
    const dir = hexOf(l.diffId);
    if (l.mediaType === MEDIA.layerZstd || l.mediaType.endsWith("+zstd")) {
      return {
        path: `${dir}/layer.tar`,
        size: l.uncompressedSize,
        open: () => decompressBlob(image.blobs, l),
      };
    }
    return { path: `${dir}/layer.tar`, size: l.size, open: () => image.blobs.open(l) };
  });
  const configName = `${hexOf(image.configDescriptor.digest)}.json`;
  const manifest = [{ Config: configName, RepoTags: [`${image.name}:${image.tag}`], Layers: layers.map((l) => l.path) }];
  const unique = [...new Map(layers.map((l) => [l.path, l])).values()];
  return [bytesMember(configName, image.config), ...unique, bytesMember("manifest.json", JSON.stringify(manifest))];
}

/**
 * A zstd layer blob, decompressed. When zstd fails, the blob is hashed: a damaged blob
 * is reported as such (and forgotten by its source), not as a zstd error.
 */
async function decompressBlob(blobs: BuiltImage["blobs"], l: Descriptor): Promise<Readable> {
  const src = await blobs.open(l);
  const dec = decompressor("zstd", `layer ${l.digest}`);
  const out = new PassThrough();
  src.on("error", (err) => {
    dec.destroy();
    out.destroy(err);
  });
  out.on("close", () => { src.destroy(); dec.destroy(); });
  dec.on("error", (err) => {
    src.destroy();
    (blobs.verify?.(l) ?? Promise.resolve()).then(() => out.destroy(err), (bad: unknown) => out.destroy(bad as Error));
  });
  return src.pipe(dec).pipe(out);
}

export const dockerArchiveStream = (image: BuiltImage): Readable => Readable.from(archiveTar(dockerArchiveMembers(image)));
export const ociArchiveStream = (image: BuiltImage): Readable => Readable.from(archiveTar(ociArchiveMembers(image)));

export async function writeArchiveFile(file: string, stream: Readable): Promise<void> {
  const final = path.resolve(file);
  await mkdir(path.dirname(final), { recursive: true });
  const tmp = tempName(final);
  try {
    await pipeline(stream, createWriteStream(tmp));
    await rename(tmp, final);
  } finally {
    await rm(tmp, { force: true });
  }
}
