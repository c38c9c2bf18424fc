// The HTML report: the squarified treemap's geometry, then the real page in
// headless Chromium (Debian's chromium, driven by playwright-core): its
// numbers against `layerfold inspect --json`, the search box, no request
// leaving the page, and a screenshot.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { pathToFileURL } from "node:url";
import { renderReport } from "../../src/report/html.ts";
import { squarify } from "../../src/report/treemap.ts";
import { helloExample, runCli, tempDir } from "../helpers/cli.ts";
import { sampleModel } from "./fixtures.ts";

const CHROMIUM = "/usr/bin/chromium";

test("squarify: areas proportional to values, inside the box, no overlaps, near-square cells", () => {
  const values = [600, 600, 400, 300, 200, 200, 100, 7, 0];
  const box = { x: 10, y: 20, w: 600, h: 400 };
  const cells = squarify(values.map((v, i) => ({ value: v, item: i })), box);
  assert.equal(cells.length, 8, "zero-sized items are left out");
  const total = values.reduce((a, b) => a + b, 0);
  const eps = 1e-6;
  for (const c of cells) {
    assert.ok(Math.abs(c.w * c.h - (c.value / total) * box.w * box.h) < 1e-3, `area of ${c.item}`);
    assert.ok(c.x >= box.x - eps && c.y >= box.y - eps && c.x + c.w <= box.x + box.w + eps && c.y + c.h <= box.y + box.h + eps, `cell ${c.item} inside`);
  }
  for (const a of cells) {
    for (const b of cells) {
      if (a === b) continue;
      const overlap = Math.max(0, Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x)) * Math.max(0, Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y));
      assert.ok(overlap < 1e-6, `cells ${a.item} and ${b.item} overlap`);
    }
  }
  const worst = Math.max(...cells.slice(0, 7).map((c) => Math.max(c.w / c.h, c.h / c.w)));
  assert.ok(worst < 3, `squarified cells stay near square (worst ${worst.toFixed(2)})`);
  assert.deepEqual(squarify([{ value: 5, item: "x" }], { x: 0, y: 0, w: 0, h: 10 }), []);
});

