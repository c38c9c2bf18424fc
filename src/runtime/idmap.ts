// Which host uids a container's ids stand for. Nothing inside a container
// has host privilege:
//   as root:     container 0..65535 -> a subordinate range of host uids
//                (/etc/subuid's entry for root, else a fixed range high above
//                ordinary users), so the container's root is an unprivileged
//                host uid and a setuid file in an image gives nothing;
//   as a user:   container 0 -> the user, 1..65536 -> their /etc/subuid range
//                (written with newuidmap, like rootless podman), or only
//                0 -> the user when they have no range.

import { readFileSync } from "node:fs";
import os from "node:os";
import { RuntimeError } from "../errors.ts";
import { findOnPath } from "../util/fs.ts";

export interface IdRange {
  containerID: number;
  hostID: number;
  size: number;
}

export interface IdMapping {
  /** The invoking user is root (the runtime creates the user namespace) or not (layerfold enters one first). */
  rootless: boolean;
  uids: IdRange[];
  gids: IdRange[];
}

/** When /etc/subuid has no range for root: far above the ranges useradd hands out (100000 + 65536·n). */
export const ROOT_DEFAULT_BASE = 1_000_000_000;
export const RANGE = 65536;

/** The first range of at least `min` ids that /etc/subuid (or subgid) gives this user, by name or uid. */
export function subordinateRange(text: string, user: string, id: number, min = RANGE): { start: number; count: number } | undefined {
  for (const line of text.split("\n")) {
    const [who, start, count] = line.trim().split(":");
    if (!who || start === undefined || count === undefined) continue;
    if (who !== user && who !== String(id)) continue;
    const s = Number(start);
    const c = Number(count);
    if (Number.isInteger(s) && Number.isInteger(c) && c >= min) return { start: s, count: c };
  }
  return undefined;
}

const readOr = (f: string): string => {
  try {
    return readFileSync(f, "utf8");
  } catch {
    return "";
  }
};

let cached: IdMapping | undefined;

export function hostMapping(): IdMapping {
  if (cached) return cached;
  const uid = process.getuid!();
  const gid = process.getgid!();
  let name: string;
  try {
    name = os.userInfo().username;
  } catch {
    name = String(uid);
  }
  if (uid === 0) {
    const su = subordinateRange(readOr("/etc/subuid"), "root", 0);
    const sg = subordinateRange(readOr("/etc/subgid"), "root", 0);
    const ubase = su?.start ?? ROOT_DEFAULT_BASE;
    const gbase = sg?.start ?? ROOT_DEFAULT_BASE;
    return (cached = {
      rootless: false,
      uids: [{ containerID: 0, hostID: ubase, size: RANGE }],
      gids: [{ containerID: 0, hostID: gbase, size: RANGE }],
    });
  }
  const su = subordinateRange(readOr("/etc/subuid"), name, uid);
  const sg = subordinateRange(readOr("/etc/subgid"), name, uid);
  const own = (id: number): IdRange => ({ containerID: 0, hostID: id, size: 1 });
  if (su && sg && hasNewIdMap()) {
    return (cached = {
      rootless: true,
      uids: [own(uid), { containerID: 1, hostID: su.start, size: RANGE }],
      gids: [own(gid), { containerID: 1, hostID: sg.start, size: RANGE }],
    });
  }
  return (cached = { rootless: true, uids: [own(uid)], gids: [own(gid)] });
}

const hasNewIdMap = () => !!findOnPath("newuidmap") && !!findOnPath("newgidmap");

export const mapsTo = (ranges: IdRange[], id: number): number | undefined => {
  for (const r of ranges) if (id >= r.containerID && id < r.containerID + r.size) return r.hostID + id - r.containerID;
  return undefined;
};

/** The container's uid and gid must exist in the mapping, or the runtime fails obscurely. */
export function checkMapped(m: IdMapping, uid: number, gid: number, what: string): void {
  const missing = [mapsTo(m.uids, uid) === undefined ? `uid ${uid}` : "", mapsTo(m.gids, gid) === undefined ? `gid ${gid}` : ""].filter(Boolean);
  if (!missing.length) return;
  const top = Math.max(...m.uids.map((r) => r.containerID + r.size)) - 1;
  const fix = m.rootless && top === 0
    ? `as a non-root user only the container's root (uid 0) exists unless you have a subordinate range: add one for ${os.userInfo().username} to /etc/subuid and /etc/subgid (e.g. \`usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${os.userInfo().username}\`, and install uidmap)`
    : `the container's ids go from 0 to ${top}; use an id in that range`;
  throw new RuntimeError(`${what}: ${missing.join(" and ")} cannot be used in the container: ${fix}`);
}
