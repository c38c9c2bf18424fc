// `layerfold sbom`: CycloneDX 1.6 and SPDX 2.3 (JSON) for a built image.
// One component per fetched package (Debian packages, Python distributions,
// git checkouts, archives and other url sources) with its purl and the
// sha256 of the artifact we verified. Deterministic: components sorted by id,
// ids derived from package ids, serial number and namespace derived from the
// manifest digest, timestamp from SOURCE_DATE_EPOCH (else the image's own
// creation time), stable key order.

import { sha256Hex } from "../util/hash.ts";
import { stableJson } from "../util/json.ts";
import type { ImageModel, ModelPackage } from "./model.ts";
import { version } from "../version.ts";

export const TOOL = { name: "layerfold", version };
export const MEDIA_CYCLONEDX = "application/vnd.cyclonedx+json";
export const MEDIA_SPDX = "application/spdx+json";

export type SbomFormat = "cyclonedx" | "spdx";

/** purl component encoding in the canonical form packageurl-js prints: ':' and '+' stay, the rest is percent-encoded. */
const enc = (s: string): string => encodeURIComponent(s).replace(/%3A/g, ":").replace(/%2B/g, "+");
const qualifiers = (q: Record<string, string | undefined>): string => {
  const parts = Object.keys(q)
    .sort()
    .filter((k) => q[k] !== undefined && q[k] !== "")
    .map((k) => `${k}=${encodeURIComponent(q[k]!)}`);
  return parts.length ? `?${parts.join("&")}` : "";
};

/** PEP 503 name normalisation, which the pypi purl type requires. */
const pypiName = (name: string) => name.toLowerCase().replace(/[-_.]+/g, "-");

const str = (v: unknown): string | undefined => (typeof v === "string" && v ? v : undefined);

/** A URL without user or password: an SBOM is published, a token in a clone URL must not be. */
export function publicUrl(u: string | undefined): string | undefined {
  if (!u) return undefined;
  try {
    const url = new URL(u);
    if (!url.username && !url.password) return u;
    url.username = "";
    url.password = "";
    return url.toString();
  } catch {
    return u.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, "$1");
  }
}

/** Where a git package comes from: url and commit, from its lock meta (or artifact). */
function gitSource(p: ModelPackage): { url?: string; rev: string } {
  const m = p.meta ?? {};
  return { url: publicUrl(str(m.url) ?? str(m.repo) ?? str(m.repository) ?? p.artifact?.url), rev: str(m.commit) ?? str(m.rev) ?? str(m.revision) ?? p.version };
}

const artifactUrl = (p: ModelPackage): string | undefined => publicUrl(p.artifact?.url);

/** Packages an SBOM lists: everything fetched from somewhere, plus git sources. Local files, inline text and generated files are not packages. */
export function sbomPackages(model: ImageModel): ModelPackage[] {
  return model.packages.filter((p) => !["file", "inline", "generated"].includes(p.kind) && (p.artifact || p.kind === "git"));
}

export function purlOf(p: ModelPackage): string {
  const sha = p.artifact?.sha256;
  switch (p.kind) {
    case "deb": {
      const arch = str(p.meta?.architecture) ?? /_([a-z0-9]+)\.deb$/.exec(p.artifact?.file ?? "")?.[1];
      return `pkg:deb/debian/${enc(p.name)}@${enc(p.version)}${qualifiers({ arch })}`;
    }
    case "py":
      return `pkg:pypi/${enc(pypiName(p.name))}@${enc(p.version)}`;
    case "git": {
      const { url, rev } = gitSource(p);
      return `pkg:generic/${enc(p.name)}@${enc(rev)}${qualifiers({ vcs_url: url ? `git+${url}@${rev}` : undefined })}`;
    }
    default:
      return `pkg:generic/${enc(p.name)}@${enc(p.version)}${qualifiers({ checksum: sha ? `sha256:${sha}` : undefined, download_url: artifactUrl(p) })}`;
  }
}

/** The image itself as a purl (type oci: name is the last path part, digest as version). */
export function imagePurl(model: ImageModel): string {
  const last = model.name.slice(model.name.lastIndexOf("/") + 1);
  return `pkg:oci/${enc(last)}@${enc(model.manifestDigest)}${qualifiers({ repository_url: model.name, tag: model.tag })}`;
}

