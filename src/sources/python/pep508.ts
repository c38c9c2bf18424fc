// PEP 508 requirements and environment markers, evaluated against the image's
// target environment (never the host's Python).

import * as pep440 from "@renovatebot/pep440";
import { ConfigError } from "../../errors.ts";

/** PEP 503 normalised project name. */
export const normalizeName = (name: string): string => name.toLowerCase().replace(/[-_.]+/g, "-");

export type MarkerValue = { var: string } | { str: string };
export type Marker =
  | { op: "and" | "or"; left: Marker; right: Marker }
  | { op: "cmp"; lhs: MarkerValue; cmp: string; rhs: MarkerValue };

export interface Requirement {
  /** Name as written. */
  name: string;
  /** Normalised name. */
  key: string;
  extras: string[];
  /** PEP 440 specifier set, "" for any version. */
  specifier: string;
  url?: string;
  marker?: Marker;
  /** The original text, for messages. */
  text: string;
}

/** The target interpreter and platform markers are evaluated against. */
export type MarkerEnv = Record<string, string>;

export function targetMarkerEnv(t: { version: string; fullVersion?: string; arch: string; implementation?: string }): MarkerEnv {
  const impl = (t.implementation ?? "cp") === "pp" ? { name: "pypy", py: "PyPy" } : { name: "cpython", py: "CPython" };
  const full = t.fullVersion ?? `${t.version}.0`;
  return {
    python_version: t.version,
    python_full_version: full,
    implementation_version: full,
    implementation_name: impl.name,
    platform_python_implementation: impl.py,
    os_name: "posix",
    sys_platform: "linux",
    platform_system: "Linux",
    platform_machine: t.arch,
    platform_release: "",
    platform_version: "",
  };
}

const MARKER_VARS = new Set([
  "python_version", "python_full_version", "os_name", "sys_platform", "platform_release", "platform_system",
  "platform_version", "platform_machine", "platform_python_implementation", "implementation_name",
  "implementation_version", "extra", "os.name", "sys.platform", "platform.version", "platform.machine",
  "platform.python_implementation", "python_implementation",
]);

class Parser {
  pos = 0;
  constructor(readonly s: string, readonly what: string) {}
  ws(): void {
    while (this.pos < this.s.length && /\s/.test(this.s[this.pos]!)) this.pos++;
  }
  peek(re: RegExp): RegExpExecArray | null {
    this.ws();
    re.lastIndex = this.pos;
    const m = re.exec(this.s);
    return m && m.index === this.pos ? m : null;
  }
  take(re: RegExp): string | null {
    const m = this.peek(re);
    if (!m) return null;
    this.pos += m[0].length;
    return m[0];
  }
  expect(re: RegExp, what: string): string {
    const t = this.take(re);
    if (t === null) this.fail(`expected ${what}`);
    return t!;
  }
  fail(msg: string): never {
    throw new ConfigError(`${this.what}: cannot parse requirement ${JSON.stringify(this.s)}: ${msg} at column ${this.pos + 1}`);
  }
  done(): boolean {
    this.ws();
    return this.pos >= this.s.length;
  }
}

const NAME = /[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?/y;
const VERSION_CMP = /(~=|===|==|!=|<=|>=|<|>)/y;
const VERSION = /[A-Za-z0-9_.*+!-]+/y;
const STRING = /'[^']*'|"[^"]*"/y;
const MARKER_OP = /(~=|===|==|!=|<=|>=|<|>|not\s+in\b|in\b)/y;

export function parseRequirement(text: string, what = "requirement"): Requirement {
  const p = new Parser(text.trim(), what);
  const name = p.take(NAME);
  if (!name) p.fail("expected a project name");
  const extras: string[] = [];
  if (p.take(/\[/y)) {
    while (!p.take(/\]/y)) {
      extras.push(normalizeName(p.expect(NAME, "an extra name")));
      p.take(/,/y);
    }
  }
  let specifier = "";
  let url: string | undefined;
  if (p.take(/@/y)) {
    url = p.expect(/\S+/y, "a URL");
    // A URL ends at whitespace; a marker must follow after " ;".
  } else {
    const paren = p.take(/\(/y);
    const parts: string[] = [];
    while (p.peek(VERSION_CMP)) {
      const op = p.take(VERSION_CMP)!;
      const v = p.expect(VERSION, "a version");
      parts.push(op + v);
      if (!p.take(/,/y)) break;
    }
    if (paren) p.expect(/\)/y, '")"');
    specifier = parts.join(",");
    if (specifier && !pep440.validRange(specifier.replace(/===/g, "=="))) p.fail(`invalid version specifier ${JSON.stringify(specifier)}`);
  }
  let marker: Marker | undefined;
  if (p.take(/;/y)) marker = parseMarkerExpr(p);
  if (!p.done()) p.fail("unexpected text");
  return { name: name!, key: normalizeName(name!), extras: [...new Set(extras)].sort(), specifier, url, marker, text: text.trim() };
}

