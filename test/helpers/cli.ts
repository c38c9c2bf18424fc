// Run the real `layerfold` command in a subprocess, and make throwaway dirs.

import { spawn } from "node:child_process";
import { cp, mkdtemp, rm } from "node:fs/promises";
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

export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { cwd: opts.cwd ?? repoRoot, env: { ...process.env, ...opts.env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
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
  // The config imports the library relative to the repo; point it at the real one.
  const cfg = path.join(dir, "layerfold.config.ts");
  const { readFile, writeFile, mkdir } = await import("node:fs/promises");
  await writeFile(cfg, (await readFile(cfg, "utf8")).replace("../../src/index.ts", path.join(repoRoot, "src", "index.ts")));
  await mkdir(path.join(dir, "build"), { recursive: true });
  execFileSync("gcc", ["-static", "-O2", "-o", path.join(dir, "build", "hello"), path.join(dir, "hello.c")]);
  return dir;
}
