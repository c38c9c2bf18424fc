// SBOMs: purls, hashes and the required structure of CycloneDX 1.6 and
// SPDX 2.3 on a hand-made model (deb, py, git, url archive), determinism,
// then the real CLI on a hello build, attached to the image in a real
// registry (distribution 2.8 has no referrers API: the fallback tag).

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { Spec, Validation } from "@cyclonedx/cyclonedx-library";
import { PackageURL } from "packageurl-js";
import { RegistryClient } from "../../src/registry/client.ts";
import { fallbackTagOf, listReferrers } from "../../src/report/attach.ts";
import { cycloneDx, publicUrl, purlOf, renderSbom, sbomPackages, spdx, stableUuid } from "../../src/report/sbom.ts";
import { helloExample, runCli, tempDir } from "../helpers/cli.ts";
import { hasCommand, startRegistry } from "../helpers/registry.ts";
import { sampleModel } from "./fixtures.ts";

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
const HEX64 = /^[0-9a-f]{64}$/;

test("purls: deb with arch and encoded version, normalised pypi names, git vcs_url, url archives with checksum", () => {
  const m = sampleModel();
  const by = (id: string) => purlOf(m.packages.find((p) => p.id === id)!);
  assert.equal(by("deb:libc6"), "pkg:deb/debian/libc6@2.36-9+deb12u7?arch=amd64");
  assert.equal(by("deb:tzdata"), "pkg:deb/debian/tzdata@1:2024a-0+deb12u1?arch=all");
  assert.equal(by("py:typing-extensions"), "pkg:pypi/typing-extensions@4.12.2");
  assert.equal(by("git:comfyui"), "pkg:generic/ComfyUI@0123456789abcdef0123456789abcdef01234567?vcs_url=git%2Bhttps%3A%2F%2Fgithub.com%2Fcomfyanonymous%2FComfyUI%400123456789abcdef0123456789abcdef01234567");
  assert.equal(by("archive:models"), `pkg:generic/models@1.0?checksum=sha256%3A${"9".repeat(64)}&download_url=https%3A%2F%2Fexample.org%2Fmodels-1.0.tar.gz`);
  // Every purl is in canonical form: packageurl-js parses it and prints the same string back.
  for (const p of m.packages) {
    const purl = purlOf(p);
    const parsed = PackageURL.fromString(purl);
    assert.equal(parsed.toString(), purl);
    assert.equal(parsed.version, p.kind === "git" ? (p.meta!.commit as string) : p.version);
  }
  // Local files are not packages.
  assert.ok(!sbomPackages(m).some((p) => p.kind === "file"));
  assert.equal(sbomPackages(m).length, 8);
});

test("no credential from a clone or download URL reaches the SBOM", () => {
  const m = sampleModel();
  const git = m.packages.find((p) => p.id === "git:comfyui")!;
  git.meta = { ...git.meta, url: "https://x-access-token:ghp_SECRET123@github.com/comfyanonymous/ComfyUI" };
  const arch = m.packages.find((p) => p.id === "archive:models")!;
  arch.artifact = { ...arch.artifact!, url: "https://user:pa55word@example.org/models-1.0.tar.gz" };
  for (const format of ["cyclonedx", "spdx"] as const) {
    const text = renderSbom(m, format, undefined, {});
    assert.ok(!/ghp_SECRET123|pa55word|x-access-token/.test(text), `${format} leaks a credential`);
    assert.match(text, /github\.com(%2F|\/)comfyanonymous(%2F|\/)ComfyUI/);
  }
  assert.equal(publicUrl("git@github.com:org/repo.git"), "git@github.com:org/repo.git");
});

