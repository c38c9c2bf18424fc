// PEP 517 builds for requirements that have no wheel: `name @ git+URL@rev`.
// The checkout is pinned to a commit (the locked source hash); the build
// requirements are resolved with layerfold's own resolver for the HOST
// interpreter and installed into a throw-away directory (no pip); the
// backend's build_wheel hook runs with that host interpreter. The wheel is
// cached in the store by (source commit, interpreter version), so the next
// resolve or install costs nothing.

import { execFile, spawn } from "node:child_process";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { createReadStream } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { NetworkError, ResolveError } from "../../errors.ts";
import { redactUrl } from "../../fetch/fetch.ts";
import type { Store } from "../../store/store.ts";
import { TreeWriter } from "../../store/tree.ts";
import { sha256Hex } from "../../util/hash.ts";
import { stableJson } from "../../util/json.ts";
import type { Logger } from "../../util/log.ts";
import type { Finder } from "./finder.ts";
import { parseRequirement, targetMarkerEnv } from "./pep508.ts";
import { Resolver, type Candidate, type Provider } from "./resolver.ts";
import { supportedTags, wheelRank, parseWheelName, type Target } from "./tags.ts";
import { installWheel } from "./wheel.ts";

const PY_BUILD = "py-build";
/** A wheel built from a git source stays while a kept package's artifact is that wheel. */
export const PY_BUILD_RECORDS: RecordKind<{ sha256?: string }> = { kind: PY_BUILD, keep: (_key, rec, live) => !!rec?.sha256 && live.artifacts.has(rec.sha256) };

const run = promisify(execFile);

export interface VcsUrl {
  /** URL git understands (without "git+", rev and fragment). */
  repo: string;
  rev?: string;
  subdirectory?: string;
}

/** Split "git+https://host/repo.git@rev#subdirectory=x" (PEP 440 direct references). */
export function parseVcsUrl(url: string): VcsUrl | undefined {
  const m = /^git\+(.*)$/.exec(url);
  if (!m) return undefined;
  let rest = m[1]!;
  let subdirectory: string | undefined;
  const hash = rest.indexOf("#");
  if (hash >= 0) {
    subdirectory = /(?:^|&)subdirectory=([^&]+)/.exec(rest.slice(hash + 1))?.[1];
    rest = rest.slice(0, hash);
  }
  const at = rest.lastIndexOf("@");
  const slash = rest.lastIndexOf("/");
  let rev: string | undefined;
  if (at > slash) { rev = rest.slice(at + 1); rest = rest.slice(0, at); }
  return { repo: rest, rev, subdirectory };
}

async function git(args: string[], what: string, cwd?: string): Promise<string> {
  try {
    const { stdout } = await run("git", args, { cwd, maxBuffer: 16 << 20, env: { ...process.env, GIT_TERMINAL_PROMPT: "0" } });
    return stdout.trim();
  } catch (err) {
    const e = err as { stderr?: string; code?: string | number };
    if (e.code === "ENOENT") throw new NetworkError(`${what}: the git program is missing; install it`);
    throw new NetworkError(`${what}: git ${args[0]} failed: ${(e.stderr ?? String(err)).trim().split("\n").slice(-2).join(" ")}`);
  }
}

/** The [build-system] table of pyproject.toml: just the keys PEP 517/518 define. */
export function parseBuildSystem(toml: string): { requires: string[]; backend: string; backendPath: string[] } {
  const table = /^\[build-system\]\s*$([\s\S]*?)(?=^\[|(?![\s\S]))/m.exec(toml)?.[1];
  const strings = (v: string | undefined) => [...(v ?? "").matchAll(/"((?:[^"\\]|\\.)*)"|'([^']*)'/g)].map((x) => x[1] ?? x[2] ?? "");
  if (table === undefined) return { requires: ["setuptools>=40.8.0"], backend: "setuptools.build_meta:__legacy__", backendPath: [] };
  const requires = strings(/^requires\s*=\s*(\[[\s\S]*?\])/m.exec(table)?.[1]);
  const backend = strings(/^build-backend\s*=\s*(.+)$/m.exec(table)?.[1])[0] ?? "setuptools.build_meta:__legacy__";
  const backendPath = strings(/^backend-path\s*=\s*(\[[\s\S]*?\])/m.exec(table)?.[1]);
  return { requires, backend, backendPath };
}

