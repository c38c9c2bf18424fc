// The "py" source kind: layers name Python requirements (strings or pip
// requirement files); all layers resolve together against pip's configured
// indexes plus the image's own; each distribution installs from its wheel
// into the image's prefix (a venv such as /opt/venv, or the system site dir).

import { z } from "zod";
import * as pep440 from "@renovatebot/pep440";
import path from "node:path";
import { ConfigError, HashMismatchError, LayerfoldError, LockError, NetworkError, ResolveError } from "../../errors.ts";
import { buildFromGit, parseVcsUrl, type BuildContext } from "./build.ts";
import { fetchToStore } from "../../fetch/fetch.ts";
import { stableJson } from "../../util/json.ts";
import type { TreeWriter } from "../../store/tree.ts";
import type { LockedPackage, SourceContext, SourceKind } from "../types.ts";
import { Finder, type IndexFile } from "./finder.ts";
import { normalizeName, parseRequirement, targetMarkerEnv, type Requirement } from "./pep508.ts";
import { loadPipConfig } from "./pipconfig.ts";
import { emptySet, parseRequirementsText, readRequirementsFile, type RequirementSet } from "./reqfile.ts";
import { Resolver, type Candidate, type Provider, type RootRequirement } from "./resolver.ts";
import { parseWheelName, supportedTags, wheelRank, type Target } from "./tags.ts";
import { pathToFileURL } from "node:url";
import { installWheel, schemeFor } from "./wheel.ts";
import { purlEncode } from "../../util/purl.ts";

const sourceFileSchema = z
  .object({
    /** A source of the image by id ("git:comfyui") or name ("comfyui"). */
    source: z.string().min(1),
    /** Path inside it, e.g. "requirements.txt". */
    path: z.string().min(1),
    /** No error when the source has no such file (e.g. a file later revisions add). */
    optional: z.boolean().default(false),
  })
  .strict();

export const pythonLayerSchema = z.union([
  z.array(z.string().min(1)),
  z
    .object({
      /** PEP 508 requirement strings. */
      requirements: z.array(z.string().min(1)).default([]),
      /**
       * pip requirement files: a path relative to the config file, or a file inside another
       * source at the revision it pins, e.g. { source: "git:comfyui", path: "requirements.txt" }.
       */
      files: z.array(z.union([z.string().min(1), sourceFileSchema])).default([]),
    })
    .strict(),
]);

export const pythonOptionsSchema = z
  .object({
    /** Target Python "3.11". */
    version: z.string().regex(/^3\.\d+$/, 'must look like "3.11"'),
    /** Full version for python_full_version markers, e.g. "3.11.2" (default X.Y.0). */
    fullVersion: z.string().regex(/^3\.\d+\.\d+$/).optional(),
    implementation: z.enum(["cp", "pp"]).default("cp"),
    /** Wheel ABI tag; default cpXY. */
    abi: z.string().optional(),
    platform: z
      .object({
        /** glibc of the image: manylinux_2_N wheels with N <= this fit. */
        glibc: z.string().regex(/^\d+\.\d+$/, 'must look like "2.36"'),
        /** Defaults to the image platform (amd64 -> x86_64, arm64 -> aarch64). */
        arch: z.enum(["x86_64", "aarch64"]).optional(),
      })
      .strict(),
    /** "/opt/venv" (a virtual environment) or "system" (/usr/local/lib/pythonX.Y/dist-packages). */
    prefix: z.union([z.literal("system"), z.string().regex(/^\/[^\0]*[^/]$/, 'must be an absolute path such as "/opt/venv", or "system"')]).default("/opt/venv"),
    /** The interpreter inside the image, used for pyvenv.cfg and script shebangs. */
    interpreter: z.string().startsWith("/", "must be an absolute path inside the image"),
    /** Indexes in addition to pip's configuration (e.g. a PyTorch cu130 index). */
    indexes: z.array(z.object({ url: z.string().url(), name: z.string().optional() }).strict()).default([]),
    /** Read pip's configuration files and PIP_* variables (default true). */
    pipConfig: z.boolean().default(true),
    /** Replace every dependency's specifier on a project: { "some-dep": ">=1.2" }. */
    overrides: z.record(z.string()).default({}),
    /**
     * Requirements to leave out of the image, wherever they come from (a layer's list, a
     * requirements file, a dependency's metadata): names, or { name: "why" }. `layerfold check`
     * reports each installed distribution that asks for one as a note, with the reason.
     */
    drop: z.union([z.array(z.string().min(1)), z.record(z.string())]).default([]),
    /**
     * The venv also sees the interpreter's own site directories and the user's (~/.local), as
     * `python -m venv --system-site-packages` does: `pip install --user` then works in the image.
     */
    systemSitePackages: z.boolean().default(false),
    /** Extra constraints (pip -c lines). */
    constraints: z.array(z.string()).default([]),
    /** Allow pre-releases everywhere (pip --pre). */
    pre: z.boolean().default(false),
    /** PEP 517 builds (name @ git+URL@rev): the host interpreter that runs them (default pythonX.Y on PATH). */
    build: z.object({ python: z.string().min(1).optional() }).strict().default({}),
  })
  .strict();

