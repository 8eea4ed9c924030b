#!/usr/bin/env python3
"""The kernel matrix: the helper's own integration suite, run as root inside
a guest booted with each Debian kernel series, under QEMU.

Usage (as root; ci/kernels.sh installs what it needs, builds, and calls this):
  run.py --cache DIR --list FILE --helper PATH [--accel auto|kvm|tcg]
         [--timeout S] [--json OUT] [SERIES ...]

SERIES are 5.10 (bullseye), 6.1 (bookworm), 6.12 (trixie), 7.2 (sid) and
7.3 (experimental); none means all. Kernels come from Debian's archive
through a private apt configuration under --cache (the host's own sources
are only read, for the archive's address and keyring), unpacked, never
installed.

The guest's root is the host's root, shared read-only over virtio-9p, so
the test binaries built on the host run there unchanged; their exports live
on an ext4 image attached as a virtio disk. The guest runs guest.sh: the
sandbox report, then every test binary as root and again as an unprivileged
user inside a user namespace, as ci/test.sh does on the host.

Prints the exact kernel version, the guest's report and counts per kernel,
a table, and last "N passed, M failed" over all kernels; exits non-zero when
anything failed or a guest did not finish.
"""
import argparse, glob, json, lzma, os, re, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import qemu_guest  # noqa: E402
from debian_archive import host_archive  # noqa: E402
from qemu_guest import run_bounded  # noqa: E402

SERIES = {"5.10": "bullseye", "6.1": "bookworm", "6.12": "trixie", "7.2": "sid",
          "7.3": "experimental"}
# Releases whose security archive carries newer kernels than the point
# release: an up-to-date host of that release runs the newest of the two.
SECURITY = {"bullseye", "bookworm", "trixie"}
HERE = os.path.dirname(os.path.abspath(__file__))
INITRAMFS_MODULES = ["virtio_pci", "9pnet_virtio", "9p"]


# ---- Debian's archive, through a private apt configuration ----

class Apt:
    def __init__(self, root):
        self.root = root
        for d in ["lists/partial", "cache/archives/partial", "etc/preferences.d", "debs"]:
            os.makedirs(os.path.join(root, d), exist_ok=True)
        uri, keyring = host_archive()
        security_uri, security_keyring = host_archive(security=True)
        with open(os.path.join(root, "etc/sources.list"), "w") as f:
            for suite in SERIES.values():
                f.write(f"deb [arch=amd64 signed-by={keyring}] {uri} {suite} main\n")
            for suite in sorted(SECURITY):
                f.write(f"deb [arch=amd64 signed-by={security_keyring}] {security_uri} "
                        f"{suite}-security main\n")
        self.opts = [
            "-o", f"Dir::Etc::SourceList={root}/etc/sources.list",
            "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::Etc::PreferencesParts={root}/etc/preferences.d",
            "-o", "Dir::Etc::Preferences=/dev/null",
            "-o", f"Dir::State::Lists={root}/lists",
            "-o", f"Dir::Cache={root}/cache",
            "-o", "Dir::State::Status=/dev/null",
            "-o", "APT::Sandbox::User=root",
            "-o", "Debug::NoLocking=1",
        ]
        self.updated = False

    def update(self):
        if not self.updated:
            subprocess.run(["apt-get", *self.opts, "-qq", "update"], check=True)
            self.updated = True

    def show(self, spec):
        out = subprocess.run(["apt-cache", *self.opts, "show", spec], capture_output=True,
                             text=True)
        if out.returncode != 0 or not out.stdout.strip():
            return None
        fields = {}
        for line in out.stdout.split("\n\n")[0].splitlines():
            if ":" in line and not line.startswith(" "):
                k, v = line.split(":", 1)
                fields[k] = v.strip()
        return fields

    def newest_kernel(self, suite):
        """linux-image-amd64's fields as an up-to-date host of `suite` has
        it: the newer of the suite's and its security archive's."""
        best = None
        for source in [suite] + ([f"{suite}-security"] if suite in SECURITY else []):
            fields = self.show(f"linux-image-amd64/{source}")
            if fields and (best is None or subprocess.run(
                    ["dpkg", "--compare-versions", fields["Version"], "gt", best["Version"]]
            ).returncode == 0):
                best = fields
        return best

    def kernel_packages(self, suite):
        """The packages that make up linux-image-amd64 in `suite` (or its
        security archive, where newer): the image, and from 7.x on the
        separate binary and modules packages."""
        top = self.newest_kernel(suite)
        if top is None or (suite in SECURITY and not self.updated):
            # A security update may have come since the lists were read.
            self.update()
            top = self.newest_kernel(suite)
        if top is None:
            sys.exit(f"kernels: no linux-image-amd64 in {suite}")
        wanted, todo = {}, [top]
        while todo:
            fields = todo.pop()
            for dep in fields.get("Depends", "").split(","):
                m = re.match(r"\s*(linux-(?:image|binary|modules)-[^\s|]+)\s*\(=\s*([^)]+)\)", dep)
                if m and m.group(1) not in wanted:
                    wanted[m.group(1)] = m.group(2).strip()
                    sub = self.show(f"{m.group(1)}={m.group(2).strip()}")
                    if sub:
                        todo.append(sub)
        return top["Version"], wanted

    def download(self, name, version):
        debs = os.path.join(self.root, "debs")
        pattern = os.path.join(debs, f"{name}_{version.replace(':', '%3a')}_*.deb")
        if not glob.glob(pattern):
            subprocess.run(["apt-get", *self.opts, "-qq", "download", f"{name}={version}"],
                           cwd=debs, check=True)
        return glob.glob(pattern)[0]


