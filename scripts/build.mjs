// `npm run build` (and `npm pack` / publish, through prepack): the package's dist/.
//   dist/layerfold.js      one ES module: the public API of src/index.ts plus the CLI's main,
//                          bundled by esbuild (one file to load: the CLI starts as fast as the
//                          checkout's cached bundle), with a source map naming src/ lines
//   dist/types/**.d.ts     declarations from tsc, for configs and programs that import "layerfold"
// Node 20 is the oldest Node the package supports (package.json engines), so the target.

import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import path from "node:path";
import { build } from "esbuild";
import { bundleOptions, packageRoot } from "../bin/cli-bundle.mjs";

const dist = path.join(packageRoot, "dist");
rmSync(dist, { recursive: true, force: true });
// Source maps without the sources' text: stack traces (--debug) name src/ files and lines.
await build({ ...bundleOptions({ target: "node20", sourceUrls: false }), outfile: path.join(dist, "layerfold.js"), write: true, sourcesContent: false, logLevel: "warning" });
execFileSync(process.execPath, [path.join(packageRoot, "node_modules", "typescript", "bin", "tsc"), "-p", path.join(packageRoot, "tsconfig.build.json")], { stdio: "inherit" });
