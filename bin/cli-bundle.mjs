// Start-up for bin/layerfold.mjs in a checkout (the package ships dist/ instead,
// built by scripts/build.mjs with bundleOptions below). The TypeScript sources run
// without a build step: the first run bundles them into one ES module with esbuild (~0.4 s) and
// caches it under node_modules/.cache/layerfold-cli/, keyed by the path, size
// and mtime of every file under src/, so an edit is picked up on the next run.
// Loading that one file starts about a second sooner than loading each module
// through tsx's loader thread (measured on a 2-core VM: `--version` 1.3 s -> 0.5 s).
// LAYERFOLD_TSX=1, or a cache that cannot be written, runs the sources through
// tsx as before.
// The packages every command needs are bundled in too (one file read and
// compiled, instead of ~20 CommonJS and ES files through the ESM loader: ~30 ms);
// the rest stay imports, loaded when a command uses them (undici alone costs
// ~150 ms and is only needed for a request: src/fetch/undici.ts).

import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** The running bundle's URL, for the config loader: a config's imports of src/index.ts resolve to it. */
export const BUNDLE_URL_KEY = Symbol.for("layerfold.cliBundleUrl");

/** Changes whenever a file under `srcDir` is added, removed or modified (path, size, mtime). */
export function sourceKey(srcDir, extra = "") {
  const h = createHash("sha256").update(`${extra}\n`);
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const s = statSync(p);
        h.update(`${path.relative(srcDir, p)}\0${s.size}\0${s.mtimeMs}\n`);
      }
    }
  };
  walk(srcDir);
  return h.digest("hex").slice(0, 20);
}

/** Bundled into the CLI (so the package lists them as devDependencies: only its build needs them); every other package stays an import, found from the package's node_modules/. */
const INLINE_PACKAGES = new Set(["commander", "zod", "@renovatebot/pep440"]);

const packageName = (spec) => spec.split("/").slice(0, spec.startsWith("@") ? 2 : 1).join("/");

const externalPackages = {
  name: "layerfold-external-packages",
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => (INLINE_PACKAGES.has(packageName(args.path)) ? undefined : { external: true }));
  },
};

/** Changes when npm changes node_modules/ (it rewrites its hidden lockfile then): the bundle holds some packages' code. */
function installedPackagesKey(root) {
  try {
    const s = statSync(path.join(root, "node_modules", ".package-lock.json"));
    return `${s.size}\0${s.mtimeMs}`;
  } catch {
    return "";
  }
}

