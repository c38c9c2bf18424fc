// Byte-level builders for crafted archives: ustar/pax tar members with any
// name, type, size field or link target; ar archives (.deb containers); zips
// written by Python's zipfile and then patched. Nothing here validates: the
// point is to produce what a hostile packager could.

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";

export interface TarMember {
  name: string | Buffer;
  /** '0' file, '1' hardlink, '2' symlink, '3' char dev, '4' block dev, '5' dir, '6' fifo, 'x' pax. */
  type?: string;
  body?: Buffer | string;
  linkname?: string | Buffer;
  mode?: number;
  /** Override the size field (octal text or raw 12 bytes), e.g. to claim more than the body. */
  sizeField?: string | Buffer;
}

function put(h: Buffer, off: number, len: number, v: string | Buffer): void {
  const b = typeof v === "string" ? Buffer.from(v, "latin1") : v;
  b.copy(h, off, 0, Math.min(len, b.length));
}
const octal = (n: number, len: number) => n.toString(8).padStart(len - 1, "0") + "\0";

export function tarHeader(m: TarMember, size: number): Buffer {
  const h = Buffer.alloc(512);
  put(h, 0, 100, m.name);
  put(h, 100, 8, octal(m.mode ?? 0o644, 8));
  put(h, 108, 8, octal(0, 8));
  put(h, 116, 8, octal(0, 8));
  put(h, 124, 12, m.sizeField ?? octal(size, 12));
  put(h, 136, 12, octal(0, 12));
  h.fill(0x20, 148, 156);
  put(h, 156, 1, m.type ?? "0");
  if (m.linkname) put(h, 157, 100, m.linkname);
  put(h, 257, 6, "ustar\0");
  put(h, 263, 2, "00");
  let sum = 0;
  for (const b of h) sum += b;
  put(h, 148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return h;
}

/** A pax extended header member carrying the given records (raw bytes allowed). */
export function paxMember(records: Record<string, string | Buffer>): TarMember {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(records)) {
    const rest = Buffer.concat([Buffer.from(` ${k}=`), typeof v === "string" ? Buffer.from(v) : v, Buffer.from("\n")]);
    let len = rest.length + 1;
    while (String(len).length + rest.length !== len) len = String(len).length + rest.length;
    parts.push(Buffer.concat([Buffer.from(String(len)), rest]));
  }
  return { name: "PaxHeader", type: "x", body: Buffer.concat(parts) };
}

export function tar(members: TarMember[], { end = true } = {}): Buffer {
  const out: Buffer[] = [];
  for (const m of members) {
    const body = typeof m.body === "string" ? Buffer.from(m.body) : (m.body ?? Buffer.alloc(0));
    out.push(tarHeader(m, body.length), body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  if (end) out.push(Buffer.alloc(1024));
  return Buffer.concat(out);
}

export function ar(members: { name: string; body: Buffer; sizeField?: string }[]): Buffer {
  const out: Buffer[] = [Buffer.from("!<arch>\n")];
  for (const m of members) {
    const h = Buffer.alloc(60, 0x20);
    put(h, 0, 16, m.name);
    put(h, 16, 12, "0");
    put(h, 28, 6, "0");
    put(h, 34, 6, "0");
    put(h, 40, 8, "100644");
    put(h, 48, 10, m.sizeField ?? String(m.body.length));
    put(h, 58, 2, "`\n");
    out.push(h, m.body);
    if (m.body.length % 2) out.push(Buffer.from("\n"));
  }
  return Buffer.concat(out);
}

/** A .deb: debian-binary, control.tar.gz (a valid control file), data.tar.gz from the given members. */
export function deb(data: TarMember[], name = "evil"): Buffer {
  const control = `Package: ${name}\nVersion: 1.0\nArchitecture: amd64\nMaintainer: x <x@example.org>\nDescription: crafted\n`;
  return ar([
    { name: "debian-binary", body: Buffer.from("2.0\n") },
    { name: "control.tar.gz", body: gzipSync(tar([{ name: "./control", body: control }])) },
    { name: "data.tar.gz", body: gzipSync(tar(data)) },
  ]);
}

export interface ZipMember {
  name: string;
  /** Text, or { zeros: N } for N zero bytes (bombs). */
  data: string | { zeros: number };
  /** Unix mode including the file type bits (e.g. 0o120777 for a symlink). */
  mode?: number;
}

/**
 * Write a zip with Python's zipfile (deflate), optionally lying about each member's
 * uncompressed size in both the local header and the central directory.
 */
export function zip(file: string, members: ZipMember[], opts: { claimSize?: number } = {}): void {
  const script = `
import json, sys, zipfile, struct
spec = json.loads(sys.argv[2])
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for m in spec["members"]:
        zi = zipfile.ZipInfo(m["name"], (1980, 1, 1, 0, 0, 0))
        zi.compress_type = zipfile.ZIP_DEFLATED
        if m.get("mode") is not None:
            zi.external_attr = m["mode"] << 16
            zi.create_system = 3
        d = m["data"]
        z.writestr(zi, b"\\0" * d["zeros"] if isinstance(d, dict) else d.encode())
claim = spec.get("claim")
if claim is not None:
    b = bytearray(open(sys.argv[1], "rb").read())
    i = 0
    while True:
        i = b.find(b"PK\\x01\\x02", i)
        if i < 0: break
        struct.pack_into("<I", b, i + 24, claim)
        lh = struct.unpack_from("<I", b, i + 42)[0]
        struct.pack_into("<I", b, lh + 22, claim)
        i += 4
    open(sys.argv[1], "wb").write(b)
`;
  execFileSync("python3", ["-c", script, file, JSON.stringify({ members, claim: opts.claimSize })]);
}

/** RECORD text for a wheel: sha256 (urlsafe base64, unpadded) and size of each member. */
export function wheelRecord(members: { name: string; bytes: Buffer }[], recordName: string): string {
  const lines = members.map((m) => `${m.name},sha256=${createHash("sha256").update(m.bytes).digest("base64url")},${m.bytes.length}`);
  return [...lines, `${recordName},,`, ""].join("\n");
}
