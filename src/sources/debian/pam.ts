// /etc/pam.d/common-{auth,account,password,session,session-noninteractive}:
// libpam-runtime's postinst builds them with pam-auth-update from the
// profiles in /usr/share/pam-configs and the templates in /usr/share/pam.
// Without them su, login and runuser abort. This is a port of
// pam-auth-update's first-run behaviour: every "Default: yes" profile,
// ordered by Priority, jumps ("success=end") rewritten to line counts.

export interface PamProfile {
  name: string;
  fields: Map<string, string>;
}

/** pam-auth-update's parse_pam_profile. */
export function parsePamProfile(name: string, text: string): PamProfile {
  const fields = new Map<string, string>();
  let current: string | undefined;
  for (const raw of text.split("\n")) {
    const m = /^(\S+):\s*(.*?)\s*$/.exec(raw);
    if (m && !/^\s/.test(raw)) {
      current = m[1]!.replace(/-Final$/, "");
      fields.set(current, m[2]!);
      continue;
    }
    const line = raw.trim();
    if (!current || !line) continue;
    fields.set(current, `${fields.get(current)}\n${line}`.replace(/^[\n\s]+/, ""));
  }
  if (!fields.has("Session-Interactive-Only")) {
    for (const k of ["Type", "", "-Initial"].map((s) => (s === "Type" ? "-Type" : s))) {
      const v = fields.get(`Session${k}`);
      if (v !== undefined) fields.set(`Session-noninteractive${k}`, v);
    }
  }
  return { name, fields };
}

/** Default-enabled profiles in pam-auth-update's order: Priority descending, then name descending. */
export function enabledProfiles(profiles: PamProfile[]): PamProfile[] {
  const prio = (p: PamProfile) => Number(p.fields.get("Priority") ?? 0);
  return profiles
    .filter((p) => p.fields.get("Default") === "yes")
    .sort((a, b) => prio(b) - prio(a) || (b.name < a.name ? -1 : b.name > a.name ? 1 : 0));
}

function mergeOneLine(line: string, count: number): string {
  const m = /^((\[[^\]]+\]|\w+)\s+\S+)\s*(.*)/.exec(line);
  if (!m) return line + "\n";
  const opts = m[3]!.split(/\s+/).filter(Boolean);
  return `${m[1]!.replace(/end/g, String(count))} ${opts.join(" ")}\n`;
}

/** pam-auth-update's create_from_template; undefined when the template lacks its markers. */
export function pamFromTemplate(template: string, rawType: string, enabled: PamProfile[]): string | undefined {
  const ucType = rawType[0]!.toUpperCase() + rawType.slice(1);
  const type = rawType.replace(/-noninteractive$/, "");
  const linesOf = (p: PamProfile, pos: number) => (pos === 0 && p.fields.get(`${ucType}-Initial`)) || p.fields.get(ucType) || "";
  let state = 0;
  let out = "";
  for (const line of template.split(/(?<=\n)/)) {
    if (state === 1) {
      if (/^# here's the fallback if no module succeeds/.test(line)) { out += line; state++; }
      continue;
    }
    if (state === 3) {
      if (/^# end of pam-auth-update config/.test(line)) { out += line; state++; }
      continue;
    }
    out += line;
    const block = state === 0 ? "Primary" : state === 2 ? "Additional" : undefined;
    const marker = state === 0 ? /^# here are the per-package modules \(the "Primary" block\)/ : /^# and here are more per-package modules \(the "Additional" block\)/;
    if (!block || !marker.test(line)) continue;
    const mods = enabled.filter((p) => p.fields.get(`${ucType}-Type`) === block);
    let count = mods.reduce((n, p, i) => n + linesOf(p, i).split(/\n+/).filter(Boolean).length, 0);
    if (block === "Additional") count--;
    if (block === "Primary" && count === 0) out += `${type}\t[default=1]\t\t\tpam_permit.so\n`;
    mods.forEach((p, i) => {
      for (const l of linesOf(p, i).split("\n")) {
        out += `${type}\t${mergeOneLine(l, count)}`;
        count--;
      }
    });
    state++;
  }
  return state < 4 ? undefined : out;
}

export const PAM_TYPES = ["auth", "account", "password", "session", "session-noninteractive"];
