// Which build the report commands (why, report, sbom) look at: --image NAME:TAG
// or a manifest digest straight from the store (no config load), else the
// config's image or --layout, as `inspect` does.

import type { BuildRecord } from "../build/build.ts";
import { NotFoundError } from "../errors.ts";
import { recordByImage } from "../report/model.ts";
import type { Store } from "../store/store.ts";
import { findBuildRecord } from "./inspect.ts";

export interface RecordFlags {
  dir?: string;
  config?: string;
  layout?: string;
  image?: string;
}

export async function buildRecordFor(store: Store, flags: RecordFlags): Promise<BuildRecord> {
  if (!flags.image) return findBuildRecord(store, flags);
  const rec = await recordByImage(store, flags.image);
  if (!rec) throw new NotFoundError(`no build of ${flags.image} in the store ${store.root}; run \`layerfold build\` first (or pass --store)`);
  return rec;
}

export const IMAGE_FLAG = ["--image <name:tag>", "a build in the store by NAME:TAG or manifest digest (no config needed)"] as const;
