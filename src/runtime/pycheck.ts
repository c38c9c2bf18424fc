// Import every installed Python distribution's top-level modules with the
// image's own interpreter, inside the sandbox, and report each failure with
// its error. One interpreter process imports them all; if it dies (a segfault
// in an extension, a hard exit) the module it was importing is reported and a
// fresh process continues with the rest.

import path from "node:path";
import { RuntimeError } from "../errors.ts";
import type { Store } from "../store/store.ts";
import type { RuntimeImage } from "./image.ts";
import { runImage } from "./run.ts";
import { lookup, type ImageView, type ViewEntry } from "./view.ts";
import { evaluateMarker, normalizeName, parseRequirement, targetMarkerEnv, type MarkerEnv } from "../sources/python/pep508.ts";
import { satisfies } from "../sources/python/resolver.ts";

export interface Distribution {
  /** e.g. "torch-2.14.1" from torch-2.14.1.dist-info */
  name: string;
  /** Image path of the .dist-info / .egg-info directory. */
  infoDir: string;
  siteDir: string;
  modules: string[];
}

export interface ImportFailure {
  module: string;
  distributions: string[];
  error: string;
  /** Last lines of the traceback. */
  detail?: string;
}

export interface PyCheckResult {
  distributions: number;
  modules: number;
  imported: number;
  failures: ImportFailure[];
  notes: string[];
  seconds: number;
  /** interpreter -> modules it imported */
  interpreters: Record<string, number>;
}

