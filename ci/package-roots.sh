#!/usr/bin/env bash
# The .deb on the releases that still ship QEMU's proxy driver, in a
# debootstrap root of each (ci/debian-root.sh): Debian 11 (bullseye, glibc
# 2.31, QEMU 5.2) and Debian 12 (bookworm, glibc 2.36, QEMU 7.2).
#
#   bash ci/package-roots.sh DEB
#
# In each root, beside that release's own qemu-system-common:
#   dpkg -i; the man-page diversion against QEMU's page; --version and
#   --sandbox-report run; a second dpkg -i of the same version changes
#   nothing; dpkg -r puts QEMU's man page back and leaves no diversion.
# In the bookworm root also without qemu-system-common (the original
# helper's package absent): installs, runs and removes cleanly. Debian 11
# and 12 get no AppArmor profile (their AppArmor cannot parse AppArmor 4's).
# In a Debian 13 root (trixie, AppArmor 4): postinst installs the profile
# /etc/apparmor.d/virtfs-proxy-helper, trixie's apparmor_parser parses and
# compiles it without loading it into a kernel (-Q; this kernel's AppArmor
# is never touched: the root has no /sys), and dpkg -r removes it.
# Prints one line per check and "N passed, M failed" last.
set -euo pipefail
cd "$(dirname "$0")/.."
deb=$(realpath "${1:?usage: package-roots.sh DEB}")
[ "$(id -u)" = 0 ] || { echo "package-roots: needs root (chroot)" >&2; exit 1; }
# Every mount below (/proc and a tmpfs /tmp in each root) lives in a mount
# namespace of this script's own, and dies with it.
if [ -z "${VPH_PRIVATE_MOUNTS:-}" ]; then
  exec env VPH_PRIVATE_MOUNTS=1 unshare --mount --propagation private bash "$0" "$deb"
fi

passed=0 failed=0
check() {
  local name=$1
  shift
  if out=$("$@" 2>&1); then
    echo "ok   $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name: $(echo "$out" | tail -n 5)"
    failed=$((failed + 1))
  fi
}

in_root() { chroot "$root" env PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C "$@"; }
man=/usr/share/man/man1
state() {
  # What an install leaves: our files with their checksums, and the
  # diversions.
  in_root sh -c 'md5sum $(dpkg -L virtfs-proxy-helper | while read -r f; do [ -f "$f" ] && echo "$f"; done) 2>/dev/null;
                 dpkg-divert --list | sort; ls /usr/share/man/man1 | grep virtfs'
}
qemu_page_is_home() {
  in_root test -e $man/virtfs-proxy-helper.1.gz && ! in_root test -e $man/virtfs-proxy-helper.qemu.1.gz \
    && ! in_root dpkg-divert --list | grep -q virtfs-proxy-helper \
    && in_root dpkg -V qemu-system-common
}
no_trace_left() {
  ! in_root test -e /usr/bin/virtfs-proxy-helper && ! in_root test -e $man/virtfs-proxy-helper.1.gz \
    && ! in_root dpkg-divert --list | grep -q virtfs-proxy-helper
}
runs() {
  local version want
  version=$(in_root virtfs-proxy-helper --version)
  want="virtfs-proxy-helper $(dpkg-deb -f "$deb" Version | sed 's/-[^-]*$//')"
  [ "$version" = "$want" ] || { echo "--version says '$version', not '$want'"; return 1; }
  in_root sh -c 'mkdir -p /tmp/share && virtfs-proxy-helper --sandbox-report --path /tmp/share' \
    > "$root/tmp/report" 2>&1 || { cat "$root/tmp/report"; return 1; }
}

