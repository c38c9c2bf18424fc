// /etc/ld.so.cache for the image. Libraries in the default multiarch paths
// are found without it, but anything a package registers in
// /etc/ld.so.conf.d (or an image adds) is not. dpkg's trigger would run
// ldconfig; we run the host's ldconfig over a throwaway root that holds just
// the image's library directories (hardlinks into the store, symlinks as the
// image has them) and the image's ld.so.conf files, and keep the cache it
// writes. That needs the host ldconfig, the same architecture, and the right
// to chroot (root, or a user namespace); otherwise the image keeps no cache
// and says so once, which leaves the default paths working.

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, link, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import type { TreeWriter } from "../../store/tree.ts";
import type { InstallContext } from "../types.ts";
import type { InstalledFiles } from "./generate.ts";
import { MERGED_DIRS } from "./deb.ts";

const HOST_ARCH: Record<string, string> = { x64: "amd64", arm64: "arm64", ia32: "386", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" };

function run(cmd: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => { if (stderr.length < 4000) stderr += d.toString(); });
    child.on("error", (e) => resolve({ code: -1, stderr: e.message }));
    child.on("close", (code) => resolve({ code, stderr }));
  });
}

/** Directories ld.so.conf names (include globs expanded over the image's files). */
export function ldConfDirs(files: InstalledFiles, read: (p: string) => string | undefined): string[] {
  const dirs = new Set<string>();
  const seen = new Set<string>();
  const visit = (p: string, depth: number) => {
    if (depth > 8 || seen.has(p)) return;
    seen.add(p);
    const text = read(p);
    if (text === undefined) return;
    for (const raw of text.split("\n")) {
      const line = raw.replace(/#.*/, "").trim();
      if (!line) continue;
      const inc = /^include\s+(.+)$/.exec(line);
      if (inc) {
        for (const pat of inc[1]!.split(/\s+/)) {
          const abs = pat.startsWith("/") ? pat : path.posix.join(path.posix.dirname("/" + p), pat);
          const re = new RegExp("^" + abs.replace(/^\/+/, "").replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*").replace(/\?/g, "[^/]") + "$");
          for (const f of [...files.entries.keys()].filter((k) => re.test(k)).sort()) visit(f, depth + 1);
        }
        continue;
      }
      if (line.startsWith("hwcap")) continue;
      dirs.add(line.split(/[\s=]/)[0]!.replace(/^\/+|\/+$/g, ""));
    }
  };
  visit("etc/ld.so.conf", 0);
  return [...dirs].sort();
}

let warned = false;

export async function writeLdCache(files: InstalledFiles, tree: TreeWriter, ctx: InstallContext): Promise<void> {
  const ldconfig = ["/usr/sbin/ldconfig", "/sbin/ldconfig"].find((p) => existsSync(p));
  const why = !ldconfig ? "the host has no ldconfig" : HOST_ARCH[process.arch] !== ctx.platform.architecture ? `the host is ${process.arch}, the image ${ctx.platform.architecture}` : undefined;
  if (why) {
    if (!warned) ctx.log.warn(`debian: no /etc/ld.so.cache written (${why}); libraries outside the default paths need LD_LIBRARY_PATH`);
    warned = true;
    return;
  }
  if (!files.has("etc/ld.so.conf") && !files.has("usr/sbin/ldconfig")) return;
  const confTexts = new Map<string, string>();
  for (const p of files.entries.keys()) {
    if (p === "etc/ld.so.conf" || p.startsWith("etc/ld.so.conf.d/")) {
      const data = await files.read(p);
      if (data) confTexts.set(p, data.toString("utf8"));
    }
  }
  const canon = (d: string) => (MERGED_DIRS.includes(d.split("/")[0]!) ? `usr/${d}` : d);
  const dirs = new Set(ldConfDirs(files, (p) => confTexts.get(p)).map(canon));
  for (const p of files.entries.keys()) {
    if (/^usr\/lib(32|64|x32)?$/.test(p) || /^usr\/lib\/[a-z0-9_]+-linux-gnu[a-z0-9_]*$/.test(p)) dirs.add(p);
  }
  // In the store's tmp dir, so library files can be hardlinked instead of copied.
  await mkdir(ctx.store.tmpDir, { recursive: true });
  const root = await mkdtemp(path.join(ctx.store.tmpDir, "ldcache-"));
  try {
    await mkdir(path.join(root, "etc"), { recursive: true });
    for (const d of MERGED_DIRS) {
      if (files.entries.get(d)?.entry.type === "symlink") await symlink(`usr/${d}`, path.join(root, d));
    }
    for (const [p, text] of confTexts) {
      await mkdir(path.join(root, path.dirname(p)), { recursive: true });
      await writeFile(path.join(root, p), text);
    }
    for (const [p, { entry, tree: t }] of files.entries) {
      const dir = path.posix.dirname(p);
      const inScope = dirs.has(dir) || [...dirs].some((d) => dir.startsWith(`${d}/glibc-hwcaps/`));
      if (!inScope) continue;
      const dest = path.join(root, p);
      await mkdir(path.dirname(dest), { recursive: true });
      if (entry.type === "symlink") await symlink(entry.target!, dest).catch(() => {});
      else if (entry.type === "file" && /\.so/.test(p)) {
        const src = path.join(t.rootDir, p);
        await link(src, dest).catch(() => copyFile(src, dest));
      }
    }
    const r = await run(ldconfig!, ["-X", "-r", root]);
    const cache = path.join(root, "etc/ld.so.cache");
    if (r.code !== 0 || !existsSync(cache)) {
      if (!warned) ctx.log.warn(`debian: ldconfig could not build /etc/ld.so.cache (${r.stderr.trim().split("\n")[0] || `exit ${r.code}`}); the image keeps the default library paths only`);
      warned = true;
      return;
    }
    await tree.addDir("etc", { mode: 0o755 });
    await tree.addFile("etc/ld.so.cache", await readFile(cache), { mode: 0o644 });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
