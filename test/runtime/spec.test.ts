// The container's runtime spec and seccomp filter as pure functions: what the
// default profile becomes for this arch and these capabilities, and which
// host ids a container's ids stand for.

import assert from "node:assert/strict";
import { test } from "node:test";
import { checkMapped, mapsTo, subordinateRange, type IdMapping } from "../../src/runtime/idmap.ts";
import { DEFAULT_CAPABILITIES, runtimeSpec } from "../../src/runtime/oci-spec.ts";
import { loadDefaultProfile, seccompFor, type DockerProfile } from "../../src/runtime/seccomp.ts";

const profile: DockerProfile = {
  defaultAction: "SCMP_ACT_ERRNO",
  defaultErrnoRet: 38,
  archMap: [{ architecture: "SCMP_ARCH_X86_64", subArchitectures: ["SCMP_ARCH_X86", "SCMP_ARCH_X32"] }, { architecture: "SCMP_ARCH_AARCH64", subArchitectures: ["SCMP_ARCH_ARM"] }],
  syscalls: [
    { names: ["read", "write"], action: "SCMP_ACT_ALLOW" },
    { names: ["chroot"], action: "SCMP_ACT_ALLOW", includes: { caps: ["CAP_SYS_CHROOT"] } },
    { names: ["chroot"], action: "SCMP_ACT_ERRNO", errnoRet: 1, excludes: { caps: ["CAP_SYS_CHROOT"] } },
    { names: ["bpf"], action: "SCMP_ACT_ALLOW", includes: { caps: ["CAP_SYS_ADMIN"] } },
    { names: ["bpf"], action: "SCMP_ACT_ERRNO", errnoRet: 1, excludes: { caps: ["CAP_SYS_ADMIN"] } },
    { names: ["arch_prctl"], action: "SCMP_ACT_ALLOW", includes: { arches: ["amd64", "x32"] } },
    { names: ["modify_ldt"], action: "SCMP_ACT_ALLOW", includes: { arches: ["x86"] } },
    { names: ["breakpoint"], action: "SCMP_ACT_ALLOW", includes: { arches: ["arm", "arm64"] } },
    { names: ["newer"], action: "SCMP_ACT_ALLOW", includes: { minKernel: "6.20" } },
    { names: ["personality"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: 8, op: "SCMP_CMP_EQ" }] },
  ],
};

test("seccomp: includes/excludes decided by the container's caps, arch and kernel, like the engines", () => {
  const s = seccompFor(profile, { arch: "x64", caps: DEFAULT_CAPABILITIES, kernel: "6.18.44-fc" });
  assert.equal(s.defaultAction, "SCMP_ACT_ERRNO");
  assert.equal(s.defaultErrnoRet, 38);
  assert.deepEqual(s.architectures, ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
  const rule = (n: string) => s.syscalls.filter((r) => r.names.includes(n)).map((r) => r.action);
  assert.deepEqual(rule("chroot"), ["SCMP_ACT_ALLOW"]); // CAP_SYS_CHROOT is a default cap
  assert.deepEqual(rule("bpf"), ["SCMP_ACT_ERRNO"]); // CAP_SYS_ADMIN is not
  assert.deepEqual(rule("arch_prctl"), ["SCMP_ACT_ALLOW"]);
  assert.deepEqual(rule("modify_ldt"), ["SCMP_ACT_ALLOW"]); // x86 is a sub-architecture of x86-64
  assert.deepEqual(rule("breakpoint"), []);
  assert.deepEqual(rule("newer"), []); // needs a newer kernel
  assert.deepEqual(s.syscalls.find((r) => r.names[0] === "personality")?.args, [{ index: 0, value: 8, valueTwo: 0, op: "SCMP_CMP_EQ" }]);
  const arm = seccompFor(profile, { arch: "arm64", caps: [], kernel: "6.20.1" });
  assert.deepEqual(arm.architectures, ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]);
  assert.deepEqual(arm.syscalls.filter((r) => r.names.includes("chroot")).map((r) => r.action), ["SCMP_ACT_ERRNO"]);
  assert.ok(arm.syscalls.some((r) => r.names.includes("breakpoint")));
  assert.ok(arm.syscalls.some((r) => r.names.includes("newer")));
});

