// Files computed from the whole installed Debian set, written into the
// image's final "generated" layer (so a change in one package layer never
// rebuilds the others):
//   - /var/lib/dpkg/status: every installed package, so dpkg -l and
//     vulnerability scanners see them (per-package .list/.md5sums live in the
//     package trees themselves);
//   - update-alternatives links that postinst scripts would have made
//     (cc -> gcc, awk -> mawk, ...), read from the scripts without running them;
//   - /etc/passwd, group, shadow, gshadow from base-passwd's templates plus
//     the users and groups in the config;
//   - the CA bundle update-ca-certificates would have written;
//   - /etc/apt/sources.list.d/layerfold.sources when apt is installed;
//   - /etc/pam.d/common-* as pam-auth-update would write them (pam.ts);
//   - /etc/ld.so.cache (see ldcache.ts).

import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { ConfigError } from "../../errors.ts";
import type { StoredTree } from "../../store/store.ts";
import type { TreeEntry, TreeWriter } from "../../store/tree.ts";
import type { InstallContext, LockedPackage } from "../types.ts";
import { parseDeb822 } from "./deb822.ts";
import { canonicalPath, dpkgInfoName } from "./deb.ts";
import type { ControlRecord, DebianOptions } from "./index.ts";
import { writeLdCache } from "./ldcache.ts";
import { enabledProfiles, PAM_TYPES, pamFromTemplate, parsePamProfile } from "./pam.ts";
import { DEFAULT_KEYRING, normalizeSources } from "./repo.ts";
import { loadKeyring } from "./signature.ts";

/** Field order of dpkg's status file; other fields follow in control-file order. */
const STATUS_ORDER = ["Package", "Essential", "Protected", "Status", "Priority", "Section", "Installed-Size", "Origin", "Maintainer", "Bugs", "Architecture", "Multi-Arch", "Source", "Version", "Config-Version", "Replaces", "Provides", "Depends", "Pre-Depends", "Recommends", "Suggests", "Breaks", "Conflicts", "Enhances", "Conffiles", "Description"];

/** Everything installed, by canonical image path, to find files across trees. */
export class InstalledFiles {
  readonly entries = new Map<string, { entry: TreeEntry; tree: StoredTree }>();
  constructor(trees: StoredTree[]) {
    for (const t of trees) for (const e of t.manifest.entries) this.entries.set(e.path, { entry: e, tree: t });
  }
  has(imagePath: string): boolean {
    return this.entries.has(canonicalPath(imagePath.replace(/^\/+/, "")));
  }
  /** Follow symlinks inside the image (bounded) to a regular file. */
  resolveFile(imagePath: string): { entry: TreeEntry; tree: StoredTree; path: string } | undefined {
    let p = canonicalPath(path.posix.normalize(imagePath).replace(/^\/+/, ""));
    for (let i = 0; i < 40; i++) {
      const hit = this.entries.get(p);
      if (!hit) return undefined;
      if (hit.entry.type === "file") return { ...hit, path: p };
      if (hit.entry.type === "hardlink") { p = hit.entry.target!; continue; }
      if (hit.entry.type !== "symlink") return undefined;
      const t = hit.entry.target!;
      p = canonicalPath(path.posix.normalize(t.startsWith("/") ? t : path.posix.join(path.posix.dirname(p), t)).replace(/^\/+/, ""));
    }
    return undefined;
  }
  async read(imagePath: string): Promise<Buffer | undefined> {
    const f = this.resolveFile(imagePath);
    return f ? readFile(path.join(f.tree.rootDir, f.path)) : undefined;
  }
}

export async function statusParagraph(pkg: LockedPackage, rec: ControlRecord, files: InstalledFiles): Promise<string> {
  const p = parseDeb822(rec.control)[0]!;
  const fields = new Map<string, string>();
  for (const [k, v] of p) fields.set(k, v);
  fields.set("Status", "install ok installed");
  if (rec.conffiles.length) {
    const lines: string[] = [];
    for (const c of rec.conffiles) {
      const data = await files.read(c);
      lines.push(`${c} ${data ? createHash("md5").update(data).digest("hex") : "newconffile"}`);
    }
    fields.set("Conffiles", "\n" + lines.join("\n"));
  }
  const keys = [...STATUS_ORDER.filter((k) => fields.has(k)), ...[...fields.keys()].filter((k) => !STATUS_ORDER.includes(k))];
  return keys.map((k) => {
    const v = fields.get(k)!;
    const lines = v.split("\n");
    return `${k}:${lines[0] ? " " + lines[0] : ""}${lines.slice(1).map((l) => "\n " + l).join("")}`;
  }).join("\n") + "\n";
}

