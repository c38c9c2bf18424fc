import { test } from "node:test";
import assert from "node:assert/strict";
import { compareVersions, parseVersion, satisfiesRelation } from "../../src/sources/debian/version.ts";

const sign = (n: number) => (n < 0 ? -1 : n > 0 ? 1 : 0);

test("Debian version ordering follows policy (cases from dpkg's test suite)", () => {
  const cases: [string, string, number][] = [
    ["1.0", "1.0", 0],
    ["1.0", "1.1", -1],
    ["1.0-1", "1.0-2", -1],
    ["1:1.0", "2.0", 1], // epoch wins
    ["0:1.0", "1.0", 0],
    ["1.0~rc1", "1.0", -1], // tilde sorts before the end
    ["1.0~rc1", "1.0~rc1~git", 1],
    ["1.0~~", "1.0~", -1],
    ["1.0", "1.0+b1", -1],
    ["1.0a", "1.0", 1],
    ["1.0a", "1.0+", -1], // letters before non-letters
    ["1.01", "1.1", 0], // digit runs compare numerically
    ["1.10", "1.9", 1],
    ["2.36-9+deb12u4", "2.36-9+deb12u10", -1],
    ["3.11.2-6+deb12u6", "3.11.2-6", 1],
    ["1.2.3", "1.2.3-0", 0],
    ["7.6.q-31", "7.6-31", 1],
    ["a", "b", -1],
    ["1-1", "1-1.1", -1],
    ["9.5+git20230101", "9.5", 1],
  ];
  for (const [a, b, want] of cases) {
    assert.equal(sign(compareVersions(a, b)), want, `${a} vs ${b}`);
    assert.equal(sign(compareVersions(b, a)), want === 0 ? 0 : -want, `${b} vs ${a}`);
  }
});

test("parseVersion splits epoch, upstream and revision, and refuses garbage", () => {
  assert.deepEqual(parseVersion("2:1.2-3-4"), { epoch: 2, upstream: "1.2-3", revision: "4" });
  assert.deepEqual(parseVersion("1.0"), { epoch: 0, upstream: "1.0", revision: "" });
  assert.throws(() => parseVersion("x:1.0"), /epoch/);
  assert.throws(() => parseVersion("1.0 beta"), /invalid/);
});

test("relations", () => {
  assert.ok(satisfiesRelation("2.36-9", ">=", "2.34"));
  assert.ok(!satisfiesRelation("2.36-9", "<<", "2.36"));
  assert.ok(satisfiesRelation("2.36~1", "<<", "2.36"));
  assert.ok(satisfiesRelation("1:0.1", ">>", "9.9"));
  assert.ok(satisfiesRelation("1.0", "=", "0:1.0"));
  assert.ok(satisfiesRelation("1.0", "<=", "1.0"));
});
