// The layerfold command: one file per subcommand, registered here.

import { Command } from "commander";
import { buildCommand } from "./build.ts";
import { inspectCommand } from "./inspect.ts";
import { lockCommand } from "./lock.ts";
import { whyCommand } from "./why.ts";
import { diffCommand } from "./diff.ts";
import { reportCommand } from "./report.ts";
import { sbomCommand } from "./sbom.ts";
import { reportError } from "./common.ts";
import { indexCommand } from "./index-push.ts";
import { runCommand } from "./run.ts";
import { shellCommand } from "./shell.ts";
import { checkCommand } from "./check.ts";
import { pushCommand } from "./push.ts";
import { pullCommand } from "./pull.ts";
import { loadCommand } from "./load.ts";
import { gcCommand } from "./gc.ts";

export function program(): Command {
  const p = new Command("layerfold")
    .description("build, check and publish reproducible OCI images for large Python/ML stacks")
    .version("0.1.0")
    .showHelpAfterError();
  for (const cmd of [buildCommand(), lockCommand(), inspectCommand(), whyCommand(), diffCommand(), runCommand(), shellCommand(), checkCommand(), reportCommand(), sbomCommand()]) p.addCommand(cmd);
  for (const cmd of [pushCommand(), pullCommand(), loadCommand(), indexCommand(), gcCommand()]) p.addCommand(cmd);
  return p;
}

export async function main(argv: string[]): Promise<void> {
  const debug = argv.includes("--debug");
  try {
    await program().parseAsync(argv);
  } catch (err) {
    process.exitCode = reportError(err, debug);
  }
}
