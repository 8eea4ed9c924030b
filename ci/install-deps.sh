#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian 12 machine (as root):
# QEMU 7.2 (the real client and the original helper, the oracle), uidmap
# (newuidmap for the user-namespace test), and a subordinate id range for
# root as an LXD host has.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: not root; skipping package installation" >&2
  exit 0
fi
need=()
[ -x /usr/lib/qemu/virtfs-proxy-helper ] || need+=(qemu-system-x86)
command -v newuidmap >/dev/null || need+=(uidmap)
command -v setpriv >/dev/null || need+=(util-linux)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# root's range: the LXD-style test; nobody's: an ordinary user's automatic
# map (the helper's own user namespace through newuidmap).
for f in /etc/subuid /etc/subgid; do
  for line in root:100000:65536 nobody:2000000:65536; do
    grep -q "^$line\$" "$f" 2>/dev/null || echo "$line" >> "$f"
  done
done
