import { Command } from "commander";
import { openImage } from "../runtime/image.ts";
import { checkCommand } from "../runtime/command.ts";
import { materialise } from "../runtime/rootfs.ts";
import { commandLine, environment, parseVolume, runImage } from "../runtime/run.ts";
import { namespaceProblem, noNamespacesError, type Mount } from "../runtime/sandbox.ts";
import { flagValue, loggerFrom, storeFrom, withConfigFlags, type CommonFlags } from "./common.ts";

export interface RunFlags extends CommonFlags {
  layout?: string;
  env?: string[];
  volume?: Mount[];
  entrypoint?: string;
  workdir?: string;
  user?: string;
  smoke?: boolean;
}

/** Upstream's CI smoke test: the entrypoint with these CLI_ARGS must exit 0. */
export const SMOKE_ARGS = "--quick-test-for-ci --cpu";

/** -v HOST:CONTAINER[:ro], checked as the command line is read, collected. */
export const volumeFlag = (v: string, prev: Mount[] = []): Mount[] => [...prev, flagValue(parseVolume)(v)];

/** -e NAME=VALUE or NAME, checked as the command line is read, collected. */
export const envFlag = (v: string, prev: string[] = []): string[] => [
  ...prev,
  flagValue((kv) => {
    if (kv === "" || kv.startsWith("=")) throw new Error("give NAME=VALUE, or NAME to pass the host's value");
    return kv;
  })(v),
];

/** Split `[IMAGE] -- CMD…` from the raw argv: commander drops the "--" itself. */
export function splitCommand(raw: string[], operands: string[]): { image?: string; cmd: string[] } {
  const dd = raw.indexOf("--");
  const cmd = dd >= 0 ? raw.slice(dd + 1) : [];
  const before = operands.slice(0, operands.length - cmd.length);
  return { image: before[0], cmd: dd >= 0 ? cmd : operands.slice(1) };
}

export function runCommand(): Command {
  return withConfigFlags(new Command("run"), { json: false })
    .description("run a command in the image without a daemon (private mount/PID namespaces, overlay over the cached rootfs)")
    .usage("[options] [IMAGE] [-- CMD…]")
    .argument("[args...]", "IMAGE (an OCI layout dir or NAME:TAG built here; default: the config's image), then -- CMD…")
    .option("--layout <dir>", "run the image in this OCI layout (e.g. from layerfold pull)")
    .option("-e, --env <NAME=VALUE>", "set an environment variable (repeatable; NAME alone passes the host's value)", envFlag)
    .option("-v, --volume <HOST:CONTAINER[:ro]>", "bind-mount a host path (repeatable)", volumeFlag)
    .option("--entrypoint <cmd>", "replace the image's entrypoint (\"\" for none)")
    .option("-w, --workdir <dir>", "working directory inside the image")
    .option("-u, --user <user[:group]>", "user name or uid (resolved with the image's /etc/passwd)")
    .option("--smoke", `smoke test like upstream CI: entrypoint + cmd with CLI_ARGS="${SMOKE_ARGS}"`)
    .action(async function (this: Command, args: string[], flags: RunFlags) {
      const raw = (this.parent as (Command & { rawArgs?: string[] }) | null)?.rawArgs ?? process.argv;
      const { image, cmd } = splitCommand(raw.slice(raw.indexOf("run") + 1), args);
      const problem = namespaceProblem();
      if (problem) throw noNamespacesError(problem);
      const store = storeFrom(flags);
      const log = loggerFrom(flags);
      const img = await openImage(store, { dir: flags.dir, config: flags.config, layout: flags.layout, image });
      const env = [...(flags.smoke ? [`CLI_ARGS=${SMOKE_ARGS}`] : []), ...(flags.env ?? [])];
      // A program the image lacks is said plainly (127, 126), not by the sandbox's exec.
      const cfg = img.config.config ?? {};
      const argv0 = commandLine(cfg, { cmd, entrypoint: flags.entrypoint })[0];
      if (argv0) {
        const rootfs = await materialise(store, img);
        await checkCommand(rootfs.dir, img.ref, argv0, { env: environment(cfg.Env, env), workdir: flags.workdir ?? (cfg.WorkingDir || "/"), mounts: flags.volume });
      }
      const started = await runImage(store, img, {
        cmd,
        entrypoint: flags.entrypoint,
        env,
        mounts: flags.volume,
        workdir: flags.workdir,
        user: flags.user,
      });
      log.debug(`rootfs ${started.rootfs.dir} (${started.rootfs.cached ? "cached" : `materialised in ${started.rootfs.seconds.toFixed(2)}s`})`);
      process.exitCode = await forwardSignals(started.child, started.done);
    });
}

/**
 * While the sandbox runs: Ctrl-C on a terminal already reaches the container
 * (same foreground process group; unshare blocks it in its waiting parent), so
 * it is only ignored here. Other termination signals stop the container: the
 * outer unshare is killed and --kill-child takes the namespace down with it.
 */
export async function forwardSignals(child: import("node:child_process").ChildProcess, done: Promise<number>): Promise<number> {
  const sigs: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  const handler = (s: NodeJS.Signals) => {
    if (s === "SIGINT" && process.stdin.isTTY) return;
    child.kill("SIGKILL");
  };
  for (const s of sigs) process.on(s, handler);
  try {
    return await done;
  } finally {
    for (const s of sigs) process.off(s, handler);
  }
}
