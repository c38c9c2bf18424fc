// `layerfold report`: one self-contained HTML file about the last build.

import path from "node:path";
import { Command } from "commander";
import { renderReport } from "../report/html.ts";
import { loadImageModel } from "../report/model.ts";
import { writeFileAtomic } from "../util/fs.ts";
import { formatBytes } from "../util/log.ts";
import { findBuildRecord } from "../catalog/find.ts";
import { loggerFrom, printJson, storeFrom, withConfigFlags, type CommonFlags, withPlatformFlag } from "./common.ts";
import { IMAGE_FLAG, type RecordFlags } from "./record.ts";

export function reportCommand(): Command {
  return withPlatformFlag(withConfigFlags(new Command("report")))
    .description("write one self-contained HTML file: layer sizes, package treemap, duplication avoided, searchable package table")
    .option("-o, --output <file>", "where to write the HTML", "layerfold-report.html")
    .option(...IMAGE_FLAG)
    .option("--layout <dir>", "report on the image in this OCI layout (its build record must be in the store)")
    .action(async (flags: CommonFlags & RecordFlags & { output: string }) => {
      const store = storeFrom(flags, { existing: true });
      const model = await loadImageModel(store, await findBuildRecord(store, flags));
      const html = renderReport(model);
      const file = path.resolve(flags.output);
      await writeFileAtomic(file, html);
      if (flags.json) return printJson({ image: model.image, manifestDigest: model.manifestDigest, file, bytes: Buffer.byteLength(html) });
      loggerFrom(flags).info(`wrote ${file} (${formatBytes(Buffer.byteLength(html))}): ${model.layers.length} layers, ${model.packages.length} packages`);
    });
}
