// layerfold's version, read from its package.json (the one place it is written). This
// file and the built dist/layerfold.js both sit one directory below the package root.

import { readFileSync } from "node:fs";

export const version: string = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;
