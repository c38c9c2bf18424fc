// Small real OCI images for registry tests, made from hand-written layer tars
// (tar-stream, gzip or uncompressed). Blobs are written into an OCI layout
// directory, so the same fixture can be pushed by layerfold and copied by skopeo.

import { createReadStream, createWriteStream, readFileSync } from "node:fs";
import { mkdir, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { Readable, PassThrough } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { createCipheriv, createHash, randomBytes } from "node:crypto";
import tar from "tar-stream";
import { MEDIA, hexOf, type BuiltImage, type Descriptor, type LayerDescriptor } from "../../src/oci/types.ts";
import { HashingStream, sha256Hex } from "../../src/util/hash.ts";
import { stableJson } from "../../src/util/json.ts";

export type FileContent = string | Buffer | { randomSize: number; seed: string } | { hostFile: string; mode?: number } | { symlink: string };

export interface LayerSpec {
  files: Record<string, FileContent>;
}

export interface FixtureOptions {
  dir: string;
  name?: string;
  tag?: string;
  layers: LayerSpec[];
  compression?: "gzip" | "none";
  cmd?: string[];
  /** Also write oci-layout + index.json (for skopeo and push --from). Default true. */
  writeLayout?: boolean;
}

/** Deterministic pseudo-random bytes (AES-256-CTR keystream keyed by the seed), streamed. */
function randomStream(size: number, seed: string): Readable {
  const key = createHash("sha256").update(seed).digest();
  const cipher = createCipheriv("aes-256-ctr", key, Buffer.alloc(16));
  const zeros = Buffer.alloc(1 << 20);
  let produced = 0;
  return new Readable({
    read() {
      if (produced >= size) { this.push(null); return; }
      const n = Math.min(zeros.length, size - produced);
      produced += n;
      this.push(cipher.update(zeros.subarray(0, n)));
    },
  });
}

async function writeLayer(blobsDir: string, spec: LayerSpec, compression: "gzip" | "none"): Promise<LayerDescriptor> {
  const pack = tar.pack();
  const diff = new HashingStream();
  const digest = new HashingStream();
  const tmp = path.join(blobsDir, `.tmp-${randomBytes(6).toString("hex")}`);
  const out = pipeline(pack, diff, compression === "gzip" ? createGzip({ level: 1 }) : new PassThrough(), digest, createWriteStream(tmp));
  const dirs = new Set<string>();
  for (const p of Object.keys(spec.files).sort()) {
    const parts = p.replace(/^\//, "").split("/");
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join("/");
      if (!dirs.has(d)) {
        dirs.add(d);
        await new Promise<void>((r, j) => pack.entry({ name: d + "/", type: "directory", mode: 0o755, mtime: new Date(0), uid: 0, gid: 0 }, (e) => (e ? j(e) : r())));
      }
    }
    const c = spec.files[p];
    const name = parts.join("/");
    if (typeof c === "object" && "symlink" in c) {
      await new Promise<void>((r, j) => pack.entry({ name, type: "symlink", linkname: c.symlink, mode: 0o777, mtime: new Date(0), uid: 0, gid: 0 }, (e) => (e ? j(e) : r())));
    } else if (typeof c === "string" || Buffer.isBuffer(c)) {
      await new Promise<void>((r, j) => pack.entry({ name, mode: 0o644, mtime: new Date(0), uid: 0, gid: 0 }, Buffer.from(c), (e) => (e ? j(e) : r())));
    } else {
      const size = "randomSize" in c ? c.randomSize : readFileSync(c.hostFile).length;
      const mode = "randomSize" in c ? 0o644 : c.mode ?? 0o755;
      const entry = pack.entry({ name, size, mode, mtime: new Date(0), uid: 0, gid: 0 });
      await pipeline("randomSize" in c ? randomStream(c.randomSize, c.seed) : createReadStream(c.hostFile), entry);
    }
  }
  pack.finalize();
  await out;
  const hex = digest.hex();
  await rename(tmp, path.join(blobsDir, hex));
  return {
    mediaType: compression === "gzip" ? MEDIA.layerGzip : MEDIA.layerTar,
    digest: `sha256:${hex}`,
    size: digest.bytes,
    diffId: `sha256:${diff.hex()}`,
    uncompressedSize: diff.bytes,
  };
}

export async function makeImage(opts: FixtureOptions): Promise<BuiltImage> {
  const blobsDir = path.join(opts.dir, "blobs", "sha256");
  await mkdir(blobsDir, { recursive: true });
  const layers: LayerDescriptor[] = [];
  for (const spec of opts.layers) layers.push(await writeLayer(blobsDir, spec, opts.compression ?? "gzip"));
  const configObj = {
    architecture: "amd64",
    os: "linux",
    config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], ...(opts.cmd ? { Cmd: opts.cmd } : {}) },
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((_, i) => ({ created_by: `fixture layer ${i}` })),
  };
  const config = Buffer.from(stableJson(configObj));
  const configDescriptor: Descriptor = { mediaType: MEDIA.config, digest: `sha256:${sha256Hex(config)}`, size: config.length };
  const manifestObj = {
    schemaVersion: 2,
    mediaType: MEDIA.manifest,
    config: configDescriptor,
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  const manifest = Buffer.from(stableJson(manifestObj));
  const manifestDescriptor: Descriptor = { mediaType: MEDIA.manifest, digest: `sha256:${sha256Hex(manifest)}`, size: manifest.length };
  await writeFile(path.join(blobsDir, hexOf(configDescriptor.digest)), config);
  await writeFile(path.join(blobsDir, hexOf(manifestDescriptor.digest)), manifest);
  const tag = opts.tag ?? "latest";
  if (opts.writeLayout !== false) {
    await writeFile(path.join(opts.dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    await writeFile(
      path.join(opts.dir, "index.json"),
      JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.index, manifests: [{ ...manifestDescriptor, annotations: { "org.opencontainers.image.ref.name": tag } }] }),
    );
  }
  const file = (d: Descriptor) => path.join(blobsDir, hexOf(d.digest));
  return {
    name: opts.name ?? "fixture",
    tag,
    manifest,
    manifestDescriptor,
    config,
    configDescriptor,
    layers,
    blobs: { open: async (d) => createReadStream(file(d)), localPath: (d) => file(d) },
  };
}

/** Files for a runnable layer: /bin/sh (dash) and the libraries it links. */
export function shellLayerFiles(): Record<string, FileContent> {
  return {
    "bin/sh": { hostFile: "/bin/dash", mode: 0o755 },
    "lib/x86_64-linux-gnu/libc.so.6": { hostFile: "/lib/x86_64-linux-gnu/libc.so.6", mode: 0o755 },
    "lib64/ld-linux-x86-64.so.2": { hostFile: "/lib64/ld-linux-x86-64.so.2", mode: 0o755 },
  };
}
