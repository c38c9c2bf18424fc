// A streaming reader for Unix ar archives (the container format of .deb
// files): "!<arch>\n", then members with 60-byte headers, each body padded to
// an even length. Handles the GNU "name/" spelling and BSD "#1/len" long names.

import { MalformedArchiveError, UnsafeArchiveError } from "../errors.ts";
import { ByteReader } from "./bytes.ts";

export interface ArMember {
  name: string;
  size: number;
  mode: number;
  /** The member's bytes; drain it (or leave it: the reader skips the rest) before the next member. */
  body: ByteReader;
}

const MAGIC = "!<arch>\n";
const MAX_MEMBER = 2 ** 40;

function num(field: Buffer, base: number, what: string, name: string): number {
  const s = field.toString("latin1").trim();
  if (s === "") return 0;
  if (!(base === 8 ? /^[0-7]+$/ : /^\d+$/).test(s)) throw new MalformedArchiveError(`${what}: ar member header field ${name} is not a number (${JSON.stringify(s)}); the archive is corrupt`);
  return parseInt(s, base);
}

/** Iterate members in order. The archive is read once, streaming. */
export async function* readAr(input: AsyncIterable<Buffer>, what: string): AsyncGenerator<ArMember> {
  const r = new ByteReader(input, what);
  const magic = await r.readExact(8);
  if (!magic || magic.toString("latin1") !== MAGIC) throw new MalformedArchiveError(`${what}: not an ar archive (bad magic); the file is corrupt or not a .deb`);
  for (;;) {
    const h = await r.readExact(60);
    if (!h) return;
    r.entry = undefined;
    if (h[58] !== 0x60 || h[59] !== 0x0a) throw new MalformedArchiveError(`${what}: bad ar member header at byte ${r.offset - 60}; the archive is corrupt`);
    let name = h.subarray(0, 16).toString("latin1").trimEnd();
    let size = num(h.subarray(48, 58), 10, what, "size");
    const mode = num(h.subarray(40, 48), 8, what, "mode");
    if (size > MAX_MEMBER) throw new UnsafeArchiveError(`${what}: ar member ${JSON.stringify(name)} claims ${size} bytes`);
    const start = r.offset;
    const bsd = /^#1\/(\d+)$/.exec(name);
    if (bsd) {
      const n = Number(bsd[1]);
      if (n > 4096 || n > size) throw new MalformedArchiveError(`${what}: ar member has a bad BSD long name length; the archive is corrupt`);
      name = (await r.mustRead(n)).toString("utf8").replace(/\0+$/, "");
      size -= n;
    } else if (name === "/" || name === "//" || name === "/SYM64/") {
      // Symbol or GNU long-name tables: not used by .deb files; skip them.
      await r.skip(size + (size & 1));
      continue;
    } else if (name.endsWith("/")) {
      name = name.slice(0, -1);
    }
    if (name === "" || name.includes("/") || name === "." || name === "..") throw new UnsafeArchiveError(`${what}: ar member has an unsafe name ${JSON.stringify(name)}`);
    r.entry = name;
    yield { name, size, mode, body: r };
    const total = r.offset - start;
    const want = (bsd ? size + Number(bsd[1]) : size);
    if (total < want) await r.skip(want - total);
    if (want & 1) await r.skip(1);
  }
}
