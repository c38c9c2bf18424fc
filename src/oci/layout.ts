// The OCI image layout directory target (the default output). Written in a
// temp directory next to the destination and renamed into place on commit,
// so a failed build never leaves a half-written layout.

import { copyFile, link, mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { createWriteStream } from "node:fs";
import path from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { tempName } from "../util/fs.ts";
import { buildIndex } from "./image.ts";
import { hexOf, type BlobSource, type BuiltImage, type Descriptor, type ImageIndex, type ImageTarget } from "./types.ts";

export class OciLayoutTarget implements ImageTarget {
  private readonly tmp: string;
  private readonly manifests: Descriptor[] = [];
  constructor(readonly dir: string, private readonly localPath?: (d: Descriptor) => string | undefined) {
    this.tmp = tempName(path.resolve(dir));
  }

  private blobFile(desc: Descriptor): string {
    return path.join(this.tmp, "blobs", "sha256", hexOf(desc.digest));
  }

  async hasBlob(desc: Descriptor): Promise<boolean> {
    try {
      return (await stat(this.blobFile(desc))).size === desc.size;
    } catch {
      return false;
    }
  }

  async putBlob(desc: Descriptor, open: () => Promise<Readable>): Promise<void> {
    const dest = this.blobFile(desc);
    await mkdir(path.dirname(dest), { recursive: true });
    const local = this.localPath?.(desc);
    if (local) {
      // Hardlink from the store (blobs are immutable); copy (reflink) across filesystems.
      try {
        await link(local, dest);
        return;
      } catch {
        await copyFile(local, dest, 2 /* COPYFILE_FICLONE */);
        return;
      }
    }
    await pipeline(await open(), createWriteStream(dest));
  }

  async putManifest(manifest: Buffer, desc: Descriptor, tag: string): Promise<void> {
    const dest = this.blobFile(desc);
    await mkdir(path.dirname(dest), { recursive: true });
    await writeFile(dest, manifest);
    this.manifests.push({ ...desc, annotations: { ...(desc.annotations ?? {}), "org.opencontainers.image.ref.name": tag } });
  }

  async commit(): Promise<void> {
    await writeFile(path.join(this.tmp, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    await writeFile(path.join(this.tmp, "index.json"), JSON.stringify(buildIndex(this.manifests)));
    const final = path.resolve(this.dir);
    await mkdir(path.dirname(final), { recursive: true });
    const trash = tempName(final) + ".old";
    let moved = false;
    try {
      await rename(final, trash);
      moved = true;
    } catch { /* no previous output */ }
    await rename(this.tmp, final);
    if (moved) await rm(trash, { recursive: true, force: true });
  }

  async abort(): Promise<void> {
    await rm(this.tmp, { recursive: true, force: true });
  }
}

/** Push every blob of an image into a target (skipping what it has), manifest last. */
export async function writeImage(target: ImageTarget, image: BuiltImage, tag = image.tag): Promise<void> {
  const open = (d: Descriptor) => () => image.blobs.open(d);
  for (const l of image.layers) if (!(await target.hasBlob(l))) await target.putBlob(l, open(l));
  if (!(await target.hasBlob(image.configDescriptor))) {
    await target.putBlob(image.configDescriptor, async () => (await import("node:stream")).Readable.from([image.config]));
  }
  await target.putManifest(image.manifest, image.manifestDescriptor, tag);
}

/** Export an image to an OCI layout directory; nothing is left behind on failure. */
export async function exportLayout(image: BuiltImage, dir: string): Promise<void> {
  const target = new OciLayoutTarget(dir, image.blobs.localPath?.bind(image.blobs));
  try {
    await writeImage(target, image);
    await target.commit();
  } catch (err) {
    await target.abort();
    throw err;
  }
}

/** Read an OCI layout's index (first manifest, or the one tagged `tag`). */
export async function readLayoutIndex(dir: string): Promise<ImageIndex> {
  return JSON.parse(await readFile(path.join(dir, "index.json"), "utf8")) as ImageIndex;
}