export type PythonLayerSpec = z.infer<typeof pythonLayerSchema>;
export type PythonOptions = z.infer<typeof pythonOptionsSchema>;

const VENV = "_venv"; // not a valid PyPI name, so it cannot clash

function targetOf(o: PythonOptions, ctx: SourceContext): Target {
  const arch = o.platform.arch ?? ({ amd64: "x86_64", arm64: "aarch64" } as Record<string, string>)[ctx.platform.architecture];
  if (!arch) throw new ConfigError(`python: image platform ${ctx.platform.architecture} has no manylinux wheels; set python.platform.arch`);
  const [maj, min] = o.version.split(".");
  return { version: o.version, implementation: o.implementation, abi: o.abi ?? `${o.implementation}${maj}${min}`, glibc: o.platform.glibc, arch };
}

function requireOptions(o: PythonOptions | undefined): PythonOptions {
  if (!o) throw new ConfigError('layers name python requirements, but the image has no "python" options; add python: { version, platform: { glibc }, interpreter }');
  return o;
}

/** Names python.drop leaves out, with the reason when the config gives one. */
export function droppedRequirements(o: Pick<PythonOptions, "drop">): Map<string, string | undefined> {
  const entries: Array<[string, string | undefined]> = Array.isArray(o.drop) ? o.drop.map((n) => [n, undefined]) : Object.entries(o.drop);
  return new Map(entries.map(([n, why]) => [normalizeName(n), why]));
}

/** Requirements of one layer: its strings, files relative to the config, files inside other sources. */
async function layerRequirements(spec: PythonLayerSpec, ctx: SourceContext, layerName: string): Promise<RequirementSet> {
  const set = emptySet();
  const strings = Array.isArray(spec) ? spec : spec.requirements;
  const files = Array.isArray(spec) ? [] : spec.files;
  // Written in the config: relative -r paths are the config directory's, and a line is named by its layer and index.
  parseRequirementsText(strings.join("\n"), path.join(ctx.configDir, "layerfold.config.ts"), set, undefined, false, (n) => `layer "${layerName}" python[${n - 1}]`);
  for (const f of files) {
    if (typeof f === "string") {
      readRequirementsFile(path.resolve(ctx.configDir, f), set);
      continue;
    }
    const what = `layer "${layerName}": python file ${f.path} of ${f.source}`;
    if (!ctx.sourceFile) throw new ConfigError(`${what}: files inside other sources cannot be read here`);
    let content: Buffer | undefined;
    try {
      content = await ctx.sourceFile(f.source, f.path, what);
    } catch (err) {
      // lock --check on a machine that cannot reach the source: say so and resolve the rest.
      if (!ctx.unresolvable || err instanceof ConfigError || !(err instanceof LayerfoldError)) throw err;
      ctx.unresolvable(`${f.source}:${f.path}`, `the requirements in it are unknown here: ${err.message.split("\n")[0]}`);
      continue;
    }
    if (content === undefined) {
      if (f.optional) continue;
      throw new ConfigError(`${what}: ${f.source} has no file ${f.path} at the revision it pins; fix the path, or mark it optional: true if only some revisions have it`);
    }
    const text = content.toString("utf8");
    const include = /^\s*(-r|--requirement|-c|--constraint)\b.*$/m.exec(text);
    if (include) throw new ConfigError(`${what}: "${include[0].trim()}" includes another file, which is not supported inside a source; list that file in python.files too`);
    parseRequirementsText(text, `${f.source}:${f.path}`, set);
  }
  return set;
}