round_trip() {
  local label=$1 with_qemu=$2
  cp "$deb" "$root/tmp/vph.deb"
  echo "== $label: $(in_root sh -c '. /etc/os-release; echo "$PRETTY_NAME"'), glibc $(in_root ldd --version | head -n 1 | awk '{print $NF}')$(
    [ "$with_qemu" = yes ] && echo ", qemu-system-common $(in_root dpkg-query -W -f='${Version}' qemu-system-common)")"
  check "$label: dpkg -i" in_root dpkg -i /tmp/vph.deb
  check "$label: --version and --sandbox-report run" runs
  check "$label: the systemd units and their wrapper installed" in_root sh -c '
    test -f /lib/systemd/system/virtfs-proxy-helper@.socket &&
    test -f /lib/systemd/system/virtfs-proxy-helper@.service &&
    test -x /usr/lib/virtfs-proxy-helper/instance'
  check "$label: no AppArmor profile (no AppArmor 4 here)" in_root test ! -e /etc/apparmor.d/virtfs-proxy-helper
  grep -E '^(kernel|resolver|chroot|landlock|seccomp|result):' "$root/tmp/report" | sed 's/^/     /' || true
  if [ "$with_qemu" = yes ]; then
    check "$label: QEMU's man page diverted, ours in place" sh -c "
      chroot '$root' test -e $man/virtfs-proxy-helper.qemu.1.gz &&
      chroot '$root' zgrep -qF 'sandbox\\-report' $man/virtfs-proxy-helper.1.gz &&
      chroot '$root' dpkg-divert --list | grep -q 'virtfs-proxy-helper.qemu.1.gz.*virtfs-proxy-helper'"
  fi
  local before after
  before=$(state)
  check "$label: a second dpkg -i of the same version" in_root dpkg -i /tmp/vph.deb
  after=$(state)
  check "$label: ... changes nothing" test "$before" = "$after"
  check "$label: dpkg -r" in_root dpkg -r virtfs-proxy-helper
  if [ "$with_qemu" = yes ]; then
    check "$label: QEMU's man page back, no diversion left, qemu-system-common intact" qemu_page_is_home
  else
    check "$label: nothing left behind" no_trace_left
  fi
  rm -f "$root/tmp/vph.deb"
}

mounted() {
  mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
  mountpoint -q "$root/tmp" || mount -t tmpfs tmpfs "$root/tmp"
}

root=$(bash ci/debian-root.sh bookworm)
# Without the original helper's package first: a cached root may have it.
chroot "$root" dpkg -s qemu-system-common >/dev/null 2>&1 \
  && chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq qemu-system-common >/dev/null
mounted
round_trip "Debian 12, no QEMU" no
for suite in bookworm bullseye; do
  root=$(bash ci/debian-root.sh "$suite" qemu-system-common)
  mounted
  round_trip "Debian $([ "$suite" = bullseye ] && echo 11 || echo 12)" yes
done

profile=/etc/apparmor.d/virtfs-proxy-helper
apparmor_round() {
  cp "$deb" "$root/tmp/vph.deb"
  echo "== Debian 13: $(in_root sh -c '. /etc/os-release; echo "$PRETTY_NAME"'), $(in_root apparmor_parser --version | head -n 1)"
  check "Debian 13: dpkg -i" in_root dpkg -i /tmp/vph.deb
  check "Debian 13: --version runs" runs
  check "Debian 13: postinst installed the profile as shipped" \
    in_root cmp /usr/share/virtfs-proxy-helper/apparmor/virtfs-proxy-helper $profile
  check "Debian 13: apparmor_parser -QTK parses and compiles it (nothing loaded)" in_root apparmor_parser -QTK $profile
  check "Debian 13: ... one profile, virtfs-proxy-helper" test "$(in_root apparmor_parser -N $profile 2>/dev/null)" = virtfs-proxy-helper
  # The parser refuses a broken copy: the check above can fail.
  sed 's/userns,/userns/' "$root$profile" > "$root/tmp/broken-profile"
  check "Debian 13: ... and refuses a broken copy" sh -c "! chroot '$root' apparmor_parser -QTK /tmp/broken-profile"
  check "Debian 13: dpkg -r" in_root dpkg -r virtfs-proxy-helper
  check "Debian 13: the profile removed, nothing left behind" sh -c "
    ! chroot '$root' test -e $profile && ! chroot '$root' test -e /usr/bin/virtfs-proxy-helper"
  rm -f "$root/tmp/vph.deb" "$root/tmp/broken-profile"
}
root=$(bash ci/debian-root.sh trixie apparmor)
mounted
apparmor_round

echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
