import { Command } from "commander";
import { RegistryClient } from "../registry/client.ts";
import { findCredentials } from "../registry/credentials.ts";
import { mergeIndex } from "../registry/index-merge.ts";
import { parseReference } from "../registry/reference.ts";
import { loggerFrom, referenceArg, referencesArg, printJson, type CommonFlags } from "./common.ts";
import { credentialOptions, withRegistryFlags, type RegistryFlags } from "./push.ts";

export function indexCommand(): Command {
  const index = new Command("index").description("multi-platform image indexes");
  index.addCommand(
    withRegistryFlags(new Command("push"))
      .description("merge per-platform images (pushed by different runners) into one image index at REF")
      .argument("<ref>", "where the index goes, e.g. ghcr.io/owner/app:1.0", referenceArg("index target"))
      .argument("<images...>", "the per-platform images, e.g. ghcr.io/owner/app:1.0-amd64 ghcr.io/owner/app:1.0-arm64", referencesArg("index member"))
      .option("--json", "machine-readable output")
      .action(async (ref: string, images: string[], flags: RegistryFlags & CommonFlags) => {
        const log = loggerFrom(flags);
        const r = parseReference(ref, "index target");
        const found = await findCredentials(r.registry, await credentialOptions(flags));
        const client = new RegistryClient({ registry: r.registry, credential: found.credential, insecure: flags.insecure?.includes(r.registry), logger: log });
        try {
          const res = await mergeIndex(client, ref, images, log);
          if (flags.json) printJson(res);
          else log.info(`pushed index ${ref}@${res.digest} (${res.manifests.length} platforms)`);
        } finally {
          await client.close();
        }
      }),
  );
  return index;
}