const finders = new Map<string, Finder>();

function finderFor(o: PythonOptions, ctx: SourceContext, fromFiles: RequirementSet[] = []): Finder {
  const pip = o.pipConfig ? loadPipConfig() : undefined;
  const indexes: string[] = [];
  const findLinks: string[] = [...(pip?.findLinks ?? [])];
  if (pip && !pip.noIndex) indexes.push(pip.indexUrl, ...pip.extraIndexUrls);
  indexes.push(...o.indexes.map((i) => i.url));
  for (const s of fromFiles) {
    if (s.indexUrl) indexes.push(s.indexUrl);
    indexes.push(...s.extraIndexUrls);
    findLinks.push(...s.findLinks.map((f) => (/^[a-z+]+:\/\//.test(f) ? f : `file://${f}`)));
  }
  const key = stableJson({ store: ctx.store.root, indexes: [...new Set(indexes)], findLinks: [...new Set(findLinks)] });
  let f = finders.get(key);
  if (!f) {
    f = new Finder({ indexes: [...new Set(indexes)], findLinks: [...new Set(findLinks)], store: ctx.store, log: ctx.log });
    finders.set(key, f);
  }
  return f;
}

interface PyCandidate extends Candidate {
  file: IndexFile;
}

/** A `name @ https://…/x.whl` requirement: that one file is the only candidate. */
export function directWheel(url: string, key: string, what: string, configDir: string): IndexFile {
  if (/^(git|hg|svn|bzr)\+/.test(url)) throw new ResolveError(`${what}: ${url} needs a PEP 517 build from a VCS checkout, which is not supported yet; publish a wheel to an index or link a built wheel with "name @ URL"`);
  let u: URL;
  try {
    u = new URL(url, pathToFileURL(`${configDir}/`));
  } catch {
    throw new ConfigError(`${what}: ${JSON.stringify(url)} is not a URL`);
  }
  if (u.username || u.password) throw new ConfigError(`${what}: the URL carries credentials, which would end up in layerfold.lock; serve it without them`);
  const sha256 = /(?:^|&)sha256=([0-9a-f]{64})/.exec(u.hash.slice(1))?.[1];
  u.hash = "";
  const file = decodeURIComponent(u.pathname.split("/").pop() ?? "");
  const wheel = parseWheelName(file);
  if (!wheel) throw new ResolveError(`${what}: ${file} is not a wheel; source distributions need a PEP 517 build, which is not supported yet`);
  if (wheel.key !== key) throw new ResolveError(`${what}: the wheel ${file} is for "${wheel.key}", not "${key}"`);
  return { file, url: u.href, sha256, wheel, source: "direct URL" };
}

function makeProvider(finder: Finder, target: Target, direct: Map<string, IndexFile>): Provider<PyCandidate> {
  const sup = supportedTags(target);
  const byKey = new Map<string, Promise<PyCandidate[]>>();
  const label = `${target.abi}/manylinux_${target.glibc.replace(".", "_")}_${target.arch}`;
  return {
    candidates(key) {
      const d = direct.get(key);
      if (d) {
        if (wheelRank(d.wheel!, sup) === undefined) return Promise.resolve([]);
        return Promise.resolve([{ key, version: d.wheel!.version, file: d }]);
      }
      let p = byKey.get(key);
      if (!p) {
        p = finder.files(key).then((files) => {
          const best = new Map<string, { f: IndexFile; rank: number }>();
          for (const f of files) {
            if (!f.wheel) continue;
            const rank = wheelRank(f.wheel, sup);
            if (rank === undefined) continue;
            const cur = best.get(f.wheel.version);
            if (!cur || rank < cur.rank) best.set(f.wheel.version, { f, rank });
          }
          return [...best.entries()]
            .map(([version, { f }]) => ({ key, version, yanked: f.yanked, requiresPython: f.requiresPython, file: f }))
            .sort((a, b) => -comparePep440(a.version, b.version));
        });
        byKey.set(key, p);
      }
      return p;
    },
    async dependencies(c) {
      return (await finder.coreMetadata(c.file)).requiresDist;
    },
    async whyNone(key) {
      const d = direct.get(key);
      if (d) return `the wheel ${d.file} named by URL does not fit ${label}`;
      const files = await finder.files(key);
      const wheels = files.filter((f) => f.wheel);
      const sdists = files.filter((f) => f.sdistVersion);
      if (files.length === 0) {
        const searched = finder.opts.indexes.map((i) => (finder.unreachable.has(i) ? `${i} (unreachable: ${finder.unreachable.get(i)})` : i));
        return `no configured index offers it (searched: ${[...searched, ...finder.opts.findLinks].join(", ") || "nothing: no index is configured"})`;
      }
      if (wheels.length === 0) return `only source distributions are offered (${sdists.slice(0, 5).map((f) => f.file).join(", ")}); building wheels from source is not supported yet, so add a wheel to an index or drop it`;
      return `${wheels.length} wheels are offered but none fits ${label} (e.g. ${wheels.slice(0, 3).map((f) => f.file).join(", ")})`;
    },
  };
}

function comparePep440(a: string, b: string): number {
  try {
    return pep440.compare(a, b);
  } catch {
    return a < b ? -1 : a > b ? 1 : 0;
  }
}

export const pythonSource: SourceKind<PythonLayerSpec, PythonOptions> = {
  kind: "py",
  layerKey: "python",
  acceptsOverrides: true,
  compareVersions: (a, b) => {
    if (!pep440.valid(a) || !pep440.valid(b)) throw new Error(`not PEP 440 versions: ${a}, ${b}`);
    return pep440.compare(a, b);
  },
  // The pypi purl type wants the PEP 503 normalised name.
  purl: (p) => `pkg:pypi/${purlEncode(p.name.toLowerCase().replace(/[-_.]+/g, "-"))}@${purlEncode(p.version)}`,
  sbomPurpose: "library",
  layerSchema: pythonLayerSchema,
  optionsSchema: pythonOptionsSchema,
  treeOptions: { symlinks: "image" },

  resolveInputs(specs, _options, ctx) {
    // The requirement files as parsed (their includes too). pip's configuration is left
    // out: it differs between machines, and a committed lock must not flip between them.
    return Promise.all(specs.map((s, i) => (s === undefined ? null : layerRequirements(s, ctx, ctx.image.layers[i]!.name))));
  },

  async resolve(specs, options, ctx) {
    const roots: string[][] = specs.map(() => []);
    if (specs.every((s) => s === undefined)) return { packages: [], roots };
    const o = requireOptions(options);
    const target = targetOf(o, ctx);
    const sets = await Promise.all(specs.map((s, i) => (s === undefined ? undefined : layerRequirements(s, ctx, ctx.image.layers[i]!.name))));
    const dropped = droppedRequirements(o);
    const firstLayer = sets.findIndex((s) => s !== undefined);
    const venv = o.prefix === "system" ? [] : [venvPackage(o)];
    const rootReqs: RootRequirement[] = [];
    const direct = new Map<string, IndexFile>();
    const vcs: { req: Requirement; layer: string }[] = [];
    sets.forEach((s, i) => {
      for (const req of s?.requirements ?? []) {
        if (dropped.has(req.key)) {
          const why = dropped.get(req.key);
          ctx.log.info(`python: layer "${ctx.image.layers[i]!.name}" asks for ${req.text}, which python.drop leaves out${why ? ` (${why})` : ""}`);
          continue;
        }
        if (req.url && parseVcsUrl(req.url)) {
          vcs.push({ req, layer: ctx.image.layers[i]!.name });
        } else if (req.url) {
          const d = directWheel(req.url, req.key, `layer "${ctx.image.layers[i]!.name}": ${req.text}`, ctx.configDir);
          const prev = direct.get(req.key);
          if (prev && prev.url !== d.url) throw new ResolveError(`"${req.key}" is named by two different URLs (${prev.url} and ${d.url}); keep one`);
          direct.set(req.key, d);
        }
        rootReqs.push({ req, origin: `layer "${ctx.image.layers[i]!.name}"` });
        roots[i]!.push(`py:${req.key}`);
      }
    });
    if (venv.length) roots[firstLayer]!.unshift(`py:${VENV}`);

    if (ctx.frozen) {
      const locked = new Map(ctx.locked.map((p) => [p.id, p]));
      for (const r of rootReqs) if (!locked.has(`py:${r.req.key}`)) throw new LockError(`${r.origin} names ${r.req.text}, which is not in layerfold.lock; run layerfold lock`);
      return { packages: [...venv, ...ctx.locked.filter((p) => p.name !== VENV)], roots: dedupeRoots(roots) };
    }

    const finder = finderFor(o, ctx, sets.filter((s): s is RequirementSet => s !== undefined));
    const commits = new Map<string, string>();
    for (const { req, layer } of vcs) {
      const prev = ctx.locked.find((p) => p.id === `py:${req.key}` && p.artifact?.url === lockUrl(req.url!));
      const lockedCommit = prev && !ctx.update.map(normalizeName).includes(req.key) ? (prev.meta?.commit as string | undefined) : undefined;
      let built;
      try {
        built = await buildFromGit(req.key, req.url!, buildContext(o, ctx, finder, target), lockedCommit);
      } catch (err) {
        if (!ctx.unresolvable || !(err instanceof LayerfoldError) || err instanceof ConfigError) throw err;
        ctx.unresolvable(`py:${req.key}`, `layer "${layer}" names ${req.text}: ${err.message.split("\n")[0]}`);
        const i = rootReqs.findIndex((r) => r.req === req);
        if (i >= 0) rootReqs.splice(i, 1);
        for (const r of roots) if (r.includes(`py:${req.key}`)) r.splice(r.indexOf(`py:${req.key}`), 1);
        continue;
      }
      commits.set(req.key, built.commit);
      direct.set(req.key, { file: built.file, url: pathToFileURL(ctx.store.blobPath(built.sha256)).href, sha256: built.sha256, wheel: parseWheelName(built.file), source: "PEP 517 build" });
    }
    const pip = o.pipConfig ? loadPipConfig() : undefined;
    const constraints: Requirement[] = [...sets.flatMap((s) => s?.constraints ?? []), ...o.constraints.map((c) => parseRequirement(c, "python.constraints"))];
    for (const f of pip?.constraints ?? []) {
      try {
        constraints.push(...readRequirementsFile(f).requirements);
      } catch (err) {
        ctx.log.warn(`pip's configured constraint file ${f} cannot be read; ignoring it (${(err as Error).message})`);
      }
    }
    const update = new Set(ctx.update.map(normalizeName));
    const preferred = new Map(ctx.locked.filter((p) => !update.has(p.name)).map((p) => [p.name, p.version]));
    const started = Date.now();
    const missing = new Set<string>();
    const resolveOnce = () =>
      new Resolver(makeProvider(finder, target, direct), {
        roots: rootReqs.filter((r) => !missing.has(r.req.key)),
        constraints,
        overrides: Object.fromEntries(Object.entries(o.overrides).map(([k, v]) => [normalizeName(k), v])),
        drop: [...dropped.keys(), ...missing],
        env: targetMarkerEnv({ version: o.version, fullVersion: o.fullVersion, arch: target.arch, implementation: o.implementation }),
        pre: o.pre || (pip?.pre ?? false) || sets.some((s) => s?.pre),
        preferred,
      }).resolve();
    let resolved: Awaited<ReturnType<typeof resolveOnce>>;
    for (;;) {
      try {
        resolved = await resolveOnce();
        break;
      } catch (err) {
        // lock --check: a project no reachable index offers is reported, and the rest resolved without it.
        const m = err instanceof ResolveError ? /"([^"]+)" cannot be installed: ([^\n]*)/.exec(err.message) : null;
        if (!ctx.unresolvable || !m || missing.has(m[1]!)) throw err;
        missing.add(m[1]!);
        const wanted = /\n {2}(.*?) {3}<- /.exec((err as ResolveError).message.slice(m.index))?.[1];
        ctx.unresolvable(`py:${m[1]}`, `${wanted ? `${wanted}: ` : ""}${m[2]}`);
      }
    }
    for (const r of roots) for (const k of missing) if (r.includes(`py:${k}`)) r.splice(r.indexOf(`py:${k}`), 1);
    ctx.log.info(`python: resolved ${resolved.size} distributions in ${((Date.now() - started) / 1000).toFixed(1)} s`);

    const requested = new Set(rootReqs.map((r) => r.req.key));
    const packages: LockedPackage[] = [...venv];
    for (const [key, r] of [...resolved].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const f = r.candidate.file;
      let sha256 = f.sha256;
      let size: number | undefined;
      if (!sha256) {
        // The index gave no hash: fetch the file once to pin it (what `layerfold lock` is for).
        const got = await fetchToStore(ctx.store, f.url, { what: `wheel ${f.file}` });
        sha256 = got.hex;
        size = got.size;
      }
      const meta: Record<string, unknown> = {};
      if (r.extras.length) meta.extras = r.extras;
      if (requested.has(key)) meta.requested = true;
      if (commits.has(key)) meta.commit = commits.get(key);
      packages.push({
        id: `py:${key}`,
        kind: "py",
        name: key,
        version: r.candidate.version,
        // Index files are found again by name on any configured index; a direct URL is the only place its file lives.
        // (kept as written, so a relative path stays relative to the config and no host path enters the lock)
        artifact: { file: f.file, sha256, size, url: direct.has(key) ? lockUrl(rootReqs.find((x) => x.req.key === key)!.req.url!) : undefined },
        deps: r.deps.map((d) => `py:${d}`),
        meta: Object.keys(meta).length ? meta : undefined,
      });
    }
    return { packages, roots: dedupeRoots(roots) };
  },

  installKey(pkg, options) {
    const o = requireOptions(options);
    // systemSitePackages changes only the venv's pyvenv.cfg, so only that tree's key (and only when set).
    const venvOnly = pkg.name === VENV && o.systemSitePackages ? { systemSitePackages: true } : {};
    return stableJson({ scheme: 1, prefix: o.prefix, version: o.version, interpreter: o.interpreter, requested: pkg.meta?.requested === true, ...venvOnly });
  },

  async install(pkg, tree, options, ctx) {
    const o = requireOptions(options);
    if (pkg.name === VENV) return writeVenv(tree, o);
    const a = pkg.artifact;
    if (!a?.sha256) throw new LockError(`${pkg.id}: the lock has no sha256 for ${a?.file ?? "its wheel"}; run layerfold lock`);
    // A stored wheel is used only while intact (its stat signature, else a rehash); a damaged one is removed and got again.
    const stored = (await ctx.store.checkBlob(a.sha256)) === "ok";
    if (!stored && a.url && parseVcsUrl(a.url)) {
      // Rebuild from the locked commit; the wheel must come out byte-identical (SOURCE_DATE_EPOCH is set).
      const built = await buildFromGit(pkg.name, a.url, buildContext(o, ctx, finderFor(o, ctx), targetOf(o, ctx)), pkg.meta?.commit as string | undefined);
      if (built.sha256 !== a.sha256) throw new HashMismatchError(`${pkg.id}: rebuilding ${a.file} from commit ${built.commit} gave sha256 ${built.sha256}, not the locked ${a.sha256}; the build is not reproducible. Run layerfold lock --update ${pkg.name} if the new wheel is trusted.`);
    } else if (!stored && a.url) {
      await fetchToStore(ctx.store, new URL(a.url, pathToFileURL(`${ctx.configDir}/`)).href, { what: `wheel ${a.file} for ${pkg.id}`, sha256: a.sha256 });
    } else if (!stored) {
      const finder = finderFor(o, ctx);
      const f = (await finder.files(pkg.name)).find((x) => x.file === a.file);
      if (!f) throw new NetworkError(`${pkg.id}: no configured index offers ${a.file} any more; configure the index it came from, or run layerfold lock --update ${pkg.name}`);
      await fetchToStore(ctx.store, f.url, { what: `wheel ${a.file} for ${pkg.id}`, sha256: a.sha256 });
    }
    await installWheel(ctx.store.blobPath(a.sha256), tree, {
      file: a.file,
      scheme: schemeFor({ prefix: o.prefix, version: o.version, interpreter: o.interpreter }),
      requested: pkg.meta?.requested === true,
    });
  },
};

/** A direct URL as the lock keeps it: VCS URLs whole (rev, subdirectory), file URLs without their #sha256 fragment. */
const lockUrl = (url: string): string => (parseVcsUrl(url) ? url : url.replace(/#.*$/, ""));

function buildContext(o: PythonOptions, ctx: SourceContext, finder: Finder, target: Target): BuildContext {
  return { store: ctx.store, finder, log: ctx.log, python: o.build.python ?? `python${o.version}`, target, sourceDateEpoch: ctx.sourceDateEpoch };
}

function dedupeRoots(roots: string[][]): string[][] {
  return roots.map((r) => [...new Set(r)]);
}

function venvPackage(o: PythonOptions): LockedPackage {
  return { id: `py:${VENV}`, kind: "py", name: VENV, version: o.fullVersion ?? o.version, deps: [], meta: { prefix: o.prefix, interpreter: o.interpreter } };
}

/** The virtual environment skeleton: pyvenv.cfg and bin/python* pointing at the image's interpreter. */
async function writeVenv(tree: TreeWriter, o: PythonOptions): Promise<void> {
  const root = o.prefix.replace(/^\/+/, "");
  const [maj, min] = o.version.split(".");
  const home = path.posix.dirname(o.interpreter);
  await tree.addFile(`${root}/pyvenv.cfg`, `home = ${home}\ninclude-system-site-packages = ${o.systemSitePackages}\nversion = ${o.fullVersion ?? o.version}\nexecutable = ${o.interpreter}\n`);
  await tree.addDir(`${root}/bin`);
  tree.addSymlink(`${root}/bin/python`, o.interpreter);
  tree.addSymlink(`${root}/bin/python${maj}`, "python");
  tree.addSymlink(`${root}/bin/python${maj}.${min}`, "python");
  await tree.addDir(`${root}/include`);
  await tree.addDir(`${root}/lib/python${maj}.${min}/site-packages`);
  tree.addSymlink(`${root}/lib64`, "lib");
}
