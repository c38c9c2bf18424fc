// As root the container's root is an unprivileged host uid (idmap.ts), so a
// directory given with -v would be read and written as that uid: a root-owned
// output directory would be read-only to it, unlike docker. An idmapped mount
// (Linux 5.12+, mount_setattr(MOUNT_ATTR_IDMAP)) shows the directory through
// the container's mapping instead: the host's uid 0 is the container's root
// there, and what the container writes is owned by the host's root. runc 1.1
// cannot make one (1.2 can), so the wrapper makes it before starting runc, in
// its private mount namespace, with python3's ctypes (no compiler needed); a
// bind mount of it keeps the mapping. Where the filesystem cannot (NFS, old
// kernels), the plain bind is used and a warning says what the container sees.

/** Python: make an idmapped clone of SRC (recursive) at TARGET using a user namespace mapping 0..65535 to UID/GID. */
const SCRIPT = String.raw`
import ctypes, os, sys, signal
uid, gid, src, target = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def check(r, what):
    if r < 0:
        e = ctypes.get_errno()
        sys.exit(what + ": " + os.strerror(e))
    return r
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(w)
    check(libc.unshare(0x10000000), "unshare(CLONE_NEWUSER)")
    os.read(r, 1)
    os._exit(0)
os.close(r)
try:
    # The child's namespace exists once /proc/PID/ns/user differs from ours.
    while os.readlink("/proc/%d/ns/user" % pid) == os.readlink("/proc/self/ns/user"):
        if os.waitpid(pid, os.WNOHANG)[0]:
            sys.exit("could not make a user namespace")
    with open("/proc/%d/uid_map" % pid, "w") as f: f.write("0 %d 65536\n" % uid)
    with open("/proc/%d/setgroups" % pid, "w") as f: f.write("deny")
    with open("/proc/%d/gid_map" % pid, "w") as f: f.write("0 %d 65536\n" % gid)
    userns = os.open("/proc/%d/ns/user" % pid, os.O_RDONLY)
finally:
    os.write(w, b"x")
    os.waitpid(pid, 0)
AT_FDCWD, AT_EMPTY_PATH, AT_RECURSIVE = -100, 0x1000, 0x8000
OPEN_TREE_CLONE, OPEN_TREE_CLOEXEC, MOVE_MOUNT_F_EMPTY_PATH, MOUNT_ATTR_IDMAP = 1, 0o2000000, 4, 0x00100000
class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64), ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]
# Generic syscall numbers (x86-64, arm64, riscv64, ppc64, s390x share them).
L = ctypes.c_long
fd = check(libc.syscall(L(428), L(AT_FDCWD), src.encode(), L(OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE)), "open_tree")
attr = MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns)
check(libc.syscall(L(442), L(fd), b"", L(AT_EMPTY_PATH | AT_RECURSIVE), ctypes.byref(attr), L(ctypes.sizeof(attr))), "mount_setattr(MOUNT_ATTR_IDMAP)")
check(libc.syscall(L(429), L(fd), b"", L(AT_FDCWD), target.encode(), L(MOVE_MOUNT_F_EMPTY_PATH)), "move_mount")
`;

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Shell lines (for the wrapper, as host root in its private mount namespace) that mount
 * `src` at `target` idmapped to the container's root (host uid/gid), or else bind it plainly
 * and warn on fd `warnFd`. `target` must exist (a directory for a directory, a file for a file).
 */
export function idmappedBindLines(src: string, target: string, uid: number, gid: number, what: string, warnFd: number): string[] {
  return [
    `if ! why=$(python3 -c ${q(SCRIPT)} ${uid} ${gid} ${q(src)} ${q(target)} 2>&1); then`,
    `  mount --rbind ${q(src)} ${q(target)}`,
    `  echo "layerfold: warning: ${what.replace(/["$`\\]/g, "\\$&")}: no idmapped mount ($why); the container's root is host uid ${uid} there" >&${warnFd}`,
    "fi",
  ];
}
