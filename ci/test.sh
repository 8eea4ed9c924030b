#!/usr/bin/env bash
# The test command: installs what the tests need, runs the whole suite as
# root, then twice as an unprivileged user (uid 65534): once as root of a
# user namespace made for it (`unshare -Ur`), once as a plain ordinary
# user, where the helper makes its own user namespace (the automatic map,
# from nobody's /etc/subuid range). Tests that need real root say that they
# skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/install-deps.sh

echo "== pass 1: the suite as $(id -un) (uid $(id -u))"
cargo test --locked --all-targets

if [ "$(id -u)" != 0 ]; then
  echo "== pass 2 skipped: it needs root to drop to an unprivileged user"
  exit 0
fi

echo "== pass 2: the suite as an unprivileged user, root of a user namespace"
stage=$(mktemp -d /tmp/vph-unpriv.XXXXXX)
trap 'rm -rf "$stage"' EXIT
bash ci/test-binaries.sh > "$stage/list"
cp target/debug/virtfs-proxy-helper "$stage/"
while read -r exe; do cp "$exe" "$stage/"; done < "$stage/list"
chmod -R a+rX "$stage"
chmod 1777 "$stage"
failed=0
while read -r exe; do
  name=$(basename "$exe")
  echo "-- $name (uid 65534, unshare -Ur)"
  if ! (cd "$stage" && setpriv --reuid=65534 --regid=65534 --clear-groups \
        env HOME="$stage" TMPDIR="$stage" VPH_BIN="$stage/virtfs-proxy-helper" \
        unshare -Ur "$stage/$name" --test-threads=2); then
    failed=1
  fi
done < "$stage/list"

echo "== pass 3: the suite as an ordinary user (uid 65534); the helper makes its own user namespace"
while read -r exe; do
  name=$(basename "$exe")
  echo "-- $name (uid 65534)"
  if ! (cd "$stage" && setpriv --reuid=65534 --regid=65534 --clear-groups \
        env HOME="$stage" TMPDIR="$stage" VPH_BIN="$stage/virtfs-proxy-helper" \
        "$stage/$name" --test-threads=2); then
    failed=1
  fi
done < "$stage/list"
exit $failed
