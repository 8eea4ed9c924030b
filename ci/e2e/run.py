#!/usr/bin/env python3
"""End to end: QEMU's proxy 9p driver (this host's 7.2, or Debian 11's 5.2
run inside a bullseye root), a Debian guest kernel mounting the share with
virtio-9p, and the helper (ours, or that QEMU's original) behind it.

Usage (as root; ci/e2e.sh installs what it needs and calls this):
  run.py --work DIR --helper-bin PATH [--mode socket|fd|both]
         [--helper ours|original|both] [--accel auto|kvm|tcg] [--phases N]
         [--client-root ROOT] [--wire-record FILE]
         [--ids plain|auto,translate,shifted --rootless-user NAME]

--ids runs ours in each listed id mode, socket mode, instead of the plain
runs: `auto`, NAME (an ordinary user with an /etc/subuid and /etc/subgid
range) runs QEMU and the helper, which makes its own user namespace with the
automatic map; `translate`, NAME runs both, the helper with id translation
rules only (one host id, no setuid helper); `shifted`, root runs the helper
with `--uid-map :0:1000000:65536:` (QEMU as 65534). The guest checks its
own ids; the host checks each file belongs to the mapped id.

With --client-root, QEMU, both helpers and every path they see live in
ROOT (a debootstrap root with its own QEMU, from ci/debian-root.sh): each
is chrooted there, as on a host of that release. The caller gives this a
mount namespace of its own (ROOT's /proc and /dev are mounted here).
--wire-record writes what our helper's trace log shows of the client's
requests (types, counts, numeric arguments, sizes) as JSON.

Prints one line per check ("ok ..." or "FAIL ...") and a final line
"N passed, M failed"; exits non-zero on any failure. Every wait is bounded
and nothing is left behind (processes killed, temporary directories removed).
"""
import argparse, glob, hashlib, json, os, re, shutil, signal, socket, stat, subprocess
import sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import qemu_guest  # noqa: E402
from qemu_guest import run_bounded  # noqa: E402

ORIGINAL = "/usr/lib/qemu/virtfs-proxy-helper"
QEMU_USER = 65534  # QEMU runs unprivileged, as in production
REQUEST_TYPES = ["T_OPEN", "T_CREATE", "T_MKNOD", "T_MKDIR", "T_SYMLINK", "T_LINK", "T_LSTAT",
                 "T_READLINK", "T_STATFS", "T_CHMOD", "T_CHOWN", "T_TRUNCATE", "T_UTIME",
                 "T_RENAME", "T_REMOVE", "T_LGETXATTR", "T_LLISTXATTR", "T_LSETXATTR",
                 "T_LREMOVEXATTR", "T_GETVERSION"]
RESULTS = []


def record(label, name, ok, detail=""):
    RESULTS.append(ok)
    line = f"{'ok  ' if ok else 'FAIL'} {label} {name}"
    if detail and not ok:
        line += f": {detail}"
    print(line, flush=True)


def module_order(kernel_tree):
    """The 9p and virtio modules with their dependencies, dependencies first."""
    index = {}
    for path in glob.glob(f"{kernel_tree}/lib/modules/*/kernel/**/*.ko", recursive=True):
        index[os.path.basename(path)[:-3].replace("-", "_")] = path
    def deps(name):
        data = open(index[name], "rb").read()
        m = re.search(rb"(?:^|\0)depends=([^\0]*)\0", data)
        return [d.decode().replace("-", "_") for d in m.group(1).split(b",") if d] if m else []
    order = []
    def visit(name):
        for d in deps(name):
            visit(d)
        if name not in order:
            order.append(name)
    for name in ["virtio_pci", "9pnet_virtio", "9p"]:
        visit(name)
    if "overlay" in index:
        # For the guest's overlayfs with its upper directory on the share.
        visit("overlay")
    return [(name, index[name]) for name in order]