const HOOK = `
import importlib, json, os, sys
backend, backend_path, hook, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
sys.path[:0] = [os.path.abspath(p) for p in backend_path]
mod, _, obj = backend.partition(":")
b = importlib.import_module(mod)
for a in filter(None, obj.split(".")):
    b = getattr(b, a)
if hook == "requires":
    f = getattr(b, "get_requires_for_build_wheel", None)
    print(json.dumps(f({}) if f else []))
else:
    print(json.dumps(b.build_wheel(out, {})))
`;
import type { RecordKind } from "../../store/record-kinds.ts";

function runPython(python: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; what: string; log: Logger }): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, args, { cwd: opts.cwd, env: opts.env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => { out += c.toString(); });
    child.stderr.on("data", (c: Buffer) => { err += c.toString(); if (err.length > 1 << 20) err = err.slice(-(1 << 19)); });
    child.on("error", (e) => reject(new ResolveError(`${opts.what}: cannot run ${python}: ${e.message}; set python.build.python to a host interpreter`)));
    child.on("close", (code) => {
      if (code === 0) return resolve(out.trim().split("\n").pop() ?? "");
      opts.log.debug(err);
      reject(new ResolveError(`${opts.what}: the PEP 517 build failed (exit ${code}):\n${err.trim().split("\n").slice(-15).join("\n")}`));
    });
  });
}

export interface BuildContext {
  store: Store;
  finder: Finder;
  log: Logger;
  /** Host interpreter that runs the build. */
  python: string;
  /** The image's target: the host interpreter must have the same X.Y. */
  target: Target;
  sourceDateEpoch: number;
}

export interface BuiltWheel {
  file: string;
  sha256: string;
  commit: string;
}

const hostInfos = new Map<string, Promise<{ version: string; full: string; glibc: string; arch: string; executable: string }>>();

/** Version, glibc and real executable of the build interpreter (asked once: shims such as pyenv's are slow to start). */
function hostInfo(python: string, what: string) {
  let p = hostInfos.get(python);
  if (!p) {
    p = hostInfoUncached(python, what);
    hostInfos.set(python, p);
    p.catch(() => hostInfos.delete(python));
  }
  return p;
}

async function hostInfoUncached(python: string, what: string): Promise<{ version: string; full: string; glibc: string; arch: string; executable: string }> {
  try {
    const { stdout } = await run(python, ["-c", "import sys, platform, json; print(json.dumps([f'{sys.version_info[0]}.{sys.version_info[1]}', platform.python_version(), platform.libc_ver()[1] or '2.17', platform.machine(), sys.executable]))"]);
    const [version, full, glibc, arch, executable] = JSON.parse(stdout) as string[];
    return { version: version!, full: full!, glibc: glibc!, arch: arch!, executable: executable || python };
  } catch (err) {
    throw new ResolveError(`${what}: cannot run the build interpreter ${python} (${(err as Error).message.split("\n")[0]}); set python.build.python`);
  }
}

/** Resolve and install build requirements for the host interpreter into dir/site. */
async function installBuildEnv(reqs: string[], dir: string, bc: BuildContext, host: Awaited<ReturnType<typeof hostInfo>>, what: string): Promise<void> {
  if (!reqs.length) return;
  const [maj, min] = host.version.split(".");
  const t: Target = { version: host.version, implementation: "cp", abi: `cp${maj}${min}`, glibc: host.glibc, arch: host.arch };
  const sup = supportedTags(t);
  const provider: Provider<Candidate & { f: import("./finder.ts").IndexFile }> = {
    async candidates(key) {
      const best = new Map<string, { f: import("./finder.ts").IndexFile; rank: number }>();
      for (const f of await bc.finder.files(key)) {
        const r = f.wheel && wheelRank(f.wheel, sup);
        if (r === undefined || !f.wheel) continue;
        const cur = best.get(f.wheel.version);
        if (!cur || r < cur.rank) best.set(f.wheel.version, { f, rank: r });
      }
      const pep440 = await import("@renovatebot/pep440");
      return [...best].map(([version, { f }]) => ({ key, version, f, requiresPython: f.requiresPython })).sort((a, b) => -pep440.compare(a.version, b.version));
    },
    async dependencies(c) { return (await bc.finder.coreMetadata(c.f)).requiresDist; },
    async whyNone(key) { return `no wheel of "${key}" for the build interpreter ${host.full} is offered by the configured indexes`; },
  };
  const resolved = await new Resolver(provider, {
    roots: reqs.map((r) => ({ req: parseRequirement(r, `${what} build requirement`), origin: `${what} build-system.requires` })),
    env: targetMarkerEnv({ version: host.version, fullVersion: host.full, arch: host.arch }),
  }).resolve();
  const scheme = { purelib: "site", platlib: "site", scripts: "bin", data: "data", headers: "include", shebang: bc.python };
  for (const r of resolved.values()) {
    const f = r.candidate.f;
    const { fetchToStore } = await import("../../fetch/fetch.ts");
    const { hex } = await fetchToStore(bc.store, f.url, { what: `build requirement ${f.file}`, sha256: f.sha256 });
    await installWheel(bc.store.blobPath(hex), new TreeWriter(dir, f.file), { file: f.file, scheme, requested: false });
  }
}

