// Step: export a built image to the output the user named.
//   oci:DIR                OCI image layout directory (default)
//   oci-archive:FILE       tar of an OCI layout
//   docker-archive:FILE    the `docker load` format

import path from "node:path";
import type { LoadedConfig } from "../config/load.ts";
import { ConfigError } from "../errors.ts";
import { dockerArchiveStream, ociArchiveStream, writeArchiveFile } from "../oci/archive.ts";
import { exportLayout, refuseForeignOutput } from "../oci/layout.ts";
import type { BuiltImage } from "../oci/types.ts";

export const OUTPUT_KINDS = ["oci", "oci-archive", "docker-archive"] as const;

export function parseOutput(spec: string): { kind: (typeof OUTPUT_KINDS)[number]; path: string } {
  const i = spec.indexOf(":");
  const kind = i > 0 ? spec.slice(0, i) : "";
  if (!(OUTPUT_KINDS as readonly string[]).includes(kind) || i === spec.length - 1) {
    throw new ConfigError(`output ${JSON.stringify(spec)} is not understood; use oci:DIR, oci-archive:FILE or docker-archive:FILE`);
  }
  return { kind: kind as (typeof OUTPUT_KINDS)[number], path: path.resolve(spec.slice(i + 1)) };
}

/** Refuse, before any work, an output that would replace something layerfold did not write. */
export async function checkOutput(spec: string): Promise<void> {
  const out = parseOutput(spec);
  if (out.kind === "oci") await refuseForeignOutput(out.path);
}

/** Where a build writes when no output is named: an OCI layout in out/NAME beside the config. */
export const defaultOutput = (cfg: LoadedConfig) => `oci:${cfg.dir}/out/${cfg.image.name.replace(/\//g, "_")}`;

export async function exportImage(image: BuiltImage, spec: string): Promise<string> {
  const out = parseOutput(spec);
  switch (out.kind) {
    case "oci":
      await exportLayout(image, out.path);
      break;
    case "oci-archive":
      await writeArchiveFile(out.path, ociArchiveStream(image));
      break;
    case "docker-archive":
      await writeArchiveFile(out.path, dockerArchiveStream(image));
      break;
  }
  return `${out.kind}:${out.path}`;
}
