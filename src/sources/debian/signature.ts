// OpenPGP verification of apt repository metadata with the system's gpgv, the
// same program apt uses. Trust comes from gpgv's machine-readable status
// lines, not its exit code: like apt, one good signature from the keyring is
// enough when others are from keys we do not hold, and any bad one is fatal.
// For InRelease the signed text is taken from gpgv's output, never from the
// file, so nothing outside the signature can be smuggled in.

import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { ConfigError, SignatureError } from "../../errors.ts";

export interface VerifiedText {
  text: string;
  /** Fingerprints of the keys whose signatures verified. */
  signers: string[];
}

/** Binary keyring bytes from a .gpg file, an armored .asc file or an inline armored block. */
export async function loadKeyring(spec: string, baseDir: string, what: string): Promise<Buffer> {
  let data: Buffer;
  if (spec.includes("-----BEGIN PGP PUBLIC KEY BLOCK-----")) {
    data = Buffer.from(spec);
  } else {
    const file = path.resolve(baseDir, spec);
    try {
      data = await readFile(file);
    } catch {
      throw new ConfigError(`${what}: keyring ${file} cannot be read; install it (e.g. apt-get install debian-archive-keyring) or point signedBy at an existing .gpg/.asc file`);
    }
  }
  const s = data.toString("latin1");
  if (s.includes("-----BEGIN PGP PUBLIC KEY BLOCK-----")) return dearmor(s, what);
  return data;
}

/** Decode ASCII armor (RFC 4880 section 6): all blocks concatenated, checksum lines dropped. */
export function dearmor(text: string, what: string): Buffer {
  const out: Buffer[] = [];
  const re = /-----BEGIN PGP PUBLIC KEY BLOCK-----\r?\n([\s\S]*?)-----END PGP PUBLIC KEY BLOCK-----/g;
  for (const m of text.matchAll(re)) {
    const lines = m[1]!.split(/\r?\n/).map((l) => l.trim());
    const blank = lines.indexOf("");
    const body = (blank >= 0 ? lines.slice(blank + 1) : lines).filter((l) => l && !l.startsWith("="));
    out.push(Buffer.from(body.join(""), "base64"));
  }
  if (!out.length) throw new ConfigError(`${what}: the keyring is ASCII-armored but holds no public key block`);
  return Buffer.concat(out);
}

interface GpgvResult { code: number | null; status: string; stdout: Buffer; stderr: string }

function runGpgv(args: string[], what: string): Promise<GpgvResult> {
  return new Promise((resolve, reject) => {
    const child = spawn("gpgv", args, { stdio: ["ignore", "pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let status = "";
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => out.push(d));
    child.stderr!.on("data", (d: Buffer) => { if (stderr.length < 8000) stderr += d.toString(); });
    (child.stdio[3] as NodeJS.ReadableStream).on("data", (d: Buffer) => { status += d.toString(); });
    child.on("error", (err) => reject(new SignatureError(`${what}: cannot run gpgv (${err.message}); install it (apt-get install -y gpgv) or set allowUnsigned for this repository`)));
    child.on("close", (code) => resolve({ code, status, stdout: Buffer.concat(out), stderr }));
  });
}

function judge(r: GpgvResult, what: string): string[] {
  const lines = r.status.split("\n").map((l) => l.replace(/^\[GNUPG:\]\s*/, "").trim()).filter(Boolean);
  const word = (l: string) => l.split(/\s+/)[0];
  const bad = lines.filter((l) => ["BADSIG", "EXPKEYSIG", "REVKEYSIG", "EXPSIG"].includes(word(l)!));
  const valid = lines.filter((l) => word(l) === "VALIDSIG").map((l) => l.split(/\s+/)[1]!);
  const goods = lines.filter((l) => word(l) === "GOODSIG");
  if (bad.length) {
    throw new SignatureError(`${what}: signature check failed (${bad.map((l) => l.split(/\s+/).slice(0, 2).join(" ")).join(", ")}); the file was altered or signed by an expired/revoked key. Do not use this repository until that is explained.`);
  }
  if (!valid.length || !goods.length) {
    const missing = lines.filter((l) => word(l) === "NO_PUBKEY" || word(l) === "ERRSIG").map((l) => l.split(/\s+/)[1]).filter(Boolean);
    const reason = missing.length ? `signed only by keys not in the keyring (${[...new Set(missing)].join(", ")})` : `no valid signature (${r.stderr.trim().split("\n").pop() ?? "gpgv gave no reason"})`;
    throw new SignatureError(`${what}: ${reason}. Point signedBy at the repository's keyring, or set allowUnsigned: true only if you trust the transport.`);
  }
  return [...new Set(valid)].sort();
}

async function withTemp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "layerfold-gpgv-"));
  try { return await fn(dir); } finally { await rm(dir, { recursive: true, force: true }); }
}

/** Verify an InRelease (cleartext-signed) file; returns the signed text only. */
export function verifyClearsigned(data: Buffer, keyring: Buffer, what: string): Promise<VerifiedText> {
  return withTemp(async (dir) => {
    const kr = path.join(dir, "keyring.gpg");
    const input = path.join(dir, "InRelease");
    await writeFile(kr, keyring);
    await writeFile(input, data);
    const r = await runGpgv(["--status-fd", "3", "--keyring", kr, "--output", "-", input], what);
    const signers = judge(r, what);
    return { text: r.stdout.toString("utf8"), signers };
  });
}

/** Verify Release against a detached Release.gpg; returns the Release text. */
export function verifyDetached(data: Buffer, signature: Buffer, keyring: Buffer, what: string): Promise<VerifiedText> {
  return withTemp(async (dir) => {
    const kr = path.join(dir, "keyring.gpg");
    const sig = path.join(dir, "Release.gpg");
    const input = path.join(dir, "Release");
    await writeFile(kr, keyring);
    await writeFile(sig, signature);
    await writeFile(input, data);
    const r = await runGpgv(["--status-fd", "3", "--keyring", kr, sig, input], what);
    return { text: data.toString("utf8"), signers: judge(r, what) };
  });
}
