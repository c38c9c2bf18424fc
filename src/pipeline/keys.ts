// The store and cache keys a build computes before doing any work: they hash
// everything the keyed thing's bytes depend on, so an unchanged key means the
// stored tree or layer can be taken as it is.

import type { ImageDefinition } from "../config/schema.ts";
import { compressorId, type LayerCompression } from "../layer/compress.ts";
import { LAYER_FORMAT } from "../layer/layer.ts";
import type { InstallContext, LockedPackage, SourceKind } from "../sources/types.ts";
import { sha256Hex } from "../util/hash.ts";
import { stableJson } from "../util/json.ts";

/** Bump when install output changes for the same inputs. */
export const INSTALL_FORMAT = 1;

/** Bump when the cache key's recipe changes. */
export const CACHE_FORMAT = 1;

/** An installed package tree's key: its locked identity, the kind's code version and install inputs. */
export async function treeKeyOf(kind: SourceKind, pkg: LockedPackage, options: unknown, ctx: InstallContext): Promise<string> {
  const extra = kind.installKey ? await kind.installKey(pkg, options, ctx) : "";
  return sha256Hex(stableJson({ format: INSTALL_FORMAT, code: kind.version ?? null, id: pkg.id, version: pkg.version, sha256: pkg.artifact?.sha256 ?? null, meta: pkg.meta ?? null, extra }));
}

/** A generated tree's key (dpkg status, users, ld.so.cache): the kind's whole package set, its options and the image config. */
export function generatedKeyOf(kind: SourceKind, id: string, mine: LockedPackage[], options: unknown, image: ImageDefinition): string {
  return sha256Hex(stableJson({ format: INSTALL_FORMAT, code: kind.version ?? null, id, packages: mine.map((p) => [p.id, p.version, p.artifact?.sha256 ?? null]), options: options ?? null, image: image.config }));
}

/**
 * A layer's key in the shared cache, from the lock alone (tree keys), so the cache can
 * be asked before anything is installed. Lower layers decide conflicts and directory
 * metadata here, so their trees are part of it; so is the tar format and zstd framing.
 */
export function cacheKeyOf(
  own: readonly string[],
  lower: readonly string[],
  o: { compression: LayerCompression; level?: number; epoch: number; conflicts: Record<string, string>; limit: number },
): string {
  return sha256Hex(stableJson({
    format: CACHE_FORMAT,
    layerFormat: LAYER_FORMAT,
    own: [...own].sort(),
    lower: sha256Hex([...lower].sort().join("\n")),
    compressor: compressorId(o.compression, o.level),
    epoch: o.epoch,
    conflicts: o.conflicts,
    limit: o.limit,
  }));
}
