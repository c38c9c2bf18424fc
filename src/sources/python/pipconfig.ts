// pip's configuration, found exactly where pip finds it, so layerfold uses the
// same indexes as `pip install` on the same machine:
//   global: $XDG_CONFIG_DIRS/pip/pip.conf (default /etc/xdg), then /etc/pip.conf
//   user:   ~/.pip/pip.conf, then $XDG_CONFIG_HOME/pip/pip.conf
//   site:   $VIRTUAL_ENV/pip.conf
//   PIP_CONFIG_FILE (replaces the user files when it exists)
// Later files override earlier ones; within a file [install] overrides
// [global]; PIP_* environment variables override every file.

import { existsSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { takeUrlCredentials } from "../../fetch/http-auth.ts";

export interface PipConfig {
  indexUrl: string;
  extraIndexUrls: string[];
  /** Directories or URLs of pages with links to files. */
  findLinks: string[];
  noIndex: boolean;
  /** Constraint files (paths), applied like `pip install -c`. */
  constraints: string[];
  trustedHosts: string[];
  pre: boolean;
  /** The files that were read, for `--debug` output. */
  files: string[];
}

export const PYPI_SIMPLE = "https://pypi.org/simple";

/** Parse an INI file the way configparser does for pip: sections, key = value, indented continuation lines. */
export function parseIni(text: string): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  let section: Map<string, string> | undefined;
  let lastKey: string | undefined;
  for (const raw of text.split(/\r?\n/)) {
    if (/^\s*([#;].*)?$/.test(raw)) { lastKey = raw.trim() === "" ? lastKey : undefined; continue; }
    const sec = /^\[([^\]]+)\]\s*$/.exec(raw);
    if (sec) {
      const name = sec[1]!.trim();
      section = out.get(name) ?? new Map();
      out.set(name, section);
      lastKey = undefined;
      continue;
    }
    if (/^\s/.test(raw) && section && lastKey) {
      section.set(lastKey, `${section.get(lastKey)}\n${raw.trim()}`);
      continue;
    }
    const kv = /^([^=:]+?)\s*[=:]\s*(.*)$/.exec(raw);
    if (kv && section) {
      lastKey = kv[1]!.trim().toLowerCase().replace(/_/g, "-");
      section.set(lastKey, kv[2]!.trim());
    }
  }
  return out;
}

export function pipConfigFiles(env: NodeJS.ProcessEnv = process.env): string[] {
  const xdgDirs = (env.XDG_CONFIG_DIRS || "/etc/xdg").split(":").filter(Boolean);
  const global = [...xdgDirs.map((d) => path.join(d, "pip", "pip.conf")), "/etc/pip.conf"];
  const home = env.HOME || os.homedir();
  const user = [path.join(home, ".pip", "pip.conf"), path.join(env.XDG_CONFIG_HOME || path.join(home, ".config"), "pip", "pip.conf")];
  const site = env.VIRTUAL_ENV ? [path.join(env.VIRTUAL_ENV, "pip.conf")] : [];
  const envFile = env.PIP_CONFIG_FILE;
  if (envFile === os.devNull) return []; // pip: PIP_CONFIG_FILE=/dev/null disables all files
  const loadUser = !(envFile && existsSync(envFile));
  return [...global, ...(loadUser ? user : []), ...site, ...(envFile ? [envFile] : [])];
}

const splitList = (v: string | undefined): string[] => (v ? v.split(/\s+/).filter(Boolean) : []);
const truthy = (v: string | undefined): boolean => v !== undefined && /^(1|yes|true|on)$/i.test(v.trim());

/**
 * Local paths in find-links and index URLs become file:// URLs; relative ones resolve against `base`.
 * user:password in a URL is taken out and kept for authentication (fetch/http-auth.ts).
 */
function toUrl(v: string, base: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v)) return takeUrlCredentials(v);
  return pathToFileURL(path.resolve(base, v)).href;
}

export function loadPipConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): PipConfig {
  const values = new Map<string, string>();
  const files: string[] = [];
  for (const f of pipConfigFiles(env)) {
    let text: string;
    try {
      text = readFileSync(f, "utf8");
    } catch {
      continue;
    }
    files.push(f);
    const ini = parseIni(text);
    for (const sec of ["global", "install"]) for (const [k, v] of ini.get(sec) ?? []) values.set(k, v);
  }
  for (const [k, v] of Object.entries(env)) {
    if (!k.startsWith("PIP_") || v === undefined || k === "PIP_CONFIG_FILE") continue;
    values.set(k.slice(4).toLowerCase().replace(/_/g, "-"), v);
  }
  return {
    indexUrl: toUrl(values.get("index-url") ?? PYPI_SIMPLE, cwd),
    extraIndexUrls: splitList(values.get("extra-index-url")).map((u) => toUrl(u, cwd)),
    findLinks: splitList(values.get("find-links")).map((u) => toUrl(u, cwd)),
    noIndex: truthy(values.get("no-index")),
    constraints: splitList(values.get("constraint")).map((c) => path.resolve(cwd, c)),
    trustedHosts: splitList(values.get("trusted-host")),
    pre: truthy(values.get("pre")),
    files,
  };
}