def fetch_kernel(apt, cache, series):
    """Unpacks the kernel of `series` into cache/SERIES (once) and runs
    depmod there; returns (tree, modules dir, release, vmlinuz, package
    version)."""
    tree = os.path.join(cache, series)
    stamp = os.path.join(tree, ".complete")
    version, packages = apt.kernel_packages(SERIES[series])
    if not os.path.exists(stamp) or open(stamp).read().strip() != version:
        shutil.rmtree(tree, ignore_errors=True)
        os.makedirs(tree)
        for name, v in sorted(packages.items()):
            deb = apt.download(name, v)
            subprocess.run(["dpkg-deb", "-x", deb, tree], check=True)
        with open(stamp, "w") as f:
            f.write(version + "\n")
    version = open(stamp).read().strip()
    modules, release, vmlinuz = kernel_layout(tree)
    # modprobe -d TREE (in the guest) and depmod -b TREE look in
    # TREE/lib/modules, where 7.x packages have usr/lib/modules.
    if not os.path.exists(os.path.join(tree, "lib/modules")):
        os.makedirs(os.path.join(tree, "lib"), exist_ok=True)
        os.symlink("../usr/lib/modules", os.path.join(tree, "lib/modules"))
    if not os.path.exists(os.path.join(modules, release, "modules.dep")):
        subprocess.run(["depmod", "-b", tree, release], check=True, stderr=subprocess.DEVNULL)
    return tree, modules, release, vmlinuz, version


def kernel_layout(tree):
    """(the lib/modules directory, the release, the vmlinuz path): up to 6.x
    in /lib/modules and /boot, from 7.x in /usr/lib/modules/RELEASE."""
    for modules in [os.path.join(tree, "lib/modules"), os.path.join(tree, "usr/lib/modules")]:
        if not os.path.isdir(modules):
            continue
        for release in sorted(os.listdir(modules), reverse=True):
            for vmlinuz in [os.path.join(tree, "boot", f"vmlinuz-{release}"),
                            os.path.join(modules, release, "vmlinuz")]:
                if os.path.exists(vmlinuz):
                    return modules, release, vmlinuz
    sys.exit(f"kernels: no vmlinuz and modules in {tree}")


# ---- the guest ----

def read_module(path):
    """A module's bytes, decompressed (busybox insmod takes plain ELF)."""
    data = open(path, "rb").read()
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", path], capture_output=True, check=True).stdout
    if path.endswith(".gz"):
        import gzip
        return gzip.decompress(data)
    return data


