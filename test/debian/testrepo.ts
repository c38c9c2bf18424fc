// A real signed apt repository for tests: packages built with dpkg-deb,
// Packages and Release written here, signed with a throwaway gpg key made in
// a temp GNUPGHOME, served over loopback HTTP.

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import { chmod, mkdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { createReadStream } from "node:fs";
import path from "node:path";
import { gzipSync } from "node:zlib";
import type { AddressInfo } from "node:net";

export interface TestPackage {
  name: string;
  version: string;
  arch?: string;
  fields?: Record<string, string>;
  /** Image path -> content; a value { link } makes a symlink. */
  files?: Record<string, string | { link: string } | { mode: number; text: string }>;
  /** Control members besides control: postinst, conffiles, ... */
  control?: Record<string, string>;
  compression?: "xz" | "gzip" | "zstd" | "none";
}

export function hasTools(): string | undefined {
  for (const t of ["dpkg-deb", "gpg", "gpgv"]) {
    try { execFileSync("sh", ["-c", `command -v ${t}`], { stdio: "ignore" }); } catch { return `${t} is not installed`; }
  }
  return undefined;
}

export const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

export async function buildDeb(work: string, pkg: TestPackage): Promise<string> {
  const root = path.join(work, `build-${pkg.name}-${pkg.version}`);
  await rm(root, { recursive: true, force: true });
  await mkdir(path.join(root, "DEBIAN"), { recursive: true });
  const arch = pkg.arch ?? "amd64";
  const control = [`Package: ${pkg.name}`, `Version: ${pkg.version}`, `Architecture: ${arch}`, "Maintainer: Test <test@example.org>", ...Object.entries(pkg.fields ?? {}).map(([k, v]) => `${k}: ${v}`), `Description: test package ${pkg.name}`, " Built by the layerfold tests."].join("\n") + "\n";
  await writeFile(path.join(root, "DEBIAN", "control"), control);
  for (const [name, text] of Object.entries(pkg.control ?? {})) {
    const p = path.join(root, "DEBIAN", name);
    await writeFile(p, text);
    if (["postinst", "preinst", "prerm", "postrm"].includes(name)) await chmod(p, 0o755);
  }
  for (const [p, content] of Object.entries(pkg.files ?? {})) {
    const dest = path.join(root, p);
    await mkdir(path.dirname(dest), { recursive: true });
    if (typeof content === "string") await writeFile(dest, content);
    else if ("link" in content) await symlink(content.link, dest);
    else { await writeFile(dest, content.text); await chmod(dest, content.mode); }
  }
  const out = path.join(work, `${pkg.name}_${pkg.version}_${arch}.deb`);
  execFileSync("dpkg-deb", [`-Z${pkg.compression ?? "xz"}`, "--root-owner-group", "--build", root, out], { stdio: "ignore" });
  return out;
}

export class TestRepo {
  server?: Server;
  url = "";
  gnupg: string;
  keyring: string;
  otherKeyring: string;
  constructor(readonly dir: string) {
    this.gnupg = path.join(dir, "gnupg");
    this.keyring = path.join(dir, "trusted.gpg");
    this.otherKeyring = path.join(dir, "other.gpg");
  }

  private gpg(args: string[], input?: string): Buffer {
    return execFileSync("gpg", ["--homedir", this.gnupg, "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "", ...args], { input, stdio: ["pipe", "pipe", "ignore"] });
  }

  /** Two keys: "repo" signs, "other" is a stranger's key. */
  async makeKeys(): Promise<void> {
    await mkdir(this.gnupg, { recursive: true, mode: 0o700 });
    this.gpg(["--quick-gen-key", "layerfold test repo <repo@example.org>", "ed25519", "sign", "never"]);
    this.gpg(["--quick-gen-key", "someone else <other@example.org>", "ed25519", "sign", "never"]);
    await writeFile(this.keyring, this.gpg(["--export", "repo@example.org"]));
    await writeFile(this.otherKeyring, this.gpg(["--export", "other@example.org"]));
  }

  /** The signing key, ASCII-armored (for .asc keyrings and inline Signed-By). */
  armoredKey(): string {
    return this.gpg(["--armor", "--export", "repo@example.org"]).toString();
  }

  /** Write pool, Packages(.gz), Release, InRelease and Release.gpg for suite/main/amd64. */
  async publish(suite: string, debs: string[], opts: { signer?: string; tamperAfterSigning?: boolean; validUntil?: string } = {}): Promise<void> {
    const dists = path.join(this.dir, "www", "dists", suite);
    const bin = path.join(dists, "main", "binary-amd64");
    await mkdir(bin, { recursive: true });
    const stanzas: string[] = [];
    for (const deb of debs) {
      const base = path.basename(deb);
      const pool = `pool/main/${base[0]}/${base}`;
      const dest = path.join(this.dir, "www", pool);
      await mkdir(path.dirname(dest), { recursive: true });
      const data = await readFile(deb);
      await writeFile(dest, data);
      const control = execFileSync("dpkg-deb", ["--field", deb]).toString().trimEnd();
      stanzas.push(`${control}\nFilename: ${pool}\nSize: ${data.length}\nSHA256: ${sha256(data)}\n`);
    }
    const packages = Buffer.from(stanzas.join("\n"));
    const gz = gzipSync(packages);
    await writeFile(path.join(bin, "Packages"), packages);
    await writeFile(path.join(bin, "Packages.gz"), gz);
    const files: [string, Buffer][] = [["main/binary-amd64/Packages", packages], ["main/binary-amd64/Packages.gz", gz]];
    const release = [
      "Origin: layerfold-test", `Suite: ${suite}`, `Codename: ${suite}`, "Architectures: amd64", "Components: main",
      "Date: Sat, 01 Jan 2022 00:00:00 UTC",
      ...(opts.validUntil ? [`Valid-Until: ${opts.validUntil}`] : []),
      "SHA256:", ...files.map(([n, d]) => ` ${sha256(d)} ${String(d.length).padStart(8)} ${n}`),
    ].join("\n") + "\n";
    await writeFile(path.join(dists, "Release"), release);
    const signer = opts.signer ?? "repo@example.org";
    let inRelease = this.gpg(["--local-user", signer, "--clearsign", "--digest-algo", "SHA256"], release).toString();
    if (opts.tamperAfterSigning) inRelease = inRelease.replace(/Suite: .*/, "Suite: evil");
    await writeFile(path.join(dists, "InRelease"), inRelease);
    await writeFile(path.join(dists, "Release.gpg"), this.gpg(["--local-user", signer, "--detach-sign", "--armor"], release));
  }

  async serve(): Promise<string> {
    const www = path.join(this.dir, "www");
    this.server = createServer(async (req, res) => {
      const p = path.join(www, decodeURIComponent(new URL(req.url!, "http://x").pathname));
      if (!p.startsWith(www)) { res.statusCode = 403; res.end(); return; }
      try {
        const st = await stat(p);
        if (!st.isFile()) throw new Error("dir");
        res.setHeader("content-length", st.size);
        createReadStream(p).pipe(res);
      } catch {
        res.statusCode = 404;
        res.end();
      }
    });
    await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/`;
    return this.url;
  }

  async close(): Promise<void> {
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
