// Test data: deterministic bytes that zstd cannot squeeze.

import { createHash } from "node:crypto";

/** `n` bytes from a sha256 chain seeded by `seed`: the same every run, and incompressible. */
export function randomish(seed: string, n: number): Buffer {
  const out = Buffer.alloc(n);
  let block = createHash("sha256").update(seed).digest();
  for (let at = 0; at < n; at += block.length) {
    block.copy(out, at);
    block = createHash("sha256").update(block).digest();
  }
  return out;
}