// ---- update-alternatives ----------------------------------------------------

export interface Alternative {
  name: string;
  link: string;
  path: string;
  priority: number;
  slaves: { name: string; link: string; path: string }[];
  pkg: string;
}

/** `update-alternatives --install LINK NAME PATH PRIO [--slave LINK NAME PATH]...` with literal arguments. */
export function parseAlternatives(script: string, pkg: string): Alternative[] {
  const out: Alternative[] = [];
  const logical = script.replace(/\\\r?\n/g, " ");
  for (const line of logical.split(/\n|;|&&|\|\|/)) {
    const at = line.indexOf("update-alternatives");
    if (at < 0) continue;
    const toks = line.slice(at).trim().split(/\s+/).slice(1);
    const i = toks.indexOf("--install");
    if (i < 0) continue;
    const args = toks.slice(i + 1);
    if (args.slice(0, 4).some((t) => /[$`"'*]/.test(t)) || args.length < 4 || !/^-?\d+$/.test(args[3]!)) continue;
    const alt: Alternative = { link: args[0]!, name: args[1]!, path: args[2]!, priority: Number(args[3]), slaves: [], pkg };
    for (let j = 4; j < args.length; j++) {
      if (args[j] === "--slave" && j + 3 < args.length + 0 && ![args[j + 1], args[j + 2], args[j + 3]].some((t) => !t || /[$`"'*]/.test(t))) {
        alt.slaves.push({ link: args[j + 1]!, name: args[j + 2]!, path: args[j + 3]! });
        j += 3;
      } else if (args[j]!.startsWith("--")) {
        if (args[j] !== "--slave" && args[j] !== "--quiet") break;
      } else break;
    }
    if (alt.link.startsWith("/") && alt.path.startsWith("/")) out.push(alt);
  }
  return out;
}

async function writeAlternatives(debs: LockedPackage[], tree: TreeWriter, files: InstalledFiles, overrides: Record<string, string>, ctx: InstallContext): Promise<string[]> {
  const all: Alternative[] = [];
  for (const p of debs) {
    const info = dpkgInfoName(p.name, String(p.meta?.architecture ?? ""), p.meta?.multiArch as string | undefined);
    const script = await files.read(`/var/lib/dpkg/info/${info}.postinst`);
    if (script) all.push(...parseAlternatives(script.toString("utf8"), p.name));
  }
  const byName = new Map<string, Alternative[]>();
  for (const a of all) {
    if (!files.has(a.path)) continue; // registered for a file this set does not ship
    const list = byName.get(a.name) ?? [];
    if (!list.some((x) => x.path === a.path)) list.push(a);
    byName.set(a.name, list);
  }
  const made: string[] = [];
  const dirsDone = new Set<string>();
  const dirs = async (p: string) => {
    const parts = p.split("/").slice(0, -1);
    for (let i = 1; i <= parts.length; i++) {
      const d = parts.slice(0, i).join("/");
      if (dirsDone.has(d)) continue;
      dirsDone.add(d);
      await tree.addDir(d, { mode: 0o755 });
    }
  };
  const link = async (linkPath: string, target: string) => {
    const p = canonicalPath(linkPath.replace(/^\/+/, ""));
    if (files.entries.has(p)) {
      ctx.log.debug(`debian: alternative link ${linkPath} is shipped by a package; left as the package has it`);
      return false;
    }
    await dirs(p);
    tree.addSymlink(p, target);
    return true;
  };
  const overridden = new Set<string>();
  for (const name of [...byName.keys()].sort()) {
    const list = byName.get(name)!.sort((a, b) => b.priority - a.priority || (a.path < b.path ? -1 : 1));
    const forced = list.find((a) => overrides[a.link] === a.path);
    const best = forced ?? list[0]!;
    if (overrides[best.link] !== undefined) overridden.add(best.link);
    if (!(await link(best.link, `/etc/alternatives/${name}`))) continue;
    await dirs(`etc/alternatives/${name}`);
    tree.addSymlink(`etc/alternatives/${name}`, best.path);
    const slaveLines: string[] = [];
    const slaves = best.slaves.filter((s) => files.has(s.path));
    for (const s of slaves) {
      if (await link(s.link, `/etc/alternatives/${s.name}`)) tree.addSymlink(`etc/alternatives/${s.name}`, s.path);
    }
    // The admin file update-alternatives reads (--display, --config).
    const allSlaves = [...new Map(list.flatMap((a) => a.slaves).map((s) => [s.name, s])).values()];
    slaveLines.push(...allSlaves.flatMap((s) => [s.name, s.link]));
    const choices = list.flatMap((a) => [a.path, String(a.priority), ...allSlaves.map((s) => a.slaves.find((x) => x.name === s.name)?.path ?? "")]);
    const admin = [forced ? "manual" : "auto", best.link, ...slaveLines, "", ...choices, ""].join("\n") + "\n";
    await dirs(`var/lib/dpkg/alternatives/${name}`);
    await tree.addFile(`var/lib/dpkg/alternatives/${name}`, admin, { mode: 0o644 });
    made.push(`${best.link} -> ${best.path}`);
  }
  for (const [l, target] of Object.entries(overrides).sort()) {
    if (overridden.has(l)) continue;
    if (!files.has(target)) throw new ConfigError(`debian.alternatives: ${l} -> ${target}, but no installed package ships ${target}`);
    if (await link(l, target)) made.push(`${l} -> ${target}`);
  }
  return made;
}

// ---- accounts -------------------------------------------------------------

async function writeAccounts(tree: TreeWriter, files: InstalledFiles, options: DebianOptions | undefined, ctx: InstallContext): Promise<void> {
  const passwdT = await files.read("/usr/share/base-passwd/passwd.master");
  const groupT = await files.read("/usr/share/base-passwd/group.master");
  const shell = files.has("/bin/bash") ? "/bin/bash" : "/bin/sh";
  const passwd = (passwdT?.toString("utf8") ?? `root:x:0:0:root:/root:${shell}\n`).split("\n").filter(Boolean).map((l) => l.split(":"));
  const group = (groupT?.toString("utf8") ?? "root:*:0:\n").split("\n").filter(Boolean).map((l) => l.split(":"));
  // base-passwd's postinst turns the templates' "*" into "x" once shadow is in use.
  for (const u of passwd) if (u[1] === "*") u[1] = "x";
  for (const g of group) if (g[1] === "*") g[1] = "x";
  for (const g of options?.groups ?? []) {
    const clash = group.find((x) => x[0] === g.name || Number(x[2]) === g.gid);
    if (clash) throw new ConfigError(`debian.groups: ${g.name} (gid ${g.gid}) clashes with the existing group ${clash[0]} (gid ${clash[2]}); pick another name or gid`);
    group.push([g.name, "x", String(g.gid), (g.members ?? []).join(",")]);
  }
  const homes: { dir: string; uid: number; gid: number }[] = [];
  for (const u of options?.users ?? []) {
    const clash = passwd.find((x) => x[0] === u.name || Number(x[2]) === u.uid);
    if (clash) throw new ConfigError(`debian.users: ${u.name} (uid ${u.uid}) clashes with the existing user ${clash[0]} (uid ${clash[2]}); pick another name or uid`);
    const gid = u.gid ?? u.uid;
    if (!group.some((g) => Number(g[2]) === gid)) {
      if (group.some((g) => g[0] === u.name)) throw new ConfigError(`debian.users: ${u.name} needs a group with gid ${gid}, but a group named ${u.name} already has another gid`);
      group.push([u.name, "x", String(gid), ""]);
    }
    for (const gname of u.groups ?? []) {
      const g = group.find((x) => x[0] === gname);
      if (!g) throw new ConfigError(`debian.users: ${u.name} names group ${gname}, which does not exist; add it under debian.groups`);
      g[3] = [...(g[3] ? g[3].split(",") : []), u.name].join(",");
    }
    const home = u.home ?? `/home/${u.name}`;
    passwd.push([u.name, "x", String(u.uid), String(gid), u.gecos ?? "", home, u.shell ?? shell]);
    if (home !== "/nonexistent" && !files.has(home)) homes.push({ dir: home, uid: u.uid, gid });
  }
  const day = ctx.sourceDateEpoch ? String(Math.floor(ctx.sourceDateEpoch / 86400)) : "";
  const shadowGid = Number(group.find((g) => g[0] === "shadow")?.[2] ?? 0);
  await tree.addDir("etc", { mode: 0o755 });
  await tree.addFile("etc/passwd", passwd.map((l) => l.join(":")).join("\n") + "\n", { mode: 0o644 });
  await tree.addFile("etc/group", group.map((l) => l.join(":")).join("\n") + "\n", { mode: 0o644 });
  await tree.addFile("etc/shadow", passwd.map((u) => `${u[0]}:*:${day}:0:99999:7:::`).join("\n") + "\n", { mode: 0o640, gid: shadowGid });
  await tree.addFile("etc/gshadow", group.map((g) => `${g[0]}:*::${g[3] ?? ""}`).join("\n") + "\n", { mode: 0o640, gid: shadowGid });
  for (const h of homes) {
    const parts = h.dir.replace(/^\/+/, "").split("/");
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join("/");
      if (!files.has(d) && !tree.has(d)) await tree.addDir(d, { mode: 0o755 });
    }
    await tree.addDir(h.dir, { mode: 0o755, uid: h.uid, gid: h.gid });
  }
}

