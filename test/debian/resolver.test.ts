import { test } from "node:test";
import assert from "node:assert/strict";
import { ResolveError } from "../../src/errors.ts";
import { resolve, type Candidate } from "../../src/sources/debian/resolver.ts";

let n = 0;
const pkg = (name: string, version: string, f: Partial<Candidate> = {}): Candidate => ({
  name, version, arch: "amd64", filename: `pool/${name}_${version}.deb`, sha256: (n++).toString(16).padStart(64, "0"), size: 1, repo: 0, ...f,
});
const names = (out: ReturnType<typeof resolve>) => [...out.selected.values()].map((r) => `${r.pkg.name}=${r.pkg.version}`);

test("highest version, version relations, Pre-Depends and deps edges", () => {
  const out = resolve({
    arch: "amd64",
    candidates: [pkg("app", "1.0", { depends: "libx (>= 2.0), liby", preDepends: "libz" }), pkg("libx", "1.5"), pkg("libx", "2.1"), pkg("libx", "2.0"), pkg("liby", "1"), pkg("libz", "1")],
    layers: [{ packages: ["app"] }],
  });
  assert.deepEqual(names(out), ["app=1.0", "libx=2.1", "liby=1", "libz=1"]);
  assert.deepEqual(out.selected.get("app")!.deps, ["libx", "liby", "libz"]);
  assert.deepEqual(out.roots, [["app"]]);
});

test("an upper bound picks an older version; a pin and the lock are honoured", () => {
  const cands = [pkg("app", "1.0", { depends: "libx (<< 2)" }), pkg("libx", "1.5"), pkg("libx", "2.1"), pkg("libx", "1.9")];
  assert.deepEqual(names(resolve({ arch: "amd64", candidates: cands, layers: [{ packages: ["app"] }] })), ["app=1.0", "libx=1.9"]);
  assert.deepEqual(names(resolve({ arch: "amd64", candidates: cands, layers: [{ packages: ["libx=1.5", "app"] }] })), ["app=1.0", "libx=1.5"]);
  const locked = resolve({ arch: "amd64", candidates: cands, layers: [{ packages: ["app"] }], prefer: new Map([["libx", "1.5"]]) });
  assert.deepEqual(names(locked), ["app=1.0", "libx=1.5"]);
});

test("alternatives: an already-selected one wins, else the first that exists, else a preferred name", () => {
  const cands = [pkg("app", "1", { depends: "mawk | gawk" }), pkg("mawk", "1"), pkg("gawk", "1"), pkg("tool", "1", { depends: "usrmerge | usr-is-merged" }), pkg("usrmerge", "1"), pkg("usr-is-merged", "1")];
  assert.deepEqual(names(resolve({ arch: "amd64", candidates: cands, layers: [{ packages: ["app"] }] })), ["app=1", "mawk=1"]);
  assert.deepEqual(names(resolve({ arch: "amd64", candidates: cands, layers: [{ packages: ["gawk"] }, { packages: ["app"] }] })), ["app=1", "gawk=1"]);
  assert.deepEqual(names(resolve({ arch: "amd64", candidates: cands, layers: [{ packages: ["tool"] }], preferAlternatives: ["usr-is-merged"] })), ["tool=1", "usr-is-merged=1"]);
  assert.deepEqual(names(resolve({ arch: "amd64", candidates: [pkg("app", "1", { depends: "nothere | mawk" }), pkg("mawk", "1")], layers: [{ packages: ["app"] }] })), ["app=1", "mawk=1"]);
});

test("virtual packages: versioned provides, and deterministic provider choice", () => {
  const cands = [
    pkg("app", "1", { depends: "awk, python3-api (>= 3.11)" }),
    pkg("zawk", "1", { provides: "awk", priority: "optional" }),
    pkg("mawk", "1", { provides: "awk", priority: "required" }),
    pkg("aawk", "1", { provides: "awk", priority: "optional" }),
    pkg("py-old", "1", { provides: "python3-api (= 3.9)" }),
    pkg("py-new", "1", { provides: "python3-api (= 3.11)" }),
    pkg("py-unversioned", "1", { provides: "python3-api" }),
  ];
  const out = resolve({ arch: "amd64", candidates: cands, layers: [{ packages: ["app"] }] });
  assert.deepEqual(names(out), ["app=1", "mawk=1", "py-new=1"]); // Priority required first; only the versioned provide fits
  const locked = resolve({ arch: "amd64", candidates: cands, layers: [{ packages: ["app"] }], prefer: new Map([["zawk", "1"]]) });
  assert.ok(names(locked).includes("zawk=1"));
});

