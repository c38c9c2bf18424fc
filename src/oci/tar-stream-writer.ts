// A tar of named blobs, for the archive outputs (oci-archive, docker-archive).
// Reuses the layer tar's header code; contents stream from their sources.

import type { Readable } from "node:stream";
import { entryHeaders } from "../layer/tar-writer.ts";

export interface ArchiveMember {
  path: string;
  size: number;
  open: () => Promise<Readable> | Readable;
}

export async function* archiveTar(members: ArchiveMember[], mtime = 0): AsyncGenerator<Buffer> {
  const dirs = new Set<string>();
  for (const m of members) {
    const parts = m.path.split("/");
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join("/");
      if (dirs.has(d)) continue;
      dirs.add(d);
      for (const h of entryHeaders({ path: d, type: "dir", mode: 0o755, uid: 0, gid: 0 }, mtime)) yield h;
    }
    for (const h of entryHeaders({ path: m.path, type: "file", mode: 0o644, uid: 0, gid: 0, size: m.size }, mtime)) yield h;
    let n = 0;
    for await (const chunk of await m.open()) {
      n += (chunk as Buffer).length;
      yield chunk as Buffer;
    }
    if (n !== m.size) throw new Error(`archive member ${m.path}: expected ${m.size} bytes, got ${n}`);
    const pad = (512 - (m.size % 512)) % 512;
    if (pad) yield Buffer.alloc(pad, 0);
  }
  yield Buffer.alloc(1024, 0);
}
