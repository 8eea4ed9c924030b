#!/usr/bin/env bash
# The .deb's systemd units under a booted systemd: a Debian 12 root
# (ci/debian-root.sh bookworm, plus systemd and python3-minimal, cached in
# /var/cache/vph-roots/bookworm-systemd) copied to a scratch directory,
# the package installed in it, two instances configured and their sockets
# enabled, then booted with `systemd-nspawn -b` (systemd 252 as the
# container's PID 1; this host needs none). Inside the booted container:
#   - systemd-analyze verify of the installed units in Debian 11 and 13
#     roots with systemd (247 and 257), any output failing;
#   - the good instance's socket listens, 0660 nobody:nogroup (ExecStartPost);
#   - the bad one (EXPORT missing) failed in ExecStartPre, its line in the
#     journal at priority err;
#   - as nobody, a T_LSTAT over the socket is answered; the connection's
#     service (Accept=yes) runs the helper under the unit's sandboxing
#     (NoNewPrivs, the bounding set, seccomp filters, read from its
#     /proc status while connected) and ends with status 0;
#   - as uid 1000 (neither owner nor group) connecting is refused;
#   - QEMU 7.2 (this host's, run as nobody) connects to the socket, which
#     the container's /run/virtfs-proxy-helper shares with the host (a
#     bind mount), with -fsdev proxy,socket=...; its helper serves until
#     QEMU ends, then ends with status 0;
#   - the helper's lines reach the journal with their priorities (info
#     lines at 6; none of them under -p warning);
#   - an instance file broken after the socket started (EXPORT a symlink)
#     fails the next connection with one line at priority err;
#   - dpkg -r under the running systemd stops the sockets and systemd
#     forgets the units; dpkg -i again, and the socket starts.
#
#   bash ci/service-boot.sh DEB
#
# Prints one line per check and "N passed, M failed" last. Where the
# container cannot boot, it fails saying so: nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
deb=$(realpath "${1:?usage: service-boot.sh DEB}")
[ "$(id -u)" = 0 ] || { echo "service-boot: needs root (debootstrap, systemd-nspawn)" >&2; exit 1; }
command -v systemd-nspawn >/dev/null || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd-container >/dev/null
}

# A root of SUITE with systemd, cached as /var/cache/vph-roots/SUITE-systemd;
# prints its path.
systemd_root() {
  local suite=$1 base=/var/cache/vph-roots/$1-systemd src
  if [ ! -e "$base/.complete" ]; then
    src=$(bash ci/debian-root.sh "$suite")
    echo "service-boot: a $suite root with systemd in $base" >&2
    rm -rf "$base"
    cp -a "$src" "$base"
    rm -f "$base/.complete"
    unshare --mount --propagation private sh -ec '
      root=$1
      mount -t proc proc "$root/proc"
      export DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin
      chroot "$root" apt-get update -qq
      chroot "$root" apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends \
        systemd systemd-sysv python3-minimal >/dev/null
    ' sh "$base" >&2
    echo "$suite-systemd" > "$base/.complete"
  fi
  echo "$base"
}
base=$(systemd_root bookworm)

