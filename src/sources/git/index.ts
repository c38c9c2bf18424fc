// Git sources (e.g. ComfyUI itself): a repository at a commit, unpacked into
// an image directory. A branch or tag is resolved once and locked to its
// commit, so a moving branch never changes a build until `lock --update`.
// Any git source can be replaced by a local checkout with --override NAME=DIR.

import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { z } from "zod";
import { ConfigError, LockError, NetworkError } from "../../errors.ts";
import { extractTar } from "../../archive/tar.ts";
import { lockableUrl, redactUrl } from "../../fetch/fetch.ts";
import { sha256Hex } from "../../util/hash.ts";
import { stableJson } from "../../util/json.ts";
import type { TreeWriter } from "../../store/tree.ts";
import { copyHostPath, digestHostPath } from "../files/index.ts";
import type { LockedPackage, SourceContext, SourceKind } from "../types.ts";
import { spawn } from "node:child_process";
import { purlEncode, purlQualifiers, sourceOrigin } from "../../util/purl.ts";

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
    /**
     * Bundle a `.git` holding just the pinned commit (a shallow clone of depth 1), so the app
     * can tell its revision and update itself. `branch` names the branch HEAD is on (else detached).
     */
    gitDir: z.object({ branch: z.string().regex(/^(?!-)(?!.*\.\.)[A-Za-z0-9._/-]+$/, "must be a branch name such as \"master\"").optional() }).strict().optional(),
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

async function hasObject(repo: string, object: string): Promise<boolean> {
  try {
    await run("git", ["cat-file", "-e", object], { cwd: repo });
    return true;
  } catch {
    return false;
  }
}

const hasCommit = (repo: string, commit: string) => hasObject(repo, `${commit}^{commit}`);

/** The store's cache repository for the source, holding the locked commit (fetched once). */
async function fetchCommit(spec: GitSpec, pkg: LockedPackage, ctx: SourceContext): Promise<string> {
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
  return repo;
}