// ---- CA certificates ------------------------------------------------------

async function writeCaBundle(files: InstalledFiles, tree: TreeWriter): Promise<number> {
  const certs = [...files.entries.keys()].filter((p) => p.startsWith("usr/share/ca-certificates/") && p.endsWith(".crt")).sort();
  if (!certs.length || !files.has("/etc/ssl/certs")) return 0;
  const parts: Buffer[] = [];
  for (const c of certs) {
    const data = (await files.read(c))!;
    parts.push(data, data[data.length - 1] === 0x0a ? Buffer.alloc(0) : Buffer.from("\n"));
  }
  await tree.addDir("etc", { mode: 0o755 });
  await tree.addDir("etc/ssl", { mode: 0o755 });
  await tree.addDir("etc/ssl/certs", { mode: 0o755 });
  await tree.addFile("etc/ssl/certs/ca-certificates.crt", Buffer.concat(parts), { mode: 0o644 });
  if (!files.has("/etc/ca-certificates.conf")) {
    await tree.addFile("etc/ca-certificates.conf", certs.map((c) => c.slice("usr/share/ca-certificates/".length)).join("\n") + "\n", { mode: 0o644 });
  }
  return certs.length;
}

// ---- apt sources ------------------------------------------------------------

/** OpenPGP ASCII armor (RFC 4880 section 6) with its CRC-24 checksum. */
export function armorPublicKey(data: Buffer): string {
  let crc = 0xb704ce;
  for (const byte of data) {
    crc ^= byte << 16;
    for (let i = 0; i < 8; i++) {
      crc <<= 1;
      if (crc & 0x1000000) crc ^= 0x1864cfb;
    }
  }
  crc &= 0xffffff;
  const b64 = data.toString("base64").replace(/.{1,64}/g, "$&\n");
  const sum = Buffer.from([crc >> 16, (crc >> 8) & 0xff, crc & 0xff]).toString("base64");
  return `-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n${b64}=${sum}\n-----END PGP PUBLIC KEY BLOCK-----\n`;
}

