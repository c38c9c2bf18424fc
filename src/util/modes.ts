// setuid and setgid: what a file's mode grants, for the install policy
// (sources/setuid.ts) and for `inspect` and `check`, which list such files.

/** The setuid (04000) and setgid (02000) bits. */
export const SPECIAL_BITS = 0o6000;

/** A file that runs with raised rights: setuid and/or setgid, not a directory (setgid there only sets the group of new files). */
export const isPrivileged = (e: { type: string; mode: number }): boolean => (e.type === "file" || e.type === "hardlink") && (e.mode & SPECIAL_BITS) !== 0;

/** "setuid root", "setgid gid 42", "setuid root, setgid root": what a special-mode entry grants. */
export function describeSpecial(e: { mode: number; uid: number; gid: number }): string {
  const out: string[] = [];
  if (e.mode & 0o4000) out.push(`setuid ${e.uid === 0 ? "root" : `uid ${e.uid}`}`);
  if (e.mode & 0o2000) out.push(`setgid ${e.gid === 0 ? "root" : `gid ${e.gid}`}`);
  return out.join(", ");
}

/** One setuid/setgid file of an image, as inspect and check list it. */
export interface PrivilegedFile {
  path: string;
  mode: string;
  grants: string;
  packageId: string;
  layer: string;
}

export function privilegedFile(e: { path: string; mode: number; uid: number; gid: number }, packageId: string, layer: string): PrivilegedFile {
  return { path: `/${e.path.replace(/^\/+/, "")}`, mode: (e.mode & 0o7777).toString(8).padStart(4, "0"), grants: describeSpecial(e), packageId, layer };
}
