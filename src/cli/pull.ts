// layerfold pull REF DIR: one platform of a remote image into an OCI layout.

import { Command } from "commander";
import { RegistryClient } from "../registry/client.ts";
import { findCredentials } from "../registry/credentials.ts";
import { pullImage } from "../registry/pull.ts";
import { parseReference } from "../registry/reference.ts";
import { loggerFrom, referenceArg, platformFlag, positiveInt, printJson, storeFrom, type CommonFlags } from "./common.ts";
import { credentialOptions, withRegistryFlags, type RegistryFlags } from "./push.ts";

interface PullFlags extends CommonFlags, RegistryFlags {
  platform?: string;
  concurrency: number;
}

export function pullCommand(): Command {
  return withRegistryFlags(new Command("pull"))
    .description("pull an image from a registry into an OCI layout directory (digests verified)")
    .argument("<ref>", "registry/repository[:tag][@sha256:...]", referenceArg("pull source"))
    .argument("<dir>", "OCI layout directory to write (replaced when complete)")
    .option("--platform <os/arch>", "platform to pick from a multi-platform image", platformFlag, "linux/amd64")
    .option("--concurrency <n>", "blobs downloaded at once", positiveInt, 4)
    .option("--store <dir>", "keep pulled blobs in this store (default $LAYERFOLD_STORE or $XDG_CACHE_HOME/layerfold): a failed pull keeps its completed layers")
    .option("--json", "machine-readable output on stdout")
    .option("--debug", "show debug output and stack traces")
    .option("-q, --quiet", "only errors")
    .action(async (ref: string, dir: string, flags: PullFlags) => {
      const log = loggerFrom(flags);
      const r = parseReference(ref);
      const found = await findCredentials(r.registry, await credentialOptions(flags));
      log.debug(`credentials for ${r.registry}: ${found.source}`);
      const client = new RegistryClient({ registry: r.registry, credential: found.credential, insecure: flags.insecure?.includes(r.registry), logger: log });
      try {
        const res = await pullImage(ref, dir, { client, platform: flags.platform, concurrency: flags.concurrency, logger: log, store: storeFrom(flags) });
        if (flags.json) printJson({ ...res, dir });
      } finally {
        await client.close();
      }
    });
}
