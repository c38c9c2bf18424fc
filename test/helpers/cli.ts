// Run the real `layerfold` command in a subprocess, and make throwaway dirs.

import { spawn } from "node:child_process";
import { cp, mkdir, mkdtemp, rm } from "node:fs/promises";
import { execFileSync } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const cliPath = path.join(repoRoot, "bin", "layerfold.mjs");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command, collecting its output. `env` is the child's whole environment; `uid`/`gid` run it as another user. */
export function runCommand(cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; uid?: number; gid?: number }): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, opts);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** `script`: another copy of bin/layerfold.mjs to run. */
export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; script?: string } = {}): Promise<CliResult> {
  return runCommand(process.execPath, [opts.script ?? cliPath, ...args], { cwd: opts.cwd ?? repoRoot, env: { ...process.env, ...opts.env } });
}

export async function tempDir(prefix = "layerfold-test-"): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A copy of examples/hello with its static binary compiled, in a temp dir. */
export async function helloExample(into: string): Promise<string> {
  const dir = path.join(into, "hello");
  await cp(path.join(repoRoot, "examples", "hello"), dir, {
    recursive: true,
    filter: (src) => !/\/(out|build)$/.test(src) && !src.endsWith("layerfold.lock"),
  });
  // The config imports "layerfold", which the config loader maps to the running copy wherever the config is.
  await mkdir(path.join(dir, "build"), { recursive: true });
  execFileSync("gcc", ["-static", "-O2", "-o", path.join(dir, "build", "hello"), path.join(dir, "hello.c")]);
  return dir;
}
