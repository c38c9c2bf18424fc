// Small test images for the runtime tests, written as real layerfold configs
// in temp dirs: a static probe (no shell in the image), a dynamic program with
// its own shared library, and a Debian python3.11-minimal with two tiny
// distributions (one imports, one does not).

import { execFileSync } from "node:child_process";
import { copyFile, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { repoRoot } from "../helpers/cli.ts";

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures");
const lib = JSON.stringify(path.join(repoRoot, "src", "index.ts"));

async function config(dir: string, body: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, "layerfold.config.ts"), `import { defineImage } from ${lib};\nexport default defineImage(${body});\n`);
  return dir;
}

/** Compile the static probe into dir/build/probe. */
export async function compileProbe(dir: string): Promise<string> {
  await mkdir(path.join(dir, "build"), { recursive: true });
  const out = path.join(dir, "build", "probe");
  execFileSync("gcc", ["-static", "-O1", "-o", out, path.join(fixtures, "probe.c")]);
  return out;
}

/**
 * The probe image: Entrypoint /usr/bin/probe, Cmd ["info", "from-cmd"], Env FOO=bar,
 * WorkingDir /work/dir, a user "app" (1000), /etc/motd "original". With `app: true`
 * the entrypoint is a stand-in app script (#!/usr/bin/probe smoke) that exits 0 only
 * when CLI_ARGS asks for --quick-test-for-ci, like ComfyUI's CI smoke test.
 */
export async function probeImage(dir: string, opts: { app?: boolean; tag?: string } = {}): Promise<string> {
  await compileProbe(dir);
  return config(
    dir,
    JSON.stringify({
      name: "layerfold-tests/probe",
      tag: opts.tag ?? (opts.app ? "app" : "1"),
      layers: [
        {
          name: "base",
          inline: [
            { path: "/etc/passwd", text: "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n" },
            { path: "/etc/group", text: "root:x:0:\napp:x:1000:\nstaff:x:50:\n" },
            { path: "/etc/motd", text: "original\n" },
          ],
        },
        { name: "bin", files: [{ src: "./build/probe", dest: "/usr/bin/probe", mode: 0o755, name: "probe" }] },
        { name: "app", inline: [{ path: "/usr/local/bin/entrypoint", mode: 0o755, text: "#!/usr/bin/probe smoke\n" }] },
      ],
      config: opts.app
        ? { entrypoint: ["/usr/local/bin/entrypoint"], cmd: [] }
        : { entrypoint: ["/usr/bin/probe"], cmd: ["info", "from-cmd"], env: { FOO: "bar" }, workdir: "/work/dir" },
    }),
  );
}

/**
 * A dynamic program /usr/bin/greet linked against libgreet.so, with the host's
 * libc and dynamic loader copied in; `withLib: false` leaves libgreet.so out.
 */
export async function libImage(dir: string, withLib: boolean): Promise<string> {
  const build = path.join(dir, "build");
  await mkdir(build, { recursive: true });
  execFileSync("gcc", ["-shared", "-fPIC", "-Wl,-soname,libgreet.so", "-o", path.join(build, "libgreet.so"), path.join(fixtures, "libgreet.c")]);
  execFileSync("gcc", ["-o", path.join(build, "greet"), path.join(fixtures, "greet.c"), `-L${build}`, "-lgreet"]);
  await copyFile("/lib/x86_64-linux-gnu/libc.so.6", path.join(build, "libc.so.6"));
  await copyFile("/lib64/ld-linux-x86-64.so.2", path.join(build, "ld-linux-x86-64.so.2"));
  const files = [
    { src: "./build/greet", dest: "/usr/bin/greet", mode: 0o755, name: "greet" },
    { src: "./build/libc.so.6", dest: "/lib/x86_64-linux-gnu/libc.so.6", mode: 0o755, name: "libc" },
    { src: "./build/ld-linux-x86-64.so.2", dest: "/lib64/ld-linux-x86-64.so.2", mode: 0o755, name: "ld-linux" },
  ];
  return config(
    dir,
    JSON.stringify({
      name: "layerfold-tests/greet",
      tag: withLib ? "good" : "missing-lib",
      layers: [
        { name: "libc", files: files.slice(1) },
        ...(withLib ? [{ name: "lib", files: [{ src: "./build/libgreet.so", dest: "/usr/lib/libgreet.so", mode: 0o755, name: "libgreet" }] }] : []),
        { name: "app", files: files.slice(0, 1) },
      ],
      config: { entrypoint: ["/usr/bin/greet"] },
    }),
  );
}

