// Inline files: text the config writes itself, e.g. an entrypoint script.

import { z } from "zod";
import { sha256Hex } from "../../util/hash.ts";
import { PathConflictError } from "../../errors.ts";
import type { LockedPackage, SourceKind } from "../types.ts";

const octal = (mode: number) => `0${mode.toString(8)}`;

export const inlineSpecSchema = z
  .object({
    path: z.string().startsWith("/", "must be an absolute image path"),
    text: z.string(),
    mode: z.number().int().min(0).max(0o7777).default(0o644),
    uid: z.number().int().min(0).default(0),
    gid: z.number().int().min(0).default(0),
  })
  .strict();

export type InlineSpec = z.infer<typeof inlineSpecSchema>;

export const inlineSource: SourceKind<InlineSpec[], undefined> = {
  kind: "inline",
  layerKey: "inline",
  sbomPurpose: "none",
  local: true,
  layerSchema: z.array(inlineSpecSchema),
  async resolve(specs, _opts, ctx) {
    // One package per path. The same spec in two layers is one file (it lives in the first);
    // different ones at one path are a conflict, said with the layers (inline specs have no name).
    const byPath = new Map<string, { pkg: LockedPackage; layer: string }>();
    specs.forEach((layerSpecs, i) => {
      const layer = ctx.image.layers[i]?.name ?? String(i);
      for (const spec of layerSpecs ?? []) {
        const pkg: LockedPackage = {
          id: `inline:${spec.path}`,
          kind: "inline",
          name: spec.path,
          version: sha256Hex(JSON.stringify([spec.text, spec.mode, spec.uid, spec.gid])).slice(0, 16),
          deps: [],
          meta: { spec },
        };
        const prev = byPath.get(spec.path);
        if (!prev) byPath.set(spec.path, { pkg, layer });
        else if (prev.pkg.version !== pkg.version) {
          const was = (prev.pkg.meta as { spec: InlineSpec }).spec;
          const differs = was.text !== spec.text ? "text" : was.mode !== spec.mode ? `mode (${octal(was.mode)} and ${octal(spec.mode)})` : "owner (uid/gid)";
          throw new PathConflictError(
            `${spec.path} is written inline in layer "${prev.layer}" and in layer "${layer}" with a different ${differs}; an image has one file at a path: keep one of them, or give them the same ${differs.split(" ")[0]}`,
          );
        }
      }
    });
    return { packages: [...byPath.values()].map((v) => v.pkg), roots: specs.map((layer) => (layer ?? []).map((s) => `inline:${s.path}`)) };
  },
  installKey: (pkg) => JSON.stringify(pkg.meta ?? {}),
  async install(pkg, tree) {
    const spec = (pkg.meta as { spec: InlineSpec }).spec;
    await tree.addFile(spec.path, spec.text, { mode: spec.mode, uid: spec.uid, gid: spec.gid });
  },
};
