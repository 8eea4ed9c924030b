#!/usr/bin/env bash
# A Debian release's root filesystem, as a host of that release has it:
# `debootstrap --variant=minbase` from the archive the host's apt sources
# name (ci/debian_archive.py; the host's sources stay untouched, and the
# root's apt speaks only to that archive), cached in
# /var/cache/vph-roots/SUITE. Prints the root's path.
#
#   bash ci/debian-root.sh SUITE [PACKAGE ...]
#
# PACKAGEs are installed into the root (once; a cached root gains the ones
# it lacks). The package round trip (ci/package-roots.sh), QEMU 5.2 as the
# end-to-end client (ci/e2e.sh --client 5.2) and the 5.10 guest's userland
# (ci/kernels.sh) use these roots; trixie's apparmor_parser (AppArmor 4)
# parses the package's AppArmor profile (ci/package.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
suite=${1:?usage: debian-root.sh SUITE [PACKAGE ...]}
shift
case "$suite" in
  bullseye | bookworm | trixie) ;;
  *) echo "debian-root: unsupported suite $suite (bullseye, bookworm, trixie)" >&2; exit 2 ;;
esac
if [ "$(id -u)" != 0 ]; then
  echo "debian-root: needs root (debootstrap, chroot)" >&2
  exit 1
fi
command -v debootstrap >/dev/null || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
}

root=/var/cache/vph-roots/$suite
read -r mirror keyring < <(python3 ci/debian_archive.py)
if [ ! -e "$root/.complete" ]; then
  echo "debian-root: debootstrap $suite into $root" >&2
  rm -rf "$root"
  mkdir -p "$(dirname "$root")"
  debootstrap --variant=minbase --keyring="$keyring" "$suite" "$root" "$mirror" >/dev/null
  echo "$suite" > "$root/.complete"
fi
missing=()
for p in "$@"; do
  chroot "$root" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "debian-root: installing ${missing[*]} into the $suite root" >&2
  # The root's own apt, run in it; /proc only for the maintainer scripts
  # that want one, in a mount namespace of its own.
  unshare --mount --propagation private sh -ec '
    root=$1; shift
    mount -t proc proc "$root/proc"
    export DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin
    chroot "$root" apt-get update -qq
    chroot "$root" apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends "$@" >/dev/null
  ' sh "$root" "${missing[@]}"
fi
echo "$root"