const SITE_DIR = /(^|\/)(site-packages|dist-packages|lib\/python\d+(\.\d+)?)$/;
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Top-level importable names from top_level.txt, or else from RECORD's paths. */
export function topLevelModules(topLevel: string | undefined, record: string | undefined): string[] {
  const names = new Set<string>();
  if (topLevel !== undefined) {
    for (const line of topLevel.split("\n")) {
      const n = line.trim().replace(/\//g, ".");
      if (n && n.split(".").every((p) => IDENT.test(p))) names.add(n);
    }
    return [...names].sort();
  }
  for (const line of (record ?? "").split("\n")) {
    let file = line.trim();
    if (!file) continue;
    // RECORD is CSV; a quoted path may hold commas.
    if (file.startsWith('"')) file = file.slice(1, file.indexOf('"', 1));
    else file = file.split(",")[0]!;
    if (file.startsWith("../") || file.startsWith("/")) continue;
    const parts = file.split("/");
    const first = parts[0]!;
    if (/\.(dist-info|data|egg-info)$/.test(first) || first === "__pycache__") continue;
    if (parts.length > 1) {
      if (IDENT.test(first)) names.add(first);
      continue;
    }
    // A top-level module file: foo.py, foo.cpython-311-x86_64-linux-gnu.so, foo.abi3.so, foo.so
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(\.[A-Za-z0-9_-]+)*\.(py|so|pyd)$/.exec(first);
    if (m) names.add(m[1]!);
  }
  return [...names].sort();
}

/** First path components listed in a RECORD (top-level files and directories). */
function recordTopNames(record: string | undefined): Set<string> {
  const names = new Set<string>();
  for (const line of (record ?? "").split("\n")) {
    const file = (line.startsWith('"') ? line.slice(1, line.indexOf('"', 1)) : line.split(",")[0]!) ?? "";
    if (file && !file.startsWith("../") && !file.startsWith("/")) names.add(file.split("/")[0]!);
  }
  return names;
}

export function findDistributions(view: ImageView, readText: (e: ViewEntry) => string | undefined): Distribution[] {
  const out: Distribution[] = [];
  for (const p of view.sorted) {
    const e = view.entries.get(p)!;
    if (e.type !== "dir" || !/\.(dist-info|egg-info)$/.test(p)) continue;
    // Only distributions installed into a site directory; vendored copies
    // (setuptools/_vendor/*.dist-info) belong to their vendoring package.
    if (!SITE_DIR.test(path.posix.dirname(p))) continue;
    const file = (n: string) => {
      const f = view.entries.get(`${p}/${n}`);
      return f?.type === "file" ? readText(f) : undefined;
    };
    const site = path.posix.dirname(p);
    // top_level.txt can name things that are no top-level module here (pynacl lists its
    // extension "_sodium", which lives in nacl/): keep the names the site dir really has.
    const listed = [...recordTopNames(file("RECORD"))];
    const present = (m: string) =>
      view.entries.has(`${site}/${m}`) || view.entries.has(`${site}/${m}.py`) || listed.some((f) => f === m || f.startsWith(`${m}.`));
    const modules = topLevelModules(file("top_level.txt"), file("RECORD")).filter(present);
    out.push({ name: path.posix.basename(p).replace(/\.(dist-info|egg-info)$/, ""), infoDir: `/${p}`, siteDir: `/${path.posix.dirname(p)}`, modules });
  }
  return out;
}

/** The interpreter that owns a site directory: its prefix's python, else python3 on the image's PATH. */
export function interpreterFor(view: ImageView, siteDir: string, env: string[]): string | undefined {
  const candidates: string[] = [];
  const m = /^(.*)\/lib\/python(\d+(?:\.\d+)?)(?:\/(?:site|dist)-packages)?$/.exec(siteDir);
  if (m) {
    const [, prefix, ver] = m;
    if (ver!.includes(".")) candidates.push(`${prefix}/bin/python${ver}`);
    candidates.push(`${prefix}/bin/python3`, `${prefix}/bin/python`);
  }
  const pathDirs = (env.find((kv) => kv.startsWith("PATH="))?.slice(5) ?? "/usr/local/bin:/usr/bin:/bin").split(":");
  for (const d of pathDirs) candidates.push(`${d}/python3`, `${d}/python`);
  return candidates.find((c) => lookup(view, c)?.type === "file");
}

// Runs inside the image, with nothing beyond what python3-minimal ships (no
// json): requests and results are lines, strings hex-encoded. Results go to a
// private copy of stdout; the modules' own prints go to stderr.
const IMPORT_SCRIPT = String.raw`
import sys, os, importlib, traceback
out = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr
h = lambda s: s.encode("utf-8", "replace").hex()
paths, modules = [], []
for line in sys.stdin.read().splitlines():
    kind, _, value = line.partition(" ")
    (paths if kind == "P" else modules).append(bytes.fromhex(value).decode())
missing = [p for p in paths if p not in sys.path]
for p in missing:
    sys.path.append(p)
    out.write("missing " + h(p) + "\n")
for m in modules:
    out.write("start " + h(m) + "\n"); out.flush()
    try:
        importlib.import_module(m)
        out.write("ok " + h(m) + "\n")
    except BaseException as e:
        tb = traceback.format_exception(type(e), e, e.__traceback__)
        out.write("fail " + h(m) + " " + h((type(e).__name__ + ": " + str(e))[:2000]) + " " + h("".join(tb[-4:])[-3000:]) + "\n")
    out.flush()
out.write("done\n"); out.flush()
os._exit(0)
`;

const hex = (s: string) => Buffer.from(s, "utf8").toString("hex");
const unhex = (s: string | undefined) => Buffer.from(s ?? "", "hex").toString("utf8");

async function importAll(store: Store, image: RuntimeImage, python: string, modules: string[], paths: string[], timeoutSec: number) {
  const results = new Map<string, { error?: string; detail?: string }>();
  const notes: string[] = [];
  let todo = modules;
  while (todo.length) {
    const started = await runImage(store, image, {
      entrypoint: python,
      cmd: ["-c", IMPORT_SCRIPT],
      env: ["PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"],
      workdir: "/",
      user: "0:0",
      stdio: "pipe",
      // Import-time code of hundreds of packages: no network at all.
      network: "none",
    });
    started.stdin!.end([...paths.map((p) => `P ${hex(p)}`), ...todo.map((m) => `M ${hex(m)}`)].join("\n") + "\n");
    let stderr = "";
    started.stderr!.on("data", (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
    let buf = "";
    let current: string | undefined;
    let done = false;
    started.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const [kind, a, b, c] = line.split(" ");
        if (kind === "missing") notes.push(`${unhex(a)} is not on ${python}'s sys.path; added for the check`);
        else if (kind === "start") current = unhex(a);
        else if (kind === "ok") { results.set(unhex(a), {}); current = undefined; }
        else if (kind === "fail") { results.set(unhex(a), { error: unhex(b), detail: unhex(c) }); current = undefined; }
        else if (kind === "done") done = true;
      }
    });
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; started.kill(); }, timeoutSec * 1000);
    let status: number;
    try {
      status = await started.done;
    } finally {
      clearTimeout(timer);
    }
    if (done) break;
    if (current === undefined) {
      throw new RuntimeError(`${python} in ${image.ref} exited ${status} before importing anything:\n${stderr.trim().split("\n").slice(-8).join("\n")}`);
    }
    const why = timedOut ? `timed out after ${timeoutSec}s` : `the interpreter died (exit ${status}${status > 128 ? `, signal ${status - 128}` : ""})`;
    results.set(current, { error: `${why} while importing it`, detail: stderr.trim().split("\n").slice(-6).join("\n") });
    todo = todo.slice(todo.indexOf(current) + 1);
  }
  return { results, notes };
}

