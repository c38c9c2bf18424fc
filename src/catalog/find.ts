// "Which build?": the one place that reads an image selector. A build is found
// by NAME[:TAG] (tag "latest"), by manifest digest, by the image of an OCI
// layout, or as the config's image; a layout can also stand for itself.

import { readdir, stat } from "node:fs/promises";
import path from "node:path";
import { loadConfig } from "../config/load.ts";
import { NotFoundError, UsageError } from "../errors.ts";
import { readLayoutImages } from "../registry/layout-source.ts";
import { sourceKinds } from "../sources/registry.ts";
import type { Store } from "../store/store.ts";
import { BUILD_RECORDS, buildRecordKey, platformOf, platformRecordKey, type BuildRecord } from "./records.ts";

export interface BuildSelector {
  /** Directory of layerfold.config.ts, or the config file: its image's latest build. */
  dir?: string;
  config?: string;
  /** An OCI layout directory. */
  layout?: string;
  /** NAME[:TAG] or a manifest digest of a build in the store, or an OCI layout (DIR or oci:DIR[:TAG]). */
  image?: string;
  /**
   * os/arch of a build by NAME:TAG (or the config's): when the store holds builds of the tag for
   * more than one platform, which one is meant must be said.
   */
  platform?: string;
}

/** A directory holding an OCI image layout (its oci-layout marker file, as the spec requires). */
export async function isLayout(dir: string): Promise<boolean> {
  return (await stat(path.join(dir, "oci-layout")).catch(() => undefined))?.isFile() ?? false;
}

/** NAME[:TAG] -> name and tag ("latest" when none); a ":" before the last "/" is a registry port. */
export function parseNameTag(ref: string): { name: string; tag: string } {
  const colon = ref.lastIndexOf(":");
  return colon > ref.lastIndexOf("/") ? { name: ref.slice(0, colon), tag: ref.slice(colon + 1) } : { name: ref, tag: "latest" };
}

/** The hex of "sha256:<hex>" or a bare 64-digit hex; undefined for anything else. */
export const digestHex = (ref: string): string | undefined => /^(?:sha256:)?([0-9a-f]{64})$/.exec(ref)?.[1];

/** "oci:DIR[:TAG]" or a layout directory, as directory and tag; undefined when the spec names no layout. */
export async function layoutOf(spec: string): Promise<{ dir: string; tag?: string } | undefined> {
  if (!spec.startsWith("oci:") && !(await isLayout(spec))) return undefined;
  const dir = spec.replace(/^oci:/, "");
  const colon = dir.lastIndexOf(":");
  if (!(await isLayout(dir)) && colon > 0) return { dir: dir.slice(0, colon), tag: dir.slice(colon + 1) };
  return { dir };
}

/** The store key of a build by NAME[:TAG] or manifest digest. */
export function recordKeyOf(ref: string): string {
  const hex = digestHex(ref);
  if (hex) return hex;
  const { name, tag } = parseNameTag(ref);
  return buildRecordKey(name, tag);
}

export type Selected = { layout: string; tag?: string } | { recordKey: string; what: string; nameTag?: { name: string; tag: string }; platform?: string };

/** What a selector names: a layout to read as it is, or a build record to look up. */
export async function selectImage(sel: BuildSelector): Promise<Selected> {
  if (sel.layout) return { layout: sel.layout };
  if (sel.image) {
    const layout = await layoutOf(sel.image);
    if (layout) return { layout: layout.dir, tag: layout.tag };
    return { recordKey: recordKeyOf(sel.image), what: sel.image, nameTag: digestHex(sel.image) ? undefined : parseNameTag(sel.image), platform: sel.platform };
  }
  const cfg = await loadConfig({ dir: sel.dir, file: sel.config }, sourceKinds);
  const nameTag = { name: cfg.image.name, tag: cfg.image.tag };
  return { recordKey: buildRecordKey(nameTag.name, nameTag.tag), what: `${nameTag.name}:${nameTag.tag}`, nameTag, platform: sel.platform };
}

/** The build record a selector names; a layout names the build whose manifest it holds. */
export async function findBuildRecord(store: Store, sel: BuildSelector): Promise<BuildRecord> {
  return recordOf(store, await selectImage(sel));
}

export async function recordOf(store: Store, s: Selected): Promise<BuildRecord> {
  let key: string;
  let what: string;
  if ("layout" in s) {
    if (!(await isLayout(s.layout))) throw new NotFoundError(`${s.layout} is not an OCI layout (no oci-layout file); give the directory a build wrote with -o oci:DIR, or \`layerfold pull\` one`);
    const image = (await readLayoutImages(s.layout, s.tag))[0]!;
    key = digestHex(image.manifestDescriptor.digest)!;
    what = `the image in ${s.layout}`;
  } else {
    ({ recordKey: key, what } = s);
    if (s.nameTag) key = await platformKey(store, s.nameTag, s.platform) ?? key;
  }
  const rec = await store.getRecord<BuildRecord>(BUILD_RECORDS, key);
  if (!rec) throw new NotFoundError(`no build of ${what} in the store ${store.root}; run \`layerfold build\` first (or pass --store)`);
  return rec;
}

/** The platforms the store has builds of NAME:TAG for (from the per-platform record keys). */
export async function platformsOf(store: Store, name: string, tag: string): Promise<string[]> {
  const prefix = `${buildRecordKey(name, tag)}-`;
  const files = await readdir(path.dirname(store.recordPath(BUILD_RECORDS, prefix))).catch(() => [] as string[]);
  return files.filter((f) => f.startsWith(prefix) && f.endsWith(".json")).map((f) => f.slice(prefix.length, -".json".length).replaceAll("_", "/")).sort();
}

/**
 * The record key of NAME:TAG's build for `platform`; without one, the tag's only platform. Builds
 * for two platforms and none asked for is an error listing them: acting on whichever was built
 * last (an arm64 image pushed as :1.0-amd64) is what it prevents.
 */
async function platformKey(store: Store, nt: { name: string; tag: string }, platform: string | undefined): Promise<string | undefined> {
  const platforms = await platformsOf(store, nt.name, nt.tag);
  const what = `${nt.name}:${nt.tag}`;
  if (platform) {
    if (platforms.includes(platform)) return platformRecordKey(nt.name, nt.tag, platform);
    // Records from before per-platform keys: the tag's latest build, when it is that platform.
    const latest = await store.getRecord<BuildRecord>(BUILD_RECORDS, buildRecordKey(nt.name, nt.tag));
    if (latest && platformOf(latest) === platform) return undefined;
    throw new NotFoundError(`no ${platform} build of ${what} in the store ${store.root}${platforms.length ? ` (it has ${platforms.join(", ")})` : ""}; run \`layerfold build --platform ${platform}\` first`);
  }
  if (platforms.length > 1) {
    throw new UsageError(`the store holds builds of ${what} for ${platforms.join(" and ")}; say which with --platform (e.g. --platform ${platforms[0]})`);
  }
  return undefined;
}
