import { Command } from "commander";
import { openImage } from "../runtime/image.ts";
import { parseVolume, runImage } from "../runtime/run.ts";
import type { RuntimeImage } from "../runtime/image.ts";
import type { NetworkMode } from "../runtime/oci-spec.ts";
import { namespaceProblem, noNamespacesError, type Mount } from "../runtime/sandbox.ts";
import { flagValue, loggerFrom, storeFrom, withConfigFlags, type CommonFlags, withPlatformFlag } from "./common.ts";

export interface RunFlags extends CommonFlags {
  layout?: string;
  env?: string[];
  volume?: Mount[];
  entrypoint?: string;
  workdir?: string;
  user?: string;
  smoke?: boolean;
  network?: NetworkMode;
  tty?: boolean;
}

/** --network none (the default: only the container's own loopback) or host, checked as the command line is read. */
export const networkFlag = flagValue((v): NetworkMode => {
  if (v === "none" || v === "host") return v;
  throw new Error("give none (no network but the container's own loopback) or host (the host's network, its loopback services included)");
});

/** Say once why a published port is unreachable with the default network. */
export function networkHint(img: RuntimeImage, network: NetworkMode, log: { warn(s: string): void }): void {
  const ports = Object.keys(img.config.config?.ExposedPorts ?? {});
  if (network === "none" && ports.length) log.warn(`${img.ref} exposes ${ports.join(", ")}; with --network none (the default) nothing outside the container reaches it: add --network host to open it from this machine`);
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
  return withPlatformFlag(withConfigFlags(new Command("run"), { json: false }))
    .description("run a command in the image in a container (OCI runtime, user namespace, seccomp; overlay over the cached rootfs, discarded at exit)")
    .usage("[options] [IMAGE] [-- CMD…]")
    .argument("[args...]", "IMAGE (an OCI layout dir or NAME:TAG built here; default: the config's image), then -- CMD…")
    .option("--layout <dir>", "run the image in this OCI layout (e.g. from layerfold pull)")
    .option("-e, --env <NAME=VALUE>", "set an environment variable (repeatable; NAME alone passes the host's value)", envFlag)
    .option("-v, --volume <HOST:CONTAINER[:ro]>", "bind-mount a host path (repeatable)", volumeFlag)
    .option("--entrypoint <cmd>", "replace the image's entrypoint (\"\" for none)")
    .option("-w, --workdir <dir>", "working directory inside the image")
    .option("-u, --user <user[:group]>", "user name or uid (resolved with the image's /etc/passwd)")
    .option("--network <mode>", "none (default: only the container's own loopback) or host (the host's network: needed to open a server such as ComfyUI's port 8188 from this machine)", networkFlag)
    .option("-t, --tty", "give the command a terminal of its own (the runtime relays yours to it)")
    .option("--smoke", `smoke test like upstream CI: entrypoint + cmd with CLI_ARGS="${SMOKE_ARGS}"`)
    .action(async function (this: Command, args: string[], flags: RunFlags) {
      const raw = (this.parent as (Command & { rawArgs?: string[] }) | null)?.rawArgs ?? process.argv;
      const { image, cmd } = splitCommand(raw.slice(raw.indexOf("run") + 1), args);
      const network = flags.network ?? "none";
      const problem = namespaceProblem();
      if (problem) throw noNamespacesError(problem);
      const store = storeFrom(flags);
      const log = loggerFrom(flags);
      const img = await openImage(store, { dir: flags.dir, config: flags.config, layout: flags.layout, image, platform: flags.platform });
      const env = [...(flags.smoke ? [`CLI_ARGS=${SMOKE_ARGS}`] : []), ...(flags.env ?? [])];
      if (!flags.smoke) networkHint(img, network, log);
      const started = await runImage(store, img, {
        cmd,
        entrypoint: flags.entrypoint,
        env,
        mounts: flags.volume,
        workdir: flags.workdir,
        user: flags.user,
        network,
        tty: flags.tty,
      });
      log.debug(`rootfs ${started.rootfs.dir} (${started.rootfs.cached ? "cached" : `materialised in ${started.rootfs.seconds.toFixed(2)}s`})`);
      process.exitCode = await forwardSignals(started);
    });
}

/**
 * While the container runs: Ctrl-C on a terminal already reaches it (through
 * the runtime, or as a key on its own pty), so it is only ignored here. Other
 * termination signals stop the container: its init is killed, and the whole
 * PID namespace with it.
 */
export async function forwardSignals(started: { kill(): void; done: Promise<number> }): Promise<number> {
  const sigs: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  const handler = (s: NodeJS.Signals) => {
    if (s === "SIGINT" && process.stdin.isTTY) return;
    started.kill();
  };
  for (const s of sigs) process.on(s, handler);
  try {
    return await started.done;
  } finally {
    for (const s of sigs) process.off(s, handler);
  }
}