def module_order(modules, release, names):
    """`names` with their dependencies, dependencies first, from modules.dep;
    names built into the kernel are skipped."""
    base = os.path.join(modules, release)
    deps = {}
    for line in open(os.path.join(base, "modules.dep")):
        target, _, rest = line.partition(":")
        deps[target.strip()] = rest.split()
    by_name = {re.sub(r"\.ko(\..*)?$", "", os.path.basename(p)).replace("-", "_"): p
               for p in deps}
    order = []
    def visit(path):
        for d in deps.get(path, []):
            visit(d)
        if path not in order:
            order.append(path)
    for name in names:
        if name in by_name:
            visit(by_name[name])
    return [(re.sub(r"\.ko(\..*)?$", "", os.path.basename(p)), os.path.join(base, p))
            for p in order]


def build_initramfs(work, modules, release):
    root = os.path.join(work, "initramfs")
    shutil.rmtree(root, ignore_errors=True)
    for d in ["bin", "proc", "sys", "dev", "host", "modules"]:
        os.makedirs(os.path.join(root, d))
    shutil.copy("/bin/busybox", os.path.join(root, "bin/busybox"))
    shutil.copy(os.path.join(HERE, "init"), os.path.join(root, "init"))
    os.chmod(os.path.join(root, "init"), 0o755)
    names = []
    for name, path in module_order(modules, release, INITRAMFS_MODULES):
        with open(os.path.join(root, "modules", name + ".ko"), "wb") as f:
            f.write(read_module(path))
        names.append(name)
    with open(os.path.join(root, "modules/order"), "w") as f:
        f.write("\n".join(names) + "\n")
    return qemu_guest.pack_initramfs(root, os.path.join(work, "initramfs.cpio.gz"))


def make_disk(path, size_mib=2048):
    with open(path, "wb") as f:
        f.truncate(size_mib << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "vph-scratch", path], check=True)


def qemu_command(kernel, initrd, accel, append, disk=None, smp=2, userland=None):
    cmd = ["qemu-system-x86_64", "-machine", f"q35,accel={accel}", "-m", "2048",
           "-smp", str(smp), "-cpu", "max" if accel == "tcg" else "host",
           "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
           "-kernel", kernel, "-initrd", initrd,
           "-append", f"console=ttyS0 panic=-1 quiet loglevel=3 {append}"]
    if disk:
        cmd += ["-virtfs", "local,path=/,mount_tag=hostroot,security_model=passthrough,"
                           "readonly=on,multidevs=remap,id=hostroot",
                "-drive", f"file={disk},format=raw,if=virtio,cache=unsafe"]
    if userland:
        cmd += ["-virtfs", f"local,path={userland},mount_tag=userland,security_model=passthrough,"
                           "readonly=on,multidevs=remap,id=userland"]
    return cmd


def choose_accel(kernel, initrd, wanted):
    return qemu_guest.choose_accel(
        lambda accel: qemu_command(kernel, initrd, accel, "vph.probe", smp=1), wanted)


# ---- results ----

