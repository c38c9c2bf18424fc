// `layerfold report`: one self-contained HTML file (inline CSS, inline SVG,
// a few lines of inline JS for the search box; no request leaves the page).
// Every chart is drawn here as SVG so the numbers are in the file itself and
// a test can read them back; the figures carry data-* attributes with exact
// byte counts.

import type { ImageModel, ModelPackage } from "./model.ts";
import { squarify, type Rect } from "./treemap.ts";
import { formatBytes } from "../util/log.ts";

/** Layers smaller than this share of the treemap are drawn at this share. */
const MIN_LAYER_SHARE = 0.005;

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
const num = (n: number): string => (Math.round(n * 100) / 100).toString();
const pct = (part: number, whole: number): string => (whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : "0%");

/** A fixed palette (by layer position), readable on white. */
export function layerColor(i: number): string {
  const hues = [210, 28, 140, 350, 265, 190, 45, 95, 320, 5, 235, 160];
  const h = hues[i % hues.length]!;
  const l = 48 + 10 * (Math.floor(i / hues.length) % 2);
  return `hsl(${h} 62% ${l}%)`;
}

function stackedBar(model: ImageModel, key: "size" | "uncompressedSize", label: string, y: number, width: number): string {
  const total = model.layers.reduce((n, l) => n + Math.max(0, l[key]), 0);
  let x = 0;
  const parts = model.layers.map((l, i) => {
    const w = total > 0 ? (Math.max(0, l[key]) / total) * width : 0;
    const rect = `<rect class="seg" data-layer="${esc(l.name)}" data-bytes="${l[key]}" x="${num(x)}" y="${y}" width="${num(w)}" height="28" fill="${layerColor(i)}"><title>${esc(l.name)}: ${formatBytes(l[key])} (${pct(l[key], total)})</title></rect>`;
    x += w;
    return rect;
  });
  return `<text x="0" y="${y - 6}" class="lbl">${esc(label)} — ${formatBytes(total)}</text>${parts.join("")}`;
}

function layerSection(model: ImageModel): string {
  const W = 900;
  const bars = `<svg class="chart" id="stacked-bar" viewBox="0 0 ${W} 110" width="${W}" height="110" role="img" aria-label="layer sizes">
${stackedBar(model, "size", "compressed", 20, W)}
${stackedBar(model, "uncompressedSize", "uncompressed", 72, W)}
</svg>`;
  const rows = model.layers
    .map(
      (l, i) => `<tr class="layer-row" data-layer="${esc(l.name)}" data-size="${l.size}" data-uncompressed="${l.uncompressedSize}" data-packages="${l.packages.length}">
<td><span class="sw" style="background:${layerColor(i)}"></span>${i + 1}</td><td>${esc(l.name)}</td><td class="n">${l.packages.length}</td>
<td class="n">${formatBytes(l.size)}</td><td class="n">${formatBytes(l.uncompressedSize)}</td><td class="n">${pct(l.size, model.totals.size)}</td>
<td><code title="${esc(l.digest)}">${esc(l.digest.slice(7, 19))}</code></td><td>${l.reused ? "reused" : "built"}${l.chunked ? `, <span title="TOC ${esc(l.chunked.toc)}">zstd:chunked</span>` : ""}</td></tr>`,
    )
    .join("\n");
  return `<section id="layers"><h2>Layers</h2>${bars}
<table class="grid"><thead><tr><th>#</th><th>layer</th><th>packages</th><th>compressed</th><th>uncompressed</th><th>share</th><th>digest</th><th>state</th></tr></thead>
<tbody>${rows}</tbody>
<tfoot><tr><td></td><td>total</td><td class="n">${model.layers.reduce((n, l) => n + l.packages.length, 0)}</td>
<td class="n" id="total-compressed" data-bytes="${model.totals.size}">${formatBytes(model.totals.size)}</td>
<td class="n" id="total-uncompressed" data-bytes="${model.totals.uncompressedSize}">${formatBytes(model.totals.uncompressedSize)}</td><td></td><td></td><td></td></tr></tfoot></table></section>`;
}

