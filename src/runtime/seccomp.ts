// The seccomp filter containers get: the default profile podman and docker
// ship (containers-common's /usr/share/containers/seccomp.json, docker's
// format), turned into the OCI runtime spec's linux.seccomp for this
// machine's architecture and the container's capabilities, the way the
// engines do it: a rule whose `includes` the container does not meet, or
// whose `excludes` it does, is left out.

import { readFileSync } from "node:fs";
import os from "node:os";
import { RuntimeError } from "../errors.ts";

export const DEFAULT_SECCOMP_PROFILE = "/usr/share/containers/seccomp.json";

interface DockerArg { index: number; value: number; valueTwo?: number; op: string }
interface DockerFilter { caps?: string[]; arches?: string[]; minKernel?: string }
interface DockerRule {
  names?: string[];
  name?: string;
  action: string;
  errnoRet?: number;
  args?: DockerArg[] | null;
  includes?: DockerFilter;
  excludes?: DockerFilter;
}
export interface DockerProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  archMap?: Array<{ architecture: string; subArchitectures?: string[] }>;
  syscalls?: DockerRule[];
}

export interface OciSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures: string[];
  syscalls: Array<{ names: string[]; action: string; errnoRet?: number; args?: DockerArg[] }>;
}

/** Node's process.arch -> the Go names the profile's `arches` use, and libseccomp's. */
const ARCHES: Record<string, { go: string; scmp: string }> = {
  x64: { go: "amd64", scmp: "SCMP_ARCH_X86_64" },
  arm64: { go: "arm64", scmp: "SCMP_ARCH_AARCH64" },
  ppc64: { go: "ppc64le", scmp: "SCMP_ARCH_PPC64LE" },
  s390x: { go: "s390x", scmp: "SCMP_ARCH_S390X" },
  riscv64: { go: "riscv64", scmp: "SCMP_ARCH_RISCV64" },
};
/** libseccomp's sub-architecture names -> the Go names a rule may list. */
const SCMP_TO_GO: Record<string, string> = { SCMP_ARCH_X86: "x86", SCMP_ARCH_X32: "x32", SCMP_ARCH_ARM: "arm" };

const kernelAtLeast = (release: string, min: string): boolean => {
  const a = release.split(/[.-]/).slice(0, 2).map(Number);
  const b = min.split(".").slice(0, 2).map(Number);
  return a[0]! > b[0]! || (a[0] === b[0] && (a[1] ?? 0) >= (b[1] ?? 0));
};

export function seccompFor(profile: DockerProfile, opts: { arch?: string; caps: string[]; kernel?: string }): OciSeccomp {
  const arch = ARCHES[opts.arch ?? process.arch];
  if (!arch) throw new RuntimeError(`no seccomp architecture is known for ${opts.arch ?? process.arch}; layerfold runs images on x64, arm64, ppc64, s390x and riscv64`);
  const kernel = opts.kernel ?? os.release();
  const caps = new Set(opts.caps);
  const entry = profile.archMap?.find((a) => a.architecture === arch.scmp);
  const architectures = [arch.scmp, ...(entry?.subArchitectures ?? [])];
  // A rule for x86 applies when running x86-64 too (32-bit syscalls go through the same filter).
  const goArches = new Set([arch.go, ...(entry?.subArchitectures ?? []).map((s) => SCMP_TO_GO[s]).filter((s): s is string => !!s)]);
  const applies = (r: DockerRule): boolean => {
    const inc = r.includes ?? {};
    const exc = r.excludes ?? {};
    if (inc.caps?.length && !inc.caps.every((c) => caps.has(c))) return false;
    if (inc.arches?.length && !inc.arches.some((a) => goArches.has(a))) return false;
    if (inc.minKernel && !kernelAtLeast(kernel, inc.minKernel)) return false;
    if (exc.caps?.length && exc.caps.some((c) => caps.has(c))) return false;
    if (exc.arches?.length && exc.arches.some((a) => goArches.has(a))) return false;
    return true;
  };
  const syscalls: OciSeccomp["syscalls"] = [];
  for (const r of profile.syscalls ?? []) {
    if (!applies(r)) continue;
    const names = r.names?.length ? r.names : r.name ? [r.name] : [];
    if (!names.length) continue;
    syscalls.push({
      names,
      action: r.action,
      ...(r.errnoRet !== undefined ? { errnoRet: r.errnoRet } : {}),
      ...(r.args?.length ? { args: r.args.map((a) => ({ index: a.index, value: a.value, valueTwo: a.valueTwo ?? 0, op: a.op })) } : {}),
    });
  }
  return {
    defaultAction: profile.defaultAction,
    ...(profile.defaultErrnoRet !== undefined ? { defaultErrnoRet: profile.defaultErrnoRet } : {}),
    architectures,
    syscalls,
  };
}

let cached: DockerProfile | undefined;

/** The default profile; its absence is an error (a container without seccomp is not offered). */
export function loadDefaultProfile(file = process.env.LAYERFOLD_SECCOMP_PROFILE || DEFAULT_SECCOMP_PROFILE): DockerProfile {
  if (cached && file === DEFAULT_SECCOMP_PROFILE) return cached;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new RuntimeError(
      `the default seccomp profile ${file} is missing (${(err as NodeJS.ErrnoException).code}); install it with \`apt-get install containers-common\` (it comes with podman)`,
      { cause: err },
    );
  }
  let profile: DockerProfile;
  try {
    profile = JSON.parse(text) as DockerProfile;
  } catch (err) {
    throw new RuntimeError(`${file} is not valid JSON (${(err as Error).message}); reinstall containers-common`, { cause: err });
  }
  if (typeof profile.defaultAction !== "string" || !Array.isArray(profile.syscalls)) {
    throw new RuntimeError(`${file} is not a seccomp profile in docker's format (no defaultAction or syscalls); reinstall containers-common`);
  }
  if (file === DEFAULT_SECCOMP_PROFILE) cached = profile;
  return profile;
}