/** import.meta.url keeps naming each source file inside the bundle (the config loader finds src/ by it). */
const keepImportMetaUrl = (srcDir) => ({
  name: "layerfold-import-meta-url",
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, (args) => {
      if (!args.path.startsWith(srcDir + path.sep)) return undefined;
      const text = readFileSync(args.path, "utf8");
      // Not inside quotes: src/config/load.ts names the expression in a string.
      return { contents: text.replace(/(?<!["'`])\bimport\.meta\.url\b(?!["'`])/g, JSON.stringify(pathToFileURL(args.path).href)), loader: "ts" };
    });
  },
});

/**
 * esbuild's options for one ES module holding the public API of src/index.ts plus the CLI's
 * main: the checkout's cached bundle below, and the package's dist/layerfold.js
 * (scripts/build.mjs), which keeps `import.meta.url` naming itself (`sourceUrls: false`).
 */
export function bundleOptions({ root = packageRoot, target = `node${process.versions.node.split(".")[0]}`, sourceUrls = true } = {}) {
  return {
    stdin: { contents: 'export * from "./src/index.ts";\nexport { main } from "./src/cli/main.ts";\n', resolveDir: root, loader: "ts", sourcefile: "layerfold-cli.ts" },
    bundle: true,
    write: false,
    format: "esm",
    platform: "node",
    target,
    // Other npm packages stay imports, found from the package's node_modules/ (the checkout's
    // cache directory is under it).
    plugins: [...(sourceUrls ? [keepImportMetaUrl(path.join(root, "src"))] : []), externalPackages],
    // The bundled CommonJS packages require() Node's own modules.
    banner: { js: 'import { createRequire as __layerfoldCreateRequire } from "node:module"; const require = __layerfoldCreateRequire(import.meta.url);' },
    sourcemap: "linked",
    logLevel: "silent",
  };
}

/**
 * The path of a fresh bundle of src/ (the public API of src/index.ts plus the CLI's main),
 * written now if the cache has none for the current sources.
 */
export async function cliBundle({ root = packageRoot, cacheDir = path.join(root, "node_modules", ".cache", "layerfold-cli") } = {}) {
  const srcDir = path.join(root, "src");
  const pkg = readFileSync(path.join(root, "package.json"), "utf8");
  const key = sourceKey(srcDir, `${process.versions.node.split(".")[0]}\0${pkg}\0${installedPackagesKey(root)}`);
  const file = path.join(cacheDir, `cli-${key}.mjs`);
  try {
    statSync(file);
    return file;
  } catch { /* not cached yet */ }
  const { build } = await import("esbuild");
  const out = await build({ ...bundleOptions({ root }), outfile: file });
  mkdirSync(cacheDir, { recursive: true });
  // The map first, then the bundle by rename: a process that finds the bundle finds it whole.
  for (const f of [...out.outputFiles.filter((o) => o.path !== file), ...out.outputFiles.filter((o) => o.path === file)]) {
    const tmp = `${f.path}.${process.pid}.tmp`;
    writeFileSync(tmp, f.contents);
    renameSync(tmp, f.path);
  }
  // Older bundles and leftovers of killed runs go; a process still starting from one falls back to tsx.
  // A temp file younger than a minute is another process's, about to be renamed (removing it sent that
  // process to tsx).
  const keep = [path.basename(file), `${path.basename(file)}.map`];
  const now = Date.now();
  for (const f of readdirSync(cacheDir)) {
    if (!f.startsWith("cli-") || keep.includes(f)) continue;
    if (f.endsWith(".tmp") && now - (statSync(path.join(cacheDir, f), { throwIfNoEntry: false })?.mtimeMs ?? 0) < 60_000) continue;
    rmSync(path.join(cacheDir, f), { force: true });
  }
  return file;
}

/** The CLI module: from the cached bundle, else through tsx. */
export async function loadCli() {
  if (process.env.LAYERFOLD_TSX !== "1") {
    let url;
    try {
      url = pathToFileURL(await cliBundle()).href;
    } catch { /* no esbuild, read-only install, a source that does not parse: tsx decides */ }
    if (url) {
      if (process.argv.includes("--debug")) {
        process.setSourceMapsEnabled(true);
        process.stderr.write(`debug: layerfold's sources from the bundle ${fileURLToPath(url)}\n`);
      }
      globalThis[BUNDLE_URL_KEY] = url;
      try {
        return await import(url);
      } catch (err) {
        if (err?.code !== "ERR_MODULE_NOT_FOUND" || !String(err.message).includes(url.slice(7))) throw err;
        delete globalThis[BUNDLE_URL_KEY];
      }
    }
  }
  let tsx;
  try {
    tsx = await import("tsx/esm/api");
  } catch (err) {
    if (err?.code !== "ERR_MODULE_NOT_FOUND") throw err;
    // A checkout before `npm ci`: neither esbuild nor tsx is there to run the sources.
    process.stderr.write(
      `layerfold: this checkout's npm dependencies are not installed (${path.join(packageRoot, "node_modules")}).\n` +
        `Run \`npm ci\` in ${packageRoot} (or \`npm run setup\` on a fresh Debian machine, which also installs the system tools),\n` +
        "or use the published package: npm i -g layerfold\n",
    );
    process.exit(1);
  }
  tsx.register();
  return import("../src/cli/main.ts");
}
