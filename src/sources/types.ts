// The contract every source kind implements. The core knows nothing about
// Debian or Python: it asks each kind to resolve its specs across all layers,
// folds the resulting graph, and asks the kind to install each package into a
// tree. A new source kind is one folder under src/sources/ plus one line in
// src/sources/registry.ts.

import type { z } from "zod";
import type { Store, StoredTree } from "../store/store.ts";
import type { TreeWriter, TreeWriterOptions } from "../store/tree.ts";
import type { Logger } from "../util/log.ts";
import type { ImageDefinition } from "../config/schema.ts";

/** Target platform of the image (OCI names: amd64, arm64). */
export interface Platform {
  os: "linux";
  architecture: string;
  variant?: string;
}

/** A resolved package, exactly as written to layerfold.lock. */
export interface LockedPackage {
  /** Unique in the image: "<kind>:<name>", e.g. "deb:libc6", "py:numpy", "file:/entrypoint.sh". */
  id: string;
  kind: string;
  name: string;
  version: string;
  /** The fetched artifact, if any. Found again by file name (and url hint), verified by sha256. */
  artifact?: { file: string; sha256?: string; size?: number; url?: string };
  /** ids of packages this one needs (same kind or another). */
  deps: string[];
  /** Kind-specific data that must be locked (stable JSON, no host paths). */
  meta?: Record<string, unknown>;
}

/** What an SBOM knows of a package (a report's package model has these fields). */
export interface PackageFacts {
  name: string;
  version: string;
  artifact?: LockedPackage["artifact"];
  meta?: Record<string, unknown>;
}

export interface ResolveResult {
  packages: LockedPackage[];
  /** roots[i] = ids this kind contributes as roots of layer i (same length as the layer list). */
  roots: string[][];
}

export interface SourceContext {
  store: Store;
  image: ImageDefinition;
  /** Directory of the config file; relative paths in the config are relative to it. */
  configDir: string;
  platform: Platform;
  log: Logger;
  /** Entries of this kind from the existing lock file (empty when none). */
  locked: LockedPackage[];
  /** --frozen: use only the lock; any needed change is an error. */
  frozen: boolean;
  /** Names whose lock entries must be re-resolved (lock --update NAME...). Empty = keep all locked. */
  update: string[];
  /** Local directory overrides by package name or id (layerfold build --override NAME=DIR). */
  overrides: Record<string, string>;
  /** Deterministic timestamp (SOURCE_DATE_EPOCH) for anything a source generates. */
  sourceDateEpoch: number;
  /**
   * A file inside another source resolved before this kind (e.g. an app's requirements.txt at
   * its pinned commit), by package id or name; undefined when that source has no such file.
   */
  sourceFile?(source: string, file: string, what: string): Promise<Buffer | undefined>;
  /**
   * `lock --check`: instead of failing on something this machine cannot reach (an index, a
   * repository), a kind may report it here and resolve the rest. Unset in builds.
   */
  unresolvable?(id: string, why: string): void;
}

export interface InstallContext extends SourceContext {
  /** Installed trees of packages already installed in this build (for generators). */
  treeOf(id: string): StoredTree | undefined;
}

export interface SourceKind<LayerSpec = unknown, Options = unknown> {
  /** Short kind name, used in package ids ("deb", "py", "file"). */
  kind: string;
  /**
   * Local kinds (files, inline text) are resolved from the working tree on
   * every build and are not written to layerfold.lock.
   */
  local?: boolean;
  /** Its packages can be replaced by a local directory (--override NAME=DIR). */
  acceptsOverrides?: boolean;
  /** Key of this kind's specs in a layer definition, e.g. "debian" in { name, debian: [...] }. */
  layerKey: string;
  layerSchema: z.ZodType<LayerSpec, z.ZodTypeDef, unknown>;
  /** Image-level options under the same key, e.g. image.debian = { sources: [...] }. */
  optionsSchema?: z.ZodType<Options, z.ZodTypeDef, unknown>;
  /**
   * What resolution reads besides the specs and options (requirement files, pip's
   * configuration), as JSON-able data; part of the lock's inputs digest.
   */
  resolveInputs?(specs: (LayerSpec | undefined)[], options: Options | undefined, ctx: SourceContext): unknown;
  /** Resolve specs of all layers at once (one global resolution). specs[i] is undefined for layers without this key. */
  resolve(specs: (LayerSpec | undefined)[], options: Options | undefined, ctx: SourceContext): Promise<ResolveResult>;
  /**
   * Extra inputs that change the installed tree besides the locked package
   * itself (e.g. the Python prefix). Part of the tree's store key.
   */
  installKey?(pkg: LockedPackage, options: Options | undefined, ctx: SourceContext): string | Promise<string>;
  /**
   * Version of this kind's install and generate code. Part of every tree key
   * of the kind, so changing what install or generate writes never reuses
   * trees or layers made by the old code. Bump it with such a change.
   */
  version?: string;
  /** Options for the TreeWriter (symlink policy, size limit). */
  treeOptions?: TreeWriterOptions;
  /**
   * Read one file (a relative path) from a resolved package's content, for other kinds that
   * take their inputs from it; undefined when the package has no such file.
   */
  readFile?(pkg: LockedPackage, file: string, ctx: SourceContext): Promise<Buffer | undefined>;
  /** Fetch (verified) and install one package into a fresh tree. */
  install(pkg: LockedPackage, tree: TreeWriter, options: Options | undefined, ctx: InstallContext): Promise<void>;
  /**
   * Files computed from the whole installed set (dpkg status, ld.so.cache,
   * /etc/passwd). They go into the image's small final "generated" layer so a
   * change in one package layer never forces other package layers to rebuild.
   */
  generate?(installed: LockedPackage[], tree: TreeWriter, options: Options | undefined, ctx: InstallContext): Promise<void>;
  /** Order two versions (negative when a < b; may throw on a version it cannot read): `diff` says upgraded or downgraded by it. */
  compareVersions?(a: string, b: string): number;
  /** A package's purl in an SBOM (default: pkg:generic with its checksum and download URL). */
  purl?(p: PackageFacts): string;
  /**
   * What its packages are in an SBOM: libraries, source checkouts, archives (the default),
   * or "none" for files that are not packages (local files, inline text).
   */
  sbomPurpose?: "library" | "source" | "archive" | "none";
}