function treemapSection(model: ImageModel): string {
  const W = 900;
  const H = 520;
  const byLayer = new Map<string, ModelPackage[]>();
  for (const p of model.packages) byLayer.set(p.layer, [...(byLayer.get(p.layer) ?? []), p]);
  const layerItems = model.layers.map((l, i) => {
    const pkgs = byLayer.get(l.name) ?? [];
    const known = pkgs.reduce((n, p) => n + (p.bytes ?? 0), 0);
    return { value: known > 0 ? known : Math.max(0, l.uncompressedSize), item: { layer: l, index: i, pkgs } };
  });
  // Tiny layers get a minimum area so they (and their packages) stay visible and hoverable.
  const sum = layerItems.reduce((n, l) => n + l.value, 0);
  const floor = sum * MIN_LAYER_SHARE;
  const enlarged = layerItems.filter((l) => l.value > 0 && l.value < floor).map((l) => l.item.layer.name);
  const drawn = layerItems.map((l) => ({ ...l, value: l.value > 0 ? Math.max(l.value, floor) : 0, bytes: l.value }));
  const out: string[] = [];
  for (const cell of squarify(drawn.map((d) => ({ value: d.value, item: d })), { x: 0, y: 0, w: W, h: H })) {
    const { layer, index, pkgs } = cell.item.item;
    const bytes = cell.item.bytes;
    const color = layerColor(index);
    out.push(`<g class="tm-layer" data-layer="${esc(layer.name)}" data-bytes="${bytes}"><rect x="${num(cell.x)}" y="${num(cell.y)}" width="${num(cell.w)}" height="${num(cell.h)}" fill="${color}" fill-opacity="0.25" stroke="#fff" stroke-width="2"><title>layer ${esc(layer.name)}: ${formatBytes(bytes)}</title></rect>`);
    const head = cell.h > 34 && cell.w > 40 ? 16 : 0;
    if (head) out.push(`<text class="tm-head" x="${num(cell.x + 4)}" y="${num(cell.y + 12)}">${esc(clip(layer.name, (cell.w - 6) / 7.5))}</text>`);
    const pad = cell.w > 8 && cell.h > 8 ? 2 : 0;
    const inner: Rect = { x: cell.x + pad, y: cell.y + pad + head, w: Math.max(0, cell.w - 2 * pad), h: Math.max(0, cell.h - 2 * pad - head) };
    for (const p of squarify(pkgs.map((p) => ({ value: p.bytes ?? 0, item: p })), inner)) {
      out.push(`<g class="tm-pkg" data-id="${esc(p.item.id)}" data-bytes="${p.value}"><rect x="${num(p.x)}" y="${num(p.y)}" width="${num(p.w)}" height="${num(p.h)}" fill="${color}" stroke="#fff" stroke-width="0.75"><title>${esc(p.item.id)} ${esc(p.item.version)} — ${formatBytes(p.value)} in ${esc(layer.name)}</title></rect>`);
      if (p.w > 46 && p.h > 14) out.push(`<text class="tm-lbl" x="${num(p.x + 3)}" y="${num(p.y + 11)}">${esc(clip(p.item.name, (p.w - 6) / 6))}</text>`);
      out.push("</g>");
    }
    out.push("</g>");
  }
  const missing = model.packages.filter((p) => p.bytes === undefined).length;
  return `<section id="treemap-section"><h2>Packages by installed size, within layers</h2>
<p class="note">Area is the bytes of a package's installed files; hover for names and sizes.${enlarged.length ? ` Layers under ${MIN_LAYER_SHARE * 100}% of the total are enlarged to stay visible: ${esc(enlarged.join(", "))}.` : ""}${missing ? ` ${missing} package trees are no longer in the store; their layers are drawn by uncompressed size.` : ""}</p>
<svg class="chart" id="treemap" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="treemap of packages by size">${out.join("")}</svg></section>`;
}

const clip = (s: string, chars: number): string => (s.length <= chars ? s : chars < 3 ? "" : s.slice(0, Math.max(1, Math.floor(chars) - 1)) + "…");

function duplicationSection(model: ImageModel): string {
  const W = 900;
  const rows = (["compressed", "uncompressed"] as const).map((k) => {
    const d = model.duplication[k];
    const max = Math.max(d.cumulative, 1);
    const y = k === "compressed" ? 0 : 92;
    const bar = (label: string, bytes: number, yy: number, fill: string, id: string) =>
      `<text x="0" y="${yy + 15}" class="lbl">${label}</text><rect id="${id}" data-bytes="${bytes}" x="130" y="${yy}" width="${num(((W - 330) * bytes) / max)}" height="22" fill="${fill}"><title>${label}: ${formatBytes(bytes)}</title></rect><text x="${num(136 + ((W - 330) * bytes) / max)}" y="${yy + 15}" class="lbl">${formatBytes(bytes)}</text>`;
    return `<text x="0" y="${y + 12}" class="lbl strong">${k}</text>
${bar("cumulative", d.cumulative, y + 20, "#b9c2cc", `dup-${k}-cumulative`)}
${bar("folded", d.folded, y + 48, layerColor(0), `dup-${k}-folded`)}`;
  });
  const c = model.duplication.compressed;
  const u = model.duplication.uncompressed;
  return `<section id="duplication"><h2>Duplication avoided by folding</h2>
<p class="note">Cumulative layers (each layer holding everything in the layers before it, as a chain of nested images does) would store the sum over layers of all sizes up to that layer. Folding stores each package once.</p>
<p><strong id="dup-avoided" data-bytes="${c.avoided}" data-uncompressed="${u.avoided}">${formatBytes(c.avoided)}</strong> compressed avoided (${pct(c.avoided, c.cumulative)} of ${formatBytes(c.cumulative)}); ${formatBytes(u.avoided)} uncompressed (${pct(u.avoided, u.cumulative)} of ${formatBytes(u.cumulative)}).</p>
<svg class="chart" id="dup-chart" viewBox="0 0 ${W} 170" width="${W}" height="170" role="img" aria-label="cumulative versus folded bytes">${rows.join("")}</svg></section>`;
}

