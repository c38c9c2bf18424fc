// `layerfold sbom`: CycloneDX 1.6 and SPDX 2.3 (JSON) for a built image.
// One component per fetched package (Debian packages, Python distributions,
// git checkouts, archives and other url sources) with its purl and the
// sha256 of the artifact we verified. Deterministic: components sorted by id,
// ids derived from package ids, serial number and namespace derived from the
// manifest digest, timestamp from SOURCE_DATE_EPOCH (else the image's own
// creation time), stable key order.

import { hexOf, VERSION } from "../constants.ts";
import { sourceKinds } from "../sources/registry.ts";
import type { SourceKind } from "../sources/types.ts";
import { publicUrl, purlEncode, purlQualifiers, sourceOrigin } from "../util/purl.ts";
import { sha256Hex } from "../util/hash.ts";
import { stableJson } from "../util/json.ts";
import type { ImageModel, ModelPackage } from "./model.ts";

export const TOOL = { name: "layerfold", version: VERSION };
export const MEDIA_CYCLONEDX = "application/vnd.cyclonedx+json";
export const MEDIA_SPDX = "application/spdx+json";

export type SbomFormat = "cyclonedx" | "spdx";

export { publicUrl } from "../util/purl.ts";

const artifactUrl = (p: ModelPackage): string | undefined => publicUrl(p.artifact?.url);

const kindOf = (p: ModelPackage, kinds: readonly SourceKind[]) => kinds.find((k) => k.kind === p.kind);

/** What a package is in the SBOM, as its kind declares ("archive" by default); undefined: not listed (generated files, kinds that say "none"). */
function purposeOf(p: ModelPackage, kinds: readonly SourceKind[] = sourceKinds): "library" | "source" | "archive" | undefined {
  const kind = kindOf(p, kinds);
  if (!kind || kind.sbomPurpose === "none") return undefined;
  return kind.sbomPurpose ?? "archive";
}

const CYCLONEDX_TYPE = { library: "library", source: "application", archive: "file" } as const;
const SPDX_PURPOSE = { library: "LIBRARY", source: "SOURCE", archive: "ARCHIVE" } as const;

/** Packages an SBOM lists: everything fetched from somewhere, plus source checkouts. Local files, inline text and generated files are not packages. */
export function sbomPackages(model: ImageModel, kinds: readonly SourceKind[] = sourceKinds): ModelPackage[] {
  return model.packages.filter((p) => {
    const purpose = purposeOf(p, kinds);
    return purpose !== undefined && (p.artifact !== undefined || purpose === "source");
  });
}

export function purlOf(p: ModelPackage, kinds: readonly SourceKind[] = sourceKinds): string {
  const own = kindOf(p, kinds)?.purl;
  if (own) return own(p);
  const sha = p.artifact?.sha256;
  return `pkg:generic/${purlEncode(p.name)}@${purlEncode(p.version)}${purlQualifiers({ checksum: sha ? `sha256:${sha}` : undefined, download_url: artifactUrl(p) })}`;
}

/** A source checkout's repository URL, public form. */
const vcsUrl = (p: ModelPackage) => (purposeOf(p) === "source" ? sourceOrigin(p).url : undefined);

/** The image itself as a purl (type oci: name is the last path part, digest as version). */
export function imagePurl(model: ImageModel): string {
  const last = model.name.slice(model.name.lastIndexOf("/") + 1);
  return `pkg:oci/${purlEncode(last)}@${purlEncode(model.manifestDigest)}${purlQualifiers({ repository_url: model.name, tag: model.tag })}`;
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

export function cycloneDx(model: ImageModel, created: string): Record<string, unknown> {
  const pkgs = sbomPackages(model);
  const refs = new Set(pkgs.map((p) => p.id));
  const imageRef = `image:${model.manifestDigest}`;
  const components = pkgs.map((p) => ({
    type: CYCLONEDX_TYPE[purposeOf(p)!],
    "bom-ref": p.id,
    name: p.name,
    version: p.version,
    purl: purlOf(p),
    ...(p.artifact?.sha256 ? { hashes: [{ alg: "SHA-256", content: p.artifact.sha256 }] } : {}),
    ...(artifactUrl(p) || purposeOf(p) === "source"
      ? {
          externalReferences: [
            ...(vcsUrl(p) ? [{ type: "vcs", url: vcsUrl(p)! }] : []),
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
      downloadLocation: vcsUrl(p) ? `git+${vcsUrl(p)}@${sourceOrigin(p).rev}` : artifactUrl(p) ?? "NOASSERTION",
      filesAnalyzed: false,
      ...(p.artifact?.file ? { packageFileName: p.artifact.file } : {}),
      ...(p.artifact?.sha256 ? { checksums: [{ algorithm: "SHA256", checksumValue: p.artifact.sha256 }] } : {}),
      externalRefs: [{ referenceCategory: "PACKAGE-MANAGER", referenceType: "purl", referenceLocator: purlOf(p) }],
      primaryPackagePurpose: SPDX_PURPOSE[purposeOf(p)!],
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
