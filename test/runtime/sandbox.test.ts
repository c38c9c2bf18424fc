// The sandbox tested as an attacker would: image code (fixtures/attack.c)
// tries each escape of issue 15, as root and as a non-root user with a store
// of their own. Each must fail inside the container, and no file may appear
// on the host, in the store or in the cached root filesystem.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, mkdir, readFile, readdir, stat } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { cliPath, runCli, runCommand, tempDir, type CliResult } from "../helpers/cli.ts";
import { hostMapping } from "../../src/runtime/idmap.ts";
import { DEFAULT_CAPABILITIES, MAX_PROCESSES } from "../../src/runtime/oci-spec.ts";
import { namespaceProblem } from "../../src/runtime/sandbox.ts";
import { attackImage, debianReachable, pythonImage, shellImage } from "./images.ts";
import { defaultStoreDir } from "../../src/store/store.ts";
import { asUser, bundleCli, ensureTestUser, rootlessProblem, userDir, type TestUser } from "./rootless.ts";

const noContainers = namespaceProblem();
const noRootless = noContainers ?? rootlessProblem();
const IMAGE = "layerfold-tests/attack:1";

let tmp: { dir: string; cleanup: () => Promise<void> };
/** World-writable host directory: an escaped process, whatever its uid, could write here. */
let open: string;
let store: string;
let layout: string;
let user: TestUser | undefined;
let userHome: string;
let userStore: string;
let bundle: string;

before(async () => {
  if (noContainers) return;
  tmp = await tempDir("layerfold-sandbox-");
  await chmod(tmp.dir, 0o755); // the test user reaches the layout and the bundle
  open = path.join(tmp.dir, "open");
  await mkdir(open);
  await chmod(open, 0o777);
  store = path.join(tmp.dir, "store");
  layout = path.join(tmp.dir, "layout");
  const img = await attackImage(path.join(tmp.dir, "img"));
  const r = await runCli(["build", "-C", img, "--store", store, "-o", `oci:${layout}`, "-q"]);
  assert.equal(r.code, 0, r.stderr);
  execFileSync("chmod", ["-R", "a+rX", layout]);
  if (noRootless) return;
  user = await ensureTestUser();
  userHome = await userDir(tmp.dir, "home", user);
  userStore = path.join(userHome, "store");
  bundle = await bundleCli(tmp.dir);
});
after(async () => tmp?.cleanup());

interface Who {
  name: "root" | "user";
  skip: string | undefined;
  run(args: string[]): Promise<CliResult>;
  /** The argv of `layerfold run …` for a shell command line (the TIOCSTI test). */
  argv(args: string[]): string[];
  storeDir(): string;
}

const asRoot: Who = {
  name: "root",
  skip: noContainers,
  run: (args) => runCli(["run", "--store", store, IMAGE, ...args]),
  argv: (args) => [process.execPath, cliPath, "run", "--store", store, IMAGE, ...args],
  storeDir: () => store,
};
const asNonRoot: Who = {
  name: "user",
  skip: noRootless,
  run: (args) => asUser(user!, userHome, [process.execPath, bundle, "run", "--store", userStore, "--layout", layout, ...args]),
  argv: (args) => [process.execPath, bundle, "run", "--store", userStore, "--layout", layout, ...args],
  storeDir: () => userStore,
};

/** Every file under a directory (as root): what the store and the cached rootfs hold. */
async function listing(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(p);
    }
  };
  await walk(dir);
  return out.sort();
}

const rootfsOf = async (storeDir: string) => {
  const names = await readdir(path.join(storeDir, "rootfs"));
  assert.equal(names.length, 1, `one cached rootfs in ${storeDir}: ${names}`);
  return path.join(storeDir, "rootfs", names[0]!, "root");
};

const sha = async (f: string) => createHash("sha256").update(await readFile(f)).digest("hex");
const exists = (p: string) => stat(p).then(() => true, () => false);