export async function checkImports(
  store: Store,
  image: RuntimeImage,
  view: ImageView,
  opts: { readText: (e: ViewEntry) => string | undefined; skip?: string[]; timeoutSec?: number },
): Promise<PyCheckResult> {
  const t0 = performance.now();
  const env = image.config.config?.Env ?? [];
  const dists = findDistributions(view, opts.readText);
  const result: PyCheckResult = { distributions: dists.length, modules: 0, imported: 0, failures: [], notes: [], seconds: 0, interpreters: {} };
  if (dists.length === 0) {
    result.notes.push("no Python distributions (*.dist-info) in the image; nothing to import");
    return result;
  }
  const skip = new Set(opts.skip ?? []);
  // Group by interpreter; remember which distributions name each module.
  const groups = new Map<string, { modules: Map<string, string[]>; paths: Set<string> }>();
  for (const d of dists) {
    if (d.modules.length === 0) { result.notes.push(`${d.infoDir}: no top_level.txt or RECORD names a module; not imported`); continue; }
    const py = interpreterFor(view, d.siteDir, env);
    if (!py) { result.notes.push(`${d.infoDir}: the image has no Python interpreter for ${d.siteDir}; not imported`); continue; }
    let g = groups.get(py);
    if (!g) groups.set(py, (g = { modules: new Map(), paths: new Set() }));
    g.paths.add(d.siteDir);
    for (const m of d.modules) {
      if (skip.has(m)) continue;
      g.modules.set(m, [...(g.modules.get(m) ?? []), d.name]);
    }
  }
  if (skip.size) result.notes.push(`skipped on request: ${[...skip].sort().join(", ")}`);
  for (const [py, g] of groups) {
    const modules = [...g.modules.keys()].sort();
    result.modules += modules.length;
    result.interpreters[py] = modules.length;
    const paths = [...g.paths].sort();
    const { results, notes } = await importAll(store, image, py, modules, paths, opts.timeoutSec ?? 900);
    result.notes.push(...notes);
    for (const m of modules) {
      const r = results.get(m);
      if (!r) continue;
      if (r.error === undefined) { result.imported++; continue; }
      // One process imports everything, so a failure may come from an earlier import
      // (setuptools after distutils): a module that imports alone is a note, not a failure.
      const alone = (await importAll(store, image, py, [m], paths, opts.timeoutSec ?? 900)).results.get(m);
      if (alone && alone.error === undefined) {
        result.imported++;
        result.notes.push(`${m} imports on its own but failed after the other modules (${r.error})`);
        continue;
      }
      result.failures.push({ module: m, distributions: g.modules.get(m)!, error: r.error, ...(r.detail ? { detail: r.detail } : {}) });
    }
  }
  result.seconds = (performance.now() - t0) / 1000;
  return result;
}

// ---------------------------------------------------------------------------
// The dependency audit: what `pip check` checks, read from the installed
// metadata without running anything. Each distribution's Requires-Dist (its
// markers evaluated for the image's interpreter, no extras) must be installed
// in the same environment, at a version its specifier allows. A requirement
// the config drops on purpose (python.drop) is a note with the reason; every
// other gap is a failure, since pip refuses to install on top of it.

export interface RequirementGap {
  /** The distribution that asks, "torch 2.14.1". */
  distribution: string;
  /** Its requirement as written, "cuda-bindings==13.0.3". */
  requirement: string;
  /** The installed version when it is there but does not fit. */
  installed?: string;
  /** Set when the config drops it on purpose; the reason when it gives one. */
  dropped?: { reason?: string };
}

export interface RequirementsAudit {
  distributions: number;
  requirements: number;
  failures: RequirementGap[];
  notes: RequirementGap[];
  seconds: number;
}

interface InstalledDist {
  key: string;
  name: string;
  version: string;
  requires: string[];
  env: MarkerEnv;
  group: string;
}

/** Header values of an email-style metadata file (METADATA, PKG-INFO), up to the body. */
function headers(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let last: string | undefined;
  for (const line of text.split(/\r?\n/)) {
    if (line === "") break;
    if (/^[ \t]/.test(line) && last) {
      const vals = out.get(last)!;
      vals[vals.length - 1] += ` ${line.trim()}`;
      continue;
    }
    const i = line.indexOf(":");
    if (i <= 0) continue;
    last = line.slice(0, i).toLowerCase();
    out.set(last, [...(out.get(last) ?? []), line.slice(i + 1).trim()]);
  }
  return out;
}

