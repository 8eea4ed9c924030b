#!/usr/bin/env python3
"""Counts the syscalls each request type costs a helper, with strace -c.

Usage: ci/syscalls-per-request.py HELPER -n -f FD -p EXPORT [more args]
Runs the helper (on a socketpair; FD in its arguments is the fd number) once per request type with 0 and
with N requests, and prints (count_N - count_0) / N per syscall. The export
is a fresh temporary directory with dir/file, dir/link and a user xattr.
"""
import os, socket, struct, subprocess, sys, tempfile, collections, shutil

N = 200
def s(b): return struct.pack("=H", len(b)) + b
def d(v): return struct.pack("=i", v)
def q(v): return struct.pack("=q", v)
F = b"//dir/file"
REQS = {
    "T_LSTAT": [(8, s(F))],
    "T_OPEN+close": [(2, s(F) + d(os.O_RDONLY))],
    "T_CREATE+T_REMOVE": [(3, s(b"//dir/new") + d(os.O_CREAT | os.O_EXCL | os.O_RDWR) + d(0o644) + d(0) + d(0)), (16, s(b"//dir/new"))],
    "T_READLINK": [(9, s(b"//dir/link") + d(4096))],
    "T_LGETXATTR": [(17, d(64) + s(F) + s(b"user.bench"))],
    "T_STATFS": [(10, s(F))],
    "T_CHMOD": [(11, s(F) + d(0o644))],
    "T_UTIME": [(14, s(F) + q(1000) + q(0) + q(2000) + q(0))],
}

def run(cmd, reqs, n):
    export = tempfile.mkdtemp(prefix="vph-strace")
    os.mkdir(os.path.join(export, "dir"))
    with open(os.path.join(export, "dir/file"), "w") as f: f.write("x" * 4096)
    os.symlink("file", os.path.join(export, "dir/link"))
    os.setxattr(os.path.join(export, "dir/file"), "user.bench", b"value")
    a, b = socket.socketpair()
    out = tempfile.mktemp()
    fd = str(b.fileno())
    args = ["strace", "-f", "-c", "-o", out] + [x.replace("EXPORT", export).replace("FD", fd) for x in cmd]
    p = subprocess.Popen(args, pass_fds=(b.fileno(),), stderr=subprocess.DEVNULL)
    b.close()
    for _ in range(n):
        for t, payload in reqs:
            a.sendall(struct.pack("=II", t, len(payload)) + payload)
            if t in (2, 3):
                msg, anc, _, _ = a.recvmsg(4, socket.CMSG_SPACE(4))
                for lvl, typ, data in anc:
                    os.close(struct.unpack("=i", data[:4])[0])
            else:
                hdr = a.recv(8, socket.MSG_WAITALL)
                _, size = struct.unpack("=II", hdr)
                a.recv(size, socket.MSG_WAITALL)
    a.close()
    p.wait()
    counts = collections.Counter()
    for line in open(out):
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            calls = int(parts[3]) if parts[3].isdigit() else 0
            counts[parts[-1]] += calls
    os.unlink(out)
    shutil.rmtree(export)
    return counts

cmd = sys.argv[1:]
for name, reqs in REQS.items():
    base = run(cmd, reqs, 0)
    many = run(cmd, reqs, N)
    per = {k: (many[k] - base.get(k, 0)) / N for k in many if (many[k] - base.get(k, 0)) / N >= 0.5}
    total = sum(per.values())
    print(f"{name:18} {total:4.1f}  " + " ".join(f"{k}:{v:g}" for k, v in sorted(per.items(), key=lambda kv: -kv[1])))
