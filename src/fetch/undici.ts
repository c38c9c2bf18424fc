// undici, loaded on the first request. Loading it costs ~150 ms of start-up
// (a CommonJS package of ~110 files, plus node:http/tls/stream/web), which a
// command that makes no request (`--version`, a build whose lock is current)
// should not pay. Types come from `import type`, which costs nothing.

type Undici = typeof import("undici");
let loading: Promise<Undici> | undefined;

export const loadUndici = (): Promise<Undici> => (loading ??= import("undici"));
