#!/usr/bin/env bash
# Builds the Debian package, installs it next to Debian's qemu-system-common,
# checks the installed binary (--version, the man page, one protocol test
# against /usr/bin/virtfs-proxy-helper), and removes it again.
set -euo pipefail
cd "$(dirname "$0")/.."
# README's "Installing" commands, as written there (tests/readme.rs checks
# that they stand here).
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
rm -f target/debian/*.deb   # one package for the glob below
cargo deb --locked
deb=$(ls -t target/debian/virtfs-proxy-helper_*.deb | head -n 1)
echo "== package: $deb"
dpkg-deb --info "$deb" | sed -n 's/^ \(Package\|Version\|Depends\|Description\):/  &/p'
dpkg-deb --contents "$deb" | awk '{print "  " $6}'
trap 'dpkg -r virtfs-proxy-helper >/dev/null 2>&1 || true' EXIT
dpkg -i target/debian/virtfs-proxy-helper_*.deb
dpkg -s qemu-system-common >/dev/null 2>&1 && echo "== installed beside qemu-system-common $(dpkg-query -W -f='${Version}' qemu-system-common)"
command -v virtfs-proxy-helper
virtfs-proxy-helper --version
test -e /usr/share/man/man1/virtfs-proxy-helper.1.gz || test -e /usr/share/man/man1/virtfs-proxy-helper.1
VPH_BIN=/usr/bin/virtfs-proxy-helper cargo test --locked --test requests openat2::
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

# The other way README gives: cargo install, here into a scratch root so
# the machine's ~/.cargo/bin is left alone.
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
CARGO_INSTALL_ROOT="$root" cargo install --path . --locked --quiet
"$root/bin/virtfs-proxy-helper" --version
echo "== cargo install --path . works"
