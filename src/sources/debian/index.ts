// The "deb" source kind: Debian packages from signed apt repositories,
// resolved and locked without apt, installed without dpkg or maintainer
// scripts. See docs in README.md next to this file for what maintainer
// scripts would have done and what layerfold does instead.

import path from "node:path";
import { z } from "zod";
import { applySetuidPolicy, setuidPolicySchema } from "../setuid.ts";
import { ConfigError, HashMismatchError, LockError, NetworkError } from "../../errors.ts";
import { fetchToStore } from "../../fetch/fetch.ts";
import type { Store } from "../../store/store.ts";
import type { InstallContext, LockedPackage, Platform, SourceContext, SourceKind } from "../types.ts";
import { field, parseDeb822 } from "./deb822.ts";
import { dpkgInfoName, installDeb, MERGED_DIRS, readDebControl, writeDpkgInfo } from "./deb.ts";
import { generateDebianFiles } from "./generate.ts";
import { loadRepo, normalizeSources, repoLabel, type RepoSpec } from "./repo.ts";
import { parseRootSpec, resolve, type Candidate, type LayerRequest } from "./resolver.ts";
import type { RecordKind } from "../../store/record-kinds.ts";
import { purlEncode, purlQualifiers } from "../../util/purl.ts";
import { compareVersions } from "./version.ts";

