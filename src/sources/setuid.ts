// setuid and setgid files from packages. A file that runs with its owner's or
// group's rights is a privilege a package hands out, so it is never kept
// without a word: every build names them (`inspect` and `check` list them too),
// and each source that can ship them says what happens:
//   "keep"   keep the bits (Debian packages by default: dpkg installs them so, and
//            Debian policy 10.9 reviews every setuid program);
//   "strip"  clear the bits and keep the file (archives by default, as pip does for
//            wheels, whose installer only ever keeps the executable bit);
//   "refuse" fail the install (melange's setuidgid lint, for images that want none).
// `allow` lists image paths kept setuid/setgid whatever the policy, as
// dpkg-statoverride does per path. Setgid directories (/var/mail, group
// inheritance only) and the sticky bit are not privileges and are left alone.

import { z } from "zod";
import { UnsafeArchiveError } from "../errors.ts";
import type { TreeEntry, TreeWriter } from "../store/tree.ts";
import type { Logger } from "../util/log.ts";
import { describeSpecial, isPrivileged, SPECIAL_BITS } from "../util/modes.ts";

export const setuidPolicySchema = z
  .object({
    /** keep, strip (clear the bits) or refuse setuid/setgid files. */
    policy: z.enum(["keep", "strip", "refuse"]),
    /** Image paths whose setuid/setgid bits are kept whatever the policy, e.g. "/usr/bin/sudo". */
    allow: z.array(z.string().startsWith("/", "must be an absolute image path such as /usr/bin/sudo")).default([]),
  })
  .strict();

export type SetuidPolicy = z.infer<typeof setuidPolicySchema>;

/** Apply `policy` to the setuid/setgid files of a freshly installed tree; logs what it kept or cleared. */
export function applySetuidPolicy(tree: TreeWriter, policy: SetuidPolicy, what: string, log?: Logger): void {
  const allowed = new Set(policy.allow.map((p) => p.replace(/^\/+/, "")));
  const special = tree.list().filter(isPrivileged);
  if (!special.length) return;
  const kept = special.filter((e) => policy.policy === "keep" || allowed.has(e.path));
  const rest = special.filter((e) => !kept.includes(e));
  const list = (es: TreeEntry[]) => es.map((e) => `/${e.path} (${describeSpecial(e)})`).join(", ");
  if (rest.length && policy.policy === "refuse") {
    throw new UnsafeArchiveError(`${what}: ships setuid/setgid files, which its setuid policy refuses: ${list(rest)}; allow them by path (setuid: { policy: "refuse", allow: ["/${rest[0]!.path}"] }) or strip them (policy: "strip")`);
  }
  if (rest.length) {
    const paths = new Set(rest.map((e) => e.path));
    const cleared = list(rest);
    tree.clearModeBits((e) => paths.has(e.path) || (e.type === "hardlink" && paths.has(e.target ?? "")), SPECIAL_BITS);
    log?.warn(`${what}: cleared setuid/setgid on ${cleared} (its setuid policy is "strip"; list a path in setuid.allow, or set policy "keep", to keep it)`);
  }
  if (kept.length) log?.info(`${what}: keeps setuid/setgid files: ${list(kept)}`);
}
