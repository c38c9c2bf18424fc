// `layerfold why NAME`: which layer holds a package, and the chain of roots that pulled it in.

import { Command } from "commander";
import { loadImageModel } from "../report/model.ts";
import { why, whyPath, type WhyMatch } from "../report/why.ts";
import { formatBytes } from "../util/log.ts";
import { printJson, storeFrom, withConfigFlags, type CommonFlags, withPlatformFlag } from "./common.ts";
import { findBuildRecord } from "../catalog/find.ts";
import { IMAGE_FLAG, type RecordFlags } from "./record.ts";

export function whyCommand(): Command {
  return withPlatformFlag(withConfigFlags(new Command("why")))
    .description("show which layer holds a package and the chain of roots that pulled it in")
    .argument("<name>", "package name (libc6, Pillow), id (deb:libc6, py:pillow), or a file path in the image (/usr/lib/x86_64-linux-gnu/libgomp.so.1)")
    .option(...IMAGE_FLAG)
    .option("--layout <dir>", "the image in this OCI layout (its build record must be in the store)")
    .action(async (name: string, flags: CommonFlags & RecordFlags) => {
      const store = storeFrom(flags, { existing: true });
      const rec = await findBuildRecord(store, flags);
      const model = await loadImageModel(store, rec);
      const treeKey = new Map(rec.layers.flatMap((l) => l.trees ?? []).map((t) => [t.id, t.key]));
      const entriesOf = async (id: string) => {
        const key = treeKey.get(id);
        return key ? (await store.getTree(key))?.manifest.entries : undefined;
      };
      const matches: Array<WhyMatch & { path?: string }> = name.startsWith("/") ? await whyPath(model, name, entriesOf) : why(model, name);
      if (flags.json) return printJson({ image: model.image, query: name, matches });
      for (const m of matches) {
        if (m.path) process.stdout.write(`/${m.path} is shipped by ${m.id}\n`);
        process.stdout.write(`${m.id} ${m.version} is in layer ${m.layerIndex}/${model.layers.length} "${m.layer}"${m.bytes !== undefined ? ` (${formatBytes(m.bytes)})` : ""}\n`);
        if (m.chain.length === 1) process.stdout.write(`  it is a root of layer "${m.layer}" (named in the config)\n`);
        else process.stdout.write(`  pulled in by: ${m.chain.map((c) => c.id).join(" -> ")}\n`);
        if (m.neededBy.length) process.stdout.write(`  needed by: ${m.neededBy.join(", ")}\n`);
      }
    });
}
