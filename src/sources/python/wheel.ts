// Installs a wheel per PEP 427 (binary distribution format) into a package
// tree, without pip: files go to site-packages or, from <name>.data/, to the
// scheme's scripts/headers/data/purelib/platlib; every file is checked against
// RECORD while it is written; entry points become scripts with the image
// interpreter's shebang; INSTALLER, REQUESTED and a rewritten RECORD are added.

import path from "node:path";
import { HashMismatchError, MalformedArchiveError, UnsafeArchiveError } from "../../errors.ts";
import { openZip, type ZipEntry, type ZipFile } from "../../archive/zip.ts";
import type { TreeWriter } from "../../store/tree.ts";
import { sha256Hex } from "../../util/hash.ts";

/** Install scheme inside the image (paths relative to /). */
export interface Scheme {
  purelib: string;
  platlib: string;
  scripts: string;
  data: string;
  /** Headers go to <headers>/<project name>. */
  headers: string;
  /** Interpreter written into script shebangs. */
  shebang: string;
}

export function schemeFor(opts: { prefix: string; version: string; interpreter: string }): Scheme {
  const [maj, min] = opts.version.split(".");
  const py = `python${maj}.${min}`;
  if (opts.prefix === "system") {
    // Debian's layout for locally installed packages (what pip does as root there).
    const site = `usr/local/lib/${py}/dist-packages`;
    return { purelib: site, platlib: site, scripts: "usr/local/bin", data: "usr/local", headers: `usr/local/include/${py}`, shebang: opts.interpreter };
  }
  const root = opts.prefix.replace(/^\/+|\/+$/g, "");
  const site = `${root}/lib/${py}/site-packages`;
  return { purelib: site, platlib: site, scripts: `${root}/bin`, data: root, headers: `${root}/include/site/${py}`, shebang: `/${root}/bin/python` };
}

const b64url = (hex: string): string => Buffer.from(hex, "hex").toString("base64url");

/** Parse RECORD (CSV: path,hash,size; fields may be quoted). */
export function parseRecord(text: string): Map<string, { hash?: string; size?: number }> {
  const out = new Map<string, { hash?: string; size?: number }>();
  for (const line of text.split(/\r?\n/)) {
    if (!line.trim()) continue;
    const fields: string[] = [];
    let cur = "";
    let q = false;
    for (let i = 0; i < line.length; i++) {
      const ch = line[i]!;
      if (q) {
        if (ch === '"' && line[i + 1] === '"') { cur += '"'; i++; } else if (ch === '"') q = false; else cur += ch;
      } else if (ch === '"') q = true;
      else if (ch === ",") { fields.push(cur); cur = ""; } else cur += ch;
    }
    fields.push(cur);
    const [p, hash, size] = fields;
    if (p) out.set(p, { hash: hash || undefined, size: size ? Number(size) : undefined });
  }
  return out;
}

const csvField = (s: string): string => (/[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

/** Parse entry_points.txt (INI): section -> name -> "module:attr". */
export function parseEntryPoints(text: string): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  let sec: Map<string, string> | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith("#") || line.startsWith(";")) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) { sec = new Map(); out.set(s[1]!.trim(), sec); continue; }
    const kv = /^([^=]+?)\s*=\s*(.+)$/.exec(line);
    if (kv && sec) sec.set(kv[1]!, kv[2]!.trim());
  }
  return out;
}

export function entryPointScript(shebang: string, target: string): string {
  const m = /^([\w.]+)\s*(?::\s*([\w.]+))?\s*(\[.*\])?$/.exec(target);
  if (!m) throw new MalformedArchiveError(`entry point ${JSON.stringify(target)} is not "module:attr"`);
  const mod = m[1]!;
  const attr = m[2];
  const imp = attr ? `from ${mod} import ${attr.split(".")[0]}` : `import ${mod}`;
  const call = attr ?? mod;
  return `#!${shebang}\n# -*- coding: utf-8 -*-\nimport re\nimport sys\n${imp}\nif __name__ == "__main__":\n    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])\n    sys.exit(${call}())\n`;
}

async function pool<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  const worker = async () => { while (i < items.length) await fn(items[i++]!); };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

export interface InstallWheelOptions {
  /** The wheel's file name (names it in errors). */
  file: string;
  scheme: Scheme;
  /** Write REQUESTED (the image's config names this project directly). */
  requested: boolean;
  /** How many members to inflate at once. */
  concurrency?: number;
}

/** Install the wheel at `wheelPath` into `tree`. Returns the number of files written. */
export async function installWheel(wheelPath: string, tree: TreeWriter, o: InstallWheelOptions): Promise<number> {
  const z = await openZip(wheelPath, { what: o.file });
  try {
    return await install(z, tree, o);
  } finally {
    await z.close();
  }
}