function packageSection(model: ImageModel): string {
  const layerIndex = new Map(model.layers.map((l, i) => [l.name, i]));
  const rows = model.packages
    .map((p) => {
      const search = [p.id, p.name, p.version, p.layer, p.artifact?.file ?? "", p.via ?? ""].join(" ").toLowerCase();
      return `<tr class="pkg-row" data-id="${esc(p.id)}" data-search="${esc(search)}" data-bytes="${p.bytes ?? ""}">
<td>${esc(p.id)}</td><td>${esc(p.version)}</td><td><span class="sw" style="background:${layerColor(layerIndex.get(p.layer) ?? 0)}"></span>${esc(p.layer)}</td>
<td class="n">${p.bytes === undefined ? "?" : formatBytes(p.bytes)}</td><td>${esc(p.via ?? "")}</td><td>${esc(p.artifact?.file ?? "")}</td>
<td><code title="${esc(p.artifact?.sha256 ?? "")}">${esc(p.artifact?.sha256?.slice(0, 12) ?? "")}</code></td></tr>`;
    })
    .join("\n");
  return `<section id="packages"><h2>Packages</h2>
<p><input id="search" type="search" placeholder="filter: name, version, layer, file…" autocomplete="off"> <span id="count" data-total="${model.packages.length}">${model.packages.length} of ${model.packages.length}</span></p>
<table class="grid" id="pkg-table"><thead><tr><th>package</th><th>version</th><th>layer</th><th>installed</th><th>pulled in by</th><th>artifact</th><th>sha256</th></tr></thead>
<tbody>${rows}</tbody></table></section>`;
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d232a;margin:24px auto;max-width:960px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde2e7;padding-bottom:4px}
.sub{color:#5b6672;margin:0}.note{color:#5b6672;font-size:13px}code{font:12px ui-monospace,monospace}
.chart{max-width:100%;height:auto;display:block}.lbl{font-size:12px;fill:#37414b}.strong{font-weight:600}
.tm-head{font-size:11px;font-weight:600;fill:#1d232a;pointer-events:none}.tm-lbl{font-size:10px;fill:#fff;pointer-events:none}
table.grid{border-collapse:collapse;width:100%;margin-top:10px;font-size:13px}
.grid th,.grid td{border-bottom:1px solid #e6eaee;padding:3px 6px;text-align:left;vertical-align:top}
.grid th{background:#f4f6f8}.grid .n{text-align:right;white-space:nowrap}.grid tfoot td{font-weight:600}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}
#search{font:inherit;padding:4px 8px;width:320px;border:1px solid #b9c2cc;border-radius:4px}#count{color:#5b6672;margin-left:8px}
`;

const JS = `
(function(){
  var input=document.getElementById("search"),count=document.getElementById("count");
  var rows=Array.prototype.slice.call(document.querySelectorAll("#pkg-table tbody tr"));
  function apply(){
    var q=input.value.trim().toLowerCase().split(/\\s+/).filter(Boolean),shown=0;
    rows.forEach(function(r){var s=r.getAttribute("data-search"),ok=q.every(function(t){return s.indexOf(t)>=0});r.hidden=!ok;if(ok)shown++;});
    count.textContent=shown+" of "+rows.length;
  }
  input.addEventListener("input",apply);
})();
`;

export function renderReport(model: ImageModel): string {
  const generatedBy = "layerfold report";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="${generatedBy}">
<title>${esc(model.image)} — layerfold report</title><style>${CSS}</style></head>
<body>
<header><h1 id="image-name">${esc(model.image)}</h1>
<p class="sub"><code id="manifest-digest">${esc(model.manifestDigest)}</code> · ${model.layers.length} layers · ${model.packages.length} packages · ${formatBytes(model.totals.size)} compressed, ${formatBytes(model.totals.uncompressedSize)} uncompressed${model.droppedLayers.length ? ` · dropped (empty after folding): ${esc(model.droppedLayers.join(", "))}` : ""}</p></header>
${layerSection(model)}
${treemapSection(model)}
${duplicationSection(model)}
${packageSection(model)}
<script>${JS}</script>
</body></html>
`;
}
