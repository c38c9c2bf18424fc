// Does every ELF file of the image find its shared libraries? Resolves each
// DT_NEEDED the way glibc's ld.so does, inside the image: DT_RPATH (when there
// is no DT_RUNPATH), LD_LIBRARY_PATH from the image's Env, DT_RUNPATH, the
// directories of /etc/ld.so.conf (and its includes) that ldconfig caches, then
// the trusted defaults (multiarch dirs, /lib, /usr/lib). $ORIGIN, $LIB and
// $PLATFORM are expanded. The ELF headers of each store tree are read once and
// cached in the store by tree key (trees are immutable).

import path from "node:path";
import type { Store } from "../store/store.ts";
import type { RuntimeImage } from "./image.ts";
import { mapPool } from "../util/pool.ts";
import { readElf, MACHINE_OF_ARCH, type ElfInfo } from "./elf.ts";
import { lookup, resolveInView, type ImageView, type ViewEntry } from "./view.ts";
import type { RecordKind } from "../store/record-kinds.ts";

/** Bump when the scan output changes. */
const SCAN_FORMAT = 1;

interface TreeScan {
  format: number;
  /** Tree path -> ELF info, or an error string for a file that looked like ELF but did not parse. */
  files: Record<string, ElfInfo | { error: string }>;
}

export interface LibProblem {
  /** Image path of the ELF file, with a leading slash. */
  file: string;
  /** The library (or interpreter) it cannot find. */
  missing: string;
  kind: "library" | "interpreter";
  /** The package that installed the file. */
  packageId: string;
  layer: number;
}

/**
 * Libraries an image must not ship but may need: the NVIDIA driver's user-space
 * libraries, which the NVIDIA container toolkit mounts from the host, and the
 * HPC transports (RDMA verbs, MPI, UCX, libfabric, PMIx) that optional
 * communication plugins (nvshmem transports, cuFile RDMA) link to and that are
 * only loaded when such a transport is used. Reported, not failed, unless strict.
 */
export const ALLOWED_MISSING: Array<{ pattern: RegExp; reason: string }> = [
  { pattern: /^lib(cuda|cudadebugger|nvcuvid|nvidia-[a-z0-9-]+|nvoptix)\.so(\.\d+)*$/, reason: "the NVIDIA driver's library; the NVIDIA container toolkit provides it from the host" },
  { pattern: /^lib(mlx[45]|ibverbs|rdmacm|efa|mpi|oshmem|pmix|fabric|ucs|ucp|uct|ucm)\.so(\.\d+)*$/, reason: "an HPC transport (RDMA/MPI/UCX/libfabric/PMIx) used only by optional communication plugins" },
];

export interface LibCheckResult {
  elfFiles: number;
  checkedNeeds: number;
  problems: LibProblem[];
  /** Unresolved but allowed (host driver libraries, optional transports, --allow-missing). */
  allowed: Array<LibProblem & { reason: string }>;
  /** Needs met only because another module of the same Python tree loads the library first (torch's nvidia-* libs). */
  preloaded: Array<{ file: string; library: string; providedBy: string }>;
  unparsable: Array<{ file: string; error: string }>;
  foreignArch: number;
  seconds: number;
  searchDirs: string[];
}

const ELF_SCAN = "elf-scan";
/** A tree's ELF scan stays with its tree. */
export const ELF_SCAN_RECORDS: RecordKind = { kind: ELF_SCAN, keep: (key, _rec, live) => live.trees.has(key) };

// Names that are never ELF, skipped without opening (the bulk of Python trees).
const NOT_ELF = /\.(py|pyc|pyi|h|hpp|hh|cuh|txt|md|rst|json|html|js|css|svg|png|jpg|gif|mo|po|typed|pxd|pyx|cfg|toml|yaml|yml|xml|csv|ttf|gz|xz|zst|pem|crt)$/;

const MULTIARCH: Record<number, string> = { 62: "x86_64-linux-gnu", 183: "aarch64-linux-gnu", 3: "i386-linux-gnu", 21: "powerpc64le-linux-gnu", 22: "s390x-linux-gnu", 243: "riscv64-linux-gnu" };
const PLATFORM: Record<number, string> = { 62: "x86_64", 183: "aarch64", 3: "i686" };

