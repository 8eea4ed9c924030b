#!/usr/bin/env bash
# End-to-end test: QEMU 7.2's proxy 9p driver and a Debian guest kernel
# mounting the share, with our helper (or the original) behind it.
#
#   bash ci/e2e.sh                      # ours, both socket modes
#   bash ci/e2e.sh --helper both        # ours and the original side by side
#   (more options: ci/e2e/run.py --help)
#
# Installs qemu-system-x86, busybox-static and cpio from Debian, and takes
# the guest kernel from Debian's linux-image package (apt-get download,
# unpacked, not installed) into /var/cache/vph-e2e.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "e2e: needs root (the helper chroots and QEMU is run as an unprivileged user)" >&2
  exit 1
fi
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] && /bin/busybox --list | grep -qx setpriv || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

work=/var/cache/vph-e2e
mkdir -p "$work"
if ! ls "$work"/kernel/boot/vmlinuz-* >/dev/null 2>&1; then
  kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: \(linux-image-[0-9].*\)/\1/p' | head -n 1
  }
  image=$(kernel_package)
  if [ -z "$image" ]; then apt-get update -qq; image=$(kernel_package); fi
  echo "e2e: fetching guest kernel $image"
  (cd "$work" && rm -f linux-image-*.deb && apt-get download -q "$image" >/dev/null)
  rm -rf "$work/kernel" && mkdir -p "$work/kernel"
  dpkg-deb -x "$work"/linux-image-*.deb "$work/kernel"
fi

cargo build --release --locked --quiet
exec python3 ci/e2e/run.py --work "$work" --helper-bin "$PWD/target/release/virtfs-proxy-helper" "$@"
