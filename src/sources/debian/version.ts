// Debian version comparison, as Debian Policy 5.6.12 and dpkg define it:
// [epoch:]upstream[-revision]; non-digit runs compare with '~' before
// everything (even the end), letters before non-letters; digit runs compare
// numerically.

export interface DebVersion {
  epoch: number;
  upstream: string;
  revision: string;
}

export function parseVersion(v: string): DebVersion {
  const s = v.trim();
  let epoch = 0;
  let rest = s;
  const colon = s.indexOf(":");
  if (colon >= 0) {
    const e = s.slice(0, colon);
    if (!/^\d+$/.test(e)) throw new Error(`invalid Debian version ${JSON.stringify(v)}: epoch must be a number`);
    epoch = Number(e);
    rest = s.slice(colon + 1);
  }
  const dash = rest.lastIndexOf("-");
  const upstream = dash >= 0 ? rest.slice(0, dash) : rest;
  const revision = dash >= 0 ? rest.slice(dash + 1) : "";
  if (upstream === "" || !/^[0-9A-Za-z.+~:-]*$/.test(upstream) || !/^[0-9A-Za-z.+~]*$/.test(revision)) {
    throw new Error(`invalid Debian version ${JSON.stringify(v)}`);
  }
  return { epoch, upstream, revision };
}

/** Sort weight of one character in a non-digit run (dpkg's order()). */
function order(c: string | undefined): number {
  if (c === undefined) return 0;
  if (c === "~") return -1;
  if (/[A-Za-z]/.test(c)) return c.charCodeAt(0);
  return c.charCodeAt(0) + 256;
}

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= "0" && c <= "9";

/** dpkg's verrevcmp: compare one upstream or revision part. */
function compareFragment(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let firstDiff = 0;
    while ((i < a.length && !isDigit(a[i])) || (j < b.length && !isDigit(b[j]))) {
      const ac = order(i < a.length && !isDigit(a[i]) ? a[i] : undefined);
      const bc = order(j < b.length && !isDigit(b[j]) ? b[j] : undefined);
      if (ac !== bc) return ac - bc;
      if (i < a.length && !isDigit(a[i])) i++;
      if (j < b.length && !isDigit(b[j])) j++;
    }
    while (a[i] === "0") i++;
    while (b[j] === "0") j++;
    while (isDigit(a[i]) && isDigit(b[j])) {
      if (!firstDiff) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (isDigit(a[i])) return 1;
    if (isDigit(b[j])) return -1;
    if (firstDiff) return firstDiff;
  }
  return 0;
}

/** Negative, zero or positive like a sort comparator. */
export function compareVersions(a: string, b: string): number {
  if (a === b) return 0;
  const va = parseVersion(a);
  const vb = parseVersion(b);
  if (va.epoch !== vb.epoch) return va.epoch - vb.epoch;
  const u = compareFragment(va.upstream, vb.upstream);
  if (u) return u;
  return compareFragment(va.revision, vb.revision);
}

export type Relation = "<<" | "<=" | "=" | ">=" | ">>";

/** Does `version` satisfy `version <relation> wanted`? */
export function satisfiesRelation(version: string, relation: Relation, wanted: string): boolean {
  const c = compareVersions(version, wanted);
  switch (relation) {
    case "<<": return c < 0;
    case "<=": return c <= 0;
    case "=": return c === 0;
    case ">=": return c >= 0;
    case ">>": return c > 0;
  }
}
