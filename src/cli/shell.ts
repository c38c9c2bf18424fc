import { Command } from "commander";
import { CommandNotFoundError } from "../errors.ts";
import { openImage } from "../runtime/image.ts";
import { runImage } from "../runtime/run.ts";
import { namespaceProblem, noNamespacesError } from "../runtime/sandbox.ts";
import { lookup, composeView } from "../runtime/view.ts";
import { isatty } from "node:tty";
import { loggerFrom, storeFrom, withConfigFlags, withPlatformFlag } from "./common.ts";
import { envFlag, forwardSignals, networkFlag, networkHint, volumeFlag, type RunFlags } from "./run.ts";

export function shellCommand(): Command {
  return withPlatformFlag(withConfigFlags(new Command("shell"), { json: false }))
    .description("open an interactive shell in the image (like the seed's nix develop), without a daemon")
    .argument("[image]", "an OCI layout dir or NAME:TAG built here (default: the config's image)")
    .option("--layout <dir>", "the image in this OCI layout")
    .option("-e, --env <NAME=VALUE>", "set an environment variable (repeatable)", envFlag)
    .option("-v, --volume <HOST:CONTAINER[:ro]>", "bind-mount a host path (repeatable)", volumeFlag)
    .option("-w, --workdir <dir>", "working directory inside the image")
    .option("-u, --user <user[:group]>", "user name or uid")
    .option("--network <mode>", "none (default) or host (the host's network)", networkFlag)
    .action(async (image: string | undefined, flags: RunFlags) => {
      const network = flags.network ?? "none";
      const problem = namespaceProblem();
      if (problem) throw noNamespacesError(problem);
      const store = storeFrom(flags);
      const img = await openImage(store, { dir: flags.dir, config: flags.config, layout: flags.layout, image, platform: flags.platform });
      networkHint(img, network, loggerFrom(flags));
      const view = composeView(img);
      const shell = ["/bin/bash", "/bin/sh", "/usr/bin/bash", "/usr/bin/sh"].find((p) => lookup(view, p)?.type === "file");
      if (!shell) throw new CommandNotFoundError(`${img.ref} has no /bin/bash or /bin/sh; run a program of the image with layerfold run -- CMD`);
      const started = await runImage(store, img, {
        entrypoint: shell,
        cmd: [],
        env: ["PS1=[layerfold] \\w# ", ...(flags.env ?? [])],
        mounts: flags.volume,
        workdir: flags.workdir,
        user: flags.user,
        network,
        // A pty of the shell's own when we have a terminal; piped otherwise (a script on stdin).
        tty: isatty(0),
      });
      process.exitCode = await forwardSignals(started);
    });
}