test("seccomp: the installed default profile converts, and a missing one is a clear error", { skip: (() => { try { loadDefaultProfile(); return false; } catch (e) { return (e as Error).message; } })() }, () => {
  const s = seccompFor(loadDefaultProfile(), { caps: DEFAULT_CAPABILITIES });
  assert.equal(s.defaultAction, "SCMP_ACT_ERRNO");
  assert.ok(s.syscalls.length > 10);
  assert.ok(s.syscalls.some((r) => r.action === "SCMP_ACT_ERRNO" && r.names.includes("bpf")));
  assert.throws(() => loadDefaultProfile("/nonexistent/seccomp.json"), /seccomp profile \/nonexistent\/seccomp\.json is missing \(ENOENT\); install it with `apt-get install containers-common`/);
});

test("subordinate ranges: by name or uid, the first big enough; ids map into them", () => {
  const text = "alice:100000:65536\nbob:165536:1000\n1001:300000:65536\nbob:400000:65536\n";
  assert.deepEqual(subordinateRange(text, "alice", 1000), { start: 100000, count: 65536 });
  assert.deepEqual(subordinateRange(text, "bob", 1002), { start: 400000, count: 65536 });
  assert.deepEqual(subordinateRange(text, "carol", 1001), { start: 300000, count: 65536 });
  assert.equal(subordinateRange(text, "dave", 1003), undefined);
  const m: IdMapping = { rootless: true, uids: [{ containerID: 0, hostID: 1000, size: 1 }, { containerID: 1, hostID: 100000, size: 65536 }], gids: [{ containerID: 0, hostID: 1000, size: 1 }] };
  assert.equal(mapsTo(m.uids, 0), 1000);
  assert.equal(mapsTo(m.uids, 1000), 100999);
  assert.equal(mapsTo(m.uids, 65537), undefined);
  assert.throws(() => checkMapped(m, 1000, 1000, "user app"), /user app: gid 1000 cannot be used in the container/);
  checkMapped(m, 1000, 0, "user app");
});

test("runtime spec: namespaces, mappings, capabilities for root and for a user, network, binds", () => {
  const base = {
    rootfs: "/run/layerfold/root-x", argv: ["/bin/true"], env: ["PATH=/bin"], cwd: "/", uid: 0, gid: 0, terminal: false, hostname: "layerfold",
    binds: [{ host: "/srv/data", container: "/data", readonly: true }],
    seccomp: { defaultAction: "SCMP_ACT_ERRNO", architectures: [], syscalls: [] },
  };
  const rootful: IdMapping = { rootless: false, uids: [{ containerID: 0, hostID: 1_000_000_000, size: 65536 }], gids: [{ containerID: 0, hostID: 1_000_000_000, size: 65536 }] };
  const s = runtimeSpec({ ...base, network: "none", mapping: rootful }) as any;
  assert.deepEqual(s.linux.namespaces.map((n: { type: string }) => n.type).sort(), ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"]);
  assert.deepEqual(s.linux.uidMappings, rootful.uids);
  assert.equal(s.process.noNewPrivileges, true);
  assert.deepEqual(s.process.capabilities.effective, DEFAULT_CAPABILITIES);
  assert.ok(!DEFAULT_CAPABILITIES.includes("CAP_SYS_ADMIN") && !DEFAULT_CAPABILITIES.includes("CAP_MKNOD") && !DEFAULT_CAPABILITIES.includes("CAP_NET_RAW"));
  assert.ok(s.linux.readonlyPaths.includes("/proc/sys"));
  assert.ok(s.linux.maskedPaths.includes("/proc/kcore"));
  assert.deepEqual(s.mounts.find((m: { destination: string }) => m.destination === "/data").options, ["rbind", "ro", "nosuid", "nodev"]);
  assert.equal(s.mounts.find((m: { destination: string }) => m.destination === "/sys").type, "sysfs");
  const user = runtimeSpec({ ...base, uid: 1000, gid: 1000, network: "host", mapping: { ...rootful, rootless: true } }) as any;
  assert.deepEqual(user.process.capabilities.effective, []);
  assert.deepEqual(user.process.capabilities.bounding, DEFAULT_CAPABILITIES);
  assert.ok(!user.linux.namespaces.some((n: { type: string }) => n.type === "network" || n.type === "user"));
  assert.equal(user.linux.uidMappings, undefined);
  assert.deepEqual(user.mounts.find((m: { destination: string }) => m.destination === "/sys").options, ["rbind", "nosuid", "noexec", "nodev", "ro"]);
});