machine=vph-service-boot
scratch=$(mktemp -d /var/tmp/vph-service-boot.XXXXXX)
root=$scratch/$machine
nspawn_pid=
cleanup() {
  if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
    kill "$nspawn_pid" 2>/dev/null || true
    sleep 2
    kill -9 "$nspawn_pid" 2>/dev/null || true
  fi
  rm -rf "$scratch" "/run/systemd/nspawn/propagate/$machine"
}
trap cleanup EXIT
cp -a "$base" "$root"
# The socket directory, shared with the host for QEMU.
chmod 755 "$scratch"
mkdir -m 755 "$scratch/run"
cp "$deb" "$root/tmp/vph.deb"
chroot "$root" dpkg -i /tmp/vph.deb >/dev/null
rm "$root/tmp/vph.deb"
mkdir -p "$root/etc/virtfs-proxy-helper" "$root/srv/share"
printf 'data\n' > "$root/srv/share/file"
cat > "$root/etc/virtfs-proxy-helper/good.conf" <<'EOF'
EXPORT=/srv/share
SOCKET_USER=nobody
SOCKET_GROUP=nogroup
OPTIONS=--log-level debug
EOF
printf 'EXPORT=/srv/nothing\n' > "$root/etc/virtfs-proxy-helper/bad.conf"
systemctl --root="$root" enable virtfs-proxy-helper@good.socket virtfs-proxy-helper@bad.socket 2>/dev/null
# QEMU's side: one T_LSTAT, the whole reply read; then, with a third
# argument, the connection held open that many seconds.
cat > "$root/usr/local/bin/vph-lstat" <<'EOF'
#!/usr/bin/python3
import socket, struct, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
path = sys.argv[2].encode() + b"\0"
payload = struct.pack("<H", len(path)) + path
s.sendall(struct.pack("<II", 8, len(payload)) + payload)
def read(n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            sys.exit("the connection closed before the reply")
        out += chunk
    return out
kind, size = struct.unpack("<II", read(8))
read(size)
print("reply", "T_SUCCESS" if kind == 0 else kind, flush=True)
if len(sys.argv) > 3:
    time.sleep(float(sys.argv[3]))
s.close()
sys.exit(0 if kind == 0 else 1)
EOF
chmod 755 "$root/usr/local/bin/vph-lstat"

systemd-nspawn -q -D "$root" -M "$machine" -b --register=no --keep-unit --console=passive \
  --bind="$scratch/run:/run/virtfs-proxy-helper" \
  > "$scratch/nspawn.log" 2>&1 &
nspawn_pid=$!
# The container's PID 1, then its boot finished (running or degraded: the
# bad instance fails on purpose).
pid=
for _ in $(seq 100); do
  pid=$(ps --ppid "$nspawn_pid" -o pid= 2>/dev/null | head -n 1 | tr -d ' ' || true)
  if [ -n "$pid" ]; then
    state=$(nsenter -t "$pid" -a systemctl is-system-running 2>/dev/null || true)
    case $state in running | degraded) break ;; esac
  fi
  sleep 0.3
done
case ${state:-} in
  running | degraded) ;;
  *)
    echo "service-boot: the container did not boot (systemd-nspawn -b: '${state:-no PID 1}'), nothing tested:" >&2
    cat "$scratch/nspawn.log" >&2
    exit 1
    ;;
