// Is the program `run` is about to start in the image? Looked up in the materialised
// rootfs as exec in the container would (PATH for a bare name, symlinks followed from
// the image's root), so a missing or unexecutable program is a clear error (127, 126)
// instead of whatever the sandbox's exec prints.

import { lstat, stat } from "node:fs/promises";
import path from "node:path";
import { CannotExecuteError, CommandNotFoundError } from "../errors.ts";
import { DEFAULT_PATH } from "../oci/image.ts";
import { resolveInRoot } from "./sandbox.ts";

/** An image path resolved to its host path under `root`, symlinks followed inside the image; undefined if missing or a loop. */
async function resolveInRootfs(root: string, imagePath: string): Promise<string | undefined> {
  try {
    const host = path.join(root, await resolveInRoot(root, imagePath));
    return (await lstat(host).then(() => true, () => false)) ? host : undefined;
  } catch {
    return undefined; // a symlink loop
  }
}

/**
 * Check that argv[0] names an executable file in the image. `env` is the container's
 * (its PATH is searched for a bare name), `workdir` resolves a relative path, and a path
 * under a bind mount is the host's business (not checked).
 */
export async function checkCommand(root: string, image: string, argv0: string, opts: { env: string[]; workdir: string; mounts?: Array<{ container: string }> }): Promise<void> {
  const searchPath = (opts.env.find((kv) => kv.startsWith("PATH="))?.slice(5) ?? DEFAULT_PATH).split(":").filter(Boolean);
  const candidates = argv0.includes("/") ? [path.posix.resolve(opts.workdir, argv0)] : searchPath.map((d) => path.posix.resolve(opts.workdir, d, argv0));
  let notExecutable: string | undefined;
  for (const c of candidates) {
    if (opts.mounts?.some((m) => c === m.container || c.startsWith(`${m.container.replace(/\/+$/, "")}/`))) return;
    const host = await resolveInRootfs(root, c);
    const st = host && (await stat(host).catch(() => undefined));
    if (!st) continue;
    if (st.isFile() && st.mode & 0o111) return;
    notExecutable ??= `${c} is ${st.isDirectory() ? "a directory" : `not executable (mode ${(st.mode & 0o7777).toString(8).padStart(4, "0")})`}`;
    if (argv0.includes("/")) break;
  }
  if (notExecutable) throw new CannotExecuteError(`${argv0}: ${notExecutable} in ${image}; give a program the image can run (layerfold run -- CMD, or --entrypoint)`);
  throw new CommandNotFoundError(
    argv0.includes("/")
      ? `${argv0}: no such file in ${image}; give a program the image has (layerfold run -- CMD, or --entrypoint)`
      : `${argv0}: not found in ${image} (searched PATH=${searchPath.join(":")}); give a path, or a program on the image's PATH`,
  );
}