def build_initramfs(work, kernel_tree, here):
    root = os.path.join(work, "initramfs")
    shutil.rmtree(root, ignore_errors=True)
    for d in ["bin", "proc", "sys", "dev", "mnt", "modules", "tmp"]:
        os.makedirs(os.path.join(root, d))
    shutil.copy("/bin/busybox", os.path.join(root, "bin/busybox"))
    subprocess.run(["gcc", "-static", "-O2", "-o", os.path.join(root, "bin/guest-tool"),
                    os.path.join(here, "guest-tool.c")], check=True)
    shutil.copy(os.path.join(here, "init"), os.path.join(root, "init"))
    os.chmod(os.path.join(root, "init"), 0o755)
    names = []
    for name, path in module_order(kernel_tree):
        shutil.copy(path, os.path.join(root, "modules", name + ".ko"))
        names.append(name)
    with open(os.path.join(root, "modules/order"), "w") as f:
        f.write("\n".join(names) + "\n")
    return qemu_guest.pack_initramfs(root, os.path.join(work, "initramfs.cpio.gz"))


class Place:
    """Where the client and the helpers run: this host (root "/"), or a
    release's root they are chrooted into. Files are made at host paths;
    `inside` names them as the chrooted processes see them."""

    def __init__(self, root):
        self.root = os.path.realpath(root) if root else "/"
        if self.root != "/":
            for what, args in [("proc", ["-t", "proc", "proc"]), ("dev", ["--bind", "/dev"])]:
                subprocess.run(["mount", *args, os.path.join(self.root, what)], check=True)

    def tmpdir(self, prefix):
        base = os.path.join(self.root, "tmp") if self.root != "/" else None
        d = tempfile.mkdtemp(prefix=prefix, dir=base)
        os.chmod(d, 0o755)
        return d

    def inside(self, path):
        if self.root == "/":
            return path
        assert path.startswith(self.root + "/"), path
        return path[len(self.root):]

    def enter(self):
        if self.root != "/":
            os.chroot(self.root)
            os.chdir("/")


def qemu_command(kernel, initrd, accel, append, fsdev):
    cmd = ["qemu-system-x86_64", "-machine", f"pc,accel={accel}", "-m", "1024", "-smp", "1",
           "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
           "-kernel", kernel, "-initrd", initrd,
           "-append", f"console=ttyS0 panic=-1 quiet loglevel=3 {append}"]
    if fsdev:
        cmd += ["-fsdev", fsdev, "-device", "virtio-9p-pci,fsdev=fs0,mount_tag=share"]
    return cmd


def choose_accel(place, kernel, initrd, wanted):
    return qemu_guest.choose_accel(
        lambda accel: qemu_command(place.inside(kernel), place.inside(initrd), accel, "vph.probe",
                                   None), wanted, preexec=place.enter)


