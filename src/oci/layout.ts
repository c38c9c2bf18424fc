// The OCI image layout directory target (the default output). Written in a
// temp directory next to the destination and renamed into place on commit,
// so a failed build never leaves a half-written layout.

import { copyFile, lstat, mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { createWriteStream } from "node:fs";
import path from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { CorruptStoreError, UsageError } from "../errors.ts";
import { hashFile } from "../util/hash.ts";
import { tempName } from "../util/fs.ts";
import { ANNOTATION } from "../constants.ts";
import { buildIndex } from "./image.ts";
import { hexOf, type BlobSource, type BuiltImage, type Descriptor, type ImageIndex, type ImageTarget } from "./types.ts";

/** What an OCI image layout holds at its top (layerfold, skopeo and umoci write no more). */
const LAYOUT_ENTRIES = new Set(["oci-layout", "index.json", "blobs"]);

/**
 * The user's files are never deleted: a layout output may replace a missing path, an empty
 * directory or an OCI layout, and nothing else. Called before the work starts and again
 * right before the old directory is replaced.
 */
export async function refuseForeignOutput(dir: string): Promise<void> {
  const where = path.resolve(dir);
  let st;
  try {
    st = await lstat(where);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  if (st.isSymbolicLink()) throw new UsageError(`${where} is a symlink; name the directory it points to, or a new one, as the OCI layout to write`);
  if (!st.isDirectory()) throw new UsageError(`${where} exists and is not a directory; an OCI layout is written only to a new or empty directory or over an OCI layout. Pick another path`);
  const names = await readdir(where);
  if (names.length === 0) return;
  if (names.includes("oci-layout") && names.every((n) => LAYOUT_ENTRIES.has(n))) return refuseSharedLayout(where);
  const foreign = names.filter((n) => !LAYOUT_ENTRIES.has(n)).sort();
  const shown = foreign.length ? foreign.slice(0, 5).join(", ") + (foreign.length > 5 ? `, … (${foreign.length} entries)` : "") : "no oci-layout file";
  throw new UsageError(
    `${where} is not empty and is not an OCI layout (it holds ${shown}); layerfold replaces only an empty directory or an OCI layout, so nothing there was touched. ` +
      `Write the image to a new or empty directory, e.g. ${path.join(where, "image")}`,
  );
}

/**
 * A layout is replaced whole, so one that holds more than one image (skopeo and others add
 * images to a layout tag by tag) would lose the others: refused, naming them.
 */
async function refuseSharedLayout(where: string): Promise<void> {
  let manifests: Descriptor[];
  try {
    manifests = (JSON.parse(await readFile(path.join(where, "index.json"), "utf8")) as ImageIndex).manifests ?? [];
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw new UsageError(`${where} looks like an OCI layout but its index.json cannot be read (${(err as Error).message}); nothing there was touched. Write the image to a new or empty directory`);
  }
  if (manifests.length <= 1) return;
  const names = manifests.map((m) => m.annotations?.[ANNOTATION.refName] ?? m.digest.slice(0, 19));
  throw new UsageError(
    `${where} is an OCI layout holding ${manifests.length} images (${names.slice(0, 5).join(", ")}${names.length > 5 ? ", …" : ""}); layerfold replaces a layout whole, which would delete them, so nothing there was touched. ` +
      `Write the image to a new or empty directory`,
  );
}

export class OciLayoutTarget implements ImageTarget {
  private readonly tmp: string;
  private readonly manifests: Descriptor[] = [];
  /** `local`: where blobs already are on this machine (a store), copied from there and hashed. */
  constructor(readonly dir: string, private readonly local?: Pick<BlobSource, "localPath" | "damaged">) {
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
    const local = this.local?.localPath?.(desc);
    if (local) {
      // A copy (a reflink where the filesystem has them), never a hard link: a write
      // to the output must not reach the store. What was copied is hashed.
      await copyFile(local, dest, 2 /* COPYFILE_FICLONE */);
      const got = await hashFile(dest);
      if (got === hexOf(desc.digest)) return;
      await rm(dest, { force: true });
      await this.local?.damaged?.(desc);
      throw new CorruptStoreError(`${local}: blob ${desc.digest} is damaged (its bytes hash to sha256:${got}) and was not written to ${this.dir}${this.local?.damaged ? "; it was removed, run `layerfold build` again to rebuild it (or pull again)" : ""}`);
    }
    await pipeline(await open(), createWriteStream(dest));
  }

  async putManifest(manifest: Buffer, desc: Descriptor, tag: string): Promise<void> {
    const dest = this.blobFile(desc);
    await mkdir(path.dirname(dest), { recursive: true });
    await writeFile(dest, manifest);
    this.manifests.push({ ...desc, annotations: { ...(desc.annotations ?? {}), [ANNOTATION.refName]: tag } });
  }

  async commit(): Promise<void> {
    await writeFile(path.join(this.tmp, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    await writeFile(path.join(this.tmp, "index.json"), JSON.stringify(buildIndex(this.manifests)));
    const final = path.resolve(this.dir);
    await refuseForeignOutput(final);
    await mkdir(path.dirname(final), { recursive: true });
    const trash = tempName(final) + ".old";
    let moved = false;
    try {
      await rename(final, trash);
      moved = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
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
  await refuseForeignOutput(dir);
  const target = new OciLayoutTarget(dir, image.blobs);
  try {
    await writeImage(target, image);
    await target.commit();
  } catch (err) {
    await target.abort();
    throw err;
  }
}
