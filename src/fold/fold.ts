// Folding: layer i holds the dependency closure of its own roots minus every
// package already in layers 0..i-1. Computed directly in one pass over the
// graph (O(packages + edges)), not as a chain of nested layers, so a package
// lands in exactly one layer and a layer's content depends only on the layers
// before it.

import { ResolveError } from "../errors.ts";

export interface FoldLayerInput {
  name: string;
  /** Package ids this layer names itself. */
  roots: string[];
}

export interface FoldedLayer {
  name: string;
  /** Position in the config's layer list. */
  index: number;
  roots: string[];
  /** Sorted package ids that live in this layer. */
  packages: string[];
}

export interface FoldResult {
  layers: FoldedLayer[];
  /** Names of layers left empty (everything already below); dropped from the image. */
  dropped: string[];
  /** For each package, the package that pulled it in (undefined for a root). Used by `why`. */
  via: Map<string, string | undefined>;
  /** Package id -> layer name. */
  layerOf: Map<string, string>;
}

export function fold(layers: FoldLayerInput[], depsOf: (id: string) => readonly string[] | undefined): FoldResult {
  const layerOf = new Map<string, string>();
  const via = new Map<string, string | undefined>();
  const out: FoldedLayer[] = [];
  const dropped: string[] = [];
  layers.forEach((layer, index) => {
    const mine: string[] = [];
    const queue: string[] = [];
    for (const root of [...new Set(layer.roots)].sort()) {
      if (layerOf.has(root)) continue; // named earlier: it stays in the first layer
      if (depsOf(root) === undefined) throw new ResolveError(`layer ${layer.name}: root ${root} was not resolved; this is a bug in its source kind`);
      layerOf.set(root, layer.name);
      via.set(root, undefined);
      mine.push(root);
      queue.push(root);
    }
    for (let head = 0; head < queue.length; head++) {
      const id = queue[head]!;
      for (const dep of [...(depsOf(id) ?? [])].sort()) {
        if (layerOf.has(dep)) continue;
        if (depsOf(dep) === undefined) {
          throw new ResolveError(`${id} depends on ${dep}, which no source resolved; add it to a layer or drop the dependency in the config`);
        }
        layerOf.set(dep, layer.name);
        via.set(dep, id);
        mine.push(dep);
        queue.push(dep);
      }
    }
    if (mine.length === 0) dropped.push(layer.name);
    else out.push({ name: layer.name, index, roots: [...new Set(layer.roots)].sort(), packages: mine.sort() });
  });
  return { layers: out, dropped, via, layerOf };
}

/** The chain root -> ... -> id that pulled a package into its layer. */
export function chainOf(result: FoldResult, id: string): string[] {
  const chain: string[] = [];
  let cur: string | undefined = id;
  const seen = new Set<string>();
  while (cur !== undefined && !seen.has(cur)) {
    seen.add(cur);
    chain.unshift(cur);
    cur = result.via.get(cur);
  }
  return chain;
}
