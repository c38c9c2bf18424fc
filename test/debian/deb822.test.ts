import { test } from "node:test";
import assert from "node:assert/strict";
import { archRestrictionAllows, field, parseDeb822, parseDependencyList, formatParagraph } from "../../src/sources/debian/deb822.ts";
import { normalizeSources, parseDeb822Sources, parseOneLineSource, parseRelease } from "../../src/sources/debian/repo.ts";

test("deb822 paragraphs, continuation lines and case-insensitive fields", () => {
  const ps = parseDeb822("Package: a\nDescription: short\n long line\n .\n more\n\n# comment\nPackage: b\r\nversion: 2\n\n\n");
  assert.equal(ps.length, 2);
  assert.equal(field(ps[0]!, "description"), "short\nlong line\n.\nmore");
  assert.equal(field(ps[1]!, "Version"), "2");
  assert.throws(() => parseDeb822(" orphan continuation"), /continuation/);
  assert.throws(() => parseDeb822("no colon here"), /Field: value/);
  assert.equal(formatParagraph([["Package", "a"], ["Description", "x\ny"]]), "Package: a\nDescription: x\n y\n");
});

test("dependency fields: alternatives, versions, arch qualifiers, restrictions", () => {
  const d = parseDependencyList("libc6 (>= 2.34), python3:any (>= 3.11~) | python3-minimal, foo [amd64 !i386], bar (<< 2), baz (> 1)");
  assert.equal(d.length, 5);
  assert.deepEqual(d[0], [{ name: "libc6", relation: ">=", version: "2.34" }]);
  assert.deepEqual(d[1]![0], { name: "python3", archQualifier: "any", relation: ">=", version: "3.11~" });
  assert.equal(d[1]![1]!.name, "python3-minimal");
  assert.deepEqual(d[2]![0]!.archRestriction, ["amd64", "!i386"]);
  assert.equal(d[4]![0]!.relation, ">="); // obsolete ">" means ">="
  assert.throws(() => parseDependencyList("Bad Name"), /cannot parse/);
  assert.ok(archRestrictionAllows(["amd64"], "amd64"));
  assert.ok(!archRestrictionAllows(["!amd64"], "amd64"));
  assert.ok(archRestrictionAllows(["!i386"], "amd64"));
  assert.ok(!archRestrictionAllows(["arm64"], "amd64"));
});

test("sources: one-line, deb822 and objects", () => {
  const one = parseOneLineSource("deb [signed-by=/k.gpg arch=amd64] http://deb.debian.org/debian bookworm main contrib");
  assert.deepEqual(one, { uri: "http://deb.debian.org/debian", suite: "bookworm", components: ["main", "contrib"], signedBy: "/k.gpg", architectures: ["amd64"] });
  const d = parseDeb822Sources("Types: deb deb-src\nURIs: http://a/debian http://b/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n");
  assert.equal(d.length, 4);
  assert.equal(d[3]!.uri, "http://b/debian");
  assert.equal(d[3]!.suite, "bookworm-updates");
  const n = normalizeSources([{ uri: "http://x/debian/", suites: ["s"], components: ["main"] }, "deb http://y/ flat/"], false);
  assert.equal(n[0]!.uri, "http://x/debian");
  assert.deepEqual(n[1]!.components, []);
  assert.throws(() => normalizeSources(["deb http://y/ bookworm"], false), /no components/);
  assert.throws(() => parseOneLineSource("deb-src http://y bookworm main"), /expected/);
});

test("Release: SHA256 list is required", () => {
  const r = parseRelease("Suite: x\nAcquire-By-Hash: yes\nSHA256:\n " + "a".repeat(64) + " 10 main/binary-amd64/Packages.gz\n", "t");
  assert.equal(r.files.get("main/binary-amd64/Packages.gz")!.size, 10);
  assert.ok(r.byHash);
  assert.throws(() => parseRelease("Suite: x\nMD5Sum:\n abc 1 f\n", "t"), /SHA256/);
});