/** SOURCE_DATE_EPOCH when set, else the image config's `created`, else the epoch. ISO 8601 without milliseconds. */
export function sbomTimestamp(imageCreated: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  let ms = 0;
  if (env.SOURCE_DATE_EPOCH && /^\d+$/.test(env.SOURCE_DATE_EPOCH)) ms = Number(env.SOURCE_DATE_EPOCH) * 1000;
  else if (imageCreated && !Number.isNaN(Date.parse(imageCreated))) ms = Date.parse(imageCreated);
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** A UUID (version 5 layout) computed from a name, so the same image gets the same serial number. */
export function stableUuid(name: string): string {
  const h = sha256Hex(name).slice(0, 32).split("");
  h[12] = "5";
  h[16] = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  const s = h.join("");
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20, 32)}`;
}

const hexOf = (digest: string) => digest.replace(/^sha256:/, "");

export function cycloneDx(model: ImageModel, created: string): Record<string, unknown> {
  const pkgs = sbomPackages(model);
  const refs = new Set(pkgs.map((p) => p.id));
  const imageRef = `image:${model.manifestDigest}`;
  const components = pkgs.map((p) => ({
    type: p.kind === "deb" || p.kind === "py" ? "library" : p.kind === "git" ? "application" : "file",
    "bom-ref": p.id,
    name: p.name,
    version: p.version,
    purl: purlOf(p),
    ...(p.artifact?.sha256 ? { hashes: [{ alg: "SHA-256", content: p.artifact.sha256 }] } : {}),
    ...(artifactUrl(p) || p.kind === "git"
      ? {
          externalReferences: [
            ...(p.kind === "git" && gitSource(p).url ? [{ type: "vcs", url: gitSource(p).url! }] : []),
            ...(artifactUrl(p) ? [{ type: "distribution", url: artifactUrl(p)!, ...(p.artifact?.sha256 ? { hashes: [{ alg: "SHA-256", content: p.artifact.sha256 }] } : {}) }] : []),
          ],
        }
      : {}),
    properties: [
      { name: "layerfold:id", value: p.id },
      { name: "layerfold:layer", value: p.layer },
      ...(p.artifact?.file ? [{ name: "layerfold:artifact", value: p.artifact.file }] : []),
    ],
  }));
  const dependencies = [
    { ref: imageRef, dependsOn: pkgs.map((p) => p.id) },
    ...pkgs.map((p) => ({ ref: p.id, dependsOn: p.deps.filter((d) => refs.has(d)) })),
  ];
  return {
    $schema: "http://cyclonedx.org/schema/bom-1.6.schema.json",
    bomFormat: "CycloneDX",
    specVersion: "1.6",
    serialNumber: `urn:uuid:${stableUuid(`cyclonedx:${model.manifestDigest}`)}`,
    version: 1,
    metadata: {
      timestamp: created,
      tools: { components: [{ type: "application", name: TOOL.name, version: TOOL.version }] },
      component: {
        type: "container",
        "bom-ref": imageRef,
        name: model.name,
        version: model.tag,
        purl: imagePurl(model),
        hashes: [{ alg: "SHA-256", content: hexOf(model.manifestDigest) }],
      },
    },
    components,
    dependencies,
  };
}

/** SPDX ids allow letters, digits, '.' and '-'; a short hash keeps distinct ids distinct after cleaning. */
export const spdxId = (id: string): string => `SPDXRef-Package-${id.replace(/[^A-Za-z0-9.-]+/g, "-").replace(/^-+|-+$/g, "")}-${sha256Hex(id).slice(0, 8)}`;

export function spdx(model: ImageModel, created: string): Record<string, unknown> {
  const pkgs = sbomPackages(model);
  const ids = new Map(pkgs.map((p) => [p.id, spdxId(p.id)]));
  const imageId = "SPDXRef-Image";
  const packages = [
    {
      SPDXID: imageId,
      name: model.name,
      versionInfo: model.tag,
      downloadLocation: "NOASSERTION",
      filesAnalyzed: false,
      checksums: [{ algorithm: "SHA256", checksumValue: hexOf(model.manifestDigest) }],
      externalRefs: [{ referenceCategory: "PACKAGE-MANAGER", referenceType: "purl", referenceLocator: imagePurl(model) }],
      primaryPackagePurpose: "CONTAINER",
      licenseConcluded: "NOASSERTION",
      licenseDeclared: "NOASSERTION",
      copyrightText: "NOASSERTION",
    },
    ...pkgs.map((p) => ({
      SPDXID: ids.get(p.id)!,
      name: p.name,
      versionInfo: p.version,
      downloadLocation: p.kind === "git" && gitSource(p).url ? `git+${gitSource(p).url}@${gitSource(p).rev}` : artifactUrl(p) ?? "NOASSERTION",
      filesAnalyzed: false,
      ...(p.artifact?.file ? { packageFileName: p.artifact.file } : {}),
      ...(p.artifact?.sha256 ? { checksums: [{ algorithm: "SHA256", checksumValue: p.artifact.sha256 }] } : {}),
      externalRefs: [{ referenceCategory: "PACKAGE-MANAGER", referenceType: "purl", referenceLocator: purlOf(p) }],
      primaryPackagePurpose: p.kind === "deb" || p.kind === "py" ? "LIBRARY" : p.kind === "git" ? "SOURCE" : "ARCHIVE",
      licenseConcluded: "NOASSERTION",
      licenseDeclared: "NOASSERTION",
      copyrightText: "NOASSERTION",
      comment: `layerfold package ${p.id} in layer ${p.layer}`,
    })),
  ];
  const relationships = [
    { spdxElementId: "SPDXRef-DOCUMENT", relationshipType: "DESCRIBES", relatedSpdxElement: imageId },
    ...pkgs.map((p) => ({ spdxElementId: imageId, relationshipType: "CONTAINS", relatedSpdxElement: ids.get(p.id)! })),
    ...pkgs.flatMap((p) => p.deps.filter((d) => ids.has(d)).map((d) => ({ spdxElementId: ids.get(p.id)!, relationshipType: "DEPENDS_ON", relatedSpdxElement: ids.get(d)! }))),
  ];
  const docName = `${model.name}:${model.tag}`;
  return {
    spdxVersion: "SPDX-2.3",
    dataLicense: "CC0-1.0",
    SPDXID: "SPDXRef-DOCUMENT",
    name: docName,
    documentNamespace: `https://spdx.org/spdxdocs/layerfold/${model.name.replace(/[^A-Za-z0-9._-]+/g, "-")}-${stableUuid(`spdx:${model.manifestDigest}`)}`,
    creationInfo: { created, creators: [`Tool: ${TOOL.name}-${TOOL.version}`] },
    documentDescribes: [imageId],
    packages,
    relationships,
  };
}

/** The SBOM as bytes: stable JSON, two-space indent, trailing newline. */
export function renderSbom(model: ImageModel, format: SbomFormat, imageCreated?: string, env: NodeJS.ProcessEnv = process.env): string {
  const created = sbomTimestamp(imageCreated, env);
  return stableJson(format === "spdx" ? spdx(model, created) : cycloneDx(model, created), 2) + "\n";
}