/**
 * When apt is in the image, the same repositories as an apt deb822 sources
 * file, so `apt-get update && apt-get install` works in derived images. Keys
 * the image ships are referenced by path; others are inlined, armored.
 */
async function writeAptSources(files: InstalledFiles, tree: TreeWriter, options: DebianOptions | undefined, ctx: InstallContext): Promise<boolean> {
  if (!options || !files.has("usr/bin/apt-get")) return false;
  if (files.has("etc/apt/sources.list") || [...files.entries.keys()].some((k) => k.startsWith("etc/apt/sources.list.d/") && k.length > 23)) return false;
  const paras: string[] = [];
  for (const r of normalizeSources(options.sources, options.allowUnsigned)) {
    const lines = ["Types: deb", `URIs: ${r.uri}`, `Suites: ${r.suite}`];
    if (r.components.length) lines.push(`Components: ${r.components.join(" ")}`);
    if (r.architectures) lines.push(`Architectures: ${r.architectures.join(" ")}`);
    const sb = r.signedBy ?? DEFAULT_KEYRING;
    let armored: string | undefined;
    if (sb.includes("BEGIN PGP")) armored = sb;
    else if (sb.startsWith("/") && files.has(sb)) lines.push(`Signed-By: ${sb}`);
    else {
      try {
        armored = armorPublicKey(await loadKeyring(sb, ctx.configDir, `debian source ${r.uri} ${r.suite}`));
      } catch {
        if (!r.allowUnsigned) ctx.log.warn(`debian: apt sources in the image: no key for ${r.uri} ${r.suite}; apt in the image will refuse it`);
      }
    }
    if (armored) lines.push(`Signed-By:\n${armored.trim().split("\n").map((l) => " " + (l.trim() === "" ? "." : l)).join("\n")}`);
    if (r.allowUnsigned) lines.push("Trusted: yes");
    if (r.checkValidUntil === false) lines.push("Check-Valid-Until: no");
    paras.push(lines.join("\n") + "\n");
  }
  for (const d of ["etc", "etc/apt", "etc/apt/sources.list.d"]) await tree.addDir(d, { mode: 0o755 });
  await tree.addFile("etc/apt/sources.list.d/layerfold.sources", `# Written by layerfold from the image's debian.sources.\n${paras.join("\n")}`, { mode: 0o644 });
  return true;
}

