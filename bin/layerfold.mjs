#!/usr/bin/env node
// Runs the TypeScript sources directly, with no build step (bin/cli-bundle.mjs:
// a cached esbuild bundle of src/, or tsx).
import { loadCli } from "./cli-bundle.mjs";
const { main } = await loadCli();
await main(process.argv);