test("architecture qualifiers and foreign architectures", () => {
  const cands = [pkg("app", "1", { depends: "python3:any, tool:amd64" }), pkg("python3", "3.11", { multiArch: "allowed" }), pkg("tool", "1"), pkg("armlib", "1", { arch: "arm64" })];
  assert.deepEqual(names(resolve({ arch: "amd64", candidates: cands, layers: [{ packages: ["app"] }] })), ["app=1", "python3=3.11", "tool=1"]);
  assert.throws(() => resolve({ arch: "amd64", candidates: [pkg("app", "1", { depends: "tool:any" }), pkg("tool", "1")], layers: [{ packages: ["app"] }] }), /not Multi-Arch/);
  assert.throws(() => resolve({ arch: "amd64", candidates: cands, layers: [{ packages: ["armlib"] }] }), /no package of that name/);
});

test("Essential and priority sets; layers keep their roots", () => {
  const cands = [pkg("bash", "5", { essential: true, priority: "required" }), pkg("dpkg", "1", { essential: true, priority: "required", depends: "libc6" }), pkg("libc6", "2.36", { priority: "optional" }), pkg("apt", "2", { priority: "important" }), pkg("vim", "9", { priority: "optional" })];
  const out = resolve({ arch: "amd64", candidates: cands, layers: [{ packages: [], essential: true }, { packages: ["vim"] }] });
  assert.deepEqual(out.roots, [["bash", "dpkg"], ["vim"]]);
  assert.deepEqual(names(out), ["bash=5", "dpkg=1", "libc6=2.36", "vim=9"]);
  const imp = resolve({ arch: "amd64", candidates: cands, layers: [{ packages: [], priority: "important" }] });
  assert.deepEqual(imp.roots[0], ["apt", "bash", "dpkg"]);
});

test("unsatisfiable: the message names the chain and what is available", () => {
  const cands = [pkg("app", "1", { depends: "mid" }), pkg("mid", "1", { depends: "leaf (>= 3) | other" }), pkg("leaf", "1"), pkg("leaf", "2")];
  assert.throws(
    () => resolve({ arch: "amd64", candidates: cands, layers: [{ packages: ["app"] }], layerNames: ["base"] }),
    (e: Error) => e instanceof ResolveError && /cannot satisfy leaf \(>= 3\) \| other/.test(e.message) && /layer base → app; app → mid/.test(e.message) && /available versions 2, 1/.test(e.message) && /other: no package of that name/.test(e.message),
  );
  assert.throws(() => resolve({ arch: "amd64", candidates: cands, layers: [{ packages: ["nope"] }] }), ResolveError);
  assert.throws(() => resolve({ arch: "amd64", candidates: cands, layers: [{ packages: ["Bad Spec!"] }] }), /not valid/);
});

test("an already selected version that does not fit is an error, not a second version", () => {
  const cands = [pkg("a", "1", { depends: "lib (>= 2)" }), pkg("b", "1", { depends: "lib (<< 2)" }), pkg("lib", "1"), pkg("lib", "2")];
  assert.throws(() => resolve({ arch: "amd64", candidates: cands, layers: [{ packages: ["a", "b"] }] }), /lib 2 is already selected and does not fit/);
});

test("Conflicts and Breaks are reported; an alternative that conflicts is avoided", () => {
  const cands = [pkg("a", "1", { conflicts: "b" }), pkg("b", "1"), pkg("c", "1", { breaks: "a (<< 2)" })];
  assert.throws(() => resolve({ arch: "amd64", candidates: cands, layers: [{ packages: ["a", "b"] }] }), /a 1 Conflicts: b, but b 1 is selected/);
  assert.throws(() => resolve({ arch: "amd64", candidates: cands, layers: [{ packages: ["a", "c"] }] }), /c 1 Breaks: a \(<< 2\)/);
  const avoid = [pkg("x", "1", { conflicts: "mta-one" }), pkg("app", "1", { depends: "mta-one | mta-two" }), pkg("mta-one", "1"), pkg("mta-two", "1")];
  assert.deepEqual(names(resolve({ arch: "amd64", candidates: avoid, layers: [{ packages: ["x", "app"] }] })), ["app=1", "mta-two=1", "x=1"]);
  // A package may conflict with what it provides itself.
  const self = [pkg("mta", "1", { provides: "mail-transport-agent", conflicts: "mail-transport-agent" })];
  assert.deepEqual(names(resolve({ arch: "amd64", candidates: self, layers: [{ packages: ["mta"] }] })), ["mta=1"]);
});

test("same inputs, same answer; earlier repositories win equal versions", () => {
  const a = pkg("lib", "1", { repo: 0 });
  const b = pkg("lib", "1", { repo: 1 });
  const out = resolve({ arch: "amd64", candidates: [b, a, pkg("app", "1", { depends: "lib" })], layers: [{ packages: ["app"] }] });
  assert.equal(out.selected.get("lib")!.pkg.repo, 0);
  const again = resolve({ arch: "amd64", candidates: [b, a, pkg("app", "1", { depends: "lib" })], layers: [{ packages: ["app"] }] });
  assert.deepEqual(names(again), names(out));
});