export function parseMarker(text: string, what = "marker"): Marker {
  const p = new Parser(text, what);
  const m = parseMarkerExpr(p);
  if (!p.done()) p.fail("unexpected text in marker");
  return m;
}

function parseMarkerExpr(p: Parser): Marker {
  let left = parseMarkerAnd(p);
  while (p.take(/or\b/y)) left = { op: "or", left, right: parseMarkerAnd(p) };
  return left;
}
function parseMarkerAnd(p: Parser): Marker {
  let left = parseMarkerAtom(p);
  while (p.take(/and\b/y)) left = { op: "and", left, right: parseMarkerAtom(p) };
  return left;
}
function parseMarkerAtom(p: Parser): Marker {
  if (p.take(/\(/y)) {
    const m = parseMarkerExpr(p);
    p.expect(/\)/y, '")"');
    return m;
  }
  const lhs = parseMarkerValue(p);
  const cmp = p.expect(MARKER_OP, "a marker operator").replace(/\s+/g, " ");
  const rhs = parseMarkerValue(p);
  return { op: "cmp", lhs, cmp, rhs };
}
function parseMarkerValue(p: Parser): MarkerValue {
  const s = p.take(STRING);
  if (s) return { str: s.slice(1, -1) };
  const v = p.take(/[a-z_.]+/y);
  if (!v || !MARKER_VARS.has(v)) p.fail(`unknown marker variable ${JSON.stringify(v ?? "")}`);
  return { var: v! };
}

const ALIASES: Record<string, string> = {
  "os.name": "os_name", "sys.platform": "sys_platform", "platform.version": "platform_version",
  "platform.machine": "platform_machine", "platform.python_implementation": "platform_python_implementation",
  python_implementation: "platform_python_implementation",
};

/** Evaluate a marker. `extras` are the extras being asked for ("" when none). */
export function evaluateMarker(m: Marker, env: MarkerEnv, extras: string[] = []): boolean {
  if (m.op !== "cmp") {
    return m.op === "and"
      ? evaluateMarker(m.left, env, extras) && evaluateMarker(m.right, env, extras)
      : evaluateMarker(m.left, env, extras) || evaluateMarker(m.right, env, extras);
  }
  const isExtra = (v: MarkerValue) => "var" in v && v.var === "extra";
  if (isExtra(m.lhs) || isExtra(m.rhs)) {
    const other = isExtra(m.lhs) ? m.rhs : m.lhs;
    const want = "str" in other ? normalizeName(other.str) : "";
    const has = extras.includes(want);
    if (m.cmp === "==") return has;
    if (m.cmp === "!=") return !has;
    return false;
  }
  const val = (v: MarkerValue) => ("str" in v ? v.str : env[ALIASES[v.var] ?? v.var] ?? "");
  const l = val(m.lhs);
  const r = val(m.rhs);
  switch (m.cmp) {
    case "in": return r.includes(l);
    case "not in": return !r.includes(l);
  }
  const versionVar = (v: MarkerValue) => "var" in v && /version/.test(ALIASES[v.var] ?? v.var);
  if ((versionVar(m.lhs) || versionVar(m.rhs)) && pep440.valid(l) && (m.cmp === "===" || pep440.validRange(`${m.cmp}${r}`))) {
    if (m.cmp === "===") return l === r;
    return pep440.satisfies(l, `${m.cmp}${r}`, { prereleases: true });
  }
  switch (m.cmp) {
    case "==": case "===": return l === r;
    case "!=": return l !== r;
    case "<": return l < r;
    case "<=": return l <= r;
    case ">": return l > r;
    case ">=": return l >= r;
  }
  return false;
}