esac
inside() { nsenter -t "$pid" -a env LANG=C "$@"; }
as_user() { local uid=$1; shift; inside setpriv --reuid="$uid" --regid="$uid" --clear-groups "$@"; }
journal() { inside journalctl --no-pager "$@"; }

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
# The units as Debian 11's systemd 247 and Debian 13's 257 read them:
# systemd-analyze verify in a root of each, the package installed, /proc
# mounted, --man=no (minbase has no man). Any line naming our units or
# wrapper fails, as does a non-zero status; lines about the root's own
# files (trixie's tmpfiles.d duplicates) are let pass. /sys is the host's
# (247 looks up its cgroup there), in a mount namespace that dies with
# the command.
verify_in() {
  local suite=$1 copy=$scratch/verify-$1 out
  cp -a "$(systemd_root "$suite")" "$copy"
  cp "$deb" "$copy/tmp/vph.deb"
  chroot "$copy" dpkg -i /tmp/vph.deb >/dev/null 2>&1 || { echo "dpkg -i failed in the $suite root"; return 1; }
  if ! out=$(unshare --mount --propagation private sh -c '
      mount -t proc proc "$1/proc" && mount --rbind /sys "$1/sys" && mount --make-rslave "$1/sys" &&
      chroot "$1" systemd-analyze verify --man=no \
        /lib/systemd/system/virtfs-proxy-helper@.socket /lib/systemd/system/virtfs-proxy-helper@.service
    ' sh "$copy" 2>&1) || echo "$out" | grep -q 'virtfs-proxy-helper'; then
    echo "$out"
    return 1
  fi
  rm -rf "$copy"
}

echo "== booted: $(inside sh -c '. /etc/os-release; echo "$PRETTY_NAME"'), $(inside systemctl --version | head -n 1)"

sock=/run/virtfs-proxy-helper/good.sock
for suite in bullseye trixie; do
  version=$(chroot "$(systemd_root "$suite")" systemd-analyze --version | head -n 1 | awk '{print $1, $2}')
  check "systemd-analyze verify in a $suite root ($version): the units as installed, no warning" verify_in "$suite"
done
check "good.socket listens" inside systemctl is-active --quiet virtfs-proxy-helper@good.socket
check "its socket is 0660 nobody:nogroup" test "$(inside stat -c '%a %U %G' $sock)" = "660 nobody nogroup"
check "bad.socket failed in ExecStartPre" test "$(inside systemctl is-failed virtfs-proxy-helper@bad.socket)" = failed
check "... saying why, at priority err" sh -c "nsenter -t $pid -a journalctl --no-pager -o cat -p err -t instance |
  grep -qF 'virtfs-proxy-helper@bad: /etc/virtfs-proxy-helper/bad.conf: EXPORT=/srv/nothing does not exist'"

# A connection held open 3 s: the helper's /proc status shows the unit's
# sandboxing while it serves.
as_user 65534 vph-lstat $sock file 3 > "$scratch/lstat" 2>&1 &
client=$!
main=
for _ in $(seq 50); do
  unit=$(inside systemctl list-units --plain --no-legend 'virtfs-proxy-helper@*.service' | awk '{print $1}' | head -n 1)
  if [ -n "$unit" ]; then
    main=$(inside systemctl show -p MainPID --value "$unit")
    [ "${main:-0}" != 0 ] && grep -q "reply" "$scratch/lstat" 2>/dev/null && break
  fi
  sleep 0.1
done
inside cat "/proc/${main:-0}/status" > "$scratch/status" 2>/dev/null || true
# CHOWN DAC_OVERRIDE FOWNER FSETID SETGID SETUID SYS_CHROOT SYS_ADMIN MKNOD
want_bnd=$(printf '%016x' $(((1 << 0) | (1 << 1) | (1 << 3) | (1 << 4) | (1 << 6) | (1 << 7) | (1 << 18) | (1 << 21) | (1 << 27))))
check "a service for the connection runs (${unit:-no unit}, main pid ${main:-none})" grep -q '^Pid:' "$scratch/status"
check "... with NoNewPrivs, seccomp and the unit's bounding set" sh -c "
  grep -q '^NoNewPrivs:[[:space:]]*1' '$scratch/status' &&
  grep -q '^Seccomp:[[:space:]]*2' '$scratch/status' &&
  grep -q '^CapBnd:[[:space:]]*$want_bnd' '$scratch/status'"
wait "$client" || true
check "as nobody, T_LSTAT over the socket answered" grep -q "reply T_SUCCESS" "$scratch/lstat"
sleep 0.5
check "... and the helper ended with status 0" sh -c "nsenter -t $pid -a journalctl --no-pager -o cat -t virtfs-proxy-helper | grep -q 'client disconnected; done' &&
  ! nsenter -t $pid -a journalctl --no-pager -o cat -u '$unit' | grep -q 'Failed with result'"
check "uid 1000 (neither owner nor group) may not connect" sh -c "
  nsenter -t $pid -a setpriv --reuid=1000 --regid=1000 --clear-groups vph-lstat $sock file 2>&1 | grep -q 'Permission denied'"
check "the helper's info lines in the journal at priority 6" sh -c "
  nsenter -t $pid -a journalctl --no-pager -o cat -p 6..6 -t virtfs-proxy-helper | grep -q 'INFO serving the connection inherited as fd 3'"
check "... and none at a higher one" sh -c "! nsenter -t $pid -a journalctl --no-pager -o cat -p 0..5 -t virtfs-proxy-helper | grep -q INFO"

# QEMU as the client, as the socket's user, from the host.
qemu_client() {
  command -v qemu-system-x86_64 >/dev/null || { echo "qemu-system-x86_64 is not installed (ci/install-deps.sh installs it)"; return 1; }
  local before qemu n
  before=$(journal -o cat -t virtfs-proxy-helper | grep -c 'client disconnected' || true)
  setpriv --reuid=65534 --regid=65534 --clear-groups qemu-system-x86_64 -machine pc -nodefaults -display none \
    -fsdev proxy,id=fs0,socket="$scratch/run/good.sock" -device virtio-9p-pci,fsdev=fs0,mount_tag=share \
    > "$scratch/qemu.log" 2>&1 &
  qemu=$!
  for _ in $(seq 100); do
    journal -o cat -t virtfs-proxy-helper | grep -q 'inherited as fd 3 (pid [0-9]*, uid 65534, gid 65534).*' \
      && [ "$(journal -o cat -t virtfs-proxy-helper | grep -c 'inherited as fd 3')" -ge 2 ] && break
    sleep 0.1
  done
  kill -0 "$qemu" || { echo "QEMU ended early: $(cat "$scratch/qemu.log")"; return 1; }
  [ "$(journal -o cat -t virtfs-proxy-helper | grep -c 'inherited as fd 3')" -ge 2 ] || { echo "no helper for QEMU's connection"; return 1; }
  kill -TERM "$qemu"
  wait "$qemu" || true
  for _ in $(seq 50); do
    n=$(journal -o cat -t virtfs-proxy-helper | grep -c 'client disconnected' || true)
    [ "$n" -gt "$before" ] && return 0
    sleep 0.1
  done
  echo "the helper did not end cleanly after QEMU: $(journal -o cat -t virtfs-proxy-helper | tail -n 3)"
  return 1
}
check "QEMU 7.2 as nobody connects with -fsdev proxy,socket=; its helper ends with status 0" qemu_client

# The instance file broken while the socket listens: the next connection
# fails with one line at priority err.
inside sh -c 'ln -s /srv/share /srv/link && printf "EXPORT=/srv/link\nSOCKET_USER=nobody\nSOCKET_GROUP=nogroup\n" > /etc/virtfs-proxy-helper/good.conf'
check "a connection after EXPORT became a symlink gets no reply" sh -c "! nsenter -t $pid -a setpriv --reuid=65534 --regid=65534 --clear-groups vph-lstat $sock file >/dev/null 2>&1"
sleep 0.5
check "... and the journal says why, at priority err" sh -c "nsenter -t $pid -a journalctl --no-pager -o cat -p err -t virtfs-proxy-helper |
  grep -qF 'virtfs-proxy-helper@good: /etc/virtfs-proxy-helper/good.conf: EXPORT=/srv/link is a symlink'"

# The maintainer scripts under a running systemd: dpkg -r stops the
# sockets (prerm) and systemd forgets the units (postrm's daemon-reload);
# dpkg -i again (postinst's daemon-reload) and the socket starts again.
inside sh -c 'printf "EXPORT=/srv/share\nSOCKET_USER=nobody\nSOCKET_GROUP=nogroup\n" > /etc/virtfs-proxy-helper/good.conf'
check "dpkg -r under the running systemd" inside dpkg -r virtfs-proxy-helper
check "... stopped the sockets (prerm) and the socket file is gone" sh -c "
  ! nsenter -t $pid -a systemctl is-active --quiet virtfs-proxy-helper@good.socket && ! nsenter -t $pid -a test -e $sock"
check "... and systemd no longer finds the units" \
  test "$(inside systemctl show -p LoadState --value virtfs-proxy-helper@good.socket)" = not-found
cp "$deb" "/proc/$pid/root/var/tmp/vph.deb"
check "dpkg -i again under the running systemd" inside dpkg -i /var/tmp/vph.deb
check "... and the socket starts and listens again" sh -c "
  nsenter -t $pid -a systemctl start virtfs-proxy-helper@good.socket &&
  test \"\$(nsenter -t $pid -a stat -c '%a %U %G' $sock)\" = '660 nobody nogroup'"

kill -RTMIN+4 "$pid" 2>/dev/null || true   # systemd's poweroff signal
for _ in $(seq 50); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.2; done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
