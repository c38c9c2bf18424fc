// A SourceContext for driving the python kind directly, with a temp store.
import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Store } from "../../../src/store/store.ts";
import { silentLogger, type Logger } from "../../../src/util/log.ts";
import type { InstallContext, LockedPackage } from "../../../src/sources/types.ts";
import type { ImageDefinition } from "../../../src/config/schema.ts";

export async function makeCtx(opts: { layers: string[]; store?: Store; locked?: LockedPackage[]; frozen?: boolean; log?: Logger; update?: string[]; configDir?: string }): Promise<InstallContext> {
  const store = opts.store ?? new Store(await mkdtemp(path.join(os.tmpdir(), "lf-pystore-")));
  const image = { name: "t", tag: "latest", platform: "linux/amd64", layers: opts.layers.map((name) => ({ name })), config: {}, compression: "zstd", layerSizeLimit: 1e10, maxLayers: 127, conflicts: {}, annotations: {} } as unknown as ImageDefinition;
  return {
    store,
    image,
    configDir: opts.configDir ?? process.cwd(),
    platform: { os: "linux", architecture: "amd64" },
    log: opts.log ?? silentLogger,
    locked: opts.locked ?? [],
    frozen: opts.frozen ?? false,
    update: opts.update ?? [],
    overrides: {},
    sourceDateEpoch: 0,
    treeOf: () => undefined,
  };
}
