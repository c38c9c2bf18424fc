// How long gc keeps a kind of store record. Each module that writes a kind declares
// it beside the code that writes it; src/catalog/gc.ts holds the table of them all.

/** What the builds gc keeps reach (hex digests and keys). */
export interface Reachable {
  blobs: Set<string>;
  trees: Set<string>;
  layerKeys: Set<string>;
  manifests: Set<string>;
  /** sha256 of every kept package's artifact, kept or not (records about it stay). */
  artifacts: Set<string>;
}

export interface RecordKind<T = unknown> {
  /** The store directory of the records (one JSON file per key). */
  kind: string;
  /** Whether gc keeps the record `key` (`record` is undefined when it cannot be read). */
  keep(key: string, record: T | undefined, live: Reachable): boolean;
  /** An index or metadata cache: kept until `gc --indexes`, whatever the builds reach. */
  index?: boolean;
}
