// Local files and directories copied into the image, with target path and
// mode/uid/gid overrides (like nix2container's perms).

import { lstat, readdir, readlink } from "node:fs/promises";
import { createReadStream } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { ConfigError, UnsafeArchiveError } from "../../errors.ts";
import { sha256Hex } from "../../util/hash.ts";
import { HashingStream } from "../../util/hash.ts";
import { devNull } from "../../util/stream.ts";
import { pipeline } from "node:stream/promises";
import type { EntryMeta, TreeWriter } from "../../store/tree.ts";
import type { LockedPackage, SourceKind } from "../types.ts";

const mode = z.number().int().min(0).max(0o7777);
const permSchema = z.object({ regex: z.string(), mode: mode.optional(), uid: z.number().int().min(0).optional(), gid: z.number().int().min(0).optional() }).strict();

export const fileSpecSchema = z
  .object({
    /** Host path, relative to the config file. */
    src: z.string().min(1),
    /** Absolute image path: a directory for a directory source, the file path for a file. */
    dest: z.string().startsWith("/", "must be an absolute image path"),
    mode: mode.optional(),
    uid: z.number().int().min(0).optional(),
    gid: z.number().int().min(0).optional(),
    /** Per-path overrides; regex is matched against the image path without leading slash. */
    perms: z.array(permSchema).optional(),
    /** Names (or relative paths) to leave out, e.g. ".git", "node_modules". */
    exclude: z.array(z.string()).optional(),
    /** Package name for `why`, overrides and conflicts (default: the dest path). */
    name: z.string().optional(),
  })
  .strict();

export type FileSpec = z.infer<typeof fileSpecSchema>;

interface FileWalkEntry { rel: string; kind: "file" | "dir" | "symlink"; mode: number; target?: string }

/** Walk a host file or directory, sorted, refusing what an image may not hold. */
async function walk(root: string, exclude: Set<string>, what: string): Promise<FileWalkEntry[]> {
  const out: FileWalkEntry[] = [];
  const visit = async (abs: string, rel: string): Promise<void> => {
    const st = await lstat(abs);
    if (st.isSymbolicLink()) out.push({ rel, kind: "symlink", mode: 0o777, target: await readlink(abs) });
    else if (st.isFile()) out.push({ rel, kind: "file", mode: st.mode & 0o7777 });
    else if (st.isDirectory()) {
      if (rel) out.push({ rel, kind: "dir", mode: st.mode & 0o7777 });
      for (const name of (await readdir(abs)).sort()) {
        const childRel = rel ? `${rel}/${name}` : name;
        if (exclude.has(name) || exclude.has(childRel)) continue;
        await visit(path.join(abs, name), childRel);
      }
    } else throw new UnsafeArchiveError(`${what}: ${abs} is a device, socket or FIFO; only files, directories and symlinks can go into an image`);
  };
  await visit(root, "");
  return out;
}

/** A digest of names, kinds, modes and contents under a host path: any change gives a new one. */
export async function digestHostPath(src: string, exclude: string[], what: string): Promise<string> {
  const st = await lstat(src);
  if (st.isFile()) return sha256Hex(`file\0${(st.mode & 0o7777).toString(8)}\0${await hashFile(src)}`);
  const lines: string[] = [];
  for (const e of await walk(src, new Set(exclude), what)) {
    const content = e.kind === "file" ? await hashFile(path.join(src, e.rel)) : e.target ?? "";
    lines.push(`${e.kind}\0${e.rel}\0${e.mode.toString(8)}\0${content}`);
  }
  return sha256Hex(lines.join("\n"));
}

async function hashFile(p: string): Promise<string> {
  const h = new HashingStream();
  await pipeline(createReadStream(p), h, devNull());
  return h.hex();
}

function resolveSrc(spec: FileSpec, configDir: string, overrides: Record<string, string>): string {
  const name = spec.name ?? spec.dest;
  return path.resolve(overrides[name] ?? overrides[`file:${name}`] ?? path.resolve(configDir, spec.src));
}

export const filesSource: SourceKind<FileSpec[], undefined> = {
  kind: "file",
  layerKey: "files",
  sbomPurpose: "none",
  local: true,
  acceptsOverrides: true,
  layerSchema: z.array(fileSpecSchema),
  async resolve(specs, _opts, ctx) {
    const packages: LockedPackage[] = [];
    const roots = specs.map((layerSpecs) =>
      (layerSpecs ?? []).map((spec) => `file:${spec.name ?? spec.dest}`),
    );
    for (const layerSpecs of specs) {
      for (const spec of layerSpecs ?? []) {
        const src = resolveSrc(spec, ctx.configDir, ctx.overrides);
        const what = `files ${spec.src} -> ${spec.dest}`;
        try {
          await lstat(src);
        } catch {
          throw new ConfigError(`${what}: ${src} does not exist; fix "src" (relative to ${ctx.configDir}) or create it`);
        }
        const digest = await digestHostPath(src, spec.exclude ?? [], what);
        packages.push({
          id: `file:${spec.name ?? spec.dest}`,
          kind: "file",
          name: spec.name ?? spec.dest,
          version: digest.slice(0, 16),
          deps: [],
          meta: { spec: { ...spec, src: path.relative(ctx.configDir, src) || "." } },
        });
      }
    }
    return { packages, roots };
  },
  installKey: (pkg) => JSON.stringify(pkg.meta ?? {}),
  async install(pkg, tree, _opts, ctx) {
    const spec = (pkg.meta as { spec: FileSpec }).spec;
    await copyHostPath(tree, resolveSrc(spec, ctx.configDir, ctx.overrides), spec, `files ${spec.src} -> ${spec.dest}`);
  },
};

/** Copy a host file or directory into a tree at spec.dest, applying modes, owners and perms. */
export async function copyHostPath(tree: TreeWriter, src: string, spec: Pick<FileSpec, "dest" | "mode" | "uid" | "gid" | "perms" | "exclude">, what: string): Promise<void> {
  const destRoot = spec.dest.replace(/^\/+/, "");
  const base: EntryMeta = { uid: spec.uid ?? 0, gid: spec.gid ?? 0 };
  const st = await lstat(src);
  if (st.isFile()) {
    await tree.addFileFromHost(destRoot, src, { ...base, mode: spec.mode ?? st.mode & 0o7777 });
  } else {
    if (destRoot) await tree.addDir(destRoot, { ...base, mode: 0o755 });
    for (const e of await walk(src, new Set(spec.exclude ?? []), what)) {
      const p = destRoot ? `${destRoot}/${e.rel}` : e.rel;
      if (e.kind === "dir") await tree.addDir(p, { ...base, mode: e.mode });
      else if (e.kind === "symlink") tree.addSymlink(p, e.target!, base);
      else await tree.addFileFromHost(p, path.join(src, e.rel), { ...base, mode: spec.mode ?? e.mode });
    }
  }
  applyPerms(tree, spec.perms);
}

export function applyPerms(tree: TreeWriter, perms: FileSpec["perms"]): void {
  for (const perm of perms ?? []) {
    const re = new RegExp(perm.regex);
    tree.override((e) => re.test(e.path), perm);
  }
}
