// Step: install. Every package becomes an immutable tree in the store (fetched and
// verified by its source kind), keyed from the lock alone; a tree whose key is in
// the store is taken as it is. Generated trees (dpkg status, users, ld.so.cache)
// are computed from the whole installed set last.

import type { ImageDefinition } from "../config/schema.ts";
import type { InstallContext, LockedPackage, SourceKind } from "../sources/types.ts";
import type { Store, StoredTree } from "../store/store.ts";
import { formatBytes, type Logger } from "../util/log.ts";
import { mapPool } from "../util/pool.ts";
import { generatedKeyOf, treeKeyOf } from "./keys.ts";
import type { Resolution } from "./resolve.ts";

/** One kind's generated tree. */
export interface Generator { id: string; key: string; kind: SourceKind; mine: LockedPackage[] }

export const isGenerated = (id: string) => id.startsWith("generated:");

export class Installer {
  readonly trees = new Map<string, StoredTree>();
  readonly treeKeys = new Map<string, string>();
  /** Packages whose trees were installed in this run (not reused). */
  readonly installed: string[] = [];
  readonly generators: Generator[] = [];

  constructor(
    private readonly store: Store,
    private readonly res: Resolution,
    private readonly kinds: SourceKind[],
    private readonly log: Logger,
  ) {}

  readonly treeOf = (id: string): StoredTree => this.trees.get(id)!;

  private kindOf(p: LockedPackage): SourceKind {
    return this.kinds.find((k) => k.kind === p.kind)!;
  }

  private ctxFor(kind: SourceKind): InstallContext {
    return { ...this.res.contextFor(kind), treeOf: (id) => this.trees.get(id) };
  }

  /** Tree keys of the packages and of the generated trees, from the lock alone (so a shared cache can be asked first). */
  async computeKeys(ids: readonly string[], image: ImageDefinition): Promise<void> {
    for (const id of ids) {
      const pkg = this.res.packages.get(id)!;
      const kind = this.kindOf(pkg);
      this.treeKeys.set(id, await treeKeyOf(kind, pkg, this.res.optionsFor(kind), this.ctxFor(kind)));
    }
    for (const kind of this.kinds) {
      if (!kind.generate) continue;
      const mine = ids.map((id) => this.res.packages.get(id)!).filter((p) => p.kind === kind.kind);
      if (mine.length === 0 && this.res.optionsFor(kind) === undefined) continue;
      const id = `generated:${kind.kind}`;
      const key = generatedKeyOf(kind, id, mine, this.res.optionsFor(kind), image);
      this.generators.push({ id, key, kind, mine });
      this.treeKeys.set(id, key);
    }
  }

  /** Install one package (again, with `force`: its tree failed verification). */
  async install(id: string, force = false): Promise<void> {
    const pkg = this.res.packages.get(id)!;
    const kind = this.kindOf(pkg);
    const key = this.treeKeys.get(id)!;
    if (force) await this.store.dropTree(key);
    const { tree, built } = await this.store.ensureTree(key, id, (w) => kind.install(pkg, w, this.res.optionsFor(kind), this.ctxFor(kind)), kind.treeOptions);
    if (built) {
      this.installed.push(id);
      this.log.info(`install ${id} ${pkg.version}: ${tree.manifest.entries.length} entries, ${formatBytes(tree.manifest.size)}`);
    }
    this.trees.set(id, tree);
  }

  /** Install packages, `concurrency` at once, calling `done` after each. */
  async installAll(ids: readonly string[], concurrency: number, done: (id: string) => void): Promise<void> {
    await mapPool(ids, concurrency, async (id) => {
      await this.install(id);
      done(id);
    });
  }

  /** The generated trees; false when they hold nothing at all. */
  async generate(): Promise<boolean> {
    for (const g of this.generators) {
      const { tree } = await this.store.ensureTree(g.key, g.id, (w) => g.kind.generate!(g.mine, w, this.res.optionsFor(g.kind), this.ctxFor(g.kind)), { symlinks: "image" });
      this.trees.set(g.id, tree);
    }
    return this.generators.some((g) => this.trees.get(g.id)!.manifest.entries.length > 0);
  }
}