async function install(z: ZipFile, tree: TreeWriter, o: InstallWheelOptions): Promise<number> {
  const what = o.file;
  const s = o.scheme;
  const wheelMember = z.entries.find((e) => /^[^/]+\.dist-info\/WHEEL$/.test(e.name));
  if (!wheelMember) throw new MalformedArchiveError(`${what}: no .dist-info/WHEEL inside; it is not a valid wheel`);
  const distInfo = wheelMember.name.slice(0, -"/WHEEL".length);
  const dataDir = distInfo.replace(/\.dist-info$/, ".data");
  const wheelInfo = (await z.read(wheelMember)).toString("utf8");
  const wv = /^Wheel-Version:\s*(\d+)/m.exec(wheelInfo)?.[1];
  if (wv !== "1") throw new MalformedArchiveError(`${what}: Wheel-Version ${wv ?? "(missing)"} is not supported (only 1.x)`);
  const purelib = /^Root-Is-Purelib:\s*true/im.test(wheelInfo);
  const root = purelib ? s.purelib : s.platlib;
  const recordMember = z.get(`${distInfo}/RECORD`);
  if (!recordMember) throw new HashMismatchError(`${what}: has no ${distInfo}/RECORD, so its files cannot be verified; refusing it`);
  const record = parseRecord((await z.read(recordMember)).toString("utf8"));
  const projectName = distInfo.replace(/-[^-]+\.dist-info$/, "");

  const installed: { path: string; hash: string; size: number }[] = [];
  const rel = (dest: string) => path.posix.relative(root, dest);
  const verify = (name: string, sha256: string, size: number) => {
    const r = record.get(name);
    if (!r?.hash) throw new HashMismatchError(`${what}: ${name} is not listed with a hash in RECORD; refusing the wheel`);
    const [algo, digest] = r.hash.split("=", 2);
    if (algo !== "sha256") throw new HashMismatchError(`${what}: RECORD uses ${algo} for ${name}; only sha256 is accepted`);
    if (digest !== b64url(sha256) || (r.size !== undefined && r.size !== size)) {
      throw new HashMismatchError(`${what}: ${name} does not match its RECORD hash; the wheel is corrupt or was altered`);
    }
  };

  const destOf = (name: string): { dest: string; script: boolean } => {
    if (name.startsWith(`${dataDir}/`)) {
      const rest = name.slice(dataDir.length + 1);
      const slash = rest.indexOf("/");
      const kind = rest.slice(0, slash);
      const sub = rest.slice(slash + 1);
      switch (kind) {
        case "scripts": return { dest: `${s.scripts}/${sub}`, script: true };
        case "headers": return { dest: `${s.headers}/${projectName}/${sub}`, script: false };
        case "data": return { dest: `${s.data}/${sub}`, script: false };
        case "purelib": return { dest: `${s.purelib}/${sub}`, script: false };
        case "platlib": return { dest: `${s.platlib}/${sub}`, script: false };
        default: throw new MalformedArchiveError(`${what}: unknown .data directory ${JSON.stringify(kind)}`);
      }
    }
    return { dest: `${root}/${name}`, script: false };
  };

  const skip = new Set([`${distInfo}/RECORD`, `${distInfo}/RECORD.jws`, `${distInfo}/RECORD.p7s`, `${distInfo}/INSTALLER`, `${distInfo}/REQUESTED`]);
  const files = z.entries.filter((e) => !e.isDir && !skip.has(e.name));
  let count = 0;
  await pool(files, o.concurrency ?? 4, async (e: ZipEntry) => {
    const { dest, script } = destOf(e.name);
    const exec = e.mode !== undefined && (e.mode & 0o111) !== 0;
    if (script) {
      // Scripts are small: read whole, verify the original, rewrite "#!python".
      const data = await z.read(e);
      verify(e.name, sha256Hex(data), data.length);
      let out = data;
      const m = /^#!python(w)?[^\n]*\n/.exec(data.subarray(0, 256).toString("latin1"));
      if (m) out = Buffer.concat([Buffer.from(`#!${s.shebang}\n`), data.subarray(m[0].length)]);
      const entry = await tree.addFile(dest, out, { mode: 0o755 });
      installed.push({ path: rel(dest), hash: entry.sha256!, size: entry.size! });
    } else {
      const entry = await tree.addFile(dest, await z.content(e), { mode: exec ? 0o755 : 0o644 });
      verify(e.name, entry.sha256!, entry.size!);
      installed.push({ path: rel(dest), hash: entry.sha256!, size: entry.size! });
    }
    count++;
  });

  const epMember = z.get(`${distInfo}/entry_points.txt`);
  if (epMember) {
    const eps = parseEntryPoints((await z.read(epMember)).toString("utf8"));
    for (const sec of ["console_scripts", "gui_scripts"]) {
      for (const [name, target] of eps.get(sec) ?? []) {
        if (name.includes("/") || name === "." || name === "..") throw new UnsafeArchiveError(`${what}: entry point name ${JSON.stringify(name)} is not a plain file name`);
        const dest = `${s.scripts}/${name}`;
        const entry = await tree.addFile(dest, entryPointScript(s.shebang, target), { mode: 0o755 });
        installed.push({ path: rel(dest), hash: entry.sha256!, size: entry.size! });
        count++;
      }
    }
  }

  const extra: [string, string][] = [[`${distInfo}/INSTALLER`, "layerfold\n"]];
  if (o.requested) extra.push([`${distInfo}/REQUESTED`, ""]);
  for (const [name, content] of extra) {
    const entry = await tree.addFile(`${root}/${name}`, content, { mode: 0o644 });
    installed.push({ path: name, hash: entry.sha256!, size: entry.size! });
  }
  installed.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const lines = installed.map((f) => `${csvField(f.path)},sha256=${b64url(f.hash)},${f.size}`);
  lines.push(`${csvField(`${distInfo}/RECORD`)},,`);
  await tree.addFile(`${root}/${distInfo}/RECORD`, lines.join("\n") + "\n", { mode: 0o644 });
  return count + extra.length + 1;
}
