// layerfold load: stream the last build (or an OCI layout) into a Docker
// engine as a docker-archive; `build --load` calls loadBuilt() after building.

import path from "node:path";
import { Command } from "commander";
import { loadImage, type LoadResult } from "../docker/load.ts";
import { UsageError } from "../errors.ts";
import type { BuiltImage } from "../oci/types.ts";
import type { Logger } from "../util/log.ts";
import { localImages } from "../catalog/image.ts";
import { loggerFrom, oneOf, printJson, storeFrom, withConfigFlags, withPlatformFlag } from "./common.ts";
import type { LocalImageFlags } from "./push.ts";

interface LoadFlags extends LocalImageFlags {
  tag?: string;
  dockerHost?: string;
  via?: "auto" | "api" | "cli";
}

/** What `build --load` calls with the image it just built. */
export function loadBuilt(image: BuiltImage, log: Logger): Promise<LoadResult> {
  return loadImage(image, { logger: log });
}

export function loadCommand(): Command {
  return withPlatformFlag(withConfigFlags(new Command("load")))
    .description("load the last build (or an OCI layout) into Docker: Engine API on DOCKER_HOST or the docker socket, else `docker load`")
    .option("--from <dir>", "load the image in this OCI layout instead of the last build")
    .option("--from-tag <tag>", "with --from: the tag (ref.name) to load")
    .option("-t, --tag <name[:tag]>", "name the loaded image (default: the build's name:tag, or the layout directory's name)")
    .option("--docker-host <url>", "engine socket, e.g. unix:///run/podman/podman.sock (default $DOCKER_HOST)")
    .option("--via <how>", "auto, api (Engine API only) or cli (pipe to docker load)", oneOf("auto", "api", "cli"), "auto")
    .action(async (flags: LoadFlags) => {
      const log = loggerFrom(flags);
      const images = await localImages(storeFrom(flags), flags);
      if (images.length !== 1) throw new UsageError(`${flags.from}: holds ${images.length} images; pick one with --from-tag (docker loads one platform)`);
      let image = images[0]!;
      if (flags.tag || !image.name) {
        const want = flags.tag ?? `layerfold/${path.basename(path.resolve(flags.from ?? ".")).toLowerCase().replace(/[^a-z0-9._-]+/g, "-")}`;
        const colon = want.lastIndexOf(":");
        const [name, tag] = colon > want.lastIndexOf("/") ? [want.slice(0, colon), want.slice(colon + 1)] : [want, image.tag];
        image = { ...image, name, tag };
      }
      const res = await loadImage(image, { dockerHost: flags.dockerHost, via: flags.via, logger: log });
      if (flags.json) printJson(res);
    });
}
