#!/usr/bin/env node
// Installed (npm i, npx, npm i -g, the GitHub Action): runs the compiled dist/layerfold.js,
// with no TypeScript loader, no bundling and no writes. In a checkout (src/ beside bin/,
// which the package does not ship): runs the sources, through bin/cli-bundle.mjs.
import { existsSync } from "node:fs";

const checkout = existsSync(new URL("../src/cli/main.ts", import.meta.url));
let cli;
if (checkout) {
  cli = await (await import("./cli-bundle.mjs")).loadCli();
} else {
  if (process.argv.includes("--debug")) process.setSourceMapsEnabled(true);
  cli = await import("../dist/layerfold.js");
}
await cli.main(process.argv);
