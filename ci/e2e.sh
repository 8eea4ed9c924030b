#!/usr/bin/env bash
# End-to-end test: QEMU's proxy 9p driver and a Debian guest kernel
# mounting the share, with our helper (or the original) behind it.
#
#   bash ci/e2e.sh                      # ours, both socket modes, QEMU 7.2
#   bash ci/e2e.sh --helper both        # ours and the original side by side
#   bash ci/e2e.sh --client 5.2         # Debian 11's QEMU 5.2 as the client
#   bash ci/e2e.sh --ids auto,translate,shifted   # rootless: see below
#   (more options: ci/e2e/run.py --help)
#
# --ids runs ours three ways without real root's ids: an ordinary user
# (vph-e2e, created here with the /etc/subuid and /etc/subgid range
# 3000000:65536) runs QEMU and the helper, which makes its own user
# namespace with the automatic map (auto) or translates ids to that one
# user (translate); and root runs it with a shifted --uid-map (shifted).
#
# Installs qemu-system-x86, busybox-static and cpio from Debian, and takes
# the guest kernel from Debian's linux-image package (apt-get download,
# unpacked, not installed) into /var/cache/vph-e2e.
#
# --client 5.2 runs QEMU 5.2 from a Debian 11 root (ci/debian-root.sh
# bullseye), chrooted there with the socket and kernel paths it needs, and
# both helpers there too: ours as the release binary (ci/build-portable.sh,
# the one the .deb ships), and QEMU 5.2's own as the oracle. Our helper's
# view of the client's requests is kept in /var/cache/vph-e2e/wire-CLIENT.json
# (ci/e2e/wire-diff.py compares two clients).
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
case " $* " in *" --ids "*) command -v newuidmap >/dev/null || need+=(uidmap) ;; esac
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

case " $* " in
  *" --ids "*)
    id -u vph-e2e >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin vph-e2e
    for f in /etc/subuid /etc/subgid; do
      grep -q '^vph-e2e:' "$f" 2>/dev/null || echo 'vph-e2e:3000000:65536' >> "$f"
    done
    set -- "$@" --rootless-user vph-e2e
    ;;
esac

client=7.2
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --client) client=${2:?--client 7.2|5.2}; shift 2 ;;
    --client=*) client=${1#--client=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
case "$client" in
  7.2)
    cargo build --release --locked --quiet
    exec python3 ci/e2e/run.py --work "$work" --helper-bin "$PWD/target/release/virtfs-proxy-helper" \
      --client-name qemu-7.2 --wire-record "$work/wire-7.2.json" "${args[@]}"
    ;;
  5.2)
    root=$(bash ci/debian-root.sh bullseye qemu-system-x86)
    bin=$(bash ci/build-portable.sh | tail -n 1)
    # The root's /proc and /dev are mounted in a mount namespace of the
    # run's own, and die with it.
    exec unshare --mount --propagation private python3 ci/e2e/run.py --work "$work" \
      --helper-bin "$bin" --client-root "$root" --client-name qemu-5.2 \
      --wire-record "$work/wire-5.2.json" "${args[@]}"
    ;;
  *) echo "e2e: unknown client $client (7.2, 5.2)" >&2; exit 2 ;;
esac