def md5(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_state(path):
    state = []
    for dirpath, dirnames, filenames in os.walk(path):
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            content = open(p, "rb").read() if stat.S_ISREG(st.st_mode) else b""
            state.append((p, st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, content))
    return state


class Ids:
    """How guest ids land on the host in one id mode: `uid(g)`, `gid(g)`."""

    def __init__(self, mode, user=None):
        self.mode = mode
        self.user = user
        if mode in ("auto", "translate"):
            import pwd
            pw = pwd.getpwnam(user)
            self.host_uid, self.host_gid = pw.pw_uid, pw.pw_gid
            self.sub_uid = subordinate("/etc/subuid", user, pw.pw_uid)
            self.sub_gid = subordinate("/etc/subgid", user, pw.pw_uid)

    def _map(self, g, own, sub):
        if self.mode == "plain":
            return g
        if self.mode == "shifted":
            return 1000000 + g
        if self.mode == "translate" or g == 0:
            return own
        return sub + g - 1

    def uid(self, g):
        return self._map(g, getattr(self, "host_uid", 0), getattr(self, "sub_uid", 0))

    def gid(self, g):
        return self._map(g, getattr(self, "host_gid", 0), getattr(self, "sub_gid", 0))

    def runs_as_user(self):
        return self.mode in ("auto", "translate")

    # The auto mode also maps the guest's security.* and trusted.* xattrs
    # (which the host refuses rootless) under user.virtiofs.
    XATTRMAP = ":prefix:all:trusted.:user.virtiofs.: :bad:server::trusted.: :map:security.:user.virtiofs.:"

    def helper_args(self):
        if self.mode == "auto":
            return ["--xattrmap", self.XATTRMAP]
        if self.mode == "shifted":
            return ["--uid-map", ":0:1000000:65536:", "--gid-map", ":0:1000000:65536:"]
        if self.mode == "translate":
            u, g = self.host_uid, self.host_gid
            return ["--translate-uid", f"squash-guest:0:{u}:4294967295",
                    "--translate-uid", f"host:{u}:1000:1",
                    "--translate-gid", f"squash-guest:0:{g}:4294967295",
                    "--translate-gid", f"host:{g}:1000:1"]
        return []

    def guest_append(self):
        if self.mode == "plain":
            return ""
        return ("vph.rootless=1" + (" vph.ids=squashed" if self.mode == "translate" else "")
                + (" vph.xattrmap=1" if self.mode == "auto" else ""))


def subordinate(path, user, uid):
    for line in open(path):
        f = line.strip().split(":")
        if len(f) == 3 and f[0] in (user, str(uid)):
            return int(f[1])
    raise SystemExit(f"e2e: {user} has no range in {path}")


def host_acl_users(path):
    """The ACL_USER ids of a file's system.posix_acl_access, as stored."""
    try:
        v = os.getxattr(path, "system.posix_acl_access", follow_symlinks=False)
    except OSError as e:
        return repr(e)
    return [int.from_bytes(v[i + 4:i + 8], "little") for i in range(4, len(v) - 7, 8)
            if int.from_bytes(v[i:i + 2], "little") == 0x02]


def host_checks(label, export, console, ids):
    def check(name, cond, detail=""):
        record(label, "host: " + name, cond, detail)
    p = lambda rel: os.path.join(export, rel)
    sums = dict(re.findall(r"^MD5 (\S+) ([0-9a-f]{32})", console, re.M))
    host_sum = md5(p("big")) if os.path.exists(p("big")) else None
    check("32MiB-checksum", host_sum and sums.get("big") == host_sum == sums.get("big-reread"),
          f"guest {sums.get('big')} / reread {sums.get('big-reread')} / host {host_sum}")
    check("listdir-1000", os.path.isdir(p("many")) and len(os.listdir(p("many"))) == 1000)
    check("symlink", os.path.islink(p("sl")) and os.readlink(p("sl")) == "hostfile")
    check("hardlink", os.path.exists(p("b")) and os.stat(p("a")).st_ino == os.stat(p("b")).st_ino
          and os.stat(p("a")).st_nlink == 2)
    check("rename", os.path.isfile(p("r2/h")) and os.listdir(p("r1")) == [])
    check("mode", os.path.exists(p("modefile")) and stat.S_IMODE(os.stat(p("modefile")).st_mode) == 0o640)
    def owned(name, rel, uid, gid):
        st = os.lstat(p(rel)) if os.path.lexists(p(rel)) else None
        want = (ids.uid(uid), ids.gid(gid))
        check(name, st and (st.st_uid, st.st_gid) == want, f"{st and (st.st_uid, st.st_gid)}, want {want}")
    owned("owner", "ownfile", 1234, 5678)
    owned("created-by-guest-user", "userdir/userfile", 1000, 1000)
    owned("mkdir-by-guest-user", "userdir/usersub", 1000, 1000)
    owned("created-by-guest-root", "modefile", 0, 0)
    owned("chowned-between-guest-ids", "chowned", 1001, 1001)
    users = host_acl_users(p("aclfile"))
    check("acl-names-guest-1000", users == [ids.uid(1000)], f"{users}, want {[ids.uid(1000)]}")
    check("truncate", os.path.exists(p("trunc")) and os.stat(p("trunc")).st_size == 100
          and open(p("trunc"), "rb").read(4) == b"0123")
    check("mtime", os.path.exists(p("timed")) and int(os.stat(p("timed")).st_mtime) == 981173106)
    check("fifo", os.path.exists(p("fifo")) and stat.S_ISFIFO(os.lstat(p("fifo")).st_mode))
    st = os.lstat(p("cdev")) if os.path.exists(p("cdev")) else None
    if ids.mode == "plain":
        check("chardev-1:3", st and stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3))
    else:
        # Root of a user namespace may not make device nodes.
        check("no-chardev-made-in-a-user-namespace", st is None)
    try:
        value = os.getxattr(p("xfile"), "user.e2e")
        names = os.listxattr(p("xfile"))
    except OSError as e:
        value, names = repr(e), []
    check("xattr", value == b"value1" and "user.gone" not in names, f"{value} {names}")
    check("unlink", not os.path.exists(p("unl")))
    if ids.mode == "auto":
        # --xattrmap: the guest's names are stored under user.virtiofs.
        for rel, name in [("sefile", "user.virtiofs.security.selinux"),
                          ("opq", "user.virtiofs.trusted.overlay.opaque")]:
            try:
                names = os.listxattr(p(rel), follow_symlinks=False)
            except OSError as e:
                names = [repr(e)]
            check(f"stored-as-{name}", names == [name], f"{rel}: {names}")
    for mode in ["none", "loose", "mmap"]:
        f = p(f"cache-{mode}")
        check(f"cache={mode}-content", os.path.exists(f) and open(f).read() == f"written with cache={mode}\n")
    check("mmap-content", os.path.exists(p("mmapped")) and open(p("mmapped")).read() == "written through mmap")


