// Rootless: start a program in a new user namespace (with its own mount
// namespace) whose ids are the mapping's, the way rootless podman does: the
// child (util-linux unshare) makes the namespace and waits; the parent writes
// its uid/gid maps (newuidmap/newgidmap for a subordinate range, /proc for
// the user alone) and lets it go on.
//
// The child's fd 4 is the handshake socket: it writes "r" once the namespace
// exists and reads a line before going on. A script run this way starts with
// USERNS_WAIT.

import { execFile, spawn, type ChildProcess, type StdioOptions } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { promisify } from "node:util";
import type { Duplex } from "node:stream";
import { RuntimeError } from "../errors.ts";
import { hostMapping, type IdMapping, type IdRange } from "./idmap.ts";

const run = promisify(execFile);

export const USERNS_WAIT = "printf r >&4; read -r _ <&4; exec 4>&-";

const flat = (ranges: IdRange[]) => ranges.flatMap((r) => [String(r.containerID), String(r.hostID), String(r.size)]);

async function writeMaps(pid: number, m: IdMapping): Promise<void> {
  if (m.uids.length > 1 || m.gids.length > 1) {
    // Subordinate ranges: only the setuid helpers may write these.
    try {
      await run("newuidmap", [String(pid), ...flat(m.uids)]);
      await run("newgidmap", [String(pid), ...flat(m.gids)]);
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new RuntimeError(`newuidmap/newgidmap could not map the subordinate ids of /etc/subuid and /etc/subgid: ${(e.stderr || e.message).trim()}; check those files (and that uidmap is installed)`, { cause: err });
    }
    return;
  }
  // Only the user: allowed without help once setgroups is denied.
  await writeFile(`/proc/${pid}/setgroups`, "deny");
  await writeFile(`/proc/${pid}/uid_map`, `${m.uids[0]!.containerID} ${m.uids[0]!.hostID} 1\n`);
  await writeFile(`/proc/${pid}/gid_map`, `${m.gids[0]!.containerID} ${m.gids[0]!.hostID} 1\n`);
}

/**
 * Spawn `sh -c script args…` in a new user and mount namespace. stdio[4] must
 * be "pipe" (the handshake); the script must run USERNS_WAIT first. `failed`
 * rejects if the maps could not be written (the child is then killed).
 */
export function spawnInUserns(script: string, args: string[], mapping: IdMapping, stdio: StdioOptions, env: NodeJS.ProcessEnv): { child: ChildProcess; mapped: Promise<void> } {
  const child = spawn("unshare", ["--user", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "sh", ...args], { stdio, env });
  const sync = child.stdio[4] as Duplex;
  const mapped = new Promise<void>((resolve, reject) => {
    sync.once("data", () => {
      writeMaps(child.pid!, mapping).then(
        () => { sync.write("g\n"); resolve(); },
        (err) => { child.kill("SIGKILL"); reject(err); },
      );
    });
    child.once("close", () => reject(new RuntimeError("the user namespace helper exited before its ids were mapped")));
    sync.on("error", () => {});
  });
  mapped.catch(() => {});
  return { child, mapped };
}

/** Run `sh -c script args…` to its end in a user namespace with this user's mapping; a failure is a RuntimeError saying what. */
async function runInUserns(what: string, script: string, args: string[], input?: string, env: NodeJS.ProcessEnv = { PATH: "/usr/bin:/bin" }): Promise<void> {
  const { child, mapped } = spawnInUserns(`${USERNS_WAIT}\n${script}`, args, hostMapping(), ["pipe", "ignore", "pipe", "ignore", "pipe"], env);
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  child.stdin!.end(input ?? "");
  const code = await new Promise<number>((resolve) => child.on("close", (c) => resolve(c ?? 1)));
  await mapped;
  if (code !== 0) throw new RuntimeError(`could not ${what} in the user namespace: ${err.trim().split("\n").slice(-3).join("\n")}`);
}

/** Rootless materialisation: give files the image's other owners, from inside the user namespace. */
export async function chownInNamespace(entries: Array<{ file: string; uid: number; gid: number; mode: number; symlink: boolean }>): Promise<void> {
  const js = String.raw`
const fs = require("node:fs");
let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
  for (const e of JSON.parse(input)) {
    fs.lchownSync(e.file, e.uid, e.gid);
    if (!e.symlink) fs.chmodSync(e.file, e.mode);
  }
});`;
  await runInUserns("give the root filesystem's files their owners", 'exec "$1" -e "$2"', [process.execPath, js], JSON.stringify(entries));
}

/** rm -rf a directory as the user namespace's root: rootless, it may hold files of the user's subordinate ids. */
export async function removeInUserNamespace(dir: string): Promise<void> {
  await runInUserns(`remove ${dir}`, 'exec rm -rf -- "$1"', [dir]);
}
