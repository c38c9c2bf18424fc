// The layerfold command: one file per subcommand, registered here.

import { Command, CommanderError } from "commander";
import { VERSION } from "../constants.ts";
import { buildCommand } from "./build.ts";
import { inspectCommand } from "./inspect.ts";
import { lockCommand } from "./lock.ts";
import { whyCommand } from "./why.ts";
import { diffCommand } from "./diff.ts";
import { reportCommand } from "./report.ts";
import { sbomCommand } from "./sbom.ts";
import { RUN_FAILED_EXIT } from "../errors.ts";
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
    .version(VERSION);
  for (const cmd of [buildCommand(), lockCommand(), inspectCommand(), whyCommand(), diffCommand(), runCommand(), shellCommand(), checkCommand(), reportCommand(), sbomCommand()]) p.addCommand(cmd);
  for (const cmd of [pushCommand(), pullCommand(), loadCommand(), indexCommand(), gcCommand()]) p.addCommand(cmd);
  usageErrors(p);
  return p;
}

/**
 * Commander's own errors (unknown option, missing argument, a flag value its parser refused)
 * are usage errors: `error[E_USAGE]: …`, a hint instead of the whole help, exit 2. addCommand
 * does not pass these settings down, so each command gets them.
 */
function usageErrors(cmd: Command): void {
  cmd
    .exitOverride()
    .showHelpAfterError(`(see \`${commandPath(cmd)} --help\`)`)
    .configureOutput({ outputError: (text, write) => write(text.replace(/^error: /, "error[E_USAGE]: ")) });
  for (const sub of cmd.commands) usageErrors(sub);
}

const commandPath = (cmd: Command): string => (cmd.parent ? `${commandPath(cmd.parent)} ${cmd.name()}` : cmd.name());

/**
 * A reader that closes stdout early (`layerfold sbom | head`) must not crash the command with
 * an EPIPE stack: output stops, the work finishes, the exit code is the command's own.
 */
function ignoreClosedOutput(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code !== "EPIPE" && err.code !== "ERR_STREAM_DESTROYED") throw err;
    });
  }
}

/** Commands whose exit code is their program's: layerfold's own failures are told apart as docker run does. */
const PASS_THROUGH = new Set(["run", "shell"]);

export async function main(argv: string[]): Promise<void> {
  const debug = argv.includes("--debug");
  const passThrough = PASS_THROUGH.has(argv.slice(2).find((a) => !a.startsWith("-")) ?? "");
  ignoreClosedOutput();
  let code: number;
  try {
    await program().parseAsync(argv);
    return;
  } catch (err) {
    // --help and --version end with exit code 0; anything else commander reports is a usage error.
    if (err instanceof CommanderError) code = err.exitCode === 0 ? 0 : 2;
    else code = reportError(err, debug);
  }
  // run, shell: 126 and 127 say the command could not be started; every other failure of layerfold's is 125.
  process.exitCode = passThrough && code !== 0 && code !== 126 && code !== 127 ? RUN_FAILED_EXIT : code;
}