const sourceObjectSchema = z
  .object({
    uri: z.string().regex(/^(https?|file):\/\//, "must be an http(s):// or file:// URI"),
    suites: z.array(z.string().min(1)).min(1),
    components: z.array(z.string().min(1)).optional(),
    /** Keyring file (.gpg or .asc, relative to the config) or an inline armored key. */
    signedBy: z.string().optional(),
    architectures: z.array(z.string()).optional(),
    allowUnsigned: z.boolean().optional(),
    checkValidUntil: z.boolean().optional(),
  })
  .strict();

const userSchema = z
  .object({
    name: z.string().regex(/^[a-z_][a-z0-9_-]*\$?$/, "must be a POSIX user name"),
    uid: z.number().int().min(0),
    gid: z.number().int().min(0).optional(),
    home: z.string().startsWith("/").optional(),
    shell: z.string().startsWith("/").optional(),
    gecos: z.string().regex(/^[^:\n]*$/).optional(),
    /** Supplementary groups by name. */
    groups: z.array(z.string()).optional(),
  })
  .strict();

const groupSchema = z
  .object({
    name: z.string().regex(/^[a-z_][a-z0-9_-]*$/, "must be a POSIX group name"),
    gid: z.number().int().min(0),
    members: z.array(z.string()).optional(),
  })
  .strict();

export const debianOptionsSchema = z
  .object({
    /** apt sources: one-line "deb [opts] URI SUITE COMPONENTS", deb822 text, or objects. */
    sources: z.array(z.union([z.string(), sourceObjectSchema])).min(1, "name at least one repository"),
    /** Accept repositories without a valid signature. Off unless set. */
    allowUnsigned: z.boolean().default(false),
    /** Alternatives tried first in "a | b" dependencies. usr-is-merged: the image is merged-/usr already. */
    preferAlternatives: z.array(z.string()).default(["usr-is-merged"]),
    users: z.array(userSchema).default([]),
    groups: z.array(groupSchema).default([]),
    /** update-alternatives links to set or override: { "/usr/bin/editor": "/usr/bin/vim.basic" }. */
    alternatives: z.record(z.string().startsWith("/")).default({}),
    /** setuid/setgid files from packages: "keep" (default, as dpkg does), "strip" or "refuse"; `allow` keeps listed paths. */
    setuid: setuidPolicySchema.default({ policy: "keep", allow: [] }),
  })
  .strict();

export type DebianOptions = z.infer<typeof debianOptionsSchema>;
export type DebianUser = z.infer<typeof userSchema>;
export type DebianGroup = z.infer<typeof groupSchema>;

const layerObjectSchema = z
  .object({
    packages: z.array(z.string().min(1)).default([]),
    essential: z.boolean().optional(),
    priority: z.enum(["required", "important", "standard"]).optional(),
  })
  .strict();

export const debianLayerSchema = z
  .union([z.array(z.string().min(1)), layerObjectSchema])
  .transform((v): LayerRequest => (Array.isArray(v) ? { packages: v } : v))
  .superRefine((v, ctx) => {
    for (const [i, s] of v.packages.entries()) {
      try { parseRootSpec(s); } catch (err) { ctx.addIssue({ code: "custom", path: ["packages", i], message: (err as Error).message }); }
    }
  });

/** OCI platform -> Debian architecture. */
export function debianArch(p: Platform): string {
  switch (p.architecture) {
    case "amd64": return "amd64";
    case "arm64": return "arm64";
    case "arm": return p.variant === "v5" || p.variant === "v6" ? "armel" : "armhf";
    case "386": return "i386";
    case "ppc64le": return "ppc64el";
    case "s390x": return "s390x";
    case "riscv64": return "riscv64";
    case "mips64le": return "mips64el";
    default: throw new ConfigError(`debian: no Debian architecture for platform linux/${p.architecture}`);
  }
}

/** The synthetic package owning /bin -> usr/bin and friends; rooted in the first Debian layer. */
export const MERGED_USR_NAME = "layerfold-merged-usr";
const MERGED_USR_ID = `deb:${MERGED_USR_NAME}`;

function mergedUsrLinks(arch: string): string[] {
  // What debootstrap's merged-/usr creates for each architecture.
  const extra: Record<string, string[]> = { amd64: ["lib32", "lib64", "libx32"], i386: ["libx32"], ppc64el: ["lib64"], s390x: ["lib64"], mips64el: ["lib64", "lib32"], riscv64: ["lib64"] };
  return ["bin", "sbin", "lib", ...(extra[arch] ?? [])].filter((d) => MERGED_DIRS.includes(d)).sort();
}

function mergedUsrPackage(arch: string): LockedPackage {
  return { id: MERGED_USR_ID, kind: "deb", name: MERGED_USR_NAME, version: "1", deps: [], meta: { synthetic: "merged-usr", links: mergedUsrLinks(arch) } };
}

const isSynthetic = (p: LockedPackage) => Boolean(p.meta && (p.meta as { synthetic?: string }).synthetic);

function repos(options: DebianOptions | undefined): RepoSpec[] {
  if (!options) throw new ConfigError(`debian: layers name Debian packages but the image has no debian.sources; add e.g. debian: { sources: ["deb http://deb.debian.org/debian bookworm main"] }`);
  return normalizeSources(options.sources, options.allowUnsigned);
}

function toLocked(c: Candidate, deps: string[], repo: RepoSpec): LockedPackage {
  const meta: Record<string, unknown> = { architecture: c.arch, filename: c.filename };
  if (c.multiArch) meta.multiArch = c.multiArch;
  if (c.essential) meta.essential = true;
  if (c.priority) meta.priority = c.priority;
  if (c.source) meta.source = c.source;
  if (c.provides) meta.provides = c.provides;
  return {
    id: `deb:${c.name}`,
    kind: "deb",
    name: c.name,
    version: c.version,
    artifact: { file: path.posix.basename(c.filename), sha256: c.sha256, size: c.size, url: `${repo.uri}/${c.filename}` },
    deps: deps.map((d) => `deb:${d}`),
    meta,
  };
}

/** --frozen: rebuild the result from the lock alone (no index needed; old versions may be gone upstream). */
function resolveFromLock(layers: (LayerRequest | undefined)[], ctx: SourceContext, arch: string): { packages: LockedPackage[]; roots: string[][] } {
  const byName = new Map(ctx.locked.filter((p) => !isSynthetic(p)).map((p) => [p.name, p]));
  const roots: string[][] = layers.map(() => []);
  const wanted: string[] = [];
  layers.forEach((req, i) => {
    if (!req) return;
    const ids: string[] = [];
    for (const spec of req.packages) {
      const d = parseRootSpec(spec);
      let p = byName.get(d.name);
      if (!p) p = [...byName.values()].find((x) => ((x.meta?.provides as string | undefined) ?? "").split(",").some((s) => s.trim().split(/[\s(]/)[0] === d.name));
      if (!p) throw new LockError(`debian: layer ${ctx.image.layers[i]!.name} wants ${spec}, which is not in layerfold.lock; run \`layerfold lock\``);
      if (d.relation === "=" && p.version !== d.version) throw new LockError(`debian: layer ${ctx.image.layers[i]!.name} pins ${spec} but the lock has ${p.version}; run \`layerfold lock\``);
      ids.push(p.id);
    }
    for (const p of byName.values()) {
      const m = p.meta as { essential?: boolean; priority?: string };
      const r = ["required", "important", "standard"];
      if ((req.essential && m.essential) || (req.priority && m.priority && r.indexOf(m.priority) >= 0 && r.indexOf(m.priority) <= r.indexOf(req.priority))) ids.push(p.id);
    }
    roots[i] = [...new Set(ids)];
    wanted.push(...roots[i]!);
  });
  const first = layers.findIndex((l) => l !== undefined);
  roots[first]!.unshift(MERGED_USR_ID);
  const byId = new Map(ctx.locked.map((p) => [p.id, p]));
  const seen = new Set<string>();
  const stack = [...wanted];
  while (stack.length) {
    const id = stack.pop()!;
    if (seen.has(id)) continue;
    const p = byId.get(id);
    if (!p) throw new LockError(`debian: layerfold.lock names ${id} as a dependency but has no entry for it; run \`layerfold lock\``);
    seen.add(id);
    stack.push(...p.deps);
  }
  const packages = [mergedUsrPackage(arch), ...[...seen].sort().map((id) => byId.get(id)!)];
  return { packages, roots };
}

async function fetchDeb(pkg: LockedPackage, store: Store, options: DebianOptions | undefined): Promise<string> {
  const sha = pkg.artifact?.sha256;
  if (!sha) throw new LockError(`debian: ${pkg.id} has no sha256 in layerfold.lock; run \`layerfold lock --update ${pkg.name}\``);
  if ((await store.checkBlob(sha)) === "ok") return sha; // a damaged copy is removed and fetched again
  const filename = (pkg.meta?.filename as string | undefined) ?? "";
  const urls = [pkg.artifact?.url, ...(options ? normalizeSources(options.sources, options.allowUnsigned).map((r) => (filename ? `${r.uri}/${filename}` : undefined)) : [])]
    .filter((u): u is string => Boolean(u));
  const tried: string[] = [];
  for (const url of [...new Set(urls)]) {
    try {
      await fetchToStore(store, url, { what: `${pkg.artifact!.file} for ${pkg.id}`, sha256: sha });
      return sha;
    } catch (err) {
      if (err instanceof HashMismatchError) throw err;
      if (!(err instanceof NetworkError)) throw err;
      tried.push(`${url}: ${err.message}`);
    }
  }
  throw new NetworkError(`debian: cannot download ${pkg.artifact!.file} for ${pkg.id} from any configured repository:\n  ${tried.join("\n  ")}\nIf the version left the archive, point a source at snapshot.debian.org or run \`layerfold lock --update ${pkg.name}\`.`);
}

export interface ControlRecord { control: string; conffiles: string[] }
const CONTROL_RECORD = "debian-control";
/** A .deb's control data stays while a kept package's artifact is that .deb. */
export const DEBIAN_CONTROL_RECORDS: RecordKind = { kind: CONTROL_RECORD, keep: (key, _rec, live) => live.artifacts.has(key) };

/** Control text and conffiles of an installed package, from the record cache or the .deb. */
export async function controlOf(pkg: LockedPackage, store: Store, options: DebianOptions | undefined): Promise<ControlRecord> {
  const sha = pkg.artifact!.sha256!;
  const rec = await store.getRecord<ControlRecord>(CONTROL_RECORD, sha);
  if (rec && typeof rec.control === "string") return rec;
  await fetchDeb(pkg, store, options);
  const ctl = await readDebControl(store.openBlob(sha), `${pkg.id} ${pkg.version}`);
  const out = { control: ctl.control, conffiles: conffilesOf(ctl.members.get("conffiles")) };
  await store.putRecord(CONTROL_RECORD, sha, out);
  return out;
}

const conffilesOf = (b: Buffer | undefined): string[] =>
  (b?.toString("utf8") ?? "").split("\n").map((l) => l.trim()).filter((l) => l.startsWith("/")).map((l) => l.replace(/^remove-on-upgrade\s+/, ""));

export const debianSource: SourceKind<LayerRequest, DebianOptions> = {
  kind: "deb",
  layerKey: "debian",
  compareVersions,
  purl: (p) => `pkg:deb/debian/${purlEncode(p.name)}@${purlEncode(p.version)}${purlQualifiers({ arch: (typeof p.meta?.architecture === "string" && p.meta.architecture) || /_([a-z0-9]+)\.deb$/.exec(p.artifact?.file ?? "")?.[1] })}`,
  sbomPurpose: "library",
  // Bump when install or generate output changes (see SourceKind.version).
  version: "1",
  layerSchema: debianLayerSchema as unknown as z.ZodType<LayerRequest, z.ZodTypeDef, unknown>,
  optionsSchema: debianOptionsSchema as unknown as z.ZodType<DebianOptions, z.ZodTypeDef, unknown>,
  treeOptions: { symlinks: "image" },

  async resolve(rawSpecs, options, ctx) {
    // Validated configs arrive as LayerRequest; accept the short array form from API callers too.
    const specs = rawSpecs.map((s) => (s === undefined ? undefined : debianLayerSchema.parse(s)));
    const roots: string[][] = specs.map(() => []);
    if (specs.every((s) => s === undefined)) return { packages: [], roots };
    const arch = debianArch(ctx.platform);
    if (ctx.frozen && ctx.locked.length) return resolveFromLock(specs, ctx, arch);
    const rs = repos(options);
    if (!specs.some((s) => s?.essential || s?.priority)) {
      ctx.log.warn(`debian: no layer asks for the Essential set (essential: true); Debian packages assume it is there (bash, coreutils, dpkg, ...) and do not depend on it`);
    }
    const t0 = Date.now();
    const candidates: Candidate[] = [];
    let downloaded = 0;
    // Repositories load in parallel; their order (which wins ties) is kept.
    const loaded = await Promise.all(rs.map((r) => loadRepo(r, { store: ctx.store, log: ctx.log, arch, configDir: ctx.configDir })));
    loaded.forEach((l, i) => {
      downloaded += l.downloaded;
      for (const e of l.packages) candidates.push({ ...e, repo: i });
    });
    const t1 = Date.now();
    const update = new Set(ctx.update.map((n) => n.replace(/^deb:/, "")));
    const prefer = new Map(ctx.locked.filter((p) => !update.has(p.name) && !isSynthetic(p)).map((p) => [p.name, p.version]));
    const out = resolve({
      arch,
      candidates,
      layers: specs,
      prefer,
      layerNames: ctx.image.layers.map((l) => l.name),
      preferAlternatives: options?.preferAlternatives ?? ["usr-is-merged"],
    });
    for (const [name, version] of prefer) {
      const got = out.selected.get(name);
      if (got && got.pkg.version !== version) ctx.log.info(`debian: ${name} ${version} (locked) is no longer offered by the repositories; now ${got.pkg.version}`);
    }
    ctx.log.info(`debian: resolved ${out.selected.size} packages from ${rs.length} repositories (${candidates.length} candidates) in ${Date.now() - t0} ms (indexes ${t1 - t0} ms, ${downloaded} bytes downloaded)`);
    const packages: LockedPackage[] = [mergedUsrPackage(arch)];
    for (const r of out.selected.values()) packages.push(toLocked(r.pkg, r.deps, rs[r.pkg.repo]!));
    const result = out.roots.map((names) => names.map((n) => `deb:${n}`));
    result[specs.findIndex((s) => s !== undefined)]!.unshift(MERGED_USR_ID);
    return { packages, roots: result };
  },

  installKey(_pkg, options) {
    // The default policy keeps the key trees had before there was one.
    const p = options?.setuid;
    return !p || (p.policy === "keep" && !p.allow.length) ? "deb-install-v2" : `deb-install-v2 setuid=${JSON.stringify(p)}`;
  },

  async install(pkg, tree, options, ctx) {
    if (isSynthetic(pkg)) {
      for (const d of (pkg.meta!.links as string[])) {
        await tree.addDir(`usr/${d}`, { mode: 0o755 });
        tree.addSymlink(d, `usr/${d}`);
      }
      return;
    }
    const sha = await fetchDeb(pkg, ctx.store, options);
    const what = `${pkg.id} ${pkg.version} (${pkg.artifact!.file})`;
    const info = await installDeb(ctx.store.openBlob(sha), tree, what);
    applySetuidPolicy(tree, options?.setuid ?? { policy: "keep", allow: [] }, what, ctx.log);
    const para = parseDeb822(info.control)[0];
    if (!para || field(para, "Package") !== pkg.name || field(para, "Version") !== pkg.version) {
      throw new HashMismatchError(`${what}: its control file names ${para ? `${field(para, "Package")} ${field(para, "Version")}` : "nothing"}, not the locked package; the repository index is inconsistent`);
    }
    await writeDpkgInfo(tree, dpkgInfoName(pkg.name, String(pkg.meta?.architecture ?? ""), pkg.meta?.multiArch as string | undefined), info);
    await ctx.store.putRecord(CONTROL_RECORD, sha, { control: info.control, conffiles: conffilesOf(info.members.get("conffiles")) } satisfies ControlRecord);
  },

  async generate(installed, tree, options, ctx: InstallContext) {
    const debs = installed.filter((p) => p.kind === "deb" && !isSynthetic(p));
    await generateDebianFiles(debs, tree, options, ctx, (p) => controlOf(p, ctx.store, options));
  },
};

export { repoLabel };
