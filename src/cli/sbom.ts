// `layerfold sbom`: CycloneDX 1.6 or SPDX 2.3 JSON for the last build, optionally
// attached to the pushed image as an OCI artifact (referrers API, or the fallback tag).

import path from "node:path";
import { Command } from "commander";
import { ANNOTATION } from "../constants.ts";
import type { ImageConfigFile } from "../oci/types.ts";
import { RegistryClient } from "../registry/client.ts";
import { findCredentials } from "../registry/credentials.ts";
import { formatReference, parseReference } from "../registry/reference.ts";
import { attachArtifact, subjectDescriptor } from "../report/attach.ts";
import { loadImageModel } from "../report/model.ts";
import { MEDIA_CYCLONEDX, MEDIA_SPDX, renderSbom, sbomPackages, type SbomFormat } from "../report/sbom.ts";
import { writeFileAtomic } from "../util/fs.ts";
import { findBuildRecord } from "../catalog/find.ts";
import { loggerFrom, oneOf, printJson, referenceArg, storeFrom, withConfigFlags, withPlatformFlag, type CommonFlags } from "./common.ts";
import { IMAGE_FLAG, type RecordFlags } from "./record.ts";
import { credentialOptions, withRegistryFlags, type RegistryFlags } from "./push.ts";

interface SbomFlags extends CommonFlags, RegistryFlags, RecordFlags {
  format: SbomFormat;
  output?: string;
  layout?: string;
  attach?: string;
}

export function sbomCommand(): Command {
  return withRegistryFlags(withPlatformFlag(withConfigFlags(new Command("sbom"))))
    .description("write a CycloneDX 1.6 or SPDX 2.3 JSON SBOM of the last build (purls and sha256 of every fetched package)")
    .option("-f, --format <format>", "cyclonedx or spdx", oneOf("cyclonedx", "spdx"), "cyclonedx")
    .option("-o, --output <file>", "write the SBOM here (default: stdout, unless --attach)")
    .option(...IMAGE_FLAG)
    .option("--layout <dir>", "the image in this OCI layout (its build record must be in the store)")
    .option("--attach <ref>", "attach the SBOM to the image pushed to this registry repository (registry/repo[:tag]) as an OCI artifact", referenceArg("--attach"))
    .action(async (flags: SbomFlags) => {
      const format = flags.format;
      const log = loggerFrom(flags);
      const store = storeFrom(flags, { existing: true });
      const rec = await findBuildRecord(store, flags);
      const model = await loadImageModel(store, rec);
      const created = (JSON.parse(rec.config) as ImageConfigFile).created;
      const text = renderSbom(model, format, created);
      const count = sbomPackages(model).length;
      if (flags.output) {
        const file = path.resolve(flags.output);
        await writeFileAtomic(file, text);
        if (flags.json && !flags.attach) printJson({ file, format, packages: count, image: model.image, manifestDigest: rec.manifestDigest });
        else log.info(`wrote ${flags.output}: ${format}, ${count} packages`);
      } else if (!flags.attach) {
        process.stdout.write(text);
      }
      if (!flags.attach) return;
      const ref = parseReference(flags.attach, "--attach");
      const found = await findCredentials(ref.registry, await credentialOptions(flags));
      const client = new RegistryClient({ registry: ref.registry, credential: found.credential, insecure: flags.insecure?.includes(ref.registry), logger: log });
      try {
        client.addScope(client.pushScope(ref.repository));
        const subject = await subjectDescriptor(client, ref.repository, rec.manifestDigest);
        const mediaType = format === "spdx" ? MEDIA_SPDX : MEDIA_CYCLONEDX;
        const res = await attachArtifact(client, ref.repository, subject, {
          artifactType: mediaType,
          data: Buffer.from(text),
          title: format === "spdx" ? "sbom.spdx.json" : "sbom.cdx.json",
          annotations: { [ANNOTATION.created]: (JSON.parse(text) as { metadata?: { timestamp?: string }; creationInfo?: { created?: string } }).metadata?.timestamp ?? (JSON.parse(text) as { creationInfo?: { created?: string } }).creationInfo?.created ?? "" },
        });
        const where = formatReference({ registry: ref.registry, repository: ref.repository, digest: res.digest });
        if (flags.json) printJson({ ...res, reference: where, format, packages: count });
        else log.info(`attached ${format} SBOM ${where} to ${rec.manifestDigest.slice(0, 19)}${res.referrersApi ? " (referrers API)" : ` (no referrers API: listed in tag ${res.fallbackTag})`}`);
      } finally {
        await client.close();
      }
    });
}
