// Git sources (e.g. ComfyUI itself): a repository at a commit, unpacked into
// an image directory. A branch or tag is resolved once and locked to its
// commit, so a moving branch never changes a build until `lock --update`.
// Any git source can be replaced by a local checkout with --override NAME=DIR.

import { execFile } from "node:child_process";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { z } from "zod";
import { LockError, NetworkError } from "../../errors.ts";
import { extractTar } from "../../archive/tar.ts";
import { lockableUrl, redactUrl } from "../../fetch/fetch.ts";
import { sha256Hex } from "../../util/hash.ts";
import { copyHostPath, digestHostPath } from "../files/index.ts";
import type { LockedPackage, SourceContext, SourceKind } from "../types.ts";
import { spawn } from "node:child_process";

const run = promisify(execFile);
const COMMIT = /^[0-9a-f]{40}$/;

export const gitSpecSchema = z
  .object({
    url: z.string().min(1),
    /** A full commit id (best), or a branch/tag that `layerfold lock` pins to a commit. */
    rev: z.string().min(1),
    dest: z.string().startsWith("/", "must be an absolute image path"),
    /** Package name (default: the repository's name), used by overrides, `why` and conflicts. */
    name: z.string().optional(),
    uid: z.number().int().min(0).optional(),
    gid: z.number().int().min(0).optional(),
  })
  .strict();

export type GitSpec = z.infer<typeof gitSpecSchema>;

export const gitNameOf = (spec: GitSpec) => spec.name ?? (spec.url.replace(/\/+$/, "").split("/").pop() ?? "repo").replace(/\.git$/, "").toLowerCase();

async function git(args: string[], what: string, cwd?: string): Promise<string> {
  try {
    const { stdout } = await run("git", args, { cwd, maxBuffer: 16 << 20, env: { ...process.env, GIT_TERMINAL_PROMPT: "0" } });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; code?: string | number };
    if (e.code === "ENOENT") throw new NetworkError(`${what}: the git program is missing; install it (apt-get install -y git)`);
    const msg = (e.stderr ?? String(err)).trim().split("\n").slice(-2).join(" ");
    throw new NetworkError(`${what}: git ${args[0]} failed: ${msg}`);
  }
}

function unreachable(spec: GitSpec, err: unknown): never {
  const name = gitNameOf(spec);
  throw new NetworkError(
    `git source ${redactUrl(spec.url)} (git:${name}) is unreachable: ${(err as Error).message.replace(/^.*?: /, "")}\n` +
      `Build from a local checkout instead: layerfold build --override ${name}=DIR`,
    { cause: err },
  );
}

/** A bare repository in the store that caches fetched commits for one URL. */
async function cacheRepo(ctx: SourceContext, url: string): Promise<string> {
  const dir = path.join(ctx.store.root, "git", sha256Hex(url).slice(0, 32));
  await mkdir(dir, { recursive: true });
  await git(["init", "--quiet", "--bare", dir], `git cache for ${redactUrl(url)}`);
  return dir;
}

async function hasCommit(repo: string, commit: string): Promise<boolean> {
  try {
    await run("git", ["cat-file", "-e", `${commit}^{commit}`], { cwd: repo });
    return true;
  } catch {
    return false;
  }
}

