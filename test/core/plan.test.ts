import assert from "node:assert/strict";
import { test } from "node:test";
import { ImagePlan, LayerPlanner, planLayers, splitLayer } from "../../src/fold/plan.ts";
import { storePlanRecords } from "../../src/pipeline/layers.ts";
import { readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { CorruptStoreError } from "../../src/errors.ts";
import { Store } from "../../src/store/store.ts";
import { tempDir } from "../helpers/cli.ts";
import type { StoredTree } from "../../src/store/store.ts";
import type { TreeEntry } from "../../src/store/tree.ts";

const file = (path: string, sha: string, size = 10): TreeEntry => ({ path, type: "file", mode: 0o644, uid: 0, gid: 0, size, sha256: sha });
const dir = (path: string, mode = 0o755): TreeEntry => ({ path, type: "dir", mode, uid: 0, gid: 0 });
const tree = (key: string, entries: TreeEntry[]): StoredTree => ({
  key,
  rootDir: `/store/${key}`,
  manifest: { version: 1, key, packageId: key, entries, size: entries.reduce((n, e) => n + (e.size ?? 0), 0), entriesDigest: "" },
});

test("identical copies of a path are kept once, in the first layer", () => {
  const trees: Record<string, StoredTree> = {
    a: tree("a", [dir("usr"), file("usr/share/doc/x", "s1")]),
    b: tree("b", [dir("usr"), file("usr/share/doc/x", "s1"), file("usr/bin/b", "s2")]),
  };
  const plan = planLayers([{ name: "one", packages: ["a"] }, { name: "two", packages: ["b"] }], (id) => trees[id]!, {});
  assert.deepEqual(plan[0]!.entries.map((e) => e.entry.path), ["usr", "usr/share/doc/x"]);
  assert.deepEqual(plan[1]!.entries.map((e) => e.entry.path), ["usr", "usr/bin/b"]);
});

test("a directory keeps its first provider's mode in every later layer", () => {
  const trees: Record<string, StoredTree> = { a: tree("a", [dir("tmp", 0o1777)]), b: tree("b", [dir("tmp", 0o755), file("tmp/x", "s")]) };
  const plan = planLayers([{ name: "one", packages: ["a"] }, { name: "two", packages: ["b"] }], (id) => trees[id]!, {});
  assert.equal(plan[1]!.entries.find((e) => e.entry.path === "tmp")!.entry.mode, 0o1777);
});

test("different content is a conflict naming both packages, unless an owner is named (path or dir prefix)", () => {
  const trees: Record<string, StoredTree> = { a: tree("a", [file("lib/cv2/x.so", "s1")]), b: tree("b", [file("lib/cv2/x.so", "s2")]) };
  const layers = [{ name: "one", packages: ["a", "b"] }];
  assert.throws(() => planLayers(layers, (id) => trees[id]!, {}), /\/lib\/cv2\/x\.so is provided by both a and b/);
  const byPath = planLayers(layers, (id) => trees[id]!, { "/lib/cv2/x.so": "b" });
  assert.deepEqual(byPath[0]!.entries.map((e) => e.packageId), ["b"]);
  const byDir = planLayers(layers, (id) => trees[id]!, { "/lib/cv2/": "b" });
  assert.deepEqual(byDir[0]!.entries.map((e) => e.packageId), ["b"]);
});

test("the conflict says what differs: content, type, or only the mode or owner", () => {
  const conflict = (x: TreeEntry, y: TreeEntry) => () => planLayers([{ name: "one", packages: ["a", "b"] }], (id) => ({ a: tree("a", [x]), b: tree("b", [y]) })[id]!, {});
  assert.throws(conflict(file("etc/x", "s1"), file("etc/x", "s2")), /^PathConflictError: \/etc\/x is provided by both a and b with different content\./);
  assert.throws(conflict(file("etc/x", "s1"), { ...file("etc/x", "s1"), mode: 0o755 }), /^PathConflictError: \/etc\/x is provided by both a and b with the same content but different modes \(0644 and 0755\)\./);
  assert.throws(conflict(file("etc/x", "s1"), { ...file("etc/x", "s1"), uid: 1000, gid: 1000 }), /with the same content but different owners \(0:0 and 1000:1000\)/);
  assert.throws(conflict(file("etc/x", "s1"), { path: "etc/x", type: "symlink", target: "y", mode: 0o777, uid: 0, gid: 0 }), /provided by both a and b as a file and a symlink/);
});

test("a file and a directory at one path is a conflict", () => {
  const trees: Record<string, StoredTree> = { a: tree("a", [file("opt/x", "s")]), b: tree("b", [dir("opt/x")]) };
  assert.throws(() => planLayers([{ name: "l", packages: ["a", "b"] }], (id) => trees[id]!, {}), /^PathConflictError: \/opt\/x is a directory in b \(layer l\) and a file in a \(layer l\); remove one of them/);
});

test("oversized layers split deterministically: whole packages first, then one big package by path", () => {
  const trees: Record<string, StoredTree> = {
    p1: tree("p1", [file("a/1", "x", 40)]),
    p2: tree("p2", [file("b/1", "x", 40)]),
    big: tree("big", [file("c/1", "x", 60), file("c/2", "x", 60), file("c/3", "x", 10)]),
  };
  const [layer] = planLayers([{ name: "L", packages: ["big", "p1", "p2"] }], (id) => trees[id]!, {});
  const parts = splitLayer(layer!, 100);
  assert.deepEqual(parts.map((p) => [p.name, p.size]), [["L", 60], ["L.2", 70], ["L.3", 80]]);
  assert.ok(parts.every((p) => p.size <= 100));
  assert.deepEqual(splitLayer(layer!, 100).map((p) => p.entries.map((e) => e.entry.path)), parts.map((p) => p.entries.map((e) => e.entry.path)));
  assert.deepEqual(splitLayer(layer!, 1000).length, 1);
});

test("planning one layer at a time gives the plan of the whole image, and flags a lower layer an owner above takes a path from", () => {
  const trees: Record<string, StoredTree> = {
    a: tree("a", [dir("opt"), file("opt/x", "s1"), file("opt/y", "s3")]),
    b: tree("b", [file("opt/x", "s2"), file("usr/z", "s4")]),
  };
  const layers = [{ name: "one", packages: ["a"] }, { name: "two", packages: ["b"] }];
  const planner = new LayerPlanner((id) => trees[id]!, { "/opt/x": "b" });
  planner.add(layers[0]!);
  planner.check();
  assert.deepEqual(planner.plan(0).entries.map((e) => e.entry.path), ["opt", "opt/x", "opt/y"]);
  assert.equal(planner.changed.size, 0);
  planner.add(layers[1]!);
  planner.check();
  assert.deepEqual([...planner.changed], [0], "layer one lost /opt/x to the owner above");
  const whole = planLayers(layers, (id) => trees[id]!, { "/opt/x": "b" });
  assert.deepEqual([planner.plan(0), planner.plan(1)], whole);
  assert.deepEqual(whole[0]!.entries.map((e) => e.entry.path), ["opt", "opt/y"]);
  // A directory in one layer and a file in a layer added later: caught by the check after that add.
  const p2 = new LayerPlanner((id) => ({ c: tree("c", [dir("etc/x")]), d: tree("d", [file("etc/x", "s")]) })[id]!, {});
  p2.add({ name: "one", packages: ["c"] });
  p2.check();
  p2.add({ name: "two", packages: ["d"] });
  assert.throws(() => p2.check(), /\/etc\/x is a directory in c \(layer one\) and a file in d \(layer two\)/);
});

test("the image plan reuses a layer planned early, unless a layer added later provides one of its default parents", () => {
  const trees: Record<string, StoredTree> = {
    a: tree("a", [file("srv/app/x", "s1"), file("usr/bin/a", "s2")]),
    b: tree("b", [dir("srv", 0o700), file("srv/y", "s3")]),
  };
  const layers = [{ name: "one", packages: ["a"] }, { name: "two", packages: ["b"] }];
  const o = { compression: "none" as const, epoch: 0, conflicts: {}, limit: 1e12 };
  const plan = new ImagePlan(layers, (id) => trees[id]!, o);
  const early = plan.partsOf(0);
  assert.equal(early[0]!.input().entries.find((e) => e.entry.path === "srv")!.entry.mode, 0o755, "no layer below gives /srv: defaults");
  const final = plan.partsOf(0, 1);
  assert.notEqual(final, early, "layer two provides /srv: planned again");
  assert.equal(final[0]!.input().entries.find((e) => e.entry.path === "srv")!.entry.mode, 0o700);
  assert.deepEqual(final.map((p) => p.key), new ImagePlan(layers, (id) => trees[id]!, o).partsOf(0, 1).map((p) => p.key), "same key as planning the whole image at once");
  assert.equal(plan.partsOf(0, 1), final, "unchanged since: taken as planned");
  // Without the upper directory the early plan stands.
  const trees2: Record<string, StoredTree> = { ...trees, b: tree("b", [file("opt/y", "s3")]) };
  const plan2 = new ImagePlan(layers, (id) => trees2[id]!, o);
  const early2 = plan2.partsOf(0);
  assert.equal(plan2.partsOf(0, 1), early2);
});

test("a layer planned from itself and the layers below is recorded, and the next build takes its key from the record", async () => {
  const { dir: root, cleanup } = await tempDir();
  try {
    const store = new Store(root);
    const trees: Record<string, StoredTree> = {
      a: tree("a", [file("srv/app/x", "s1"), file("usr/bin/a", "s2")]),
      b: tree("b", [dir("srv", 0o700), file("srv/y", "s3")]),
    };
    const layers = [{ name: "one", packages: ["a"] }, { name: "two", packages: ["b"] }];
    const o = { compression: "none" as const, epoch: 0, conflicts: {}, limit: 1e12 };
    const first = new ImagePlan(layers, (id) => trees[id]!, o, storePlanRecords(store)).partsOf(0);
    const records = await readdir(path.join(root, "plans"));
    assert.equal(records.length, 1, "one record, for layer one planned alone");
    // The next build takes the key from the record (shown by editing it) and plans the entries only to build.
    const file1 = path.join(root, "plans", records[0]!);
    await writeFile(file1, (await readFile(file1, "utf8")).replace(first[0]!.key, "0".repeat(64)));
    const second = new ImagePlan(layers, (id) => trees[id]!, o, storePlanRecords(store)).partsOf(0);
    assert.equal(second[0]!.key, "0".repeat(64));
    // A record that does not match its trees is refused when the layer is built, and removed.
    assert.throws(() => second[0]!.input(), CorruptStoreError);
    // Removed at once (the drop is synchronous), before the error that says so.
    assert.deepEqual(await readdir(path.join(root, "plans")), []);
    const third = new ImagePlan(layers, (id) => trees[id]!, o, storePlanRecords(store)).partsOf(0);
    assert.equal(third[0]!.key, first[0]!.key);
    // The record holds the parent directories it gave defaults: a layer above that provides one plans it again.
    const whole = new ImagePlan(layers, (id) => trees[id]!, o, storePlanRecords(store));
    whole.partsOf(0);
    const final = whole.partsOf(0, 1);
    assert.notEqual(final[0]!.key, first[0]!.key);
    assert.equal(final[0]!.input().entries.find((e) => e.entry.path === "srv")!.entry.mode, 0o700);
  } finally {
    await cleanup();
  }
});

const symlink = (path: string, target: string): TreeEntry => ({ path, type: "symlink", mode: 0o777, uid: 0, gid: 0, target });

test("a path under a lower layer's symlink is a conflict naming both packages and layers, with the real path", () => {
  const trees: Record<string, StoredTree> = {
    "deb:usr-is-merged": tree("m", [symlink("bin", "usr/bin"), dir("usr"), dir("usr/bin"), file("usr/bin/sh", "sh")]),
    "inline:/bin/mytool": tree("t", [file("bin/mytool", "tool")]),
  };
  const layers = [{ name: "base", packages: ["deb:usr-is-merged"] }, { name: "tools", packages: ["inline:/bin/mytool"] }];
  assert.throws(() => planLayers(layers, (id) => trees[id]!, {}), (err: Error) => {
    assert.equal((err as { exitCode?: number }).exitCode, 5);
    assert.equal(err.message, "/bin/mytool (inline:/bin/mytool, layer tools) lies under /bin, which is a symlink to usr/bin in deb:usr-is-merged (layer base). " +
      "A runtime would replace the symlink with a directory holding only that path, hiding what /bin points to. Put it at the real path /usr/bin/mytool instead.");
    return true;
  });
  // Named with its directory too: the directory-versus-symlink message suggests the real path.
  trees["inline:/bin/mytool"] = tree("t", [dir("bin"), file("bin/mytool", "tool")]);
  assert.throws(() => planLayers(layers, (id) => trees[id]!, {}), /\/bin\/mytool \(inline:\/bin\/mytool, layer tools\) lies under \/bin, which is a symlink to usr\/bin in deb:usr-is-merged \(layer base\)/);
  // An absolute target, deeper path.
  trees["deb:usr-is-merged"] = tree("m", [symlink("opt/app", "/srv/app")]);
  trees["inline:/bin/mytool"] = tree("t", [file("opt/app/etc/conf", "c")]);
  assert.throws(() => planLayers(layers, (id) => trees[id]!, {}), /lies under \/opt\/app, which is a symlink to \/srv\/app .*real path \/srv\/app\/etc\/conf/);
  // The real path builds.
  trees["deb:usr-is-merged"] = tree("m", [symlink("bin", "usr/bin"), dir("usr"), dir("usr/bin"), file("usr/bin/sh", "sh")]);
  trees["inline:/bin/mytool"] = tree("t", [file("usr/bin/mytool", "tool")]);
  assert.deepEqual(planLayers(layers, (id) => trees[id]!, {})[1]!.entries.map((e) => e.entry.path), ["usr/bin/mytool"]);
});

test("a file in one layer and file/child in another is a conflict, in either order", () => {
  const trees: Record<string, StoredTree> = { a: tree("a", [file("opt/x", "s1")]), b: tree("b", [file("opt/x/child", "s2")]) };
  assert.throws(
    () => planLayers([{ name: "one", packages: ["a"] }, { name: "two", packages: ["b"] }], (id) => trees[id]!, {}),
    /^PathConflictError: \/opt\/x\/child \(b, layer two\) lies under \/opt\/x, which is a file in a \(layer one\)\. A path cannot be both/,
  );
  assert.throws(
    () => planLayers([{ name: "one", packages: ["b"] }, { name: "two", packages: ["a"] }], (id) => trees[id]!, {}),
    /\/opt\/x\/child \(b, layer one\) lies under \/opt\/x, which is a file in a \(layer two\)/,
  );
  // A symlink above what a lower layer put under its path.
  const t2: Record<string, StoredTree> = { a: tree("a", [dir("bin"), file("bin/ls", "ls")]), b: tree("b", [symlink("bin", "usr/bin")]) };
  assert.throws(
    () => planLayers([{ name: "one", packages: ["a"] }, { name: "two", packages: ["b"] }], (id) => trees[id] && t2[id]!, {}),
    /\/bin\/ls \(a, layer one\) lies under \/bin, which is a symlink to usr\/bin in b \(layer two\)|\/bin is a directory in a \(layer one\) and a symlink to usr\/bin in b \(layer two\)/,
  );
});

test("three providers of one path and a named owner: the owner's copy wins wherever it comes (the megapak's four opencv flavours)", () => {
  const trees: Record<string, StoredTree> = {
    a: tree("a", [file("opt/cv2/core.so", "sa"), file("opt/cv2/only-a.py", "s0")]),
    b: tree("b", [file("opt/cv2/core.so", "sb")]),
    c: tree("c", [file("opt/cv2/core.so", "sc")]),
  };
  const at = (order: string[][], owner: string) => planLayers(order.map((packages, i) => ({ name: `l${i}`, packages })), (id) => trees[id]!, { "/opt/cv2/": owner });
  const holder = (plans: ReturnType<typeof planLayers>) => plans.flatMap((p) => p.entries.filter((e) => e.entry.path === "opt/cv2/core.so").map((e) => e.packageId));
  // The owner last, in the middle, first; in one layer or in three.
  assert.deepEqual(holder(at([["a"], ["b"], ["c"]], "c")), ["c"]);
  assert.deepEqual(holder(at([["a"], ["b"], ["c"]], "b")), ["b"]);
  assert.deepEqual(holder(at([["a"], ["b"], ["c"]], "a")), ["a"]);
  assert.deepEqual(holder(at([["a", "b", "c"]], "c")), ["c"]);
  // A path only one of them provides stays with it.
  assert.ok(at([["a"], ["b"], ["c"]], "c")[0]!.entries.some((e) => e.entry.path === "opt/cv2/only-a.py"));
  // An owner that is in no layer, or that does not provide the path, is no answer to the conflict.
  assert.throws(() => at([["a"], ["b"], ["c"]], "d"), /provided by both a and b with different content, and its owner in conflicts, d, is not in the image/);
  const noCopy: Record<string, StoredTree> = { ...trees, e: tree("e", [file("opt/cv2/other.py", "s9")]) };
  assert.throws(
    () => planLayers([{ name: "l0", packages: ["a"] }, { name: "l1", packages: ["b"] }, { name: "l2", packages: ["e"] }], (id) => noCopy[id]!, { "/opt/cv2/": "e" }),
    /\/opt\/cv2\/core\.so is provided by a and another package with different content, and its owner in conflicts, e, does not provide it/,
  );
  // Grown one layer at a time (build-ahead): the owner above is awaited, and the lower layer is flagged when it takes the path.
  const plan = new ImagePlan([{ name: "l0", packages: ["a"] }, { name: "l1", packages: ["b"] }, { name: "l2", packages: ["c"] }], (id) => trees[id]!, { compression: "none", epoch: 0, conflicts: { "/opt/cv2/": "c" }, limit: 1e12 });
  assert.ok(plan.partsOf(1)[0]!.input().entries.every((e) => e.entry.path !== "opt/cv2/core.so"), "b never holds it");
  const final = [0, 1, 2].map((i) => plan.partsOf(i, 2)[0]!.input().entries.filter((e) => e.entry.path === "opt/cv2/core.so").map((e) => e.packageId));
  assert.deepEqual(final, [[], [], ["c"]]);
});