// ---- PAM (pam-auth-update) ---------------------------------------------------

async function writePamConfig(files: InstalledFiles, tree: TreeWriter): Promise<string[]> {
  if (!files.has("usr/share/pam/common-auth")) return [];
  const profiles = [];
  for (const p of [...files.entries.keys()].filter((k) => k.startsWith("usr/share/pam-configs/") && !k.slice(22).includes("/")).sort()) {
    const data = await files.read(p);
    if (data) profiles.push(parsePamProfile(p.slice(22), data.toString("utf8")));
  }
  const enabled = enabledProfiles(profiles);
  const written: string[] = [];
  for (const type of PAM_TYPES) {
    const dest = `etc/pam.d/common-${type}`;
    const template = await files.read(`usr/share/pam/common-${type}`);
    if (!template || files.has(dest)) continue;
    const text = pamFromTemplate(template.toString("utf8"), type, enabled);
    if (text === undefined) continue;
    for (const d of ["etc", "etc/pam.d"]) await tree.addDir(d, { mode: 0o755 });
    await tree.addFile(dest, text, { mode: 0o644 });
    written.push(dest);
  }
  return written;
}

export async function generateDebianFiles(
  debs: LockedPackage[],
  tree: TreeWriter,
  options: DebianOptions | undefined,
  ctx: InstallContext,
  control: (p: LockedPackage) => Promise<ControlRecord>,
): Promise<void> {
  const trees: StoredTree[] = [];
  for (const p of debs) {
    const t = ctx.treeOf(p.id);
    if (!t) throw new Error(`debian: no installed tree for ${p.id}; the build must install packages before generating files`);
    trees.push(t);
  }
  const files = new InstalledFiles(trees);
  const sorted = [...debs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (sorted.length) {
    const paras: string[] = [];
    for (const p of sorted) paras.push(await statusParagraph(p, await control(p), files));
    for (const d of ["var", "var/lib", "var/lib/dpkg"]) await tree.addDir(d, { mode: 0o755 });
    await tree.addFile("var/lib/dpkg/status", paras.join("\n"), { mode: 0o644 });
    // dpkg reads arch-qualified info files (libc6:amd64.list) only when the
    // database says format 1; dpkg itself writes this on first use.
    await tree.addDir("var/lib/dpkg/info", { mode: 0o755 });
    await tree.addFile("var/lib/dpkg/info/format", "1\n", { mode: 0o644 });
    const made = await writeAlternatives(sorted, tree, files, options?.alternatives ?? {}, ctx);
    if (made.length) ctx.log.debug(`debian: alternatives ${made.join(", ")}`);
    if (await writeAptSources(files, tree, options, ctx)) ctx.log.debug("debian: /etc/apt/sources.list.d/layerfold.sources");
    const pam = await writePamConfig(files, tree);
    if (pam.length) ctx.log.debug(`debian: ${pam.join(", ")} from ${"/usr/share/pam-configs"}`);
    const n = await writeCaBundle(files, tree);
    if (n) ctx.log.debug(`debian: CA bundle of ${n} certificates`);
  }
  if (sorted.length || options?.users.length || options?.groups.length) await writeAccounts(tree, files, options, ctx);
  if (sorted.length) await writeLdCache(files, tree, ctx);
}