def parse(console):
    """Counts and facts from a guest's console."""
    r = {"passed": 0, "failed": 0, "ignored": 0, "skipped": [], "failures": [],
         "report": {}, "done": "GUEST-DONE" in console, "binaries_failed": []}
    in_report = False
    for raw in console.splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", raw.rstrip("\r"))
        m = re.search(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", line)
        if m:
            r["passed"] += int(m.group(1))
            r["failed"] += int(m.group(2))
            r["ignored"] += int(m.group(3))
        if line.startswith("SKIPPED "):
            r["skipped"].append(line[len("SKIPPED "):])
        m = re.match(r"test (\S+) \.\.\. FAILED", line)
        if m:
            r["failures"].append(m.group(1))
        m = re.match(r"BINARY-FAILED (.*)", line)
        if m:
            r["binaries_failed"].append(m.group(1))
        m = re.match(r"GUEST-KERNEL (.*)", line)
        if m:
            r["kernel"] = m.group(1)
        m = re.match(r"GUEST-USERLAND (.*)", line)
        if m:
            r["userland"] = m.group(1)
        if line.startswith("REPORT-BEGIN"):
            in_report = True
            continue
        if line.startswith("REPORT-END"):
            in_report = False
            continue
        if in_report and ":" in line:
            k, v = line.split(":", 1)
            r["report"][k.strip()] = v.strip()
        m = re.match(r"PASS-SECONDS (\S+) (\d+)", line)
        if m:
            r.setdefault("seconds", {})[m.group(1)] = int(m.group(2))
    return r


def failed_count(r):
    """Failed tests, or failed test binaries where more failed (a binary
    that crashed or hung reports no test)."""
    return max(r["failed"], len(r["binaries_failed"]))


def short_userland(text):
    """"Debian GNU/Linux 11 (bullseye), glibc 2.31, helper X (release,
    glibc 2.17 floor)" as "Debian 11, glibc 2.31, release"."""
    m = re.match(r"Debian GNU/Linux (\d+).*?, glibc ([\d.]+), helper \S+ \((\w+)", text)
    return f"Debian {m.group(1)}, glibc {m.group(2)}, {m.group(3)}" if m else text


def features_table(results):
    """docs/kernels.md's table: one row per series, from the guest's
    sandbox report and counts."""
    rows = ["| series | kernel | openat2 | Landlock ABI | close_range | fchmodat2 | *xattrat "
            "| O_EMPTYPATH | OPENAT2_REGULAR | seccomp | sandbox (root; uid 65534) "
            "| userland, helper | passed | failed | skipped | accel, s |",
            "|---" * 16 + "|"]
    for s, r in results.items():
        rep = r["report"]
        kernel = dict(kv.split("=", 1) for kv in rep.get("kernel", "").split() if "=" in kv)
        landlock = rep.get("landlock", "?")
        m = re.match(r"ABI (\d+)", landlock)
        abi = m.group(1) if m else ("none" if "unavailable" in landlock else landlock)
        seccomp = rep.get("seccomp", "?").split(" (")[0]
        sandbox = (rep.get("sandbox", "?").split(" (")[0] + "; "
                   + rep.get("sandbox as uid 65534", "?").split(" (")[0]
                   + (", own user ns" if "created" in rep.get("user ns as uid 65534", "") else ""))
        rows.append(
            f"| {s} ({r['suite']}) | {r.get('kernel', r['release']).split(' ')[0]} "
            f"| {rep.get('openat2', '?')} | {abi} | {kernel.get('close_range', '?')} "
            f"| {kernel.get('fchmodat2', '?')} | {kernel.get('xattrat', '?')} "
            f"| {kernel.get('O_EMPTYPATH', '?')} | {kernel.get('OPENAT2_REGULAR', '?')} "
            f"| {seccomp} | {sandbox} | {short_userland(r.get('userland', '?'))} | {r['passed']} | {failed_count(r)} "
            f"| {len(r['skipped'])} | {r['accel']}, {r['seconds_total']} |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("series", nargs="*", help="kernel series (default: all)")
    ap.add_argument("--cache", default="/var/cache/vph-kernels")
    ap.add_argument("--list", required=True, help="file with the test binaries to run")
    ap.add_argument("--helper", required=True, help="the helper binary the tests use")
    ap.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto")
    ap.add_argument("--timeout", type=int, default=2400, help="seconds per guest")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--guest-args", default="", help="extra words for guest.sh (bench)")
    ap.add_argument("--userland", action="append", default=[], metavar="SUITE=ROOT",
                    help="boot SUITE's series on this root (a debootstrap root) instead of the "
                         "host's, running --userland-list's tests and --userland-helper")
    ap.add_argument("--userland-list", help="test binaries built for the userland's glibc")
    ap.add_argument("--userland-helper", help="the helper binary (the release build)")
    ap.add_argument("--manifest", default=os.path.dirname(os.path.dirname(HERE)),
                    help="the checkout the tests were built in")
    args = ap.parse_args()
    userlands = dict(u.split("=", 1) for u in args.userland)
    series = args.series or list(SERIES)
    for s in series:
        if s not in SERIES:
            sys.exit(f"kernels: unknown series {s}; known: {' '.join(SERIES)}")
    os.makedirs(args.cache, exist_ok=True)
    apt = Apt(os.path.join(args.cache, "apt"))
    results, total_passed, total_failed = {}, 0, 0
    for s in series:
        started = time.monotonic()
        tree, modules, release, kernel, version = fetch_kernel(apt, args.cache, s)
        print(f"\n=== {s} ({SERIES[s]}): linux-image-amd64 {version}, kernel {release}",
              flush=True)
        work = tempfile.mkdtemp(prefix=f"vph-kernel-{s}-", dir=args.cache)
        try:
            initrd = build_initramfs(work, modules, release)
            accel = choose_accel(kernel, initrd, args.accel)
            userland = userlands.get(SERIES[s])
            list_file, helper = (args.userland_list, args.userland_helper) if userland \
                else (args.list, args.helper)
            # Hand the list over in the cache, beside the kernel.
            shutil.copy(list_file, os.path.join(work, "list"))
            os.chmod(os.path.join(work, "list"), 0o644)
            disk = os.path.join(work, "scratch.img")
            make_disk(disk)
            append = (f"vph.run={work} vph.tree={tree} vph.list={work}/list "
                      f"vph.helper={helper} vph.script={HERE}/guest.sh "
                      f"vph.manifest={args.manifest} vph.series={s} {args.guest_args}")
            if userland:
                # Mount points for the host's root and the checkout (the
                # tests read README and docs where they were built).
                for d in ["host", args.manifest.lstrip("/")]:
                    os.makedirs(os.path.join(userland, d), exist_ok=True)
                append = (f"vph.userland=1 vph.host=/host "
                          f"vph.helper_kind=release,glibc-2.17-floor vph.script=/host{HERE}/guest.sh "
                          + append.replace(f"vph.script={HERE}/guest.sh ", ""))
            else:
                append += " vph.helper_kind=debug"
            log_path = os.path.join(args.cache, f"console-{s}.log")
            print(f"accelerator: {accel}; console log: {log_path}", flush=True)
            with open(log_path, "w") as log:
                console, finished = run_bounded(
                    qemu_command(kernel, initrd, accel, append, disk, userland=userland),
                    args.timeout,
                    until="GUEST-DONE", log=log)
            r = parse(console)
            if "vph.bench=" in args.guest_args:
                section = console.split("BENCH-BEGIN", 1)[-1].split("BENCH-END", 1)[0]
                r["bench"] = section.replace("\r", "").strip()
                print(r["bench"], flush=True)
                ok = "BENCH-END" in console and "| T_OPEN+close |" in section
                r["passed"], r["failed"] = (1, 0) if ok else (0, 1)
            r.update(series=s, suite=SERIES[s], package=version, release=release,
                     accel=accel, seconds_total=round(time.monotonic() - started))
            if r["done"] and not r["passed"] and "bench" not in r:
                r["failures"].append("no test ran")
                r["failed"] += 1
            if not r["done"]:
                r["failed"] += 1
                r["failures"].append("the guest did not finish" +
                                     ("" if finished else f" within {args.timeout} s"))
                print(console[-3000:])
            results[s] = r
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"guest kernel: {r.get('kernel', '?')}")
        print(f"guest userland: {r.get('userland', '?')}")
        for k, v in r["report"].items():
            print(f"  {k + ':':14} {v}")
        for sk in r["skipped"]:
            print(f"  skipped: {sk}")
        for f in r["failures"] + [f"binary {b}" for b in r["binaries_failed"]]:
            print(f"  FAILED: {f}")
        print(f"{s}: {r['passed']} passed, {r['failed']} failed, {len(r['skipped'])} skipped "
              f"({r['seconds_total']} s, {accel})", flush=True)
        total_passed += r["passed"]
        total_failed += failed_count(r)
    print()
    print(features_table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    print(f"\n{total_passed} passed, {total_failed} failed")
    sys.exit(1 if total_failed or not total_passed else 0)


if __name__ == "__main__":
    main()
