// deb822 control data (Packages, Release, control files, deb822 sources) and
// dependency fields (Depends, Provides, Conflicts...).

import type { Relation } from "./version.ts";
import { ResolveError } from "../../errors.ts";

/** One paragraph. Field names keep their spelling; look them up with field(). */
export type Paragraph = Map<string, string>;

/**
 * Parse deb822 text into paragraphs. Continuation lines keep their newline and
 * lose one leading space (so multi-line fields like SHA256 read back as lines).
 * Comment lines (#) are skipped, as deb822 sources allow.
 */
export function parseDeb822(text: string): Paragraph[] {
  const out: Paragraph[] = [];
  let cur: Paragraph | undefined;
  let last: string | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (line.trim() === "") {
      if (cur && cur.size) out.push(cur);
      cur = undefined;
      last = undefined;
      continue;
    }
    if (line.startsWith("#")) continue;
    if (line.startsWith(" ") || line.startsWith("\t")) {
      if (!cur || last === undefined) throw new ResolveError(`deb822: continuation line without a field: ${JSON.stringify(line.slice(0, 80))}; the file is malformed`);
      cur.set(last, cur.get(last) + "\n" + line.slice(1));
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) throw new ResolveError(`deb822: expected "Field: value", got ${JSON.stringify(line.slice(0, 80))}; the file is malformed`);
    cur ??= new Map();
    last = line.slice(0, colon);
    cur.set(last, line.slice(colon + 1).trim());
  }
  if (cur && cur.size) out.push(cur);
  return out;
}

/** Case-insensitive field lookup (deb822 field names are case-insensitive). */
export function field(p: Paragraph, name: string): string | undefined {
  const v = p.get(name);
  if (v !== undefined) return v;
  const lower = name.toLowerCase();
  for (const [k, val] of p) if (k.toLowerCase() === lower) return val;
  return undefined;
}

/** Serialise a paragraph the way dpkg writes its status file. */
export function formatParagraph(fields: [string, string][]): string {
  return fields.map(([k, v]) => `${k}: ${v.split("\n").join("\n ")}`).join("\n") + "\n";
}

export interface Dependency {
  name: string;
  /** Architecture qualifier: "any", "native" or an architecture name. */
  archQualifier?: string;
  relation?: Relation;
  version?: string;
  /** [amd64 !i386] restriction list, present in source but tolerated here. */
  archRestriction?: string[];
}

/** A Depends-style field: AND of ORs. */
export type DependencyList = Dependency[][];

const REL_RE = /^([a-z0-9][a-z0-9+.-]*)(?::([a-z0-9-]+))?\s*(?:\(\s*(<<|<=|=|>=|>>|<|>)\s*([^)\s]+)\s*\))?\s*(?:\[([^\]]*)\])?\s*(?:<[^>]*>\s*)*$/;

export function parseDependency(text: string): Dependency {
  const t = text.trim();
  const m = REL_RE.exec(t);
  if (!m) throw new ResolveError(`cannot parse dependency ${JSON.stringify(t)}; the package index or control file that has it is malformed`);
  const d: Dependency = { name: m[1]! };
  if (m[2]) d.archQualifier = m[2];
  if (m[3]) {
    // "<" and ">" are obsolete spellings of "<=" and ">=" (Policy 7.1).
    d.relation = m[3] === "<" ? "<=" : m[3] === ">" ? ">=" : (m[3] as Relation);
    d.version = m[4]!;
  }
  if (m[5] !== undefined) d.archRestriction = m[5].trim().split(/\s+/).filter(Boolean);
  return d;
}

export function parseDependencyList(text: string | undefined): DependencyList {
  if (!text || !text.trim()) return [];
  return text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((group) => group.split("|").map(parseDependency));
}

export function formatDependency(d: Dependency): string {
  let s = d.name + (d.archQualifier ? `:${d.archQualifier}` : "");
  if (d.relation) s += ` (${d.relation} ${d.version})`;
  return s;
}

/** Does a [amd64 !i386] restriction list admit this architecture? */
export function archRestrictionAllows(list: string[] | undefined, arch: string): boolean {
  if (!list || list.length === 0) return true;
  const neg = list.filter((a) => a.startsWith("!"));
  if (neg.length === list.length) return !neg.some((a) => a.slice(1) === arch || a.slice(1) === "any");
  return list.some((a) => a === arch || a === "any" || a === `linux-${arch}` || a === `any-${arch}`);
}
