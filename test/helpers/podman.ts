// A Docker-compatible Engine API for tests: `podman system service` on a unix
// socket in a temp dir, with its own storage, and the flags this machine needs
// (vfs storage, runc, cgroupfs, no default ulimits). `docker` pointed at it
// with DOCKER_HOST=unix://SOCK loads and runs images.

import { spawn, execFile } from "node:child_process";
import { mkdtemp, rm, writeFile, readFile } from "node:fs/promises";
import { openSync, closeSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { hasCommand, killOnExit } from "./registry.ts";

const run = promisify(execFile);

export interface RunningPodman {
  socketPath: string;
  /** "unix:///.../podman.sock" */
  dockerHost: string;
  /** Environment for child processes (docker CLI, podman CLI) that should use this engine. */
  env: NodeJS.ProcessEnv;
  /** Run the docker CLI against this engine. */
  docker(args: string[], opts?: { timeoutMs?: number }): Promise<{ stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

export const podmanAvailable = (): boolean => hasCommand("podman") && hasCommand("runc");

function ping(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ socketPath, path: "/_ping" }, (res) => { res.resume(); resolve(res.statusCode === 200); });
    req.on("error", () => resolve(false));
    req.setTimeout(1000, () => { req.destroy(); resolve(false); });
  });
}

export async function startPodmanService(): Promise<RunningPodman> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "lf-podman-"));
  const conf = path.join(dir, "containers.conf");
  await writeFile(conf, "[containers]\ndefault_ulimits = []\n");
  const socketPath = path.join(dir, "podman.sock");
  const podmanArgs = ["--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager", "cgroupfs", "--root", path.join(dir, "root"), "--runroot", path.join(dir, "runroot"), "--tmpdir", path.join(dir, "tmp")];
  const env = { ...process.env, CONTAINERS_CONF: conf, DOCKER_HOST: `unix://${socketPath}` };
  const logFile = path.join(dir, "podman.log");
  const fd = openSync(logFile, "a");
  const child = spawn("podman", [...podmanArgs, "system", "service", "--time=0", `unix://${socketPath}`], { stdio: ["ignore", fd, fd], env });
  closeSync(fd);
  killOnExit(child);
  let exited = false;
  child.once("exit", () => { exited = true; });
  const deadline = Date.now() + 20_000;
  while (!(await ping(socketPath))) {
    if (exited || Date.now() > deadline) {
      child.kill("SIGKILL");
      const log = await readFile(logFile, "utf8").catch(() => "");
      await rm(dir, { recursive: true, force: true });
      throw new Error(`podman system service did not come up:\n${log.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  return {
    socketPath,
    dockerHost: `unix://${socketPath}`,
    env,
    docker: (args, opts) => run("docker", args, { env, timeout: opts?.timeoutMs ?? 120_000, maxBuffer: 16 << 20 }),
    async stop() {
      if (child.exitCode === null) {
        const done = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 5000);
        await done;
        clearTimeout(t);
      }
      // vfs layers can be large; podman's own cleanup is not needed for a temp root.
      await rm(dir, { recursive: true, force: true }).catch(() => {});
    },
  };
}