async function scanTree(store: Store, treeKey: string, rootDir: string, files: Array<{ path: string; size?: number }>): Promise<TreeScan> {
  const cached = treeKey ? await store.getRecord<TreeScan>(ELF_SCAN, treeKey) : undefined;
  if (cached?.format === SCAN_FORMAT) return cached;
  const out: TreeScan = { format: SCAN_FORMAT, files: {} };
  await mapPool(files, 16, async (f) => {
    if ((f.size ?? 64) < 52 || NOT_ELF.test(f.path)) return;
    const r = await readElf(path.join(rootDir, f.path));
    if ("elf" in r) out.files[f.path] = r.elf;
    else if ("error" in r) out.files[f.path] = { error: r.error };
  });
  const sorted: TreeScan = { format: SCAN_FORMAT, files: Object.fromEntries(Object.entries(out.files).sort(([a], [b]) => (a < b ? -1 : 1))) };
  if (treeKey) await store.putRecord(ELF_SCAN, treeKey, sorted);
  return sorted;
}

/** Directories listed by /etc/ld.so.conf and what it includes, in order, read from the view. */
export function ldSoConfDirs(view: ImageView, readText: (e: ViewEntry) => string | undefined): string[] {
  const dirs: string[] = [];
  const seen = new Set<string>();
  const visit = (file: string, depth: number) => {
    if (depth > 8 || seen.has(file)) return;
    seen.add(file);
    const e = lookup(view, file);
    const text = e?.type === "file" ? readText(e) : undefined;
    if (text === undefined) return;
    for (let line of text.split("\n")) {
      line = line.replace(/#.*/, "").trim();
      if (!line) continue;
      const inc = /^include\s+(.+)$/.exec(line);
      if (inc) {
        for (const pattern of inc[1]!.split(/\s+/)) {
          const abs = pattern.startsWith("/") ? pattern : `/etc/${pattern}`;
          for (const f of globView(view, abs)) visit(f, depth + 1);
        }
        continue;
      }
      if (/^hwcap\s/.test(line)) continue;
      for (const d of line.split(/[\s:,]+/)) if (d.startsWith("/")) dirs.push(d.replace(/\/+$/, "") || "/");
    }
  };
  visit("/etc/ld.so.conf", 0);
  return dirs;
}

/** Files matching a glob with * and ? in its last component (what ld.so.conf includes use). */
function globView(view: ImageView, pattern: string): string[] {
  const dir = path.posix.dirname(pattern);
  const re = new RegExp(`^${path.posix.basename(pattern).replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`);
  const real = resolveInView(view, dir);
  if (real === undefined) return [];
  const prefix = real === "" ? "" : `${real}/`;
  const out: string[] = [];
  for (const p of view.entries.keys()) {
    if (!p.startsWith(prefix) || p.slice(prefix.length).includes("/")) continue;
    if (re.test(p.slice(prefix.length))) out.push(`/${p}`);
  }
  return out.sort();
}

const pythonTreeOf = (p: string): string | undefined => {
  const m = /^(.*?\/(?:site|dist)-packages)\//.exec(p);
  return m?.[1];
};

export async function checkLibraries(
  store: Store,
  image: RuntimeImage,
  view: ImageView,
  opts: { architecture?: string; env?: string[]; readText: (e: ViewEntry) => string | undefined; strict?: boolean; allowMissing?: string[] },
): Promise<LibCheckResult> {
  const t0 = performance.now();
  // 1. Scan every tree the view uses, once (cached by tree key).
  // Whole trees, not just what the view shows of them, so the cached scan is complete.
  const byTree = new Map<string, { rootDir: string; files: Array<{ path: string; size?: number }> }>();
  for (const l of image.layers) {
    for (const { tree } of l.trees) {
      if (byTree.has(tree.key)) continue;
      byTree.set(tree.key, { rootDir: tree.rootDir, files: tree.manifest.entries.filter((e) => e.type === "file").map((e) => ({ path: e.path, size: e.size })) });
    }
  }
  const scans = new Map<string, TreeScan>();
  await mapPool([...byTree], 2, async ([key, t]) => { scans.set(key, await scanTree(store, key, t.rootDir, t.files)); });
  const infoOf = (e: ViewEntry): ElfInfo | { error: string } | undefined => (e.host ? scans.get(e.treeKey)?.files[e.treePath!] : undefined);

  // 2. The image's search configuration.
  const machine = MACHINE_OF_ARCH[opts.architecture ?? "amd64"] ?? 62;
  const triplet = MULTIARCH[machine];
  const lib64 = [62, 183, 21, 22, 243].includes(machine);
  const defaults = [
    ...(triplet ? [`/lib/${triplet}`, `/usr/lib/${triplet}`] : []),
    ...(lib64 ? ["/lib64", "/usr/lib64"] : []),
    "/lib",
    "/usr/lib",
  ];
  const confDirs = ldSoConfDirs(view, opts.readText);
  const ldLibraryPath = (opts.env ?? []).find((kv) => kv.startsWith("LD_LIBRARY_PATH="))?.slice(16).split(":").filter(Boolean) ?? [];
  const systemDirs = [...new Set([...confDirs, ...defaults])];
  const expand = (dir: string, origin: string) =>
    dir
      .replace(/\$(\{ORIGIN\}|ORIGIN)/g, origin)
      .replace(/\$(\{LIB\}|LIB)/g, triplet ? `lib/${triplet}` : "lib")
      .replace(/\$(\{PLATFORM\}|PLATFORM)/g, PLATFORM[machine] ?? "");

  // Python trees: which libraries (by file name or soname) they hold, for the preload rule.
  const providers = new Map<string, string[]>();
  for (const e of view.entries.values()) {
    if (e.type !== "file") continue;
    const info = infoOf(e);
    if (!info || "error" in info || info.type !== 3 || !pythonTreeOf(e.path)) continue;
    for (const name of new Set([path.posix.basename(e.path), info.soname].filter(Boolean) as string[])) {
      const list = providers.get(name) ?? [];
      list.push(e.path);
      providers.set(name, list);
    }
  }

  const allow = [
    ...(opts.strict ? [] : ALLOWED_MISSING),
    ...(opts.allowMissing ?? []).map((g) => ({ pattern: new RegExp(`^${g.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`), reason: "allowed with --allow-missing" })),
  ];
  const found = new Map<string, boolean>();
  const findIn = (dir: string, name: string, cls: number): boolean => {
    const key = `${dir}\0${name}\0${cls}`;
    let hit = found.get(key);
    if (hit === undefined) {
      const e = lookup(view, `${dir}/${name}`);
      const info = e?.type === "file" ? infoOf(e) : undefined;
      hit = !!info && !("error" in info) && info.class === cls && info.machine === machine;
      found.set(key, hit);
    }
    return hit;
  };

  const result: LibCheckResult = { elfFiles: 0, checkedNeeds: 0, problems: [], allowed: [], preloaded: [], unparsable: [], foreignArch: 0, seconds: 0, searchDirs: [...ldLibraryPath, ...systemDirs] };
  for (const p of view.sorted) {
    const e = view.entries.get(p)!;
    if (e.type !== "file") continue;
    const info = infoOf(e);
    if (!info) continue;
    if (p.startsWith("usr/lib/debug/")) continue; // detached debug symbols are never loaded
    if ("error" in info) {
      result.unparsable.push({ file: `/${p}`, error: info.error });
      continue;
    }
    if (info.type !== 2 && info.type !== 3) continue;
    if (info.machine !== machine) { result.foreignArch++; continue; }
    result.elfFiles++;
    const here = { file: `/${p}`, packageId: e.packageId, layer: e.layer };
    if (info.interp && lookup(view, info.interp)?.type !== "file") {
      result.problems.push({ ...here, missing: info.interp, kind: "interpreter" });
    }
    if (info.needed.length === 0) continue;
    const origin = `/${path.posix.dirname(p)}`;
    const dirs = [
      ...(info.runpath ? [] : info.rpath ?? []).map((d) => expand(d, origin)),
      ...ldLibraryPath,
      ...(info.runpath ?? []).map((d) => expand(d, origin)),
      ...systemDirs,
    ];
    for (const name of info.needed) {
      result.checkedNeeds++;
      if (name.includes("/")) {
        const abs = name.startsWith("/") ? name : `${origin}/${name}`;
        if (lookup(view, abs)?.type !== "file") result.problems.push({ ...here, missing: name, kind: "library" });
        continue;
      }
      if (dirs.some((d) => findIn(d, name, info.class))) continue;
      // Python extension modules are loaded by a running interpreter, after
      // their package has loaded its bundled libraries (torch preloads the
      // nvidia-* wheels' libs); a library in the same site-packages counts.
      const site = pythonTreeOf(p);
      const provider = site ? providers.get(name)?.find((q) => q.startsWith(`${site}/`)) : undefined;
      if (provider) {
        result.preloaded.push({ file: `/${p}`, library: name, providedBy: `/${provider}` });
        continue;
      }
      const allowed = allow.find((a) => a.pattern.test(name));
      if (allowed) result.allowed.push({ ...here, missing: name, kind: "library", reason: allowed.reason });
      else result.problems.push({ ...here, missing: name, kind: "library" });
    }
  }
  result.seconds = (performance.now() - t0) / 1000;
  return result;
}
