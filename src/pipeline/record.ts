// Step: record. The build record (src/catalog) that inspect, push, run, why and
// gc read back without rebuilding.

import { writeBuildRecord } from "../catalog/records.ts";
import { droppedRequirements, type PythonOptions } from "../sources/python/index.ts";
import type { BuildResult } from "./build.ts";
import type { Installer } from "./install.ts";
import type { Store } from "../store/store.ts";

export async function recordBuild(store: Store, r: BuildResult, installer: Installer): Promise<void> {
  await writeBuildRecord(store, {
    image: r.image,
    configFile: r.config.file,
    layers: r.layers,
    treeKeys: installer.treeKeys,
    droppedLayers: r.droppedLayers,
    packages: [...r.fold.layerOf].map(([id, layer]) => {
      const p = r.resolution.packages.get(id)!;
      return { id, version: p.version, layer, via: r.fold.via.get(id), ...(p.artifact ? { artifact: p.artifact } : {}) };
    }),
    conflicts: r.config.image.conflicts,
    from: r.config.image.from,
    pythonDrop: pythonDropOf(r.config.image),
  });
}

/** python.drop as the record keeps it (name -> reason, "" for none). */
function pythonDropOf(image: object): Record<string, string> | undefined {
  const python = (image as { python?: Pick<PythonOptions, "drop"> }).python;
  if (!python?.drop) return undefined;
  return Object.fromEntries([...droppedRequirements(python)].map(([n, why]) => [n, why ?? ""]));
}
