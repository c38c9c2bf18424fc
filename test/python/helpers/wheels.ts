// Builds real wheels (zip + WHEEL + METADATA + RECORD with sha256) and serves
// them from a PEP 503 / PEP 691 index on loopback, with Range support.
import { createHash } from "node:crypto";
import http from "node:http";
import { mkdir, writeFile, readFile } from "node:fs/promises";
import path from "node:path";
import type { AddressInfo } from "node:net";
import { makeZip, type Member } from "./zip.ts";

export interface WheelSpec {
  name: string;
  version: string;
  tag?: string; // default py3-none-any
  requires?: string[];
  extras?: string[];
  files?: Record<string, string>; // path in wheel -> content
  entryPoints?: Record<string, string>; // console_scripts
  requiresPython?: string;
  /** Corrupt RECORD for this file. */
  badRecordFor?: string;
}

const b64 = (d: Buffer | string) => createHash("sha256").update(d).digest("base64url");

export function wheelFileName(w: WheelSpec): string {
  return `${w.name.replace(/-/g, "_")}-${w.version}-${w.tag ?? "py3-none-any"}.whl`;
}

export function buildWheel(w: WheelSpec): Buffer {
  const dist = `${w.name.replace(/-/g, "_")}-${w.version}.dist-info`;
  const meta = [
    "Metadata-Version: 2.1",
    `Name: ${w.name}`,
    `Version: ${w.version}`,
    ...(w.requiresPython ? [`Requires-Python: ${w.requiresPython}`] : []),
    ...(w.extras ?? []).map((e) => `Provides-Extra: ${e}`),
    ...(w.requires ?? []).map((r) => `Requires-Dist: ${r}`),
    "",
    "A test package.",
  ].join("\n");
  const files: Record<string, string> = {
    ...(w.files ?? { [`${w.name.replace(/-/g, "_")}/__init__.py`]: `__version__ = "${w.version}"\n` }),
    [`${dist}/METADATA`]: meta,
    [`${dist}/WHEEL`]: `Wheel-Version: 1.0\nGenerator: layerfold-test\nRoot-Is-Purelib: true\nTag: ${w.tag ?? "py3-none-any"}\n`,
  };
  if (w.entryPoints) files[`${dist}/entry_points.txt`] = `[console_scripts]\n${Object.entries(w.entryPoints).map(([k, v]) => `${k} = ${v}`).join("\n")}\n`;
  const record = Object.entries(files).map(([p, c]) => `${p},sha256=${p === w.badRecordFor ? b64("tampered") : b64(c)},${Buffer.byteLength(c)}`);
  record.push(`${dist}/RECORD,,`);
  const members: Member[] = Object.entries(files).map(([name, data]) => ({ name, data, mode: name.includes(".data/scripts/") ? 0o100755 : 0o100644 }));
  members.push({ name: `${dist}/RECORD`, data: record.join("\n") + "\n" });
  return makeZip(members);
}

export interface IndexServer {
  url: string;
  /** Requests seen: "METHOD path range?" */
  log: string[];
  close(): Promise<void>;
}

/** Write wheels to dir/files and serve /simple/<name>/ as HTML or JSON (by Accept, or ?format=json under /json/). */
export async function serveIndex(dir: string, wheels: WheelSpec[], opts: { ranges?: boolean; /** Every request must carry this Basic credential (else 401). */ basicAuth?: { user: string; password: string } } = {}): Promise<IndexServer> {
  await mkdir(path.join(dir, "files"), { recursive: true });
  const byProject = new Map<string, { file: string; sha: string; requiresPython?: string }[]>();
  for (const w of wheels) {
    const data = buildWheel(w);
    const file = wheelFileName(w);
    await writeFile(path.join(dir, "files", file), data);
    const key = w.name.toLowerCase().replace(/[-_.]+/g, "-");
    byProject.set(key, [...(byProject.get(key) ?? []), { file, sha: createHash("sha256").update(data).digest("hex"), requiresPython: w.requiresPython }]);
  }
  const log: string[] = [];
  const server = http.createServer(async (req, res) => {
    const u = new URL(req.url!, "http://x");
    log.push(`${req.method} ${u.pathname}${req.headers.range ? ` ${req.headers.range}` : ""}${req.headers.authorization ? ` auth=${req.headers.authorization}` : ""}`);
    if (opts.basicAuth && req.headers.authorization !== `Basic ${Buffer.from(`${opts.basicAuth.user}:${opts.basicAuth.password}`).toString("base64")}`) {
      res.writeHead(401, { "www-authenticate": 'Basic realm="index"' }).end("unauthorized");
      return;
    }
    const m = /^\/(simple|json)\/([^/]+)\/$/.exec(u.pathname);
    if (m) {
      const files = byProject.get(m[2]!);
      if (!files) { res.writeHead(404).end("not found"); return; }
      const json = m[1] === "json" || String(req.headers.accept ?? "").startsWith("application/vnd.pypi.simple.v1+json");
      if (json) {
        res.writeHead(200, { "content-type": "application/vnd.pypi.simple.v1+json" });
        res.end(JSON.stringify({ meta: { "api-version": "1.1" }, name: m[2], files: files.map((f) => ({ filename: f.file, url: `../../files/${f.file}`, hashes: { sha256: f.sha }, "requires-python": f.requiresPython })) }));
      } else {
        res.writeHead(200, { "content-type": "text/html" });
        res.end(`<!DOCTYPE html><html><body>\n${files.map((f) => `<a href="../../files/${f.file}#sha256=${f.sha}"${f.requiresPython ? ` data-requires-python="${f.requiresPython.replace(/</g, "&lt;").replace(/>/g, "&gt;")}"` : ""}>${f.file}</a>`).join("\n")}\n</body></html>`);
      }
      return;
    }
    const f = /^\/files\/([^/]+)$/.exec(u.pathname);
    if (f) {
      let data: Buffer;
      try { data = await readFile(path.join(dir, "files", f[1]!)); } catch { res.writeHead(404).end(); return; }
      const range = /^bytes=(\d*)-(\d*)$/.exec(String(req.headers.range ?? ""));
      if (range && opts.ranges !== false) {
        let start: number, end: number;
        if (range[1] === "") { start = Math.max(0, data.length - Number(range[2])); end = data.length - 1; }
        else { start = Number(range[1]); end = range[2] ? Math.min(Number(range[2]), data.length - 1) : data.length - 1; }
        res.writeHead(206, { "content-range": `bytes ${start}-${end}/${data.length}`, "content-length": end - start + 1 });
        res.end(data.subarray(start, end + 1));
        return;
      }
      res.writeHead(200, { "content-length": data.length });
      res.end(data);
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, log, close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}

/** A loopback port with nothing listening (connections are refused). */
export async function refusedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
