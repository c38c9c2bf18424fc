// pip requirement files: requirements, comments, line continuations, -r/-c
// includes (relative to the including file), and the index options pip
// accepts inside them.

import { readFileSync } from "node:fs";
import path from "node:path";
import { ConfigError } from "../../errors.ts";
import { parseRequirement, normalizeName, type Requirement } from "./pep508.ts";

export interface RequirementSet {
  requirements: Requirement[];
  constraints: Requirement[];
  indexUrl?: string;
  extraIndexUrls: string[];
  findLinks: string[];
  noIndex: boolean;
  pre: boolean;
}

export const emptySet = (): RequirementSet => ({ requirements: [], constraints: [], extraIndexUrls: [], findLinks: [], noIndex: false, pre: false });

/** A bare VCS or archive URL line ("git+https://host/org/repo@rev#egg=name"): name from #egg= or the repository. */
function urlRequirement(line: string, what: string): Requirement {
  const egg = /[#&]egg=([A-Za-z0-9._-]+)/.exec(line)?.[1];
  const base = line.replace(/#.*$/, "").replace(/@[^/@]*$/, "");
  const name = egg ?? base.split("/").filter(Boolean).pop()?.replace(/\.git$/, "");
  if (!name) throw new ConfigError(`${what}: cannot tell the project name of ${JSON.stringify(line)}; write it as "name @ ${line}"`);
  return { name, key: normalizeName(name), extras: [], specifier: "", url: line, text: line };
}

/**
 * `file` is where the text comes from: relative -r/-c/-f paths are read from its directory,
 * and errors name `file:LINE`, unless `lineName` names a line otherwise (requirements written
 * in the config have no file: `layer "app" python[2]`).
 */
export function parseRequirementsText(text: string, file: string, into: RequirementSet = emptySet(), seen = new Set<string>(), asConstraints = false, lineName?: (line: number) => string): RequirementSet {
  const dir = path.dirname(file);
  const logical = text.replace(/\\\r?\n/g, " ").split(/\r?\n/);
  logical.forEach((raw, i) => {
    const what = lineName ? lineName(i + 1) : `${file}:${i + 1}`;
    const line = raw.replace(/(^|\s)#.*$/, "").trim();
    if (!line) return;
    const opt = /^(-r|--requirement|-c|--constraint|-i|--index-url|--extra-index-url|-f|--find-links)(?:\s*=\s*|\s+)(\S+)$/.exec(line);
    if (opt) {
      const [, flag, value] = opt as unknown as [string, string, string];
      if (flag === "-r" || flag === "--requirement") readRequirementsFile(path.resolve(dir, value), into, seen, asConstraints);
      else if (flag === "-c" || flag === "--constraint") readRequirementsFile(path.resolve(dir, value), into, seen, true);
      else if (flag === "-i" || flag === "--index-url") into.indexUrl = value;
      else if (flag === "--extra-index-url") into.extraIndexUrls.push(value);
      else into.findLinks.push(/^[a-z+]+:\/\//.test(value) ? value : path.resolve(dir, value));
      return;
    }
    if (line === "--pre") { into.pre = true; return; }
    if (line === "--no-index") { into.noIndex = true; return; }
    if (/^(-e|--editable)\b/.test(line)) throw new ConfigError(`${what}: editable requirements (-e) cannot go into an image; use "name @ url" or a git+ URL instead`);
    if (/^--?[a-z]/.test(line) && !/\s/.test(line.replace(/^--hash=\S+/, ""))) return; // per-line flags such as --only-binary=:all: do not change what is resolved
    const body = line.replace(/\s--hash=\S+/g, "");
    const req = /^[a-z][a-z0-9+.-]*:\/\//i.test(body) ? urlRequirement(body, what) : parseRequirement(body, what);
    (asConstraints ? into.constraints : into.requirements).push(req);
  });
  return into;
}

export function readRequirementsFile(file: string, into: RequirementSet = emptySet(), seen = new Set<string>(), asConstraints = false): RequirementSet {
  if (seen.has(file)) return into;
  seen.add(file);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(`requirements file ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); check the path in the config`);
  }
  return parseRequirementsText(text, file, into, seen, asConstraints);
}
