// Squarified treemap (Bruls, Huizing, van Wijk 2000): lay items out in rows
// along the shorter side of the remaining rectangle, adding an item to the
// current row only while that keeps the row's worst aspect ratio from getting
// worse. Pure geometry; the HTML report draws the rectangles as SVG.

export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

export type Placed<T> = Rect & { item: T; value: number };

/** Worst aspect ratio of a row of areas laid along a side of length `side`. */
function worst(sum: number, min: number, max: number, side: number): number {
  const s2 = side * side;
  const sum2 = sum * sum;
  return Math.max((s2 * max) / sum2, sum2 / (s2 * min));
}

/** Items with value <= 0 are left out. Output order follows decreasing value. */
export function squarify<T>(items: Array<{ value: number; item: T }>, rect: Rect): Array<Placed<T>> {
  const list = items.filter((i) => i.value > 0).sort((a, b) => b.value - a.value);
  const total = list.reduce((n, i) => n + i.value, 0);
  const out: Array<Placed<T>> = [];
  if (total <= 0 || rect.w <= 0 || rect.h <= 0) return out;
  const scale = (rect.w * rect.h) / total;
  const areas = list.map((i) => i.value * scale);
  let r = { ...rect };
  let i = 0;
  while (i < list.length) {
    const side = Math.min(r.w, r.h);
    let j = i + 1;
    let sum = areas[i]!;
    let min = sum;
    let max = sum;
    let best = worst(sum, min, max, side);
    while (j < list.length) {
      const a = areas[j]!;
      const next = worst(sum + a, Math.min(min, a), Math.max(max, a), side);
      if (next > best) break;
      sum += a;
      min = Math.min(min, a);
      max = Math.max(max, a);
      best = next;
      j++;
    }
    // The row takes a strip of thickness sum/side across the short side.
    const thick = side > 0 ? sum / side : 0;
    let offset = 0;
    for (let k = i; k < j; k++) {
      const len = thick > 0 ? areas[k]! / thick : 0;
      const placed = r.w >= r.h ? { x: r.x, y: r.y + offset, w: thick, h: len } : { x: r.x + offset, y: r.y, w: len, h: thick };
      out.push({ ...placed, item: list[k]!.item, value: list[k]!.value });
      offset += len;
    }
    if (r.w >= r.h) r = { x: r.x + thick, y: r.y, w: Math.max(0, r.w - thick), h: r.h };
    else r = { x: r.x, y: r.y + thick, w: r.w, h: Math.max(0, r.h - thick) };
    i = j;
  }
  return out;
}