export const gitSource: SourceKind<GitSpec[], undefined> = {
  kind: "git",
  layerKey: "git",
  layerSchema: z.array(gitSpecSchema),
  async resolve(specs, _opts, ctx) {
    const packages: LockedPackage[] = [];
    for (const layer of specs) {
      for (const spec of layer ?? []) {
        const name = gitNameOf(spec);
        const id = `git:${name}`;
        const locked = ctx.locked.find((p) => p.id === id && p.meta?.url === lockableUrl(spec.url) && p.meta?.rev === spec.rev);
        let commit: string | undefined = COMMIT.test(spec.rev) ? spec.rev : ctx.update.includes(name) ? undefined : (locked?.meta?.commit as string | undefined);
        if (!commit) {
          if (ctx.frozen) throw new LockError(`git source ${redactUrl(spec.url)} (${id}) names ${spec.rev}, which is not pinned in the lock; run \`layerfold lock\``);
          const out = await git(["ls-remote", spec.url, spec.rev, `${spec.rev}^{}`], `git source ${redactUrl(spec.url)} (${id})`).catch((e) => unreachable(spec, e));
          const lines = out.trim().split("\n").filter(Boolean).map((l) => l.split("\t") as [string, string]);
          commit = (lines.find(([, ref]) => ref.endsWith("^{}")) ?? lines[0])?.[0];
          if (!commit) throw new LockError(`git source ${redactUrl(spec.url)} (${id}): no branch or tag named ${spec.rev}; give a commit id or an existing ref`);
          ctx.log.info(`git ${name}: ${spec.rev} is ${commit}`);
        }
        packages.push({
          id,
          kind: "git",
          name,
          version: commit.slice(0, 12),
          deps: [],
          // No trace of a local override here: the lock must not change with --override (installKey covers it).
          meta: { url: lockableUrl(spec.url), rev: spec.rev, commit, dest: spec.dest },
        });
      }
    }
    return { packages, roots: specs.map((layer) => (layer ?? []).map((s) => `git:${gitNameOf(s)}`)) };
  },
  async installKey(pkg, _o, ctx) {
    const local = ctx.overrides[pkg.name] ?? ctx.overrides[pkg.id];
    // A local checkout is keyed by its content, so editing it rebuilds just its layer.
    return local ? `local:${await digestHostPath(path.resolve(local), [".git"], `override ${local} for ${pkg.id}`)}` : "";
  },
  async install(pkg, tree, _opts, ctx) {
    const spec = specFor(pkg, ctx.image.layers);
    const local = ctx.overrides[pkg.name] ?? ctx.overrides[pkg.id];
    if (local) {
      await copyHostPath(tree, path.resolve(local), { dest: spec.dest, uid: spec.uid, gid: spec.gid, exclude: [".git"] }, `git:${pkg.name} overridden by ${local}`);
      return;
    }
    const commit = pkg.meta!.commit as string;
    const what = `git source ${redactUrl(spec.url)} (${pkg.id})`;
    const repo = await cacheRepo(ctx, spec.url);
    if (!(await hasCommit(repo, commit))) {
      // Fetch just that commit; servers that refuse fetch-by-id get a full fetch.
      try {
        await git(["fetch", "--quiet", "--depth", "1", spec.url, commit], what, repo);
      } catch {
        await git(["fetch", "--quiet", spec.url, "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"], what, repo).catch((e) => unreachable(spec, e));
      }
      if (!(await hasCommit(repo, commit))) throw new LockError(`${what}: commit ${commit} is not in the repository any more; run \`layerfold lock --update ${pkg.name}\``);
    }
    const child = spawn("git", ["archive", "--format=tar", commit], { cwd: repo, stdio: ["ignore", "pipe", "pipe"] });
    const exited = new Promise<number>((resolve) => child.on("close", (code) => resolve(code ?? 1)));
    await extractTar(child.stdout, tree, { prefix: spec.dest.replace(/^\/+/, "") });
    if ((await exited) !== 0) throw new NetworkError(`${what}: git archive ${commit} failed`);
    if (spec.uid !== undefined || spec.gid !== undefined) tree.override(() => true, { uid: spec.uid, gid: spec.gid });
  },
  treeOptions: { symlinks: "contained" },
};

function specFor(pkg: LockedPackage, layers: Array<Record<string, unknown>>): GitSpec {
  for (const layer of layers) for (const spec of (layer.git as GitSpec[] | undefined) ?? []) if (`git:${gitNameOf(spec)}` === pkg.id) return spec;
  throw new LockError(`${pkg.id} is in the lock but no layer names it any more; run \`layerfold lock\``);
}
