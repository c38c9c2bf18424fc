// The packages a command line names (--update NAME, --override NAME=DIR) must be in the
// image: a typo would otherwise change nothing and exit 0.

import { UsageError } from "../errors.ts";
import type { LockedPackage, SourceKind } from "../sources/types.ts";
import { nearest, normalizeName } from "../util/names.ts";

/** NAME or KIND:NAME, as the flags take them (py:Pillow, deb:libc6, file:app, git:comfyui). */
const names = (p: LockedPackage, name: string) => p.id === name || normalizeName(p.name) === normalizeName(name.replace(/^[a-z]+:/, ""));

const didYouMean = (name: string, among: LockedPackage[]): string => {
  const near = nearest(normalizeName(name.replace(/^[a-z]+:/, "")), among.map((p) => normalizeName(p.name)));
  const p = near && among.find((q) => normalizeName(q.name) === near);
  return p ? `; did you mean ${p.id}?` : "";
};

/** Throw a usage error for an --update or --override name that no package of the resolution answers to. */
export function checkNamedPackages(packages: Iterable<LockedPackage>, kinds: SourceKind[], named: { update?: string[]; overrides?: Record<string, string> }): void {
  const all = [...packages];
  for (const u of named.update ?? []) {
    if (!all.some((p) => names(p, u))) throw new UsageError(`--update ${u}: no package of that name in the image (${all.length} packages)${didYouMean(u, all)}`);
  }
  const overridable = kinds.filter((k) => k.acceptsOverrides);
  const which = overridable.map((k) => k.layerKey).join(", ");
  for (const [name, dir] of Object.entries(named.overrides ?? {})) {
    const found = all.filter((p) => names(p, name));
    if (found.some((p) => overridable.some((k) => k.kind === p.kind))) continue;
    if (found.length) throw new UsageError(`--override ${name}=${dir}: ${found[0]!.id} cannot be replaced by a local directory; overrides are for ${which} packages`);
    const candidates = all.filter((p) => overridable.some((k) => k.kind === p.kind));
    throw new UsageError(`--override ${name}=${dir}: no package named "${name}" in the image takes an override (${which} packages do)${didYouMean(name, candidates)}`);
  }
}
