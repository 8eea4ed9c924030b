"""What ci/e2e/run.py and ci/kernels/run.py share: packing an initramfs,
running QEMU with a bounded wait on its console, and choosing KVM only
where it really boots."""
import os, subprocess, time


def run_bounded(cmd, timeout, preexec=None, pass_fds=(), until=None, log=None):
    """Runs QEMU, collecting its console (echoed line by line to `log`, a
    text file, if given); kills it at the deadline or once `until` appears.
    Returns (console text, finished in time)."""
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, preexec_fn=preexec, pass_fds=pass_fds)
    os.set_blocking(p.stdout.fileno(), False)
    out, deadline, in_time, pending = b"", time.monotonic() + timeout, False, b""
    while True:
        try:
            chunk = p.stdout.read()
        except BlockingIOError:
            chunk = None
        if chunk:
            out += chunk
            if log:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    log.write(line.decode(errors="replace").rstrip("\r") + "\n")
                log.flush()
            if until and until.encode() in out:
                in_time = True
        if p.poll() is not None:
            out += p.stdout.read() or b""
            in_time = in_time or until is None
            break
        if time.monotonic() > deadline:
            p.kill()
            break
        time.sleep(0.05)
    p.wait()
    return out.decode(errors="replace"), in_time


def choose_accel(probe_command, wanted, preexec=None):
    """`wanted`, or for "auto": KVM if /dev/kvm is usable and a short probe
    boot (`probe_command("kvm")`, a guest that prints PROBE-REACHED-INIT)
    really reaches the guest's init, TCG otherwise. These machines may
    expose a /dev/kvm that cannot boot a stock kernel."""
    if wanted != "auto":
        return wanted
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    console, ok = run_bounded(probe_command("kvm"), 30, preexec=preexec,
                              until="PROBE-REACHED-INIT")
    return "kvm" if ok and "PROBE-REACHED-INIT" in console else "tcg"


def pack_initramfs(root, image):
    """The directory `root` as a gzipped newc cpio archive at `image`,
    readable by the unprivileged QEMU user."""
    files = subprocess.run(["find", "."], cwd=root, check=True, capture_output=True).stdout
    cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root, input=files,
                          check=True, capture_output=True).stdout
    with open(image, "wb") as f:
        f.write(subprocess.run(["gzip", "-1"], input=cpio, check=True,
                               capture_output=True).stdout)
    os.chmod(image, 0o644)
    return image
