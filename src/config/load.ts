// Loads layerfold.config.ts (or .mts/.js/.mjs), bundled by esbuild, so TypeScript
// configs need no build step, then validates it. Errors name file and field.

import { existsSync, readFileSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { readdir, readFile, writeFile, rm } from "node:fs/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Plugin } from "esbuild";
import type { z } from "zod";
import { ConfigError } from "../errors.ts";
import { userCacheHome, writeFileAtomic } from "../util/fs.ts";
import { sha256Hex } from "../util/hash.ts";
import { nearest } from "../util/names.ts";
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

const didYouMean = (key: string, known: Iterable<string>): string => {
  const near = nearest(key, known);
  return near ? ` (did you mean "${near}"?)` : "";
};

/** Validate the core fields, then each source kind's layer keys and image options. */
export function validateImage(raw: unknown, file: string, sources: SourceKind[]): ImageDefinition {
  const base = imageDefinitionSchema.safeParse(raw);
  if (!base.success) throw new ConfigError(formatIssues(file, base.error.issues));
  const image = base.data;
  // The schema lets source kinds' keys through (debian, python, ...); anything else is a typo.
  const knownTop = [...Object.keys(imageDefinitionSchema.shape), ...sources.map((s) => s.layerKey)];
  for (const key of Object.keys(raw as object)) {
    if (!knownTop.includes(key)) throw new ConfigError(`${file}: unknown key "${key}"${didYouMean(key, knownTop)}; the image's keys are ${knownTop.join(", ")}`);
  }
  const known = new Set(["name", "description", ...sources.map((s) => s.layerKey)]);
  image.layers.forEach((layer, i) => {
    for (const key of Object.keys(layer)) {
      if (!known.has(key)) {
        throw new ConfigError(`${file}: layers[${i}] (${layer.name}) has an unknown key "${key}"${didYouMean(key, known)}; known keys: ${[...known].join(", ")}`);
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

/**
 * layerfold's own modules are imported, not bundled: the running process has them loaded
 * already, and a config then gets the same classes and schemas the CLI validates with.
 * From the sources (tsx, or the checkout's bundle) this file is src/config/load.ts; from
 * the built package it is inside dist/layerfold.js, which is the whole public API.
 */
const self = fileURLToPath(import.meta.url);
const fromSources = self.endsWith(".ts");
const librarySrc = path.dirname(path.dirname(self));

/**
 * Set by bin/cli-bundle.mjs when the CLI runs from the checkout's cached bundle: no TypeScript
 * loader is registered then, so the public API (src/index.ts) comes from that bundle, and any
 * other library file a config imports is bundled into the config.
 */
const cliBundleUrl = (): string | undefined => (globalThis as Record<symbol, string | undefined>)[Symbol.for("layerfold.cliBundleUrl")];

/** The running copy's public API, which a config's `import ... from "layerfold"` gets wherever it is (no node_modules needed). */
const publicApiUrl = (): string => cliBundleUrl() ?? (fromSources ? pathToFileURL(path.join(librarySrc, "index.ts")).href : import.meta.url);

/**
 * Each file's own `import.meta.url` (and `.dirname`, `.filename`), not the bundle's: a config
 * finds files beside it, and so does a bundled package. A binding declared in each file that
 * uses them, so a string or comment that names the expression stays as it is.
 */
const META = "__layerfold_import_meta";
const META_DEFINE = Object.fromEntries(["url", "dirname", "filename"].map((k) => [`import.meta.${k}`, `${META}.${k}`]));
const withMeta = (text: string, file: string): string => {
  if (!text.includes("import.meta")) return text;
  const decl = `const ${META} = ${JSON.stringify({ url: pathToFileURL(file).href, dirname: path.dirname(file), filename: file })};`;
  // On the first line, so line numbers in errors stay right; after a shebang, which must stay first.
  if (!text.startsWith("#!")) return decl + text;
  const nl = text.indexOf("\n");
  return nl < 0 ? `${text}\n${decl}` : `${text.slice(0, nl + 1)}${decl}${text.slice(nl + 1)}`;
};

const configBundling: Plugin = {
  name: "layerfold-config",
  setup(b) {
    b.onLoad({ filter: /\.[cm]?[jt]s$/ }, async (args) => ({
      contents: withMeta(await readFile(args.path, "utf8"), args.path),
      loader: /\.[cm]?ts$/.test(args.path) ? "ts" : "js",
    }));
    b.onResolve({ filter: /^layerfold$/ }, () => ({ path: publicApiUrl(), external: true }));
    b.onResolve({ filter: /\.ts$/ }, (args) => {
      if (!fromSources || (!args.path.startsWith(".") && !path.isAbsolute(args.path))) return undefined;
      const abs = path.resolve(args.resolveDir, args.path);
      if (!abs.startsWith(librarySrc + path.sep)) return undefined;
      const bundle = cliBundleUrl();
      if (bundle) return abs === path.join(librarySrc, "index.ts") ? { path: bundle, external: true } : undefined;
      return { path: pathToFileURL(abs).href, external: true };
    });
  },
};

/**
 * Config bundles, kept by what went into them: a config whose inputs are unchanged loads
 * without starting esbuild (~0.3 s of a command's start on a loaded 2-core machine).
 * Inputs: every file esbuild read (by content) and the directories holding them (by
 * mtime, which changes when a file is added, removed or renamed there: that can change
 * what an import resolves to). In the user's cache directory, never inside the package
 * (a global install is not writable by its users).
 */
export const configCacheDir = path.join(userCacheHome(), "layerfold-config");

interface CachedConfig { config: string; files: Array<[file: string, sha256: string]>; dirs: Array<[dir: string, mtimeMs: number]>; bundle: string }

const fileHash = (p: string): string | undefined => {
  try {
    return sha256Hex(readFileSync(p));
  } catch {
    return undefined;
  }
};

const inputsUnchanged = (c: CachedConfig): boolean =>
  c.dirs.every(([d, mtimeMs]) => statSync(d, { throwIfNoEntry: false })?.mtimeMs === mtimeMs) && c.files.every(([f, hash]) => fileHash(f) === hash);

/**
 * Remember a bundle; skipped when a directory changed so recently that it could change
 * again within the same mtime tick (which the cache could then not see). Editors save by
 * rename, so the config's directory changes with every edit: on a filesystem with
 * sub-second timestamps (a tick is a kernel clock tick, at most 10 ms) the window is
 * 50 ms, not the 2 s that coarse ones (FAT, 2 s) need.
 */
async function cacheConfigBundle(config: string, key: string, js: Uint8Array, inputFiles: string[]): Promise<void> {
  const now = Date.now();
  const dirs: CachedConfig["dirs"] = [];
  for (const d of new Set(inputFiles.map((f) => path.dirname(f)))) {
    const st = statSync(d, { throwIfNoEntry: false });
    if (!st?.isDirectory() || now - st.mtimeMs < (st.mtimeMs % 1000 ? 50 : 2000)) return;
    dirs.push([d, st.mtimeMs]);
  }
  const files: CachedConfig["files"] = [];
  for (const f of inputFiles) {
    const hash = fileHash(f);
    if (!hash) return;
    files.push([f, hash]);
  }
  const bundle = `${key}-${sha256Hex(js).slice(0, 16)}.mjs`;
  await writeFileAtomic(path.join(configCacheDir, bundle), js, { fsync: false });
  await writeFileAtomic(path.join(configCacheDir, `${key}.json`), JSON.stringify({ config, files, dirs, bundle } satisfies CachedConfig), { fsync: false });
  // The bundle this one replaces, temp files of killed runs, and the entries of configs that are gone
  // (temp dirs of tests). A temp file younger than a minute may be another process's between its write
  // and its rename: removing it cost that process its cache entry (4 processes loading configs at once
  // lost a few entries in 40 each).
  for (const f of await readdir(configCacheDir)) {
    const stale = f.startsWith(".") && f.includes(".tmp-") && now - (statSync(path.join(configCacheDir, f), { throwIfNoEntry: false })?.mtimeMs ?? now) > 60_000;
    if ((f.startsWith(`${key}-`) && f !== bundle) || stale) await rm(path.join(configCacheDir, f), { force: true });
    if (!f.endsWith(".json") || f === `${key}.json`) continue;
    const other = await readFile(path.join(configCacheDir, f), "utf8").then((t) => JSON.parse(t) as Partial<CachedConfig>, () => undefined);
    if (other?.config && existsSync(other.config)) continue;
    await rm(path.join(configCacheDir, f), { force: true });
    if (other?.bundle) await rm(path.join(configCacheDir, other.bundle), { force: true });
  }
}

/**
 * Bundle the config and everything it imports into one ES module with esbuild, then
 * import that (what Vite does for vite.config.ts): ~50 ms, where loading it through a
 * TypeScript loader costs seconds, and a .ts file outside a "type": "module" package
 * would load the library a second time as CommonJS. The bundle is cached (above), or a
 * temp file removed at once when the cache cannot be written.
 */
let configLoads = 0;
async function importConfigModule(file: string): Promise<unknown> {
  const key = sha256Hex(`${file}\0${publicApiUrl()}\0${process.versions.node.split(".")[0]}`).slice(0, 24);
  const cached = await readFile(path.join(configCacheDir, `${key}.json`), "utf8").then((t) => JSON.parse(t) as CachedConfig, () => undefined);
  if (cached?.files && cached.dirs && inputsUnchanged(cached) && existsSync(path.join(configCacheDir, cached.bundle))) {
    // A fresh module each load, as a new temp file was: a config that reads files as it runs reads them again.
    return import(`${pathToFileURL(path.join(configCacheDir, cached.bundle)).href}?load=${++configLoads}`);
  }
  const { build } = await import("esbuild");
  const bundle = await build({
    entryPoints: [file],
    bundle: true,
    write: false,
    metafile: true,
    format: "esm",
    platform: "node",
    target: `node${process.versions.node.split(".")[0]}`,
    logLevel: "silent",
    // Node's own modules stay imports; npm packages are bundled too, so a config copied
    // outside any package (no node_modules beside it) still loads.
    external: ["node:*"],
    define: META_DEFINE,
    plugins: [configBundling],
  }).catch((err: { errors?: Array<{ text: string; location?: { file: string; line: number } | null }> }) => {
    const first = err.errors?.[0];
    throw new Error(first ? `${first.location ? `${first.location.file}:${first.location.line}: ` : ""}${first.text}` : String(err));
  });
  const js = bundle.outputFiles[0]!.contents;
  try {
    await cacheConfigBundle(file, key, js, Object.keys(bundle.metafile.inputs).map((p) => path.resolve(p)));
  } catch { /* a read-only install: no cache */ }
  const out = path.join(os.tmpdir(), `layerfold-config-${process.pid}-${Date.now()}.mjs`);
  await writeFile(out, js);
  try {
    return await import(pathToFileURL(out).href);
  } finally {
    await rm(out, { force: true });
  }
}

export async function loadConfig(opts: { dir?: string; file?: string }, sources: SourceKind[]): Promise<LoadedConfig> {
  const file = findConfig(opts);
  let mod: unknown;
  try {
    mod = await importConfigModule(file);
  } catch (err) {
    throw new ConfigError(`${file}: failed to load: ${(err as Error).message}`, { cause: err });
  }
  let raw = (mod as { default?: unknown }).default ?? mod;
  if (typeof raw === "function") raw = await (raw as () => unknown)();
  if (!raw || typeof raw !== "object") throw new ConfigError(`${file}: must export default defineImage({...})`);
  return { file, dir: path.dirname(file), image: validateImage(raw, file, sources) };
}
