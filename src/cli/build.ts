import { Command } from "commander";
import { layerSummary } from "../catalog/records.ts";
import { build, type BuildResult } from "../pipeline/build.ts";
import { LayerCache } from "../cache/layer-cache.ts";
import { COMPRESSIONS, type LayerCompression } from "../constants.ts";
import { formatBytes } from "../util/log.ts";
import { checkLoadTarget } from "../docker/load.ts";
import { loadBuilt } from "./load.ts";
import { parseOutput } from "../pipeline/export.ts";
import { collect, flagValue, referenceArg, loggerFrom, oneOf, parseOverrides, platformFlag, positiveInt, printJson, storeFrom, withConfigFlags, type CommonFlags } from "./common.ts";

export interface BuildFlags extends CommonFlags {
  output?: string;
  frozen?: boolean;
  override?: string[];
  concurrency: number;
  compression?: LayerCompression;
  load?: boolean;
  cache?: string;
  platform?: string;
}

/** The summary `build --json` prints and `inspect --json` mirrors. */
export function buildSummary(r: BuildResult) {
  return {
    image: `${r.image.name}:${r.image.tag}`,
    manifestDigest: r.image.manifestDescriptor.digest,
    configDigest: r.image.configDescriptor.digest,
    output: r.output,
    lockChanged: r.lockChanged,
    droppedLayers: r.droppedLayers,
    layers: r.layers.map((l) => ({ ...layerSummary(l), seconds: Number(l.seconds.toFixed(3)) })),
    timings: Object.fromEntries(Object.entries(r.timings).map(([k, v]) => [k, Number(v.toFixed(3))])),
  };
}

/** -o is checked before any work: a typo must not cost a whole build. */
export const outputSpec = flagValue((v) => {
  if (v !== "none") parseOutput(v);
  return v;
});

export function buildCommand(): Command {
  return withConfigFlags(new Command("build"))
    .description("build the image of a layerfold.config.ts")
    .option("-o, --output <spec>", "oci:DIR (default ./out/NAME next to the config), oci-archive:FILE, docker-archive:FILE, or none", outputSpec)
    .option("--frozen", "use layerfold.lock as it is; fail if it is missing or out of date")
    .option("--override <name=dir>", "use a local directory instead of a source (repeatable)", collect)
    .option("--concurrency <n>", "packages installed at once", positiveInt, 2)
    .option("--compression <kind>", "layer compression: zstd, zstd:chunked (partial pulls: podman, CRI-O), gzip or none (overrides the config)", oneOf(...COMPRESSIONS))
    .option("--cache <ref>", "shared layer cache in an OCI repository, e.g. ghcr.io/owner/app-cache: reuse layers other runners built, store the ones built here", referenceArg("--cache"))
    .option("--platform <os/arch>", "build for this platform (e.g. linux/arm64); overrides the config", platformFlag)
    .option("--load", "then load the image into Docker (Engine API on DOCKER_HOST or the docker socket, else docker load)")
    .action(async (flags: BuildFlags) => {
      const log = loggerFrom(flags);
      const overrides = parseOverrides(flags.override);
      if (flags.load) await checkLoadTarget(); // not after a long build
      const store = storeFrom(flags);
      const cache = flags.cache ? await LayerCache.open(flags.cache, { store, log }) : undefined;
      const r = await build({
        dir: flags.dir,
        file: flags.config,
        store,
        cache,
        platform: flags.platform,
        output: flags.output,
        frozen: flags.frozen,
        overrides,
        concurrency: flags.concurrency,
        compression: flags.compression,
        log,
      });
      if (flags.load) await loadBuilt(r.image, log);
      if (flags.json) return printJson(buildSummary(r));
      const built = r.layers.filter((l) => !l.reused).length;
      const total = r.layers.reduce((n, l) => n + l.size, 0);
      log.info(`${r.image.name}:${r.image.tag} ${r.image.manifestDescriptor.digest}`);
      log.info(`${r.layers.length} layers (${built} built, ${r.layers.length - built} reused), ${formatBytes(total)} compressed`);
    });
}