def wire_record(stderr):
    """Per request type, from our helper's trace lines: how often the
    client sent it, the distinct numeric arguments, the payload sizes."""
    record = {}
    for kind, rest in re.findall(r'served request="(T_[A-Z]+)" (.*)', stderr):
        fields = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', rest))
        r = record.setdefault(kind, {"count": 0, "args": {}, "len_min": None, "len_max": 0})
        r["count"] += 1
        args = fields.get("args", "").strip('"')
        r["args"][args] = r["args"].get(args, 0) + 1
        n = int(fields.get("len", 0))
        r["len_min"] = n if r["len_min"] is None else min(r["len_min"], n)
        r["len_max"] = max(r["len_max"], n)
    return record


def as_user(place, uid, gid, groups=()):
    def drop():
        place.enter()
        os.setgroups(list(groups))
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    return drop


def chown_tree(path, uid, gid):
    for dirpath, dirnames, filenames in os.walk(path):
        os.lchown(dirpath, uid, gid)
        for name in filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)


def run_one(args, here, place, kernel, initrd, accel, helper, mode, ids=None):
    ids = ids or Ids("plain")
    label = f"[{args.client_name} {helper}/{mode}" + ("" if ids.mode == "plain" else f" ids={ids.mode}") + "]"
    tmp = place.tmpdir("vph-e2e-")
    export, outside = os.path.join(tmp, "export"), os.path.join(tmp, "outside")
    os.makedirs(os.path.join(export, "hostdir"))
    os.makedirs(outside)
    with open(os.path.join(export, "hostfile"), "w") as f:
        f.write("from the host\n")
    with open(os.path.join(outside, "canary"), "w") as f:
        f.write("must stay untouched\n")
    outside_before = tree_state(outside)
    ours = helper != "original"
    qemu_uid = qemu_gid = QEMU_USER
    helper_preexec = place.enter
    if ids.runs_as_user():
        # An ordinary user runs QEMU and the helper; guest root is that user.
        qemu_uid, qemu_gid = ids.host_uid, ids.host_gid
        os.chown(tmp, qemu_uid, qemu_gid)
        chown_tree(export, qemu_uid, qemu_gid)
        helper_preexec = as_user(place, qemu_uid, qemu_gid)
    elif ids.mode == "shifted":
        chown_tree(export, ids.uid(0), ids.gid(0))
    if ours and (place.root != "/" or ids.runs_as_user()):
        # Ours runs where the client does, as on a host of that release.
        shutil.copy(args.helper_bin, os.path.join(tmp, "virtfs-proxy-helper"))
        binary = place.inside(os.path.join(tmp, "virtfs-proxy-helper"))
    else:
        binary = args.helper_bin if ours else ORIGINAL
    at = place.inside
    procs, kvm_groups = [], []
    # Ours logs each request at trace level: proof the guest used them all.
    trace = (["--log-level", "trace"] if ours else []) + ids.helper_args()
    if accel == "kvm":
        kvm_groups = [os.stat("/dev/kvm").st_gid]
    log_path = os.path.join(tmp, "helper.log")
    log = open(log_path, "wb")
    try:
        if mode == "socket":
            sock = os.path.join(tmp, "proxy.sock")
            cmd = [binary, "-n", "-p", at(export), "-s", at(sock), "-u", str(qemu_uid),
                   "-g", str(qemu_gid)] + trace
            helper_proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                           stderr=log, preexec_fn=helper_preexec)
            procs.append(helper_proc)
            deadline = time.monotonic() + 10
            while not os.path.exists(sock) and time.monotonic() < deadline:
                time.sleep(0.02)
            fsdev, pass_fds = f"proxy,id=fs0,socket={at(sock)}", ()
        else:
            qemu_end, helper_end = socket.socketpair()
            cmd = [binary, "-n", "-p", at(export), "-f", str(helper_end.fileno())] + trace
            helper_proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                           stderr=log, pass_fds=(helper_end.fileno(),),
                                           preexec_fn=helper_preexec)
            procs.append(helper_proc)
            helper_end.close()
            fsdev, pass_fds = f"proxy,id=fs0,sock_fd={qemu_end.fileno()}", (qemu_end.fileno(),)
        append = " ".join(filter(None, [f"vph.phases={args.phases}" if args.phases else "",
                                        ids.guest_append()]))
        start = time.monotonic()
        console, in_time = run_bounded(qemu_command(at(kernel), at(initrd), accel, append, fsdev),
                                       args.timeout,
                                       preexec=as_user(place, qemu_uid, qemu_gid, kvm_groups),
                                       pass_fds=pass_fds, until="E2E-DONE")
        elapsed = time.monotonic() - start
        if mode == "fd":
            qemu_end.close()
        record(label, "guest finished", in_time and "E2E-DONE" in console,
               f"no E2E-DONE within {args.timeout}s; console tail:\n{console[-3000:]}")
        for name, result, detail in re.findall(r"^CHECK (\S+) (ok|fail) ?(.*)$", console, re.M):
            record(label, "guest: " + name, result == "ok", detail.strip())
        for note in re.findall(r"^NOTE (.*)$", console, re.M):
            print(f"{label} note: {note.strip()}", flush=True)
        host_checks(label, export, console, ids)
        record(label, "outside the export unchanged", tree_state(outside) == outside_before)
        try:
            code = helper_proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            code = None
        log.flush()
        stderr = open(log_path, "rb").read().decode(errors="replace")
        if not (in_time and "E2E-DONE" in console):
            print(f"{label} helper log:\n{stderr[-3000:]}", flush=True)
        if ids.mode != "plain":
            maps = re.search(r'ids="([^"]*)"', stderr)
            record(label, "the log states the id maps in force", bool(maps) and "uid " in maps.group(1),
                   maps.group(0) if maps else "no ids= in the sandbox line")
            print(f"{label} {maps.group(0) if maps else ''}", flush=True)
        if ours:
            seen = set(re.findall(r'served request="(T_[A-Z]+)"', stderr))
            missing = sorted(set(REQUEST_TYPES) - seen)
            record(label, f"guest workload reached all {len(REQUEST_TYPES)} request types", not missing,
                   f"never sent: {missing}")
        # The original exits 0 in any case; ours exits 0 after a clean disconnect.
        record(label, "helper exited cleanly after QEMU disconnected", code == 0, f"status {code}\n{stderr[-2000:]}")
        phases = {k: int(v) for k, v in re.findall(r"^PHASE (\S+) (\d+)", console, re.M)}
        return {"elapsed": elapsed, "phases": phases, "wire": wire_record(stderr) if ours else None}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True, help="cache directory with the unpacked kernel")
    ap.add_argument("--helper-bin", required=True)
    ap.add_argument("--helper", choices=["ours", "original", "both"], default="ours")
    ap.add_argument("--mode", choices=["socket", "fd", "both"], default="both")
    ap.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto")
    ap.add_argument("--phases", type=int, default=2000, help="small files in the timed phases (0: skip)")
    ap.add_argument("--timeout", type=int, default=420, help="seconds per guest run")
    ap.add_argument("--client-root", help="run QEMU and the helpers chrooted in this root")
    ap.add_argument("--client-name", default="qemu-7.2", help="the client's name in each line")
    ap.add_argument("--wire-record", help="write our helper's view of the requests here (JSON)")
    ap.add_argument("--ids", default="plain",
                    help="plain, or id modes to run ours in (comma-separated: auto,translate,shifted)")
    ap.add_argument("--rootless-user", help="the ordinary user of the auto and translate modes")
    args = ap.parse_args()
    place = Place(args.client_root)
    here = os.path.dirname(os.path.abspath(__file__))
    kernel_tree = os.path.join(args.work, "kernel")
    kernel = sorted(glob.glob(f"{kernel_tree}/boot/vmlinuz-*"))[-1]
    build_dir = place.tmpdir("vph-e2e-build-")
    qemu_version = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                                  text=True, preexec_fn=place.enter).stdout.splitlines()[0]
    try:
        initrd = build_initramfs(build_dir, kernel_tree, here)
        shutil.copy(kernel, os.path.join(build_dir, "vmlinuz"))
        kernel = os.path.join(build_dir, "vmlinuz")
        os.chmod(kernel, 0o644)
        accel = choose_accel(place, kernel, initrd, args.accel)
        print(f"client: {qemu_version} (root {place.root}); accelerator: {accel}; kernel {os.path.basename(sorted(glob.glob(f'{kernel_tree}/boot/vmlinuz-*'))[-1])}", flush=True)
        helpers = ["ours", "original"] if args.helper == "both" else [args.helper]
        modes = ["socket", "fd"] if args.mode == "both" else [args.mode]
        timings = {}
        if args.ids != "plain":
            for mode in args.ids.split(","):
                ids = Ids(mode, args.rootless_user)
                timings[("ours", f"socket ids={mode}")] = run_one(
                    args, here, place, kernel, initrd, accel, "ours", "socket", ids)
            helpers, modes = [], []
        for helper in helpers:
            for mode in modes:
                timings[(helper, mode)] = run_one(args, here, place, kernel, initrd, accel, helper,
                                                  mode)
        if args.wire_record:
            with open(args.wire_record, "w") as f:
                json.dump({"client": qemu_version, "runs": {
                    f"{h}/{m}": t["wire"] for (h, m), t in timings.items() if t["wire"]}},
                    f, indent=1, sort_keys=True)
        if args.phases:
            print(f"\nTimed guest phases ({args.phases} small files, ms, accelerator {accel}):")
            names = ["create", "stat", "read", "remove"]
            print("| helper/mode | " + " | ".join(names) + " | whole guest run (s) |")
            print("|---" * (len(names) + 2) + "|")
            for (helper, mode), t in timings.items():
                cells = [str(t["phases"].get(n, "-")) for n in names]
                print(f"| {helper}/{mode} | " + " | ".join(cells) + f" | {t['elapsed']:.1f} |")
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    passed, failed = RESULTS.count(True), RESULTS.count(False)
    print(f"\n{passed} passed, {failed} failed")
    sys.exit(1 if failed or not passed else 0)


if __name__ == "__main__":
    main()
