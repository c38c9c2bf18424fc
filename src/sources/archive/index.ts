// Archives by URL (tar.gz, tar.xz, tar.zst, zip), verified by sha256. A
// missing sha256 is filled in by `layerfold lock` and kept in the lock file.

import path from "node:path";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { LockError } from "../../errors.ts";
import { fetchToStore, lockableUrl, redactUrl } from "../../fetch/fetch.ts";
import { openDecompressed } from "../../archive/decompress.ts";
import { extractTar } from "../../archive/tar.ts";
import { openZip } from "../../archive/zip.ts";
import { EntrySet } from "../../archive/names.ts";
import { normalizeImagePath, type TreeWriter } from "../../store/tree.ts";
import { applySetuidPolicy, setuidPolicySchema } from "../setuid.ts";
import { applyPerms, copyHostPath, digestHostPath } from "../files/index.ts";
import type { LockedPackage, SourceKind } from "../types.ts";

export const archiveSpecSchema = z
  .object({
    /** http(s):// or file:// URL; or use `path` for an archive next to the config. */
    url: z.string().url().optional(),
    path: z.string().optional(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, "must be 64 lowercase hex digits").optional(),
    /** Image directory to unpack into. */
    dest: z.string().startsWith("/", "must be an absolute image path").default("/"),
    stripComponents: z.number().int().min(0).default(0),
    format: z.enum(["tar", "zip"]).optional(),
    name: z.string().optional(),
    uid: z.number().int().min(0).optional(),
    gid: z.number().int().min(0).optional(),
    perms: z.array(z.object({ regex: z.string(), mode: z.number().int().optional(), uid: z.number().int().optional(), gid: z.number().int().optional() }).strict()).optional(),
    /**
     * Refuse archives that unpack to more than this many bytes (bomb guard; default 16 GiB, see
     * archive/names.ts). Tar and zip alike: a tar is refused at the header that passes it.
     */
    maxBytes: z.number().int().positive().optional(),
    /** setuid/setgid files: "strip" (default) clears the bits, "keep", or "refuse"; `allow` keeps listed paths. */
    setuid: setuidPolicySchema.default({ policy: "strip", allow: [] }),
  })
  .strict()
  .refine((s) => (s.url === undefined) !== (s.path === undefined), { message: "give exactly one of url or path" });

export type ArchiveSpec = z.infer<typeof archiveSpecSchema>;

const fileNameOf = (spec: ArchiveSpec) => (spec.path ? path.basename(spec.path) : decodeURIComponent(new URL(spec.url!).pathname.split("/").pop() || "archive"));
const nameOf = (spec: ArchiveSpec) => spec.name ?? fileNameOf(spec).replace(/\.(tar\.(gz|xz|zst|bz2)|tgz|txz|tzst|zip|tar)$/, "");
const isZip = (spec: ArchiveSpec) => spec.format === "zip" || (!spec.format && /\.zip$/i.test(fileNameOf(spec)));
/** Where to fetch from; a local path is relative to the config file. */
const urlOf = (spec: ArchiveSpec, configDir: string) => spec.url ?? pathToFileURL(path.resolve(configDir, spec.path!)).toString();
const shownAs = (spec: ArchiveSpec) => (spec.url ? redactUrl(spec.url) : spec.path!);

