// Run layerfold as a non-root user in tests. The checkout may sit where
// another user cannot read (a CI clone under /root), so the CLI is bundled
// into one file in a directory the test opens to that user; the user gets
// a subordinate id range if it has none, like useradd gives new users.

import { execFileSync } from "node:child_process";
import { chmod, chown, copyFile, mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import { build } from "esbuild";
import { repoRoot, runCommand, type CliResult } from "../helpers/cli.ts";
import { subordinateRange } from "../../src/runtime/idmap.ts";

export const TEST_USER = "layerfold-test";
/** Its subordinate ids: clear of useradd's (100000 + 65536·n) and of root's default range. */
const SUB_START = 1_500_000_000;

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  /** First host uid of its subordinate range (container uid 1); -1 when it has none. */
  subuid: number;
}

/** Why a non-root test cannot run here, or undefined. */
export function rootlessProblem(): string | undefined {
  if (process.getuid?.() !== 0) return "the tests make a non-root user, which needs root";
  for (const tool of ["useradd", "usermod", "setpriv", "newuidmap"]) {
    try {
      execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore", env: { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" } });
    } catch {
      return `${tool} is not installed (passwd, util-linux, uidmap)`;
    }
  }
  return undefined;
}

/** The test user (made if missing); with `range`, given a subordinate id range if it has none. */
export async function ensureTestUser(name = TEST_USER, range = true): Promise<TestUser> {
  const id = (flag: string) => Number(execFileSync("id", [flag, name], { encoding: "utf8" }).trim());
  try {
    id("-u");
  } catch {
    // --system: useradd gives system users no subordinate range of their own.
    execFileSync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name]);
  }
  const has = async (f: string) => (await readFile(f, "utf8").catch(() => "")).split("\n").some((l) => l.startsWith(`${name}:`));
  if (range && (!(await has("/etc/subuid")) || !(await has("/etc/subgid")))) {
    const r = `${SUB_START}-${SUB_START + 65535}`;
    execFileSync("usermod", ["--add-subuids", r, "--add-subgids", r, name]);
  }
  const uid = id("-u");
  return { name, uid, gid: id("-g"), subuid: subordinateRange(await readFile("/etc/subuid", "utf8").catch(() => ""), name, uid)?.start ?? -1 };
}

/** A directory under `parent` that the user owns (its store, its home). */
export async function userDir(parent: string, name: string, user: TestUser): Promise<string> {
  const dir = path.join(parent, name);
  await mkdir(dir, { recursive: true });
  await chown(dir, user.uid, user.gid);
  await chmod(dir, 0o700);
  return dir;
}

/** The CLI as one ES module at dir/dist/layerfold.mjs (beside a copy of package.json, which it reads), readable by anyone. */
export async function bundleCli(dir: string): Promise<string> {
  const out = path.join(dir, "dist", "layerfold.mjs");
  await copyFile(path.join(repoRoot, "package.json"), path.join(dir, "package.json"));
  await build({
    stdin: { contents: `import { main } from ${JSON.stringify(path.join(repoRoot, "src", "cli", "main.ts"))};\nawait main(process.argv);\n`, resolveDir: repoRoot, loader: "ts" },
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outfile: out,
    external: ["esbuild", "tsx"],
    banner: { js: 'import { createRequire as __lfRequire } from "node:module"; const require = __lfRequire(import.meta.url);' },
    logLevel: "error",
  });
  execFileSync("chmod", ["-R", "a+rX", path.dirname(out), path.join(dir, "package.json")]);
  return out;
}

/** Run a command as the user, with a clean environment and HOME. */
export function asUser(user: TestUser, home: string, argv: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return runCommand("setpriv", [`--reuid=${user.uid}`, `--regid=${user.gid}`, "--init-groups", "--", ...argv], {
    cwd: opts.cwd ?? home,
    env: { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: home, USER: user.name, LOGNAME: user.name, ...opts.env },
  });
}
