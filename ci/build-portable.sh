#!/usr/bin/env bash
# The release binary for every host from glibc 2.17 up (Debian 11's 2.31,
# Ubuntu 22.04's 2.35, Debian 12's 2.36, Ubuntu 24.04's 2.39 ...): built
# with cargo-zigbuild, Zig from PyPI's `ziglang` as the linker, against
# glibc 2.17's symbol versions. What the .deb ships. Tests and development
# builds stay plain `cargo`.
#
#   bash ci/build-portable.sh [--tests-list FILE]
#
# Installs the pinned ziglang (pip) and cargo-zigbuild (cargo) where
# missing. Then checks the binary: no glibc symbol above the floor (the
# symbols that are too new are printed, and the build fails) and no shared
# library outside glibc. Prints the binary's path last. With --tests-list
# it also builds the integration test binaries for the same floor (the
# kernel matrix runs them on a Debian 11 userland) and lists them in FILE.
set -euo pipefail
cd "$(dirname "$0")/.."

ZIGLANG_VERSION=0.15.2
ZIGBUILD_VERSION=0.24.1
FLOOR=2.17
TRIPLE=x86_64-unknown-linux-gnu
# Every library a glibc 2.17 host has from the libc6 package itself.
GLIBC_LIBS='^(libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|ld-linux-x86-64\.so\.2)$'

have_ziglang() {
  [ "$(python3 -m ziglang version 2>/dev/null)" = "$ZIGLANG_VERSION" ]
}
if ! have_ziglang; then
  echo "build-portable: installing ziglang $ZIGLANG_VERSION (PyPI)" >&2
  command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3 >/dev/null; }
  python3 -m pip --version >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-pip >/dev/null; }
  # Debian's own python3 refuses system-wide pip installs (PEP 668); this
  # one package is what the build needs.
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "ziglang==$ZIGLANG_VERSION" \
    || python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --break-system-packages \
         "ziglang==$ZIGLANG_VERSION"
  have_ziglang || { echo "build-portable: ziglang $ZIGLANG_VERSION did not install" >&2; exit 1; }
fi
if [ "$(cargo-zigbuild --version 2>/dev/null | awk '{print $2}')" != "$ZIGBUILD_VERSION" ]; then
  echo "build-portable: installing cargo-zigbuild $ZIGBUILD_VERSION (crates.io)" >&2
  cargo install --quiet --locked --version "$ZIGBUILD_VERSION" cargo-zigbuild
fi
command -v objdump >/dev/null || { apt-get update -qq && apt-get install -y -qq binutils >/dev/null; }

cargo zigbuild --quiet --release --locked --target "$TRIPLE.$FLOOR"
bin="$PWD/target/$TRIPLE/release/virtfs-proxy-helper"

# The floor: every versioned glibc symbol the binary imports.
too_new=$(objdump -T "$bin" | awk -v floor="$FLOOR" '
  match($0, /GLIBC_[0-9.]+/) {
    v = substr($0, RSTART + 6, RLENGTH - 6)
    split(v, a, "."); split(floor, f, ".")
    if (a[1] + 0 > f[1] + 0 || (a[1] + 0 == f[1] + 0 && a[2] + 0 > f[2] + 0))
      print "  " $NF " (GLIBC_" v ")"
  }' | sort -u)
if [ -n "$too_new" ]; then
  echo "build-portable: $bin needs glibc symbols newer than $FLOOR:" >&2
  echo "$too_new" >&2
  exit 1
fi
newest=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1)
other_libs=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | grep -Ev "$GLIBC_LIBS" || true)
if [ -n "$other_libs" ]; then
  echo "build-portable: $bin needs libraries outside glibc: $other_libs" >&2
  exit 1
fi
echo "build-portable: newest glibc symbol version $newest (floor $FLOOR); libraries:" \
  "$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')" >&2

if [ "${1:-}" = --tests-list ]; then
  # The integration test binaries for the same floor, listed in FILE.
  cargo zigbuild --quiet --locked --tests --target "$TRIPLE.$FLOOR" --message-format=json \
    | python3 ci/cargo-executables.py --tests > "$2"
fi
echo "$bin"
