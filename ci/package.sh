#!/usr/bin/env bash
# Builds the Debian package from the portable binary (ci/build-portable.sh:
# glibc 2.17 and up), installs it next to this host's qemu-system-common,
# checks the installed binary (--version, the man page, one protocol test
# against /usr/bin/virtfs-proxy-helper) and the installed systemd units
# (systemd-analyze verify), and removes it again; then the same round trip
# on Debian 11 and 12 roots, and on a Debian 13 root the AppArmor profile
# (ci/package-roots.sh); and the units under a booted systemd, in a
# Debian 12 container (ci/service-boot.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# README's "Installing" commands, as written there (tests/readme.rs checks
# that they stand here).
bash ci/build-portable.sh
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
rm -f target/x86_64-unknown-linux-gnu/debian/*.deb   # one package for the glob below
cargo deb --locked --no-build --target x86_64-unknown-linux-gnu
deb=$(ls -t target/x86_64-unknown-linux-gnu/debian/virtfs-proxy-helper_*.deb | head -n 1)
echo "== package: $deb"
dpkg-deb --info "$deb" | sed -n 's/^ \(Package\|Version\|Depends\|Recommends\|Description\):/  &/p'
dpkg-deb --contents "$deb" | awk '{print "  " $6}'
# Depends states the floor the binary was checked against.
floor=$(sed -n 's/^FLOOR=//p' ci/build-portable.sh)
depends=$(dpkg-deb -f "$deb" Depends)
if [ "$depends" != "libc6 (>= $floor)" ]; then
  echo "package: Depends is '$depends', the binary's floor is glibc $floor" >&2
  exit 1
fi
recommends=$(dpkg-deb -f "$deb" Recommends)
if [ "$recommends" != "uidmap" ]; then
  echo "package: Recommends is '$recommends', not uidmap (the automatic subuid map needs it)" >&2
  exit 1
fi
trap 'dpkg -r virtfs-proxy-helper >/dev/null 2>&1 || true' EXIT
dpkg -i target/x86_64-unknown-linux-gnu/debian/virtfs-proxy-helper_*.deb
dpkg -s qemu-system-common >/dev/null 2>&1 && echo "== installed beside qemu-system-common $(dpkg-query -W -f='${Version}' qemu-system-common)"
command -v virtfs-proxy-helper
virtfs-proxy-helper --version
test -e /usr/share/man/man1/virtfs-proxy-helper.1.gz || test -e /usr/share/man/man1/virtfs-proxy-helper.1
VPH_BIN=/usr/bin/virtfs-proxy-helper cargo test --locked --test requests openat2::

# The systemd units as installed, with this host's systemd-analyze (Debian
# 12: systemd 252): both templates loaded as instances, every key known,
# the wrapper they run installed and executable. Any output fails: verify
# only warns about an unknown key. ci/service-boot.sh, below, starts them
# under a booted systemd.
units=(/lib/systemd/system/virtfs-proxy-helper@.socket /lib/systemd/system/virtfs-proxy-helper@.service)
verify_units() {
  local out
  if ! out=$(systemd-analyze verify "$@" 2>&1) || [ -n "$out" ]; then
    echo "$out"
    return 1
  fi
}
command -v systemd-analyze >/dev/null || { echo "package: systemd-analyze is missing: the units cannot be verified" >&2; exit 1; }
if ! verify_units "${units[@]}" >&2; then
  echo "package: systemd-analyze verify rejects the installed units ${units[*]} (above)" >&2
  exit 1
fi
# The check itself catches a mistake: a misspelt key in a copy.
scratch=$(mktemp -d)
sed 's/^CollectMode=/CollectMod=/' "${units[1]}" > "$scratch/virtfs-proxy-helper@.service"
if verify_units "$scratch/virtfs-proxy-helper@.service" >/dev/null; then
  echo "package: systemd-analyze verify let a misspelt key through: the check above proves nothing" >&2
  exit 1
fi
rm -rf "$scratch"
echo "== systemd units verified: ${units[*]}"
test -x /usr/lib/virtfs-proxy-helper/instance
if dpkg -s qemu-system-common >/dev/null 2>&1; then
  test -e /usr/share/man/man1/virtfs-proxy-helper.qemu.1.gz   # QEMU's page, diverted
  zgrep -qF 'sandbox\-report' /usr/share/man/man1/virtfs-proxy-helper.1.gz   # ours
fi
dpkg -r virtfs-proxy-helper
trap - EXIT
test ! -e /usr/bin/virtfs-proxy-helper
if dpkg -s qemu-system-common >/dev/null 2>&1; then
  test -e /usr/share/man/man1/virtfs-proxy-helper.1.gz        # QEMU's page is back
  dpkg -V qemu-system-common
fi
echo "== package installed, tested and removed"

bash ci/package-roots.sh "$deb"
# README's command, as written there (the glob is the one package above).
bash ci/service-boot.sh target/x86_64-unknown-linux-gnu/debian/virtfs-proxy-helper_*.deb

# The other way README gives: cargo install, here into a scratch root so
# the machine's ~/.cargo/bin is left alone.
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
CARGO_INSTALL_ROOT="$root" cargo install --path . --locked --quiet
"$root/bin/virtfs-proxy-helper" --version
echo "== cargo install --path . works"
