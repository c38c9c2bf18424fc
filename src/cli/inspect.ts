import { Command } from "commander";
import { findBuildRecord } from "../catalog/find.ts";
import { imageLayers, type BuildRecord } from "../catalog/records.ts";
import type { Store } from "../store/store.ts";
import { formatBytes } from "../util/log.ts";
import { isPrivileged, privilegedFile, type PrivilegedFile } from "../util/modes.ts";
import { printJson, storeFrom, withConfigFlags, type CommonFlags, withPlatformFlag } from "./common.ts";

interface InspectFlags extends CommonFlags {
  layout?: string;
}

export function inspectCommand(): Command {
  return withPlatformFlag(withConfigFlags(new Command("inspect")))
    .description("list the layers of the last build: packages, sizes, digests, reused or built")
    .option("--layout <dir>", "inspect the image in this OCI layout (its build record must be in the store)")
    .action(async (flags: InspectFlags) => {
      const store = storeFrom(flags, { existing: true });
      const rec = await findBuildRecord(store, flags);
      const layers = imageLayers(rec);
      const setuid = await privilegedFilesOf(store, rec);
      if (flags.json) return printJson({ image: `${rec.name}:${rec.tag}`, manifestDigest: rec.manifestDigest, droppedLayers: rec.droppedLayers, layers, setuid });
      process.stdout.write(`${rec.name}:${rec.tag}  ${rec.manifestDigest}\n`);
      process.stdout.write(`${"#".padEnd(4)}${"layer".padEnd(22)}${"pkgs".padStart(6)}${"compressed".padStart(13)}${"uncompressed".padStart(14)}  ${"digest".padEnd(14)}state\n`);
      layers.forEach((l, i) => {
        process.stdout.write(
          `${String(i + 1).padEnd(4)}${l.name.padEnd(22)}${String(l.packages.length).padStart(6)}${formatBytes(l.size).padStart(13)}${(l.uncompressedSize < 0 ? "?" : formatBytes(l.uncompressedSize)).padStart(14)}  ${l.digest.slice(7, 19).padEnd(14)}${l.base ? "base image" : l.reused ? "reused" : "built"}${l.chunked ? `, zstd:chunked (TOC ${formatBytes(l.chunked.tocBytes)}${l.chunked.contentFrames !== undefined ? `, ${l.chunked.contentFrames} file frames` : ""})` : ""}\n`,
        );
        for (const p of l.packages) process.stdout.write(`      ${p}\n`);
      });
      printSetuid((line) => process.stdout.write(`${line}\n`), setuid);
      const total = layers.reduce((n, l) => n + l.size, 0);
      process.stdout.write(`total ${formatBytes(total)} compressed, ${formatBytes(layers.reduce((n, l) => n + Math.max(0, l.uncompressedSize), 0))} uncompressed${layers.some((l) => l.base) ? " (without the base image's)" : ""}\n`);
    });
}

/** The setuid/setgid files of a build's trees, read from the store. */
async function privilegedFilesOf(store: Store, rec: BuildRecord): Promise<PrivilegedFile[]> {
  const out: PrivilegedFile[] = [];
  const seen = new Set<string>();
  for (const l of rec.layers) {
    for (const t of l.trees) {
      if (seen.has(t.key)) continue; // a package split over several layers
      seen.add(t.key);
      const tree = await store.getTree(t.key);
      for (const e of tree?.manifest.entries ?? []) if (isPrivileged(e)) out.push(privilegedFile(e, t.id, l.name));
    }
  }
  return out;
}

/** The "setuid/setgid" lines of inspect and check. */
export function printSetuid(w: (line: string) => void, files: PrivilegedFile[]): void {
  if (!files.length) return w("setuid/setgid files: none");
  w(`setuid/setgid files: ${files.length} (the sources' setuid policy keeps them; see README "setuid")`);
  for (const f of files) w(`      ${f.path}  ${f.mode} ${f.grants}  ${f.packageId} in layer ${f.layer}`);
}
