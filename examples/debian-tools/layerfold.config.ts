// Debian bookworm from the real archive, in three folded layers plus the
// generated one (dpkg status, alternatives, accounts, ld.so.cache):
//   base         the Essential set (what debootstrap --variant=minbase installs)
//                plus apt, so images built FROM this one can apt-get install
//   python       python3 (3.11) with ssl and sqlite3
//   build-tools  gcc, make, git
// Signatures are checked against the host's debian-archive-keyring.
import { defineImage } from "layerfold";

export default defineImage({
  name: "layerfold-examples/debian-tools",
  tag: "bookworm",
  debian: {
    sources: [
      { uri: "http://deb.debian.org/debian", suites: ["bookworm", "bookworm-updates"], components: ["main"] },
      "deb http://deb.debian.org/debian-security bookworm-security main",
    ],
    users: [{ name: "builder", uid: 1000, shell: "/bin/bash" }],
  },
  layers: [
    { name: "base", debian: { packages: ["usr-is-merged", "ca-certificates", "apt"], essential: true } },
    { name: "python", debian: ["python3"] },
    { name: "build-tools", debian: ["gcc", "make", "git", "libc6-dev"] },
  ],
  config: {
    env: { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8" },
    cmd: ["/bin/bash"],
  },
});
