// Merge per-platform images, pushed by different runners, into one image
// index: `layerfold index push REF IMAGE...`. Images in other repositories
// of the same registry are mounted into REF's repository first.

import { ConfigError, RegistryError, UsageError } from "../errors.ts";
import { MEDIA, type Descriptor, type ImageConfigFile, type ImageManifest } from "../oci/types.ts";
import { buildIndex } from "../oci/image.ts";
import { stableJson } from "../util/json.ts";
import type { Logger } from "../util/log.ts";
import type { RegistryClient } from "./client.ts";
import { parseReference } from "./reference.ts";

export interface MergeResult {
  digest: string;
  manifests: Descriptor[];
}

export async function mergeIndex(client: RegistryClient, target: string, images: string[], log: Logger): Promise<MergeResult> {
  const t = parseReference(target, "index target");
  if (!t.tag) throw new ConfigError(`index target ${target}: give a tag, e.g. ${target}:latest`);
  client.addScope(client.pushScope(t.repository));
  const manifests: Descriptor[] = [];
  /** Which image given is for each platform. */
  const refOf = new Map<string, string>();
  for (const ref of images) {
    const r = parseReference(ref, "index member");
    if (r.registry !== t.registry) throw new ConfigError(`${ref} is on ${r.registry}, the index goes to ${t.registry}; push every platform to one registry first`);
    client.addScope(client.pullScope(r.repository));
    const m = await client.getManifest(r.repository, r.digest ?? r.tag ?? "latest");
    if (m.mediaType === MEDIA.index || m.mediaType === MEDIA.dockerManifestList) {
      throw new ConfigError(`${ref} is already an index; name its per-platform images instead`);
    }
    const manifest = JSON.parse(m.body.toString("utf8")) as ImageManifest;
    const config = JSON.parse(await streamText(await client.getBlob(r.repository, manifest.config.digest))) as ImageConfigFile;
    const platform = { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) };
    const key = `${platform.os}/${platform.architecture}${platform.variant ? `/${platform.variant}` : ""}`;
    const same = refOf.get(key);
    if (same) throw new UsageError(`${same} and ${ref} are both ${key} images; an index holds one image per platform: name one of them, or build the other with --platform`);
    refOf.set(key, ref);
    if (r.repository !== t.repository) {
      // Bring the member into the index's repository: mount its blobs, then put its manifest by digest.
      for (const d of [manifest.config, ...manifest.layers]) {
        if ((await client.hasBlob(t.repository, d.digest)).exists) continue;
        const mounted = await client.mountBlob(t.repository, d.digest, r.repository);
        if (!mounted.mounted) throw new RegistryError(`could not mount ${d.digest} from ${r.repository} into ${t.repository}; push that platform to ${t.repository} directly`);
      }
      await client.putManifest(t.repository, m.digest, m.body, m.mediaType);
    }
    manifests.push({ mediaType: m.mediaType, digest: m.digest, size: m.body.length, platform });
    log.info(`index: ${key} ${m.digest} (${ref})`);
  }
  const body = Buffer.from(stableJson(buildIndex(manifests)));
  const digest = (await client.putManifest(t.repository, t.tag, body, MEDIA.index)) ?? "";
  return { digest, manifests };
}

async function streamText(s: AsyncIterable<Buffer>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c);
  return Buffer.concat(chunks).toString("utf8");
}