/** egg-info's requires.txt: the unconditional lines (before any [extra] or [:marker] section). */
const eggRequires = (text: string | undefined) => (text ?? "").split(/\r?\n/).map((l) => l.trim()).filter((l, i, all) => l && !l.startsWith("#") && !all.slice(0, i + 1).some((x) => x.trim().startsWith("[")));

export function auditRequirements(
  view: ImageView,
  opts: { readText: (e: ViewEntry) => string | undefined; dropped?: Map<string, string | undefined>; architecture?: string; env?: string[] },
): RequirementsAudit {
  const t0 = performance.now();
  const arch = ({ amd64: "x86_64", arm64: "aarch64" } as Record<string, string>)[opts.architecture ?? "amd64"] ?? opts.architecture ?? "x86_64";
  const text = (p: string) => {
    const e = lookup(view, p);
    return e?.type === "file" ? opts.readText(e) : undefined;
  };
  const dists: InstalledDist[] = [];
  for (const d of findDistributions(view, opts.readText)) {
    const egg = d.infoDir.endsWith(".egg-info");
    const meta = text(`${d.infoDir}/${egg ? "PKG-INFO" : "METADATA"}`);
    if (meta === undefined) continue;
    const h = headers(meta);
    const name = h.get("name")?.[0];
    const version = h.get("version")?.[0];
    if (!name || !version) continue;
    const ver = /\/lib\/python(\d+\.\d+)\//.exec(`${d.siteDir}/`)?.[1] ?? "3";
    // A venv records the interpreter's full version in pyvenv.cfg; markers on python_full_version need it.
    const prefix = /^(.*)\/lib\/python\d/.exec(d.siteDir)?.[1];
    const full = prefix ? /^version\s*=\s*(\d+\.\d+\.\d+)/m.exec(text(`${prefix}/pyvenv.cfg`) ?? "")?.[1] : undefined;
    dists.push({
      key: normalizeName(name),
      name,
      version,
      requires: [...(h.get("requires-dist") ?? []), ...(egg ? eggRequires(text(`${d.infoDir}/requires.txt`)) : [])],
      env: targetMarkerEnv({ version: ver, fullVersion: full, arch }),
      group: interpreterFor(view, d.siteDir, opts.env ?? []) ?? d.siteDir,
    });
  }
  const installed = new Map<string, Map<string, InstalledDist>>();
  for (const d of dists) {
    const g = installed.get(d.group) ?? new Map<string, InstalledDist>();
    if (!g.has(d.key)) g.set(d.key, d); // the first on the path wins, as in sys.path order (sorted paths here)
    installed.set(d.group, g);
  }
  const audit: RequirementsAudit = { distributions: dists.length, requirements: 0, failures: [], notes: [], seconds: 0 };
  for (const d of dists) {
    const who = `${d.name} ${d.version}`;
    for (const line of d.requires) {
      let req;
      try {
        req = parseRequirement(line, `${who} metadata`);
      } catch (err) {
        audit.failures.push({ distribution: who, requirement: `${line} (unreadable: ${(err as Error).message})` });
        continue;
      }
      if (req.marker && !evaluateMarker(req.marker, d.env, [])) continue;
      audit.requirements++;
      if (opts.dropped?.has(req.key)) {
        const reason = opts.dropped.get(req.key);
        audit.notes.push({ distribution: who, requirement: req.text, dropped: reason ? { reason } : {} });
        continue;
      }
      const have = installed.get(d.group)!.get(req.key);
      if (!have) audit.failures.push({ distribution: who, requirement: req.text });
      else if (req.specifier && !satisfies(have.version, req.specifier)) audit.failures.push({ distribution: who, requirement: req.text, installed: have.version });
    }
  }
  audit.seconds = (performance.now() - t0) / 1000;
  return audit;
}

/** One line per gap, in pip check's words. */
export function describeGap(g: RequirementGap): string {
  if (g.dropped) return `${g.distribution} requires ${g.requirement}, which the config drops on purpose${g.dropped.reason ? ` (${g.dropped.reason})` : ""}`;
  if (g.installed) return `${g.distribution} requires ${g.requirement}, but ${g.installed} is installed`;
  return `${g.distribution} requires ${g.requirement}, which is not installed`;
}