export const archiveSource: SourceKind<ArchiveSpec[], undefined> = {
  kind: "archive",
  layerKey: "archives",
  layerSchema: z.array(archiveSpecSchema),
  async resolve(specs, _opts, ctx) {
    const packages: LockedPackage[] = [];
    for (const layer of specs) {
      for (const spec of layer ?? []) {
        const id = `archive:${nameOf(spec)}`;
        const what = `archive ${shownAs(spec)} (${id})`;
        const locked = ctx.locked.find((p) => p.id === id && p.artifact?.url === (spec.url && lockableUrl(spec.url)));
        let sha256 = spec.sha256 ?? (ctx.update.includes(nameOf(spec)) ? undefined : locked?.artifact?.sha256);
        if (!sha256) {
          if (ctx.frozen) throw new LockError(`${what} has no sha256 in the config or the lock; run \`layerfold lock\` to fill it in`);
          ctx.log.info(`hashing ${what} (no sha256 given)`);
          sha256 = (await fetchToStore(ctx.store, urlOf(spec, ctx.configDir), { what })).hex;
        }
        packages.push({
          id,
          kind: "archive",
          name: nameOf(spec),
          version: sha256.slice(0, 16),
          artifact: { file: fileNameOf(spec), sha256, ...(spec.url ? { url: lockableUrl(spec.url) } : {}) },
          deps: [],
          meta: { dest: spec.dest, stripComponents: spec.stripComponents, format: isZip(spec) ? "zip" : "tar" },
        });
      }
    }
    return { packages, roots: specs.map((layer) => (layer ?? []).map((s) => `archive:${nameOf(s)}`)) };
  },
  async installKey(pkg, _o, ctx) {
    const spec = specFor(pkg, ctx.image.layers);
    const local = ctx.overrides[pkg.name] ?? ctx.overrides[pkg.id];
    const override = local ? await digestHostPath(path.resolve(local), [".git"], `override ${local} for ${pkg.id}`) : undefined;
    return JSON.stringify({ spec: { ...spec, sha256: undefined }, override });
  },
  async install(pkg, tree, _opts, ctx) {
    const spec = specFor(pkg, ctx.image.layers);
    const what = `archive ${shownAs(spec)} (${pkg.id})`;
    const local = ctx.overrides[pkg.name] ?? ctx.overrides[pkg.id];
    if (local) {
      await copyHostPath(tree, path.resolve(local), { ...spec, exclude: [".git"] }, `${what} overridden by ${local}`);
      return;
    }
    const { hex } = await fetchToStore(ctx.store, urlOf(spec, ctx.configDir), { what, sha256: pkg.artifact!.sha256 });
    const file = ctx.store.blobPath(hex);
    const prefix = spec.dest.replace(/^\/+/, "");
    if (spec.maxBytes) tree.setByteLimit(spec.maxBytes);
    if (isZip(spec)) await extractZip(file, tree, what, prefix, spec.stripComponents, spec.maxBytes);
    else await extractTar(await openDecompressed(file, what), tree, { what, prefix, stripComponents: spec.stripComponents, maxBytes: spec.maxBytes });
    if (spec.uid !== undefined || spec.gid !== undefined) tree.override(() => true, { uid: spec.uid, gid: spec.gid });
    // The policy applies to what the archive ships; modes the config sets in perms are the user's own.
    applySetuidPolicy(tree, spec.setuid, what, ctx.log);
    applyPerms(tree, spec.perms);
  },
  treeOptions: { symlinks: "contained" },
};

function specFor(pkg: LockedPackage, layers: Array<Record<string, unknown>>): ArchiveSpec {
  for (const layer of layers) {
    for (const spec of (layer.archives as ArchiveSpec[] | undefined) ?? []) {
      if (`archive:${nameOf(spec)}` === pkg.id) return spec;
    }
  }
  throw new LockError(`${pkg.id} is in the lock but no layer names it any more; run \`layerfold lock\``);
}

async function extractZip(file: string, tree: TreeWriter, what: string, prefix: string, strip: number, maxBytes?: number): Promise<void> {
  const zip = await openZip(file, { what, maxTotalBytes: maxBytes });
  // openZip refused repeated names; stripping components can still make two names one.
  const names = new EntrySet(what);
  try {
    for (const e of zip.entries) {
      const parts = e.name.split("/").filter(Boolean);
      if (parts.length <= strip) continue;
      const p = [prefix, ...parts.slice(strip)].filter(Boolean).join("/");
      if (!names.claim(normalizeImagePath(p, what), { dir: e.isDir, mode: e.mode }, e.name)) continue;
      if (e.isDir) await tree.addDir(p, { mode: e.mode ?? 0o755 });
      else await tree.addFile(p, await zip.stream(e), { mode: e.mode ?? 0o644 });
    }
  } finally {
    await zip.close();
  }
}