test("CycloneDX 1.6: valid against the official JSON schema; required fields, purls, SHA-256 hashes, dependency graph", async () => {
  const m = sampleModel();
  const errors = await new Validation.JsonStrictValidator(Spec.Version.v1dot6).validate(renderSbom(m, "cyclonedx"));
  assert.equal(errors, null, JSON.stringify(errors));
  const bom = cycloneDx(m, "2024-01-02T03:04:05Z") as Json;
  assert.equal(bom.bomFormat, "CycloneDX");
  assert.equal(bom.specVersion, "1.6");
  assert.match(bom.serialNumber, /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(bom.version, 1);
  assert.equal(bom.metadata.timestamp, "2024-01-02T03:04:05Z");
  assert.equal(bom.metadata.component.type, "container");
  assert.equal(bom.metadata.component.purl, `pkg:oci/megapak@sha256:${"7".repeat(64)}?repository_url=example%2Fmegapak&tag=1.0`);
  const refs = new Set<string>();
  for (const c of bom.components as Json[]) {
    assert.ok(["library", "application", "file"].includes(c.type), c.type);
    assert.ok(c.name && c.version && c["bom-ref"] && c.purl?.startsWith("pkg:"), JSON.stringify(c));
    assert.ok(!refs.has(c["bom-ref"]), "bom-refs are unique");
    refs.add(c["bom-ref"]);
    for (const h of c.hashes ?? []) {
      assert.equal(h.alg, "SHA-256");
      assert.match(h.content, HEX64);
    }
  }
  const torch = (bom.components as Json[]).find((c) => c["bom-ref"] === "py:torch")!;
  assert.deepEqual(torch.hashes, [{ alg: "SHA-256", content: "d".repeat(64) }]);
  assert.deepEqual((bom.components as Json[]).find((c) => c["bom-ref"] === "git:comfyui")!.externalReferences, [{ type: "vcs", url: "https://github.com/comfyanonymous/ComfyUI" }]);
  refs.add(bom.metadata.component["bom-ref"]);
  for (const d of bom.dependencies as Json[]) {
    assert.ok(refs.has(d.ref), `dependency ref ${d.ref} is a component`);
    for (const x of d.dependsOn) assert.ok(refs.has(x), `dependsOn ${x} is a component`);
  }
  assert.deepEqual((bom.dependencies as Json[]).find((d) => d.ref === "py:torch")!.dependsOn, ["py:numpy", "py:typing-extensions"]);
});

test("SPDX 2.3: required document and package fields, valid ids, relationships between existing elements", () => {
  const m = sampleModel();
  const doc = spdx(m, "2024-01-02T03:04:05Z") as Json;
  assert.equal(doc.spdxVersion, "SPDX-2.3");
  assert.equal(doc.dataLicense, "CC0-1.0");
  assert.equal(doc.SPDXID, "SPDXRef-DOCUMENT");
  assert.ok(doc.name);
  assert.match(doc.documentNamespace, /^https:\/\/[^\s#]+$/);
  assert.match(doc.creationInfo.created, ISO);
  assert.ok(doc.creationInfo.creators.every((c: string) => /^(Tool|Person|Organization): /.test(c)));
  const ids = new Set<string>(["SPDXRef-DOCUMENT"]);
  for (const p of doc.packages as Json[]) {
    assert.match(p.SPDXID, /^SPDXRef-[A-Za-z0-9.-]+$/);
    assert.ok(!ids.has(p.SPDXID), "SPDXIDs are unique");
    ids.add(p.SPDXID);
    assert.ok(p.name && typeof p.downloadLocation === "string" && typeof p.filesAnalyzed === "boolean", JSON.stringify(p));
    for (const c of p.checksums ?? []) {
      assert.equal(c.algorithm, "SHA256");
      assert.match(c.checksumValue, HEX64);
    }
    assert.ok(p.externalRefs.some((r: Json) => r.referenceType === "purl" && r.referenceCategory === "PACKAGE-MANAGER"));
  }
  assert.equal(doc.packages.length, 1 + 8);
  for (const r of doc.relationships as Json[]) {
    assert.ok(ids.has(r.spdxElementId) && ids.has(r.relatedSpdxElement), JSON.stringify(r));
    assert.ok(["DESCRIBES", "CONTAINS", "DEPENDS_ON"].includes(r.relationshipType));
  }
  const libc = (doc.packages as Json[]).find((p) => p.name === "libc6")!;
  assert.equal(libc.downloadLocation, "http://deb.debian.org/debian/pool/main/g/glibc/libc6_2.36-9+deb12u7_amd64.deb");
  assert.equal((doc.packages as Json[]).find((p) => p.name === "ComfyUI")!.downloadLocation, "git+https://github.com/comfyanonymous/ComfyUI@0123456789abcdef0123456789abcdef01234567");
});

test("deterministic: same bytes twice; timestamp from SOURCE_DATE_EPOCH, else the image's created time", () => {
  const m = sampleModel();
  const a = renderSbom(m, "cyclonedx", "2023-05-06T07:08:09.123Z", { SOURCE_DATE_EPOCH: "1700000000" });
  assert.equal(a, renderSbom(sampleModel(), "cyclonedx", "2023-05-06T07:08:09.123Z", { SOURCE_DATE_EPOCH: "1700000000" }));
  assert.equal(JSON.parse(a).metadata.timestamp, "2023-11-14T22:13:20Z");
  assert.equal(JSON.parse(renderSbom(m, "spdx", "2023-05-06T07:08:09.123Z", {})).creationInfo.created, "2023-05-06T07:08:09Z");
  assert.equal(stableUuid("x"), stableUuid("x"));
  assert.notEqual(stableUuid("x"), stableUuid("y"));
});

let tmp: { dir: string; cleanup: () => Promise<void> };
let store: string;
let example: string;
const IMAGE = "layerfold-examples/hello:1.0";
before(async () => {
  tmp = await tempDir("lf-report-sbom-");
  example = await helloExample(tmp.dir);
  store = path.join(tmp.dir, "store");
  const b = await runCli(["build", "-C", example, "--store", store, "-o", "none", "-q"]);
  assert.equal(b.code, 0, b.stderr);
});
after(async () => tmp?.cleanup());

test("layerfold sbom on a real build: both formats, the vendored archive with its sha256, stable output", async () => {
  const out = path.join(tmp.dir, "sbom.cdx.json");
  const r = await runCli(["sbom", "--store", store, "--image", IMAGE, "-o", out], { env: { SOURCE_DATE_EPOCH: "1700000000" } });
  assert.equal(r.code, 0, r.stderr);
  const bom = JSON.parse(await readFile(out, "utf8")) as Json;
  assert.equal(await new Validation.JsonStrictValidator(Spec.Version.v1dot6).validate(await readFile(out, "utf8")), null);
  assert.equal(bom.specVersion, "1.6");
  assert.deepEqual((bom.components as Json[]).map((c) => c["bom-ref"]), ["archive:docs"]);
  assert.deepEqual(bom.components[0].hashes, [{ alg: "SHA-256", content: "253b1bfa78273bd549810b018771fe17921803b14e88428f369ca8414354a997" }]);
  const again = await runCli(["sbom", "--store", store, "--image", IMAGE], { env: { SOURCE_DATE_EPOCH: "1700000000" } });
  assert.equal(again.stdout, await readFile(out, "utf8"));
  const s = await runCli(["sbom", "--store", store, "--image", IMAGE, "--format", "spdx"]);
  assert.equal(s.code, 0, s.stderr);
  assert.equal(JSON.parse(s.stdout).spdxVersion, "SPDX-2.3");
  assert.ok(!s.stdout.includes(tmp.dir), "no host path in the SBOM");
  const bad = await runCli(["sbom", "--store", store, "--image", IMAGE, "--format", "xml"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--format <format>' argument 'xml' is invalid\. use cyclonedx or spdx/);
});

test("layerfold sbom --attach: artifact with subject in a real registry, found through the fallback tag", { skip: !hasCommand("docker-registry") && "docker-registry not installed" }, async () => {
  const reg = await startRegistry();
  const client = new RegistryClient({ registry: reg.host });
  try {
    const ref = `${reg.host}/hello:1.0`;
    const early = await runCli(["sbom", "--store", store, "--image", IMAGE, "--attach", ref]);
    assert.notEqual(early.code, 0);
    assert.match(early.stderr, /push the image first/);
    const push = await runCli(["push", "--store", store, "-C", example, ref, "-q"]);
    assert.equal(push.code, 0, push.stderr);
    const local = path.join(tmp.dir, "attached.cdx.json");
    const att = await runCli(["sbom", "--store", store, "--image", IMAGE, "--attach", ref, "-o", local, "--json"]);
    assert.equal(att.code, 0, att.stderr);
    const res = JSON.parse(att.stdout) as { digest: string; subject: string; referrersApi: boolean; fallbackTag?: string };
    const spdxAtt = await runCli(["sbom", "--store", store, "--image", IMAGE, "--format", "spdx", "--attach", ref, "--json"]);
    assert.equal(spdxAtt.code, 0, spdxAtt.stderr);
    if (!res.referrersApi) assert.equal(res.fallbackTag, fallbackTagOf(res.subject));

    const refs = await listReferrers(client, "hello", res.subject);
    assert.deepEqual(refs.map((d) => d.artifactType).sort(), ["application/spdx+json", "application/vnd.cyclonedx+json"]);
    const cdx = await listReferrers(client, "hello", res.subject, "application/vnd.cyclonedx+json");
    assert.equal(cdx.length, 1);
    assert.equal(cdx[0]!.digest, res.digest);
    // The artifact manifest points at the image and holds the SBOM we generate.
    const m = JSON.parse((await client.getManifest("hello", res.digest)).body.toString("utf8")) as Json;
    assert.equal(m.artifactType, "application/vnd.cyclonedx+json");
    assert.equal(m.subject.digest, res.subject);
    assert.equal(m.config.mediaType, "application/vnd.oci.empty.v1+json");
    const chunks: Buffer[] = [];
    for await (const c of await client.getBlob("hello", m.layers[0].digest)) chunks.push(c as Buffer);
    assert.equal(Buffer.concat(chunks).toString("utf8"), await readFile(local, "utf8"));
    // Attaching the same SBOM again does not duplicate it.
    await runCli(["sbom", "--store", store, "--image", IMAGE, "--attach", ref]);
    assert.equal((await listReferrers(client, "hello", res.subject)).length, 2);
  } finally {
    await client.close();
    await reg.stop();
  }
});
