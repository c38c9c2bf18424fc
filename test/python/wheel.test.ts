import { test } from "node:test";
import assert from "node:assert/strict";
import { entryPointScript, parseEntryPoints, parseRecord, schemeFor } from "../../src/sources/python/wheel.ts";

test("install schemes: venv and Debian system layout", () => {
  assert.deepEqual(schemeFor({ prefix: "/opt/venv", version: "3.11", interpreter: "/usr/bin/python3.11" }), {
    purelib: "opt/venv/lib/python3.11/site-packages", platlib: "opt/venv/lib/python3.11/site-packages",
    scripts: "opt/venv/bin", data: "opt/venv", headers: "opt/venv/include/site/python3.11", shebang: "/opt/venv/bin/python",
  });
  const sys = schemeFor({ prefix: "system", version: "3.12", interpreter: "/usr/bin/python3.12" });
  assert.equal(sys.purelib, "usr/local/lib/python3.12/dist-packages");
  assert.equal(sys.scripts, "usr/local/bin");
  assert.equal(sys.shebang, "/usr/bin/python3.12");
});

test("RECORD and entry_points parsing; entry-point scripts", () => {
  const r = parseRecord('a/b.py,sha256=abc,12\n"weird,name.py",sha256=def,3\nx.dist-info/RECORD,,\n');
  assert.deepEqual(r.get("a/b.py"), { hash: "sha256=abc", size: 12 });
  assert.deepEqual(r.get("weird,name.py"), { hash: "sha256=def", size: 3 });
  assert.deepEqual(r.get("x.dist-info/RECORD"), { hash: undefined, size: undefined });
  const ep = parseEntryPoints("[console_scripts]\nfoo = foo.cli:main\nbar=bar.app:App.run [extra]\n\n[gui_scripts]\nbaz = baz:gui\n");
  assert.equal(ep.get("console_scripts")!.get("bar"), "bar.app:App.run [extra]");
  const s = entryPointScript("/opt/venv/bin/python", "bar.app:App.run [extra]");
  assert.match(s, /^#!\/opt\/venv\/bin\/python\n/);
  assert.match(s, /from bar\.app import App\n/);
  assert.match(s, /sys\.exit\(App\.run\(\)\)/);
  assert.throws(() => entryPointScript("/x", "not valid; rm -rf /"), /is not "module:attr"/);
});
