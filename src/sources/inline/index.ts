// Inline files: text the config writes itself, e.g. an entrypoint script.

import { z } from "zod";
import { sha256Hex } from "../../util/hash.ts";
import type { SourceKind } from "../types.ts";

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
  local: true,
  layerSchema: z.array(inlineSpecSchema),
  async resolve(specs) {
    const packages = specs.flatMap((layer) =>
      (layer ?? []).map((spec) => ({
        id: `inline:${spec.path}`,
        kind: "inline",
        name: spec.path,
        version: sha256Hex(JSON.stringify([spec.text, spec.mode, spec.uid, spec.gid])).slice(0, 16),
        deps: [],
        meta: { spec },
      })),
    );
    return { packages, roots: specs.map((layer) => (layer ?? []).map((s) => `inline:${s.path}`)) };
  },
  installKey: (pkg) => JSON.stringify(pkg.meta ?? {}),
  async install(pkg, tree) {
    const spec = (pkg.meta as { spec: InlineSpec }).spec;
    await tree.addFile(spec.path, spec.text, { mode: spec.mode, uid: spec.uid, gid: spec.gid });
  },
};