test("renderReport: self-contained, escaped, every package and layer carries its bytes", () => {
  const m = sampleModel();
  m.packages[0]!.version = `<script>alert("x")</script>`;
  const html = renderReport(m);
  assert.equal(renderReport(m), html, "same model, same bytes");
  assert.ok(!html.includes(`<script>alert`), "package text is escaped");
  assert.ok(!/\b(?:src|href)=["']?(?:https?:)?\/\//i.test(html), "no external resource");
  assert.equal((html.match(/class="pkg-row"/g) ?? []).length, m.packages.length);
  assert.equal((html.match(/class="tm-pkg"/g) ?? []).length, m.packages.filter((p) => (p.bytes ?? 0) > 0).length);
  assert.match(html, new RegExp(`id="dup-avoided" data-bytes="${m.duplication.compressed.avoided}"`));
});

let tmp: { dir: string; cleanup: () => Promise<void> };
let example: string;
let store: string;
before(async () => {
  tmp = await tempDir("lf-report-html-");
});
after(async () => tmp?.cleanup());

interface InspectJson {
  image: string;
  manifestDigest: string;
  layers: Array<{ name: string; size: number; uncompressedSize: number; packages: string[] }>;
}

test("the report in headless Chromium matches inspect --json; search filters the package table", { skip: !existsSync(CHROMIUM) && `${CHROMIUM} not installed (apt-get install chromium)` }, async () => {
  example = await helloExample(tmp.dir);
  store = path.join(tmp.dir, "store");
  const b = await runCli(["build", "-C", example, "--store", store, "-o", "none", "-q"]);
  assert.equal(b.code, 0, b.stderr);
  const ins = await runCli(["inspect", "-C", example, "--store", store, "--json"]);
  assert.equal(ins.code, 0, ins.stderr);
  const inspect = JSON.parse(ins.stdout) as InspectJson;
  const file = path.join(tmp.dir, "report.html");
  const r = await runCli(["report", "--store", store, "--image", inspect.image, "-o", file]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok((await stat(file)).size > 1000);
  const html = await readFile(file, "utf8");
  assert.ok(!html.includes(tmp.dir), "no host path in the report");

  const { chromium } = await import("playwright-core");
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1000, height: 1200 } });
    const requests: string[] = [];
    page.on("request", (req) => requests.push(req.url()));
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(pathToFileURL(file).href);

    assert.equal(await page.textContent("#image-name"), inspect.image);
    assert.equal(await page.textContent("#manifest-digest"), inspect.manifestDigest);
    const rows = await page.$$eval("tr.layer-row", (trs) =>
      trs.map((tr) => ({ name: tr.getAttribute("data-layer"), size: Number(tr.getAttribute("data-size")), uncompressedSize: Number(tr.getAttribute("data-uncompressed")), packages: Number(tr.getAttribute("data-packages")) })),
    );
    assert.deepEqual(rows, inspect.layers.map((l) => ({ name: l.name, size: l.size, uncompressedSize: l.uncompressedSize, packages: l.packages.length })));
    const total = inspect.layers.reduce((n, l) => n + l.size, 0);
    assert.equal(Number(await page.getAttribute("#total-compressed", "data-bytes")), total);
    // Stacked bar: one segment per layer, widths proportional to compressed size.
    const segs = await page.$$eval("#stacked-bar rect.seg", (rs) => rs.map((r) => ({ layer: r.getAttribute("data-layer"), bytes: Number(r.getAttribute("data-bytes")), w: (r as SVGRectElement).width.baseVal.value })));
    const compressedSegs = segs.slice(0, inspect.layers.length);
    assert.deepEqual(compressedSegs.map((s) => s.bytes), inspect.layers.map((l) => l.size));
    const barWidth = compressedSegs.reduce((n, s) => n + s.w, 0);
    for (const [i, s] of compressedSegs.entries()) assert.ok(Math.abs(s.w - (barWidth * inspect.layers[i]!.size) / total) < 0.02, `segment ${s.layer}`);
    // Duplication avoided, computed here from inspect's sizes.
    let prefix = 0;
    let cumulative = 0;
    for (const l of inspect.layers) cumulative += prefix += l.size;
    assert.equal(Number(await page.getAttribute("#dup-compressed-cumulative", "data-bytes")), cumulative);
    assert.equal(Number(await page.getAttribute("#dup-avoided", "data-bytes")), cumulative - total);
    // Treemap: one group per layer, packages drawn inside their layer.
    const tmLayers = await page.$$eval("#treemap g.tm-layer", (gs) => gs.map((g) => g.getAttribute("data-layer")).sort());
    assert.deepEqual(tmLayers, inspect.layers.map((l) => l.name).sort());
    const allIds = inspect.layers.flatMap((l) => l.packages).sort();
    const tmPkgs = await page.$$eval("#treemap g.tm-pkg", (gs) => gs.map((g) => g.getAttribute("data-id")!).sort());
    assert.deepEqual(tmPkgs, allIds);
    const box = await page.locator("#treemap").boundingBox();
    assert.ok(box && box.width > 500 && box.height > 200, "the treemap is drawn");

    // Search: the count and visible rows follow the filter.
    assert.equal(await page.textContent("#count"), `${allIds.length} of ${allIds.length}`);
    await page.fill("#search", "hello");
    const expected = allIds.filter((id) => id.includes("hello")).length;
    assert.ok(expected > 0 && expected < allIds.length);
    assert.equal(await page.textContent("#count"), `${expected} of ${allIds.length}`);
    assert.equal(await page.locator("#pkg-table tbody tr:visible").count(), expected);
    await page.fill("#search", "inline etc");
    assert.equal(await page.locator("#pkg-table tbody tr:visible").count(), allIds.filter((id) => id.startsWith("inline:/etc")).length);
    await page.fill("#search", "no-such-package-anywhere");
    assert.equal(await page.textContent("#count"), `0 of ${allIds.length}`);
    await page.fill("#search", "");

    const shot = path.join(tmp.dir, "report.png");
    await page.screenshot({ path: shot, fullPage: true });
    const png = await readFile(shot);
    assert.ok(png.length > 10_000 && png.subarray(1, 4).toString() === "PNG");
    assert.deepEqual(errors, [], "no script errors");
    assert.deepEqual(requests.filter((u) => !u.startsWith("file:") && !u.startsWith("data:")), [], "no request leaves the page");
  } finally {
    await browser.close();
  }
});