export const gitSource: SourceKind<GitSpec[], undefined> = {
  kind: "git",
  layerKey: "git",
  acceptsOverrides: true,
  purl: (p) => {
    const { url, rev } = sourceOrigin(p);
    return `pkg:generic/${purlEncode(p.name)}@${purlEncode(rev)}${purlQualifiers({ vcs_url: url ? `git+${url}@${rev}` : undefined })}`;
  },
  sbomPurpose: "source",
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
    const spec = specFor(pkg, ctx.image.layers);
    const local = ctx.overrides[pkg.name] ?? ctx.overrides[pkg.id];
    // Without gitDir the key stays "" as before, so existing trees are reused.
    const gitDir = spec.gitDir ? `gitdir:${stableJson({ format: GIT_DIR_FORMAT, branch: spec.gitDir.branch ?? null, url: lockableUrl(spec.url) })}` : "";
    if (!local) return gitDir;
    // A local checkout is keyed by its content, so editing it rebuilds just its layer.
    const content = `local:${await digestHostPath(path.resolve(local), [".git"], `override ${local} for ${pkg.id}`)}`;
    return spec.gitDir ? `${content}|${gitDir}|head:${(await localHead(path.resolve(local))) ?? "none"}` : content;
  },
  async install(pkg, tree, _opts, ctx) {
    const spec = specFor(pkg, ctx.image.layers);
    const local = ctx.overrides[pkg.name] ?? ctx.overrides[pkg.id];
    if (local) {
      await copyHostPath(tree, path.resolve(local), { dest: spec.dest, uid: spec.uid, gid: spec.gid, exclude: [".git"] }, `git:${pkg.name} overridden by ${local}`);
      if (spec.gitDir) {
        // The checkout's own HEAD (not the locked commit, which it may not have) goes into .git.
        const head = await localHead(path.resolve(local));
        if (head) await addGitDir(tree, path.resolve(local), head, spec, `${pkg.id} overridden by ${local}`);
        else ctx.log.warn(`${pkg.id}: the override ${local} is not a git checkout, so the image gets no ${spec.dest}/.git (gitDir); commit it with git to bundle one`);
        if (spec.uid !== undefined || spec.gid !== undefined) tree.override(() => true, { uid: spec.uid, gid: spec.gid });
      }
      return;
    }
    const commit = pkg.meta!.commit as string;
    const what = `git source ${redactUrl(spec.url)} (${pkg.id})`;
    const repo = await fetchCommit(spec, pkg, ctx);
    const child = spawn("git", ["archive", "--format=tar", commit], { cwd: repo, stdio: ["ignore", "pipe", "pipe"] });
    const exited = new Promise<number>((resolve) => child.on("close", (code) => resolve(code ?? 1)));
    await extractTar(child.stdout, tree, { prefix: spec.dest.replace(/^\/+/, "") });
    if ((await exited) !== 0) throw new NetworkError(`${what}: git archive ${commit} failed`);
    if (spec.gitDir) await addGitDir(tree, repo, commit, spec, what);
    if (spec.uid !== undefined || spec.gid !== undefined) tree.override(() => true, { uid: spec.uid, gid: spec.gid });
  },
  async readFile(pkg, file, ctx) {
    const spec = specFor(pkg, ctx.image.layers);
    const local = ctx.overrides[pkg.name] ?? ctx.overrides[pkg.id];
    if (local) {
      try {
        return await readFile(path.join(path.resolve(local), file));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw new ConfigError(`${file} in the override ${local} of ${pkg.id} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      }
    }
    const commit = pkg.meta!.commit as string;
    const repo = await fetchCommit(spec, pkg, ctx);
    if (!(await hasObject(repo, `${commit}:${file}`))) return undefined;
    const { stdout } = await run("git", ["cat-file", "blob", `${commit}:${file}`], { cwd: repo, encoding: "buffer", maxBuffer: 64 << 20 });
    return stdout;
  },
  treeOptions: { symlinks: "contained" },
};

function specFor(pkg: LockedPackage, layers: Array<Record<string, unknown>>): GitSpec {
  for (const layer of layers) for (const spec of (layer.git as GitSpec[] | undefined) ?? []) if (`git:${gitNameOf(spec)}` === pkg.id) return spec;
  throw new LockError(`${pkg.id} is in the lock but no layer names it any more; run \`layerfold lock\``);
}

/** The shape of the bundled .git; bump when addGitDir writes something else. */
const GIT_DIR_FORMAT = 1;

/** git with no user or system configuration, so what it writes depends only on its inputs. */
async function plainGit(args: string[], cwd: string, env: Record<string, string> = {}): Promise<string> {
  const { stdout } = await run("git", args, { cwd, maxBuffer: 64 << 20, env: { ...process.env, GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null", ...env } });
  return stdout;
}

/**
 * A `.git` that makes `dest` a shallow clone of the pinned commit: one pack with the
 * commit's objects (single-threaded, so the same bytes every time), an index with no
 * stat data (git re-hashes the files once and finds them clean), HEAD on the branch.
 */
async function addGitDir(tree: TreeWriter, repo: string, commit: string, spec: GitSpec, what: string): Promise<void> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), "layerfold-gitdir-"));
  try {
    const objects = await plainGit(["rev-list", "--objects", "--no-walk", commit], repo);
    const pack = spawn("git", ["pack-objects", "--threads=1", "-q", path.join(tmp, "pack")], { cwd: repo, stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null" } });
    let hash = "";
    let err = "";
    pack.stdout.on("data", (d: Buffer) => { hash += d.toString(); });
    pack.stderr.on("data", (d: Buffer) => { err += d.toString(); });
    const closed = new Promise<number>((resolve) => pack.on("close", (code) => resolve(code ?? 1)));
    pack.stdin.end(objects);
    if ((await closed) !== 0) throw new NetworkError(`${what}: git pack-objects failed: ${err.trim()}`);
    hash = hash.trim();
    await plainGit(["read-tree", commit], repo, { GIT_INDEX_FILE: path.join(tmp, "index") });
    const root = `${spec.dest.replace(/^\/+|\/+$/g, "")}/.git`;
    const branch = spec.gitDir?.branch;
    await tree.addFile(`${root}/HEAD`, branch ? `ref: refs/heads/${branch}\n` : `${commit}\n`);
    if (branch) await tree.addFile(`${root}/refs/heads/${branch}`, `${commit}\n`);
    await tree.addDir(`${root}/refs/heads`);
    await tree.addDir(`${root}/refs/tags`);
    await tree.addFile(`${root}/shallow`, `${commit}\n`);
    await tree.addFile(
      `${root}/config`,
      `[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n` +
        `[remote "origin"]\n\turl = ${lockableUrl(spec.url)}\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n` +
        (branch ? `[branch "${branch}"]\n\tremote = origin\n\tmerge = refs/heads/${branch}\n` : ""),
    );
    await tree.addDir(`${root}/objects/info`);
    for (const ext of ["pack", "idx"]) await tree.addFileFromHost(`${root}/objects/pack/pack-${hash}.${ext}`, path.join(tmp, `pack-${hash}.${ext}`), { mode: 0o444 });
    await tree.addFileFromHost(`${root}/index`, path.join(tmp, "index"));
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** HEAD of a local checkout used as an override, or undefined when it is not a git work tree. */
async function localHead(dir: string): Promise<string | undefined> {
  try {
    return (await plainGit(["rev-parse", "--verify", "HEAD^{commit}"], dir)).trim();
  } catch {
    return undefined;
  }
}
