// Every source kind the build knows. A new kind is a folder under
// src/sources/ and one line here.

import { archiveSource } from "./archive/index.ts";
import { debianSource } from "./debian/index.ts";
import { filesSource } from "./files/index.ts";
import { gitSource } from "./git/index.ts";
import { inlineSource } from "./inline/index.ts";
import { pythonSource } from "./python/index.ts";
import type { SourceKind } from "./types.ts";

export const sourceKinds: SourceKind<any, any>[] = [filesSource, inlineSource, archiveSource, gitSource, debianSource, pythonSource];
