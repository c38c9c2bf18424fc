// Step 1: the config, with the command line's overrides, and the base image
// (`from`) pulled at once, so a mistyped reference fails before any install.

import { loadConfig, type LoadedConfig } from "../config/load.ts";
import { COMPRESSIONS, PLATFORM_RE, type LayerCompression } from "../constants.ts";
import { ConfigError } from "../errors.ts";
import type { ImageDefinition } from "../config/schema.ts";
import { loadBaseImage, type BaseImage } from "../registry/base.ts";
import type { SourceKind } from "../sources/types.ts";
import type { Logger } from "../util/log.ts";

export interface ConfigOverrides {
  dir?: string;
  file?: string;
  platform?: string;
  compression?: LayerCompression;
}

export async function loadBuildConfig(o: ConfigOverrides, kinds: SourceKind[]): Promise<LoadedConfig> {
  const cfg = await loadConfig({ dir: o.dir, file: o.file }, kinds);
  if (o.platform) {
    if (!PLATFORM_RE.test(o.platform)) throw new ConfigError(`--platform ${JSON.stringify(o.platform)} must look like linux/amd64 or linux/arm64`);
    cfg.image.platform = o.platform;
  }
  if (o.compression) {
    if (!(COMPRESSIONS as readonly string[]).includes(o.compression)) throw new ConfigError(`compression ${JSON.stringify(o.compression)} is not one of ${COMPRESSIONS.join(", ")}`);
    cfg.image.compression = o.compression;
  }
  return cfg;
}

/** The base image's manifest and config, pulled and verified (its layers stay by reference); undefined without `from`. */
export function pullBase(image: ImageDefinition, log: Logger): Promise<BaseImage | undefined> {
  if (!image.from) return Promise.resolve(undefined);
  const from = image.from;
  const pulled = loadBaseImage(from, { platform: image.platform, logger: log }).then((base) => {
    log.info(`base ${from}: ${base.layers.length} layers (${base.manifestDigest})`);
    return base;
  });
  pulled.catch(() => {}); // awaited with the resolve; a failure is reported there, not as unhandled
  return pulled;
}
