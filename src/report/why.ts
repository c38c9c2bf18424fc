// `layerfold why NAME`: where a package lives and which roots pulled it in.
// The chain comes from the fold's "via" links (each package remembers the
// package that first reached it while its layer's closure was computed), so
// it is exactly the path that decided the package's layer.

import { NotFoundError } from "../errors.ts";
import { editDistance, normalizeName } from "../util/names.ts";

export { normalizeName };
import type { ImageModel, ModelPackage } from "./model.ts";

export interface WhyMatch {
  id: string;
  version: string;
  layer: string;
  /** 1-based position of the layer in the image. */
  layerIndex: number;
  /** Root of the layer first, the package last. */
  chain: Array<{ id: string; version: string }>;
  /** Packages in the image that depend on this one (from the lock). */
  neededBy: string[];
  bytes?: number;
}


/** Up to `limit` package ids whose names are close to the query (edit distance or substring). */
export function closeNames(query: string, ids: string[], limit = 5): string[] {
  const q = normalizeName(query.includes(":") ? query.slice(query.indexOf(":") + 1) : query);
  const scored = ids.map((id) => {
    const name = normalizeName(id.slice(id.indexOf(":") + 1));
    let score = editDistance(q, name);
    if (q.length >= 3 && (name.includes(q) || q.includes(name))) score = Math.min(score, 1 + Math.abs(name.length - q.length) / 10);
    return { id, score };
  });
  const max = Math.max(2, Math.floor(q.length / 3));
  return scored
    .filter((s) => s.score <= max)
    .sort((a, b) => a.score - b.score || (a.id < b.id ? -1 : 1))
    .slice(0, limit)
    .map((s) => s.id);
}

/** Packages matching NAME: a full id ("deb:libc6"), or a name in any kind ("libc6", "Pillow"). */
export function findPackages(model: ImageModel, query: string): ModelPackage[] {
  const exact = model.packages.filter((p) => p.id === query);
  if (exact.length) return exact;
  const colon = query.indexOf(":");
  const kind = colon > 0 ? query.slice(0, colon) : undefined;
  const name = normalizeName(colon > 0 ? query.slice(colon + 1) : query);
  return model.packages.filter((p) => (!kind || p.kind === kind) && (normalizeName(p.name) === name || normalizeName(p.id.slice(p.id.indexOf(":") + 1)) === name));
}

export function why(model: ImageModel, query: string): WhyMatch[] {
  const found = findPackages(model, query);
  if (found.length === 0) {
    const close = closeNames(query, model.packages.map((p) => p.id));
    throw new NotFoundError(
      `no package ${JSON.stringify(query)} in ${model.image} (${model.packages.length} packages)` +
        (close.length ? `; did you mean ${close.join(", ")}?` : "; add it to a layer in the config, or check the spelling with `layerfold inspect`"),
    );
  }
  const byId = new Map(model.packages.map((p) => [p.id, p]));
  const layerIndex = new Map(model.layers.map((l, i) => [l.name, i + 1]));
  return found.map((p) => {
    const chain: WhyMatch["chain"] = [];
    const seen = new Set<string>();
    for (let cur: ModelPackage | undefined = p; cur && !seen.has(cur.id); cur = cur.via ? byId.get(cur.via) : undefined) {
      seen.add(cur.id);
      chain.unshift({ id: cur.id, version: cur.version });
    }
    const neededBy = model.packages.filter((q) => q.deps.includes(p.id)).map((q) => q.id);
    return { id: p.id, version: p.version, layer: p.layer, layerIndex: layerIndex.get(p.layer) ?? 0, chain, neededBy, ...(p.bytes !== undefined ? { bytes: p.bytes } : {}) };
  });
}

export interface WhyFileMatch extends WhyMatch {
  /** The image path asked about, as stored (no leading slash). */
  path: string;
  type: string;
}

/** "libgomp.so.1" -> "libgomp", "python3.11" -> "python3": what a differently versioned file shares. */
const stemOf = (name: string): string => name.replace(/\.so(\.\d+)*$/, "").replace(/[-.]?\d+(\.\d+)*$/, (m) => (m === name ? m : ""));

/** Merged /usr: /lib/x, /bin/x, /sbin/x and /lib64/x live under usr/ in the image. */
function pathForms(p: string): string[] {
  const rel = p.replace(/^\/+/, "").replace(/\/+$/, "");
  const forms = [rel];
  if (/^(lib|lib32|lib64|libx32|bin|sbin)\//.test(rel)) forms.push(`usr/${rel}`);
  return forms;
}

/**
 * `layerfold why /path/in/image`: which package ships a file (the usual
 * question when something is missing at runtime), then its layer and chain.
 * `entriesOf` gives each package's tree entries (from the store).
 */
export async function whyPath(
  model: ImageModel,
  query: string,
  entriesOf: (id: string) => Promise<Array<{ path: string; type: string }> | undefined>,
): Promise<WhyFileMatch[]> {
  const forms = new Set(pathForms(query));
  const base = query.replace(/\/+$/, "").slice(query.replace(/\/+$/, "").lastIndexOf("/") + 1);
  const stem = stemOf(base);
  const found: WhyFileMatch[] = [];
  const similar: string[] = [];
  for (const p of model.packages) {
    const entries = await entriesOf(p.id);
    for (const e of entries ?? []) {
      if (forms.has(e.path)) {
        const [m] = why(model, p.id);
        found.push({ ...m!, path: e.path, type: e.type });
      } else if (e.type !== "dir" && stem.length >= 3 && similar.length < 200) {
        const b = e.path.slice(e.path.lastIndexOf("/") + 1);
        if (b.startsWith(base) || stemOf(b) === stem) similar.push(`/${e.path} (${p.id})`);
      }
    }
  }
  if (found.length === 0) {
    const close = [...new Set(similar)].sort().slice(0, 8);
    throw new NotFoundError(
      `no package in ${model.image} ships ${query}` +
        (close.length ? `; files with a similar name: ${close.join(", ")}` : "; add the package that provides it to a layer (for Debian, `apt-file search` or packages.debian.org tell which one)"),
    );
  }
  return found;
}