/** Check out, build (or reuse the cached build) and store a wheel for `name @ git+…`. */
export async function buildFromGit(key: string, url: string, bc: BuildContext, lockedCommit?: string): Promise<BuiltWheel> {
  const what = `${key} @ ${redactUrl(url)}`;
  const vcs = parseVcsUrl(url);
  if (!vcs) throw new ResolveError(`${what}: only git+ URLs can be built`);
  const host = await hostInfo(bc.python, what);
  if (host.version !== bc.target.version) {
    throw new ResolveError(`${what}: the build interpreter ${bc.python} is Python ${host.version}, but the image's is ${bc.target.version}; point python.build.python at a ${bc.target.version} interpreter`);
  }
  const work = await mkdtemp(path.join(os.tmpdir(), "layerfold-pybuild-"));
  try {
    const src = path.join(work, "src");
    await git(["clone", "--quiet", "--no-checkout", vcs.repo, src], what);
    const commit = lockedCommit ?? (await git(["rev-parse", "--verify", `${vcs.rev ?? "HEAD"}^{commit}`], what, src));
    const cacheKey = sha256Hex(stableJson({ v: 1, repo: vcs.repo, commit, subdirectory: vcs.subdirectory, python: host.full, target: bc.target }));
    const cached = await bc.store.getRecord<BuiltWheel>(PY_BUILD, cacheKey);
    if (cached && (await bc.store.hasBlob(cached.sha256))) return cached;
    await git(["-c", "advice.detachedHead=false", "checkout", "--quiet", commit], what, src);
    const projectDir = vcs.subdirectory ? path.join(src, vcs.subdirectory) : src;
    const pyproject = await readFile(path.join(projectDir, "pyproject.toml"), "utf8").catch(() => "");
    const bs = parseBuildSystem(pyproject);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PYTHONPATH: path.join(work, "env", "site"),
      PATH: `${path.join(work, "env", "bin")}:${process.env.PATH ?? ""}`,
      SOURCE_DATE_EPOCH: String(bc.sourceDateEpoch),
      PYTHONNOUSERSITE: "1",
      PYTHONDONTWRITEBYTECODE: "1",
    };
    bc.log.info(`python: building ${key} from ${redactUrl(vcs.repo)} at ${commit.slice(0, 12)} (PEP 517, ${bs.backend})`);
    await installBuildEnv(bs.requires, path.join(work, "env"), bc, host, what);
    const more = JSON.parse(await runPython(host.executable, ["-c", HOOK, bs.backend, JSON.stringify(bs.backendPath), "requires", ""], { cwd: projectDir, env, what, log: bc.log })) as string[];
    const missing = more.filter((r) => !bs.requires.includes(r));
    if (missing.length) await installBuildEnv([...bs.requires, ...missing], path.join(work, "env"), bc, host, what);
    const out = path.join(work, "dist");
    const { mkdir } = await import("node:fs/promises");
    await mkdir(out);
    const file = JSON.parse(await runPython(host.executable, ["-c", HOOK, bs.backend, JSON.stringify(bs.backendPath), "wheel", out], { cwd: projectDir, env, what, log: bc.log })) as string;
    const w = parseWheelName(file);
    if (!w || !(await readdir(out)).includes(file)) throw new ResolveError(`${what}: the build backend reported ${JSON.stringify(file)}, which is not a wheel it wrote`);
    if (w.key !== key) throw new ResolveError(`${what}: the build produced a wheel for "${w.key}", not "${key}"`);
    const { hex } = await bc.store.putBlob(createReadStream(path.join(out, file)));
    const built: BuiltWheel = { file, sha256: hex, commit };
    await bc.store.putRecord(PY_BUILD, cacheKey, built);
    return built;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
