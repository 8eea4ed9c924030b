#!/usr/bin/env bash
# The kernel matrix: boots a Debian guest kernel for each series under QEMU
# (KVM where a probe boot reaches init, TCG otherwise) and runs the helper's
# integration suite inside it, as root, unprivileged in a user namespace,
# and as a plain ordinary user (the helper makes its own user namespace,
# with the automatic map), with the exports on ext4.
#
#   bash ci/kernels.sh              # all: 5.10 6.1 6.12 7.2 7.3
#   bash ci/kernels.sh 5.10 7.3     # some
#   bash ci/kernels.sh --bench 7.2  # the latency benchmark and syscall
#                                   # counts inside the guest, no tests
#
# Kernels come from Debian's archive (bullseye, bookworm, trixie, sid,
# experimental) through a private apt configuration in /var/cache/vph-kernels
# (the host's own apt sources are read, never changed), and stay cached there.
# The 5.10 series boots Debian 11's own userland (ci/debian-root.sh
# bullseye: glibc 2.31, QEMU 5.2's original helper as the oracle) with the
# host's root beneath it, and runs the release binary there
# (ci/build-portable.sh), with the test binaries built for the same glibc
# floor. The other series run on the host's userland with the debug build.
# Each series boots the newest kernel its release carries, the security
# archive's included.
# The last line is "N passed, M failed" over all kernels run.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "kernels: needs root (QEMU shares the host's root with the guest)" >&2
  exit 1
fi
bash ci/install-deps.sh
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
command -v depmod >/dev/null || need+=(kmod)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v zstd >/dev/null || need+=(zstd)
command -v strace >/dev/null || need+=(strace)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

guest_args=()
if [ "${1:-}" = --bench ]; then
  shift
  bench=$(cargo bench --locked --bench latency --no-run --message-format=json 2>/dev/null \
    | python3 ci/cargo-executables.py --target latency)
  guest_args=(--guest-args "vph.bench=$bench vph.iters=${VPH_BENCH_ITERS:-5000}")
  [ $# -gt 0 ] || set -- 7.2
fi

cargo build --locked --quiet
list=$(mktemp /tmp/vph-kernels-list.XXXXXX)
trap 'rm -f "$list"' EXIT
bash ci/test-binaries.sh > "$list"
chmod a+r "$list"
userland_args=()
if [ ${#guest_args[@]} -eq 0 ] && { [ $# -eq 0 ] || [[ " $* " == *" 5.10 "* ]]; }; then
  root=$(bash ci/debian-root.sh bullseye qemu-system-x86 uidmap kmod)
  # What ci/install-deps.sh gives the host: root's and nobody's
  # subordinate ranges.
  for f in "$root/etc/subuid" "$root/etc/subgid"; do
    for line in root:100000:65536 nobody:2000000:65536; do
      grep -q "^$line\$" "$f" 2>/dev/null || echo "$line" >> "$f"
    done
  done
  portable_list=$(mktemp /tmp/vph-kernels-portable.XXXXXX)
  trap 'rm -f "$list" "$portable_list"' EXIT
  bin=$(bash ci/build-portable.sh --tests-list "$portable_list" | tail -n 1)
  chmod a+r "$portable_list"
  userland_args=(--userland "bullseye=$root" --userland-list "$portable_list" --userland-helper "$bin")
fi
python3 ci/kernels/run.py --list "$list" --helper "$PWD/target/debug/virtfs-proxy-helper" \
  --json /var/cache/vph-kernels/results.json "${userland_args[@]}" "${guest_args[@]}" "$@"
