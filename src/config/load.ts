// Loads layerfold.config.ts (or .mts/.js/.mjs) with jiti, so TypeScript
// configs need no build step, then validates it. Errors name file and field.

import { existsSync, statSync } from "node:fs";
import path from "node:path";
import { createJiti } from "jiti";
import type { z } from "zod";
import { ConfigError } from "../errors.ts";
import { imageDefinitionSchema, type ImageDefinition } from "./schema.ts";
import type { SourceKind } from "../sources/types.ts";

export const CONFIG_NAMES = ["layerfold.config.ts", "layerfold.config.mts", "layerfold.config.js", "layerfold.config.mjs"];

export interface LoadedConfig {
  file: string;
  dir: string;
  image: ImageDefinition;
}

export function findConfig(opts: { dir?: string; file?: string }): string {
  if (opts.file) {
    const f = path.resolve(opts.file);
    if (!existsSync(f)) throw new ConfigError(`config file ${f} does not exist; pass an existing file with -c, or a directory holding ${CONFIG_NAMES[0]} with -C`);
    return f;
  }
  const dir = path.resolve(opts.dir ?? ".");
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new ConfigError(`config directory ${dir} does not exist; pass an existing directory with -C`);
  for (const name of CONFIG_NAMES) {
    const f = path.join(dir, name);
    if (existsSync(f)) return f;
  }
  throw new ConfigError(`no ${CONFIG_NAMES[0]} in ${dir}; create one (see examples/) or point at one with -c FILE or -C DIR`);
}

function formatIssues(file: string, issues: z.ZodIssue[], prefix: (string | number)[] = []): string {
  const lines = issues.slice(0, 10).map((i) => {
    const p = [...prefix, ...i.path].map((k) => (typeof k === "number" ? `[${k}]` : `.${k}`)).join("").replace(/^\./, "");
    return `  ${p || "(root)"}: ${i.message}`;
  });
  return `${file}: invalid image definition\n${lines.join("\n")}`;
}

/** Validate the core fields, then each source kind's layer keys and image options. */
export function validateImage(raw: unknown, file: string, sources: SourceKind[]): ImageDefinition {
  const base = imageDefinitionSchema.safeParse(raw);
  if (!base.success) throw new ConfigError(formatIssues(file, base.error.issues));
  const image = base.data;
  const known = new Set(["name", "description", ...sources.map((s) => s.layerKey)]);
  image.layers.forEach((layer, i) => {
    for (const key of Object.keys(layer)) {
      if (!known.has(key)) {
        throw new ConfigError(`${file}: layers[${i}] (${layer.name}) has an unknown key "${key}"; known keys: ${[...known].join(", ")}`);
      }
    }
    for (const src of sources) {
      const spec = (layer as Record<string, unknown>)[src.layerKey];
      if (spec === undefined) continue;
      const r = src.layerSchema.safeParse(spec);
      if (!r.success) throw new ConfigError(formatIssues(file, r.error.issues, ["layers", i, src.layerKey]));
      (layer as Record<string, unknown>)[src.layerKey] = r.data;
    }
  });
  const names = new Set<string>();
  for (const l of image.layers) {
    if (names.has(l.name)) throw new ConfigError(`${file}: two layers are named "${l.name}"; layer names must be unique`);
    names.add(l.name);
  }
  for (const src of sources) {
    const opts = (image as Record<string, unknown>)[src.layerKey];
    if (opts === undefined || !src.optionsSchema) continue;
    const r = src.optionsSchema.safeParse(opts);
    if (!r.success) throw new ConfigError(formatIssues(file, r.error.issues, [src.layerKey]));
    (image as Record<string, unknown>)[src.layerKey] = r.data;
  }
  return image;
}

export async function loadConfig(opts: { dir?: string; file?: string }, sources: SourceKind[]): Promise<LoadedConfig> {
  const file = findConfig(opts);
  // tryNative: under the CLI, tsx already loads TypeScript natively, so the library a config imports is not transpiled twice.
  const jiti = createJiti(import.meta.url, { moduleCache: false, fsCache: false, tryNative: true });
  let mod: unknown;
  try {
    mod = await jiti.import(file);
  } catch (err) {
    throw new ConfigError(`${file}: failed to load: ${(err as Error).message}`, { cause: err });
  }
  let raw = (mod as { default?: unknown }).default ?? mod;
  if (typeof raw === "function") raw = await (raw as () => unknown)();
  if (!raw || typeof raw !== "object") throw new ConfigError(`${file}: must export default defineImage({...})`);
  return { file, dir: path.dirname(file), image: validateImage(raw, file, sources) };
}