/** Debian bookworm's python3.11-minimal plus good_pkg (imports) and bad_mod (its import fails). */
export async function pythonImage(dir: string, opts: { tag?: string; extra?: Array<{ path: string; text: string }> } = {}): Promise<string> {
  const site = "/usr/lib/python3.11";
  return config(
    dir,
    JSON.stringify({
      name: "layerfold-tests/python",
      tag: opts.tag ?? "1",
      debian: { sources: [{ uri: "http://deb.debian.org/debian", suites: ["bookworm"], components: ["main"] }] },
      layers: [
        { name: "python", debian: ["python3.11-minimal"] },
        {
          name: "pkgs",
          inline: [
            { path: `${site}/good_pkg/__init__.py`, text: "VALUE = 1\n" },
            { path: `${site}/good_pkg-1.0.dist-info/METADATA`, text: "Metadata-Version: 2.1\nName: good-pkg\nVersion: 1.0\n" },
            { path: `${site}/good_pkg-1.0.dist-info/top_level.txt`, text: "good_pkg\n" },
            { path: `${site}/bad_mod.py`, text: "import module_that_is_not_installed\n" },
            { path: `${site}/bad_mod-2.0.dist-info/METADATA`, text: "Metadata-Version: 2.1\nName: bad-mod\nVersion: 2.0\n" },
            { path: `${site}/bad_mod-2.0.dist-info/RECORD`, text: "bad_mod.py,,\nbad_mod-2.0.dist-info/METADATA,,\nbad_mod-2.0.dist-info/RECORD,,\n" },
            ...(opts.extra ?? []),
          ],
        },
      ],
      config: { cmd: ["/usr/bin/python3.11"] },
    }),
  );
}

/**
 * The attack image: the probe plus fixtures/attack.c (what hostile image code
 * tries), /etc/motd "original", a user "app" (1000) owning /home/app/data and
 * /home/app/.profile. Entrypoint /usr/bin/attack.
 */
export async function attackImage(dir: string): Promise<string> {
  await compileProbe(dir);
  execFileSync("gcc", ["-static", "-O1", "-o", path.join(dir, "build", "attack"), path.join(fixtures, "attack.c")]);
  // A directory of the app user's (a home with its data), as images with a non-root user have.
  await mkdir(path.join(dir, "build", "appdata"), { recursive: true });
  await writeFile(path.join(dir, "build", "appdata", "settings"), "theme=dark\n");
  return config(
    dir,
    JSON.stringify({
      name: "layerfold-tests/attack",
      tag: "1",
      layers: [
        {
          name: "base",
          inline: [
            { path: "/etc/passwd", text: "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n" },
            { path: "/etc/group", text: "root:x:0:\napp:x:1000:\n" },
            { path: "/etc/motd", text: "original\n" },
            { path: "/home/app/.profile", text: "# app\n", uid: 1000, gid: 1000 },
          ],
        },
        {
          name: "bin",
          files: [
            { src: "./build/probe", dest: "/usr/bin/probe", mode: 0o755, name: "probe" },
            { src: "./build/attack", dest: "/usr/bin/attack", mode: 0o755, name: "attack" },
            { src: "./build/appdata", dest: "/home/app/data", uid: 1000, gid: 1000, name: "appdata" },
          ],
        },
      ],
      config: { entrypoint: ["/usr/bin/attack"], cmd: ["status"] },
    }),
  );
}

/** Why the Debian Python image cannot be built here (no archive), or false. */
export async function debianReachable(): Promise<string | false> {
  try {
    const r = await fetch("http://deb.debian.org/debian/dists/bookworm/InRelease", { method: "HEAD", signal: AbortSignal.timeout(5000) });
    return r.ok ? false : `deb.debian.org answered ${r.status}; skipping the Debian Python image`;
  } catch (err) {
    return `deb.debian.org is unreachable (${(err as Error).message}); skipping the Debian Python image`;
  }
}

/** A shell image: the host's dash as /bin/sh with its libc and loader (for `shell` on a terminal). */
export async function shellImage(dir: string): Promise<string> {
  const build = path.join(dir, "build");
  await mkdir(build, { recursive: true });
  for (const [src, name] of [["/bin/dash", "dash"], ["/lib/x86_64-linux-gnu/libc.so.6", "libc.so.6"], ["/lib64/ld-linux-x86-64.so.2", "ld-linux-x86-64.so.2"]] as const) {
    await copyFile(src, path.join(build, name));
  }
  return config(
    dir,
    JSON.stringify({
      name: "layerfold-tests/shell",
      tag: "1",
      layers: [
        {
          name: "sh",
          files: [
            { src: "./build/dash", dest: "/bin/sh", mode: 0o755, name: "dash" },
            { src: "./build/libc.so.6", dest: "/lib/x86_64-linux-gnu/libc.so.6", mode: 0o755, name: "libc" },
            { src: "./build/ld-linux-x86-64.so.2", dest: "/lib64/ld-linux-x86-64.so.2", mode: 0o755, name: "ld-linux" },
          ],
        },
      ],
      config: { cmd: ["/bin/sh"] },
    }),
  );
}
