// layerfold push [REF]: publish the last build of the config (its build
// record and store blobs) or an OCI layout (--from DIR) to a registry.

import { Command } from "commander";
import { localImages, type LocalImageSelector } from "../catalog/image.ts";
import { UsageError } from "../errors.ts";
import { RegistryClient } from "../registry/client.ts";
import { findCredentials, type CredentialOptions } from "../registry/credentials.ts";
import { pushImages, DEFAULT_CHUNK_SIZE } from "../registry/push.ts";
import { parseReference, formatReference } from "../registry/reference.ts";
import { collect, loggerFrom, nonNegativeNumber, positiveInt, printJson, referenceArg, storeFrom, withConfigFlags, withPlatformFlag, type CommonFlags } from "./common.ts";

export interface RegistryFlags {
  username?: string;
  passwordStdin?: boolean;
  insecure?: string[];
  ghcr?: boolean;
}

export interface LocalImageFlags extends CommonFlags, LocalImageSelector {}

/** Flags shared by push and pull. */
export function withRegistryFlags(cmd: Command): Command {
  return cmd
    .option("-u, --username <user>", "registry user (else LAYERFOLD_REGISTRY_USER, docker config, GITHUB_TOKEN for ghcr.io)")
    .option("--password-stdin", "read the registry password or token from stdin")
    .option("--insecure <registry>", "allow plain HTTP to this registry (loopback always may; repeatable)", collect);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
}

export async function credentialOptions(flags: RegistryFlags): Promise<CredentialOptions> {
  const password = flags.passwordStdin ? await readStdin() : undefined;
  if (flags.passwordStdin && !flags.username) throw new UsageError("--password-stdin needs --username");
  return { username: flags.username, password, ghcr: flags.ghcr };
}

interface PushFlags extends LocalImageFlags, RegistryFlags {
  concurrency: number;
  chunkSize: number;
  monolithic?: boolean;
}

/** ghcr.io/<owner>/<name>:<tag> from GITHUB_REPOSITORY_OWNER, like the seed's push-ghcr. */
export function ghcrReference(name: string, tag: string, env: NodeJS.ProcessEnv = process.env): string {
  const owner = env.GITHUB_REPOSITORY_OWNER;
  if (!owner) throw new UsageError("--ghcr: GITHUB_REPOSITORY_OWNER is not set (GitHub Actions sets it); or give the reference: layerfold push ghcr.io/OWNER/NAME:TAG");
  const base = name.includes("/") ? name.slice(name.lastIndexOf("/") + 1) : name;
  return `ghcr.io/${owner.toLowerCase()}/${base}:${tag}`;
}

export function pushCommand(): Command {
  return withRegistryFlags(withPlatformFlag(withConfigFlags(new Command("push"))))
    .description("push the last build (or an OCI layout) to a registry; only blobs the registry lacks are sent")
    .argument("[ref]", "registry/repository[:tag]; default with --ghcr: ghcr.io/$GITHUB_REPOSITORY_OWNER/NAME:TAG", referenceArg("push target"))
    .option("--from <dir>", "push the image(s) in this OCI layout instead of the last build")
    .option("--from-tag <tag>", "with --from: the tag (ref.name) to push; default all of index.json")
    .option("--ghcr", "push to GitHub's registry with GITHUB_TOKEN and GITHUB_REPOSITORY_OWNER")
    .option("--concurrency <n>", "blobs uploaded at once (blobs up to 1 MiB have a pool of this size of their own)", positiveInt, 4)
    .option("--chunk-size <MiB>", "upload in chunks of this many MiB (default 0: one streamed PATCH per blob; ghcr.io takes at most 4)", nonNegativeNumber, DEFAULT_CHUNK_SIZE / 1048576)
    .option("--monolithic", "upload each blob with a single PUT (for registries that want it)")
    .action(async (ref: string | undefined, flags: PushFlags) => {
      const log = loggerFrom(flags);
      // The target is checked before the image is read.
      if (!ref && !flags.ghcr) throw new UsageError("push: give a reference (e.g. registry.example/team/app:tag), or --ghcr");
      if (ref && parseReference(ref, "push target").digest) throw new UsageError(`push target ${ref}: give a tag, not a digest`);
      const store = storeFrom(flags);
      const images = await localImages(store, flags);
      const first = images[0]!;
      const target = ref ?? ghcrReference(first.name, first.tag);
      const r = parseReference(target, "push target");
      const tag = r.tag ?? first.tag;
      const found = await findCredentials(r.registry, await credentialOptions(flags));
      log.debug(`credentials for ${r.registry}: ${found.source}`);
      const client = new RegistryClient({ registry: r.registry, credential: found.credential, insecure: flags.insecure?.includes(r.registry), logger: log });
      try {
        log.info(`pushing ${first.name ? `${first.name}:${first.tag}` : `${flags.from} (${first.tag})`}${images.length > 1 ? ` (${images.length} platforms)` : ""} to ${formatReference({ ...r, tag })}`);
        const res = await pushImages(images, {
          client,
          repository: r.repository,
          tag,
          concurrency: flags.concurrency,
          chunkSize: Math.round(flags.chunkSize * 1048576),
          monolithic: flags.monolithic,
          logger: log,
          store,
        });
        if (flags.json) printJson(res);
      } finally {
        await client.close();
      }
    });
}
