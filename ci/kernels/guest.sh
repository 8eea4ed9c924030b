#!/bin/bash
# Runs inside a guest of ci/kernels/run.py, as PID 1, on the host's root
# (read-only over 9p): prints the kernel, the helper's --sandbox-report,
# then runs every test binary as root, as an unprivileged user in a user
# namespace and as a plain ordinary user, as ci/test.sh does on the host,
# with the tests' exports
# on an ext4 disk. Ends with GUEST-DONE and powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LANG=C.UTF-8 RUST_BACKTRACE=0
arg() { sed -n "s/.* vph\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
# On a release's own userland the host's root is at /host: every host path
# below gets that prefix.
host=$(arg host)
tree=$host$(arg tree) list=$host$(arg list) helper=$host$(arg helper) series=$(arg series)
finish() { echo GUEST-DONE; sync; echo o > /proc/sysrq-trigger; sleep 10; }
trap finish EXIT

echo "GUEST-KERNEL $(uname -r) ($(uname -v))"
manifest=$(arg manifest)
if [ -n "$host" ] && [ -n "$manifest" ]; then
    # The tests read the checkout (README, docs) where they were built.
    mount --bind "$host$manifest" "$manifest" || echo "guest: no checkout at $manifest"
fi
echo "GUEST-USERLAND $(. /etc/os-release; echo "$PRETTY_NAME"), glibc $(ldd --version | sed -n '1s/.* //p'), helper $(basename "$helper") ($(arg helper_kind))"
# The guest kernel's modules, unpacked on the host (with modules.dep).
for m in virtio_blk ext4 crc32c_generic crc32c_intel; do modprobe -q -d "$tree" "$m"; done
if ! mount -t ext4 /dev/vda /mnt; then
    echo "BINARY-FAILED mounting the ext4 scratch disk"
    exit 1
fi
mkdir -p /mnt/tmp /mnt/home /mnt/export && chmod 1777 /mnt/tmp
# The host's /tmp is read-only here: everything writable is on the disk.
export TMPDIR=/mnt/tmp HOME=/mnt/home
echo "scratch: $(stat -f -c %T /mnt) on /dev/vda"
sed "s#^#$host#" "$list" > /mnt/list
list=/mnt/list

bench=$(arg bench)
if [ -n "$bench" ]; then
    # Speed, instead of the tests: syscalls per request (strace -c) for
    # ours and QEMU's original, then the latency benchmark, pinned.
    repo=$(cd "$(dirname "$0")/../.." && pwd)
    ours=$(dirname "$(dirname "$bench")")/virtfs-proxy-helper
    echo BENCH-BEGIN
    "$ours" --sandbox-report --path /mnt/export | grep -E '^(kernel|procfs|resolver):'
    for h in "$ours" /usr/lib/qemu/virtfs-proxy-helper; do
        echo "syscalls per request, $h:"
        python3 "$repo/ci/syscalls-per-request.py" "$h" -n -f FD -p EXPORT
    done
    VPH_BENCH_ITERS=$(arg iters) "$bench" --bench
    echo BENCH-END
    exit 0
fi

echo REPORT-BEGIN
"$helper" --sandbox-report --path /mnt/export
echo "exit status:  $?"
# The same as an ordinary user: the helper's own namespace, its map.
cp "$helper" /mnt/tmp/vph-report && chmod a+rx /mnt/tmp/vph-report
setpriv --reuid=65534 --regid=65534 --clear-groups /mnt/tmp/vph-report --sandbox-report --path /mnt/export \
    | sed -n 's/^\(sandbox\|user ns\|id maps\): */\1 as uid 65534: /p'
echo REPORT-END

# Needs QEMU inside the guest: run on the host only.
skip_args=(--skip every_readme_example_runs_as_written)
echo "SKIPPED every_readme_example_runs_as_written: starts QEMU itself; it runs on the host, not inside a guest"

run_pass() {
    local label=$1; shift
    local start=$SECONDS
    echo "== $label"
    while read -r exe; do
        echo "-- $(basename "$exe")"
        # A test that hangs must not stall the whole guest.
        if ! timeout 900 "$@" "$exe" --test-threads=2 --color never "${skip_args[@]}"; then
            echo "BINARY-FAILED $(basename "$exe") ($label)"
        fi
    done < "$list"
    echo "PASS-SECONDS $label $((SECONDS - start))"
}

# The helper under test in both passes (on Debian 11's userland the
# release binary; the tests' own debug build otherwise).
run_pass root env VPH_BIN="$helper"
# The unprivileged pass: copies of the binaries, uid 65534, root of a new
# user namespace.
stage=/mnt/unpriv
mkdir -p "$stage"
cp "$helper" "$stage/virtfs-proxy-helper"
while read -r exe; do cp "$exe" "$stage/"; done < "$list"
sed "s#.*/#$stage/#" "$list" > /mnt/unpriv-list
chmod -R a+rX "$stage"; chmod 1777 "$stage"
list=/mnt/unpriv-list
cd "$stage"
run_pass unprivileged setpriv --reuid=65534 --regid=65534 --clear-groups \
    env HOME="$stage" TMPDIR="$stage" VPH_BIN="$stage/virtfs-proxy-helper" unshare -Ur
# A plain ordinary user: the helper makes its own user namespace (the
# automatic map from nobody's /etc/subuid range).
run_pass ordinary setpriv --reuid=65534 --regid=65534 --clear-groups \
    env HOME="$stage" TMPDIR="$stage" VPH_BIN="$stage/virtfs-proxy-helper"