for (const who of [asRoot, asNonRoot]) {
  describe(`as ${who.name}`, { skip: who.skip }, () => {
    test("the container's root has no host privilege: mapped ids, default capabilities, no_new_privs, seccomp", async () => {
      const r = await who.run([]);
      assert.equal(r.code, 0, r.stderr);
      const mask = DEFAULT_CAPABILITIES.reduce((m, c) => m | (1n << BigInt(CAPS.indexOf(c))), 0n);
      const field = (k: string) => new RegExp(`^${k}:\\s*(\\S+)`, "m").exec(r.stdout)?.[1];
      assert.equal(BigInt(`0x${field("CapBnd")}`), mask, r.stdout);
      assert.equal(BigInt(`0x${field("CapEff")}`), mask, r.stdout);
      assert.equal(field("NoNewPrivs"), "1");
      assert.equal(field("Seccomp"), "2");
      const maps = [...r.stdout.matchAll(/^uid_map:\s+(\d+)\s+(\d+)\s+(\d+)/gm)].map((m) => m.slice(1).map(Number));
      if (who.name === "root") {
        const base = hostMapping().uids[0]!.hostID;
        assert.ok(base >= 65536, `the container's root is an unprivileged host uid (${base})`);
        assert.deepEqual(maps, [[0, base, 65536]]);
      } else {
        assert.deepEqual(maps[0], [0, user!.uid, 1]);
        assert.equal(maps[1]?.[0], 1);
        assert.equal(maps[1]?.[2], 65536);
      }
    });

    test("chroot escape: the process stays in the image's root; nothing is written on the host, in the store or the rootfs", async () => {
      const before = await listing(who.storeDir());
      // Host paths (a world-writable directory, the store, the cached rootfs) do not exist in the container…
      const targets = [path.join(open, `escaped-${who.name}`), path.join(who.storeDir(), "escaped"), path.join(await rootfsOf(who.storeDir()), "escaped")];
      const r = await who.run(["--", "escape", ...targets, "/escaped-by-layerfold-test"]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^chroot \.: ok$/m); // the chroot(".") itself is harmless after pivot_root…
      assert.match(r.stdout, /^see \/etc\/motd: ok$/m); // …it lands in the image's root,
      assert.match(r.stdout, /^see \/etc\/shadow: No such file or directory$/m); // never the host's
      for (const t of targets) {
        assert.match(r.stdout, new RegExp(`^write ${t.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: (No such file or directory|Permission denied|Read-only file system)$`, "m"));
        assert.equal(await exists(t), false, `${t} appeared on the host`);
      }
      // …and / is the image's: a file written there stays in the run's layer.
      assert.match(r.stdout, /^write \/escaped-by-layerfold-test: ok$/m);
      assert.equal(await exists("/escaped-by-layerfold-test"), false);
      assert.deepEqual(await listing(who.storeDir()), before, "the store changed");
      assert.equal(await exists("/esc"), false);
    });

    test("devices: mknod of the host's disk and mount both fail", async () => {
      const dev = (await stat("/")).dev;
      const major = Number((BigInt(dev) >> 8n) & 0xfffn);
      const minor = Number((BigInt(dev) & 0xffn) | ((BigInt(dev) >> 12n) & 0xfff00n));
      const r = await who.run(["--", "mknod", String(major), String(minor)]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^mknod: Operation not permitted$/m);
      assert.match(r.stdout, /^mount hostdisk: (Operation not permitted|No such file or directory)$/m);
      assert.match(r.stdout, /^mount tmpfs: Operation not permitted$/m);
      assert.match(r.stdout, /^open hostdisk: No such file or directory$/m);
    });

    test("kernel knobs: /proc/sys/kernel/core_pattern and sysrq-trigger are read-only", async () => {
      const core = await readFile("/proc/sys/kernel/core_pattern", "utf8");
      const r = await who.run(["--", "core_pattern"]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^open core_pattern: (Read-only file system|Permission denied)$/m);
      assert.match(r.stdout, /^sysrq-trigger: (Read-only file system|Permission denied|No such file or directory)$/m);
      assert.equal(await readFile("/proc/sys/kernel/core_pattern", "utf8"), core);
    });

    test("persistence: writes land in the run's own layer; the store, the cached rootfs and the next run do not see them", async () => {
      const rootfs = await rootfsOf(who.storeDir());
      const motd = path.join(rootfs, "etc", "motd");
      const before = { motd: await sha(motd), probe: await sha(path.join(rootfs, "usr", "bin", "probe")), files: await listing(who.storeDir()) };
      const w = await who.run(["--", "write", "/etc/motd", "/usr/bin/probe", "/usr/bin/new-file"]);
      assert.equal(w.code, 0, w.stderr);
      assert.match(w.stdout, /^write \/etc\/motd: ok$/m);
      assert.equal(await sha(motd), before.motd);
      assert.equal(await sha(path.join(rootfs, "usr", "bin", "probe")), before.probe);
      const next = await who.run(["--entrypoint", "/usr/bin/probe", "--", "cat", "/etc/motd"]);
      assert.equal(next.stdout, "original\n", next.stderr);
      const gone = await who.run(["--entrypoint", "/usr/bin/probe", "--", "cat", "/usr/bin/new-file"]);
      assert.equal(gone.code, 2);
      const after = await listing(who.storeDir());
      assert.deepEqual(after.filter((f) => !f.includes("/users/")), before.files.filter((f) => !f.includes("/users/")), "files were left in the store");
    });

    test("terminal injection: TIOCSTI never reaches the caller's terminal (with and without -t)", async () => {
      // The caller's terminal is a pty from script(1); after layerfold exits, the
      // shell on it reads a line: anything injected would be read there.
      for (const tty of [[], ["-t"]]) {
        const cmd = who.argv([...tty, "--", "tiocsti", "echo INJECTED\n"]).map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
        const line = `${cmd}; echo "exit=$?"; read -t 2 got; echo "got:[$got]"`;
        const r = who.name === "root"
          ? await runCommand("script", ["-qec", line, "/dev/null"], { cwd: tmp.dir, env: process.env })
          : await asUser(user!, userHome, ["script", "-qec", line, "/dev/null"]);
        assert.match(r.stdout, /exit=0/, r.stdout + r.stderr);
        assert.match(r.stdout, /got:\[\]/, `injected into the caller's terminal (${tty.join(" ") || "no -t"}):\n${r.stdout}`);
        assert.doesNotMatch(r.stdout, /got:\[echo INJECTED/);
      }
    });

    test("a fork loop ends at the container's process limit, not the host's", async () => {
      const r = await who.run(["--", "forkbomb"]);
      assert.equal(r.code, 0, r.stderr);
      const m = /^forked (\d+): (.*)$/m.exec(r.stdout);
      assert.ok(m, r.stdout);
      assert.equal(m[2], "Resource temporarily unavailable");
      assert.ok(Number(m[1]) < MAX_PROCESSES, `forked ${m[1]}`);
    });

    test("network: the host's loopback services are unreachable by default; --network host gives them away", async () => {
      let connections = 0;
      const server = net.createServer((s) => { connections++; s.destroy(); });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      const port = String((server.address() as net.AddressInfo).port);
      try {
        const r = await who.run(["--", "connect", port]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /^connect: Connection refused$/m);
        assert.equal(connections, 0);
        const host = await who.run(["--network", "host", "--", "connect", port]);
        assert.match(host.stdout, /^connect: ok$/m, host.stderr);
        assert.equal(connections, 1);
      } finally {
        server.close();
      }
    });
  });
}

describe("volumes and owners", { skip: noContainers }, () => {
  test("as root, -v is seen through the container's mapping (idmapped): host root's files are its root's, as with docker", { skip: noContainers }, async () => {
    const dir = path.join(tmp.dir, "rootvol");
    await mkdir(dir, { mode: 0o755 });
    const { writeFile } = await import("node:fs/promises");
    await writeFile(path.join(dir, "secret"), "root only\n", { mode: 0o600 });
    const read = await asRoot.run(["--entrypoint", "/usr/bin/probe", "-v", `${dir}:/data`, "--", "cat", "/data/secret"]);
    assert.equal(read.stdout, "root only\n", read.stderr);
    assert.doesNotMatch(read.stderr, /warning/);
    const w = await asRoot.run(["-v", `${dir}:/data`, "--", "write", "/data/x"]);
    assert.match(w.stdout, /^write \/data\/x: ok$/m, w.stderr);
    assert.equal((await stat(path.join(dir, "x"))).uid, 0);
    const ro = await asRoot.run(["-v", `${dir}:/data:ro`, "--", "write", "/data/y"]);
    assert.match(ro.stdout, /^write \/data\/y: Read-only file system$/m, ro.stderr);
    assert.equal(await exists(path.join(dir, "y")), false);
    // A single file too.
    const f = await asRoot.run(["--entrypoint", "/usr/bin/probe", "-v", `${path.join(dir, "secret")}:/etc/secret:ro`, "--", "cat", "/etc/secret"]);
    assert.equal(f.stdout, "root only\n", f.stderr);
  });

  test("rootless: -v of the user's own directory is writable, files are the user's; image owners are kept", { skip: noRootless }, async () => {
    const dir = await userDir(userHome, "vol", user!);
    const r = await asNonRoot.run(["-v", `${dir}:/data`, "--", "write", "/data/out"]);
    assert.match(r.stdout, /^write \/data\/out: ok$/m, r.stderr);
    const st = await stat(path.join(dir, "out"));
    assert.equal(st.uid, user!.uid);
    // /home/app/.profile belongs to uid 1000 in the image: the app user may write its home.
    const app = await asNonRoot.run(["-u", "app", "--", "write", "/home/app/.profile", "/home/app/data/new"]);
    assert.match(app.stdout, /^write \/home\/app\/\.profile: ok$/m, app.stderr);
    assert.match(app.stdout, /^write \/home\/app\/data\/new: ok$/m, app.stderr);
  });
});

test("other host users cannot read the store's package trees or the cached root filesystems", { skip: noRootless }, async () => {
  assert.equal((await asRoot.run([])).code, 0);
  const rootfs = await rootfsOf(store);
  const trees = (await readdir(path.join(store, "trees"))).map((k) => path.join(store, "trees", k));
  assert.ok(trees.length > 0);
  const r = await asUser(user!, userHome, ["sh", "-c", `for p in "$@"; do ls "$p" >/dev/null 2>&1 && echo "readable: $p"; done; cat "${rootfs}/etc/motd" 2>/dev/null && echo "readable: motd"; true`, "sh", rootfs, ...trees]);
  assert.equal(r.stdout, "", r.stdout);
});

test("rootless gc removes a cached root filesystem that holds files of the user's subordinate ids", { skip: noRootless }, async () => {
  assert.equal((await asNonRoot.run(["-u", "app", "--", "write", "/home/app/data/x"])).code, 0);
  const rootfs = path.dirname(await rootfsOf(userStore));
  assert.equal((await stat(path.join(rootfs, "root", "home", "app", "data"))).uid, user!.subuid + 999, "the app user's directory is owned by its subordinate id");
  const r = await asUser(user!, userHome, [process.execPath, bundle, "gc", "--store", userStore]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(await exists(rootfs), false);
  assert.deepEqual(await readdir(path.join(userStore, "tmp")), []);
});

test("rootless without a subordinate range: only the user is mapped (to root); other image users are a clear error", { skip: noRootless }, async () => {
  const lone = await ensureTestUser("layerfold-test-norange", false);
  if (lone.subuid !== -1) return; // someone gave it a range: this case cannot be made here
  const home = await userDir(tmp.dir, "norange", lone);
  const run = (args: string[]) => asUser(lone, home, [process.execPath, bundle, "run", "--store", path.join(home, "store"), "--layout", layout, ...args]);
  const r = await run([]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual([...r.stdout.matchAll(/^uid_map:\s+(\d+)\s+(\d+)\s+(\d+)/gm)].map((m) => m.slice(1).map(Number)), [[0, lone.uid, 1]]);
  assert.match(r.stdout, /^NoNewPrivs:\s+1$/m);
  const esc = await run(["--", "escape", path.join(open, "escaped-norange")]);
  assert.match(esc.stdout, /^see \/etc\/shadow: No such file or directory$/m, esc.stderr);
  assert.equal(await exists(path.join(open, "escaped-norange")), false);
  const app = await run(["-u", "app", "--", "status"]);
  assert.equal(app.code, 125);
  assert.match(app.stderr, /error\[E_RUNTIME\]: user 1000:1000: uid 1000 and gid 1000 cannot be used in the container: as a non-root user only the container's root \(uid 0\) exists unless you have a subordinate range: add one for layerfold-test-norange to \/etc\/subuid/);
});

test("shell on a terminal: its own pty and session, the exit code passed through, as root and as a user", { skip: noContainers ?? (process.arch !== "x64" && "the shell image copies x86-64 libraries") }, async () => {
  const dir = await shellImage(path.join(tmp.dir, "shell"));
  const shLayout = path.join(tmp.dir, "shell-layout");
  assert.equal((await runCli(["build", "-C", dir, "--store", store, "-o", `oci:${shLayout}`, "-q"])).code, 0);
  execFileSync("chmod", ["-R", "a+rX", shLayout]);
  // Typed into script(1)'s terminal after a pause: the shell must be reading its own pty.
  const session = "sleep 2; printf '[ -t 0 ] && echo on-a-\"\"tty; cd /dev/pts && echo pts: *; echo pid=$$; exit 7\\n'";
  const shells: Array<[string, () => Promise<CliResult>]> = [
    ["root", () => runCommand("sh", ["-c", `(${session}) | script -qec "$0 shell --store '${store}' --layout '${shLayout}'; echo shell-exit=\\$?" /dev/null`, `'${process.execPath}' '${cliPath}'`], { cwd: tmp.dir, env: process.env })],
  ];
  if (!noRootless) {
    const ustore = path.join(userHome, "store");
    shells.push(["user", () => asUser(user!, userHome, ["sh", "-c", `(${session}) | script -qec "$0 shell --store '${ustore}' --layout '${shLayout}'; echo shell-exit=\\$?" /dev/null`, `'${process.execPath}' '${bundle}'`])]);
  }
  for (const [who, sh] of shells) {
    const r = await sh();
    assert.match(r.stdout, /on-a-tty/, `${who}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /pts: 0 ptmx/, `${who}: the container's own devpts, with only its own pty`);
    assert.match(r.stdout, /pid=1\b/, `${who}: the shell is PID 1 of its own namespace`);
    assert.match(r.stdout, /shell-exit=7/, `${who}: ${r.stdout}`);
  }
});

const noDebian = noContainers ?? (await debianReachable());
describe("check", { skip: noDebian }, () => {
  test("a package's import-time code is sandboxed too: no escape, no network, the check still reports", async () => {
    // The user's store, so the Debian packages already fetched there are reused (as check.test.ts does).
    const shared = process.env.LAYERFOLD_STORE ?? defaultStoreDir();
    let connections = 0;
    const server = net.createServer((s) => { connections++; s.destroy(); });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as net.AddressInfo).port;
    const hostFile = path.join(open, "from-check");
    const core = await readFile("/proc/sys/kernel/core_pattern", "utf8");
    const site = "/usr/lib/python3.11";
    // What issue 15 saw a package's __init__.py do under the old chroot.
    const evil = [
      "import os, socket",
      "def attempt(name, f):",
      "    try:",
      "        f()",
      "        print('evil', name, 'ok', flush=True)",
      "    except Exception as e:",
      "        print('evil', name, type(e).__name__, flush=True)",
      "def escape():",
      "    os.makedirs('/esc', exist_ok=True)",
      "    os.chroot('/esc')",
      "    for _ in range(64): os.chdir('..')",
      "    os.chroot('.')",
      `    open(${JSON.stringify(hostFile)}, 'w').write('pwned')`,
      "attempt('escape', escape)",
      "attempt('core_pattern', lambda: open('/proc/sys/kernel/core_pattern', 'w').write('|/pwned'))",
      `attempt('connect', lambda: socket.create_connection(('127.0.0.1', ${port}), timeout=3))`,
    ].join("\n") + "\n";
    const dir = await pythonImage(path.join(tmp.dir, "evil"), {
      tag: `evil-${port}`,
      extra: [
        { path: `${site}/evil_pkg/__init__.py`, text: evil },
        { path: `${site}/evil_pkg-1.0.dist-info/METADATA`, text: "Metadata-Version: 2.1\nName: evil-pkg\nVersion: 1.0\n" },
        { path: `${site}/evil_pkg-1.0.dist-info/top_level.txt`, text: "evil_pkg\n" },
      ],
    });
    try {
      const b = await runCli(["build", "-C", dir, "--store", shared, "-o", "none", "-q"]);
      assert.equal(b.code, 0, b.stderr);
      const r = await runCli(["check", "-C", dir, "--store", shared, "--json", "--skip-import", "bad_mod"]);
      const report = JSON.parse(r.stdout);
      assert.equal(report.imports.imported, 2, r.stdout + r.stderr); // good_pkg and evil_pkg: the attempts fail quietly inside
      assert.equal(await exists(hostFile), false, "the package wrote a file on the host");
      assert.equal(connections, 0, "the package reached a host loopback service");
      assert.equal(await readFile("/proc/sys/kernel/core_pattern", "utf8"), core);
      // The same code under `run`: each attempt fails inside the container.
      const run = await runCli(["run", "-C", dir, "--store", shared, "--", "python3.11", "-c", "import evil_pkg"]);
      assert.match(run.stdout, /^evil escape (PermissionError|FileNotFoundError|OSError)$/m, run.stdout + run.stderr);
      assert.match(run.stdout, /^evil core_pattern (PermissionError|OSError)$/m);
      assert.match(run.stdout, /^evil connect ConnectionRefusedError$/m);
      // And as a non-root user, from an OCI layout into a store of their own.
      if (!noRootless) {
        const pyLayout = path.join(tmp.dir, "py-layout");
        assert.equal((await runCli(["build", "-C", dir, "--store", shared, "-o", `oci:${pyLayout}`, "-q"])).code, 0);
        execFileSync("chmod", ["-R", "a+rX", pyLayout]);
        const u = await asUser(user!, userHome, [process.execPath, bundle, "check", "--layout", pyLayout, "--store", userStore, "--json", "--no-dups"]);
        assert.equal(u.code, 15, u.stderr); // E_CHECK_FAILED: bad_mod does not import
        const ur = JSON.parse(u.stdout);
        assert.equal(ur.imports.imported, 2, u.stdout);
        assert.deepEqual(ur.imports.failures.map((f: { module: string }) => f.module), ["bad_mod"]);
        assert.equal(await exists(hostFile), false);
        assert.equal(connections, 0);
      }
    } finally {
      server.close();
    }
  });
});

/** Capability numbers (linux/capability.h), for the masks in /proc/self/status. */
const CAPS = [
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID",
  "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
  "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN",
  "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
  "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
];
