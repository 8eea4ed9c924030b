//! Start-up as an operator meets it: every set-up failure reported before
//! the command returns (daemon mode included), `--fd` checked, the socket
//! file's whole life (announced, removed on connect and on SIGINT/SIGTERM,
//! a stale one explained), the exit statuses, and log lines a guest cannot
//! forge.

mod common;

use common::*;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Drops CAP_SYS_CHROOT from the bounding set between fork and exec, as
/// `capsh --drop=cap_sys_chroot` does: the helper, though root, cannot
/// chroot.
fn drop_chroot_capability(cmd: &mut Command) {
    const CAP_SYS_CHROOT: libc::c_ulong = 18;
    // SAFETY: a plain prctl between fork and exec; nothing allocates.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_CHROOT, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Runs the helper in a private mount namespace whose /proc is an empty
/// tmpfs. Returns false (the test then skips, saying so) where this process
/// may not do that.
fn hide_proc(cmd: &mut Command) -> bool {
    let probe = Command::new("unshare")
        .args(["-m", "sh", "-c", "mount -t tmpfs none /proc"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        return false;
    }
    // SAFETY: only syscalls on static strings between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let ok = libc::unshare(libc::CLONE_NEWNS) == 0
                && libc::mount(
                    c"none".as_ptr(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) == 0
                && libc::mount(
                    c"none".as_ptr(),
                    c"/proc".as_ptr(),
                    c"tmpfs".as_ptr(),
                    0,
                    std::ptr::null(),
                ) == 0;
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    true
}

fn helper() -> Command {
    let mut cmd = Command::new(our_binary());
    cmd.stdin(Stdio::null());
    cmd
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A foreground helper on a socket file, with its stderr in a file.
struct Listening {
    child: Child,
    log: std::path::PathBuf,
}

impl Listening {
    fn start(export: &Path, sock: &Path, log: std::path::PathBuf) -> Self {
        let child = helper()
            .args(["-n", "-p"])
            .arg(export)
            .arg("-s")
            .arg(sock)
            .args(owner_args())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let me = Listening { child, log };
        wait_until("the waiting line", || me.log().contains("waiting for QEMU"));
        me
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the helper did not exit:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn a_set_up_failure_in_daemon_mode_reaches_the_terminal_and_the_exit_status() {
    if skip_unless_root_here(
        "a_set_up_failure_in_daemon_mode_reaches_the_terminal_and_the_exit_status",
        "dropping CAP_SYS_CHROOT from the bounding set",
    ) {
        return;
    }
    let s = Scratch::new();
    let sock = s.dir.path().join("vph.sock");
    let mut cmd = helper();
    cmd.arg("-p")
        .arg(&s.export)
        .arg("-s")
        .arg(&sock)
        .args(owner_args())
        .args(["--sandbox", "chroot"]);
    drop_chroot_capability(&mut cmd);
    let started = Instant::now();
    let out = cmd.output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("chroot into the export failed") && all.contains("--no-chroot"),
        "{all}"
    );
    assert!(!sock.exists(), "the failed run left no socket file");
}

#[test]
fn a_missing_procfs_is_reported_before_the_command_returns() {
    let s = Scratch::new();
    let sock = s.dir.path().join("vph.sock");
    std::fs::write(s.path("f"), "xy").unwrap();
    // Where the kernel has O_EMPTYPATH, fchmodat2 and the *xattrat calls
    // (Linux 7.2), the helper needs no procfs: it must then serve without.
    let root = std::fs::File::open(&s.export).unwrap();
    let procfs_free =
        virtfs_proxy_helper::syscalls::Features::probe(std::os::fd::AsFd::as_fd(&root))
            .procfs_free();
    let command = |daemon: bool, sandbox: &[&str]| {
        let mut cmd = helper();
        if !daemon {
            cmd.arg("-n");
        }
        cmd.arg("-p")
            .arg(&s.export)
            .arg("-s")
            .arg(&sock)
            .args(owner_args())
            .args(sandbox);
        cmd
    };
    let served = |out: &Output| {
        assert_eq!(out.status.code(), Some(0), "{}", text(out));
        let stream = UnixStream::connect(&sock).unwrap();
        let h = Helper::adopt(0, stream.into());
        assert_eq!(
            h.lstat("f").unwrap().size,
            2,
            "served without the host's procfs"
        );
    };
    // The chroot sandbox needs the host's procfs.
    for daemon in [false, true] {
        let mut cmd = command(daemon, &["--sandbox", "chroot"]);
        if !hide_proc(&mut cmd) {
            skip(
                "a_missing_procfs_is_reported_before_the_command_returns",
                "this process may not mount a tmpfs over /proc in a new mount namespace",
            );
            return;
        }
        if procfs_free {
            if daemon {
                served(&cmd.output().unwrap());
            }
            continue;
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(
            text(&out).contains("a mounted procfs is needed"),
            "{}",
            text(&out)
        );
        assert!(!sock.exists());
    }
    // The namespace sandbox mounts a procfs of its own: it serves, or
    // where the kernel refuses that (in a user namespace, a new procfs
    // needs a fully visible one, and /proc is hidden here) it falls back
    // to chroot and fails as above.
    let mut cmd = command(true, &[]);
    assert!(hide_proc(&mut cmd));
    let out = cmd.output().unwrap();
    if out.status.code() == Some(1) && !procfs_free {
        assert!(
            text(&out).contains("a mounted procfs is needed"),
            "{}",
            text(&out)
        );
        assert!(!sock.exists());
    } else {
        served(&out);
    }
    // An explicit --sandbox namespace does not fall back: where the kernel
    // refuses its procfs, it says so and why.
    // (A /proc hidden by a mount over it still counts as visible to the
    // kernel's check, so it may well serve.)
    let mut cmd = command(true, &["--sandbox", "namespace"]);
    assert!(hide_proc(&mut cmd));
    let out = cmd.output().unwrap();
    if out.status.code() == Some(1) {
        assert!(
            text(&out).contains("--sandbox namespace: a private procfs: fsmount")
                || text(&out).contains("--sandbox namespace: the kernel refused"),
            "{}",
            text(&out)
        );
        assert!(!sock.exists());
    } else {
        served(&out);
    }
    if procfs_free {
        skip(
            "a_missing_procfs_is_reported_before_the_command_returns (failure part)",
            "this kernel needs no procfs (O_EMPTYPATH, fchmodat2, *xattrat): served without one instead",
        );
    }
}

#[test]
fn a_relative_path_works_in_daemon_mode() {
    let s = Scratch::new();
    std::fs::write(s.path("f"), "xyz").unwrap();
    let sock = s.dir.path().join("vph.sock");
    let out = helper()
        .current_dir(s.dir.path())
        .args(["-p", "export", "-s"])
        .arg(&sock)
        .args(owner_args())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stream = UnixStream::connect(&sock).unwrap();
    let h = Helper::adopt(0, stream.into());
    assert_eq!(h.lstat("f").unwrap().size, 3);
}

fn run_with_fd3(fd: &dyn std::os::fd::AsRawFd, export: &Path) -> Output {
    let raw = fd.as_raw_fd();
    let mut cmd = helper();
    cmd.args(["-n", "-f", "3", "-p"]).arg(export);
    // SAFETY: as_fd3 is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || as_fd3(raw));
    }
    cmd.output().unwrap()
}

#[test]
fn fd_must_be_a_connected_unix_stream_socket() {
    let s = Scratch::new();
    let listener = UnixListener::bind(s.dir.path().join("l.sock")).unwrap();
    let unconnected = rustix::net::socket(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        None,
    )
    .unwrap();
    let (dgram, _peer) = UnixDatagram::pair().unwrap();
    let inet = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let file = std::fs::File::open("/dev/null").unwrap();
    let cases: [(&dyn std::os::fd::AsRawFd, &str); 5] = [
        (&listener, "a listening socket"),
        (&unconnected, "not connected"),
        (&dgram, "not a stream socket"),
        (&inet, "not a UNIX socket"),
        (&file, "not a socket"),
    ];
    for (fd, needle) in cases {
        let out = run_with_fd3(fd, &s.export);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(2), "{needle}: {all}");
        assert!(all.contains(&format!("--fd 3: {needle}")), "{all}");
        assert!(all.contains("Usage:"), "{all}");
        assert!(
            !all.contains("confined") && !all.contains("started"),
            "refused before any set-up: {all}"
        );
    }
}

#[test]
fn the_socket_file_is_announced_removed_on_connect_and_free_for_the_next_run() {
    let s = Scratch::new();
    std::fs::write(s.path("f"), "ab").unwrap();
    let sock = s.dir.path().join("vph.sock");
    for run in 0..2 {
        let mut h = Listening::start(&s.export, &sock, s.dir.path().join(format!("log{run}")));
        assert!(
            h.log().contains(&format!(
                "listening on {}; waiting for QEMU",
                sock.display()
            )),
            "{}",
            h.log()
        );
        let stream = UnixStream::connect(&sock).unwrap();
        let client = Helper::adopt(0, stream.into());
        assert_eq!(client.lstat("f").unwrap().size, 2);
        wait_until("the socket file's removal", || !sock.exists());
        let log = h.log();
        assert!(
            log.contains(&format!("pid {}, uid ", std::process::id()))
                || log.contains("its pid outside the helper's pid namespace"),
            "the peer is named: {log}"
        );
        drop(client);
        assert_eq!(h.wait().code(), Some(0), "{}", h.log());
    }
}

#[test]
fn sigint_and_sigterm_are_logged_remove_the_socket_file_and_exit_128_plus_n() {
    let s = Scratch::new();
    std::fs::write(s.path("f"), "x").unwrap();
    let sock = s.dir.path().join("vph.sock");
    for (sig, name, code) in [
        (libc::SIGINT, "SIGINT", 130),
        (libc::SIGTERM, "SIGTERM", 143),
    ] {
        // Waiting for QEMU.
        let mut h = Listening::start(&s.export, &sock, s.dir.path().join(format!("{name}.log")));
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(h.child.id() as i32).unwrap(),
            rustix::process::Signal::from_named_raw(sig).unwrap(),
        )
        .unwrap();
        let status = h.wait();
        assert_eq!(status.code(), Some(code), "{}", h.log());
        assert!(
            h.log()
                .contains(&format!("WARN received {name}; exiting with status {code}")),
            "{}",
            h.log()
        );
        assert!(!sock.exists(), "the socket file is gone once the helper is");

        // Serving, under the seccomp filter.
        let mut spawn = Spawn::new(Flavor::Openat2, &s.export).start();
        assert!(spawn.lstat("//f").is_ok());
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(spawn.pid()).unwrap(),
            rustix::process::Signal::from_named_raw(sig).unwrap(),
        )
        .unwrap();
        let status = spawn.wait(Duration::from_secs(10)).expect("exits");
        assert_eq!(status.code(), Some(code), "{}", spawn.stderr());
        assert!(status.signal().is_none());
        assert!(spawn.stderr().contains(&format!("received {name}")));
    }
}

#[test]
fn an_existing_socket_path_is_explained() {
    let s = Scratch::new();
    let run = |path: &Path| {
        helper()
            .args(["-n", "-p"])
            .arg(&s.export)
            .arg("-s")
            .arg(path)
            .args(owner_args())
            .output()
            .unwrap()
    };
    // A stale socket: bound, then its listener closed.
    let stale = s.dir.path().join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    let out = run(&stale);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("nothing is listening on it")
            && text(&out).contains(&format!("rm {}", stale.display())),
        "{}",
        text(&out)
    );
    // A live one: its listener never sees a connection from the check.
    let live = s.dir.path().join("live.sock");
    let listener = UnixListener::bind(&live).unwrap();
    listener.set_nonblocking(true).unwrap();
    let out = run(&live);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("a process is listening on it"),
        "{}",
        text(&out)
    );
    assert!(listener.accept().is_err(), "the check did not connect");
    // Not a socket at all.
    let plain = s.dir.path().join("plain");
    std::fs::write(&plain, "").unwrap();
    assert!(text(&run(&plain)).contains("already exists and is not a socket"));
    // Bind errors name the path.
    let nowhere = s.dir.path().join("no/such/dir/vph.sock");
    let out = run(&nowhere);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains(&nowhere.display().to_string()),
        "{}",
        text(&out)
    );
    let long = s.dir.path().join("x".repeat(120));
    assert!(text(&run(&long)).contains("too long"));
}

#[test]
fn exit_statuses_follow_the_documented_table() {
    let s = Scratch::new();
    // 0: QEMU disconnects cleanly.
    let h = spawn(Flavor::Openat2, &s.export);
    assert_eq!(h.finish().code(), Some(0));
    // 2: misuse, a bad --path or --fd included.
    for args in [
        vec!["-p"],
        vec!["-p", "/nonexistent", "-f", "3"],
        vec!["-p", s.export.to_str().unwrap(), "-f", "987"],
    ] {
        assert_eq!(
            helper().args(&args).output().unwrap().status.code(),
            Some(2)
        );
    }
    // 1: set-up fails (chroot without CAP_SYS_CHROOT).
    if !skip_unless_root_here(
        "exit_statuses_follow_the_documented_table (status 1 at set-up)",
        "dropping CAP_SYS_CHROOT from the bounding set",
    ) {
        let mut cmd = helper();
        cmd.args(["-n", "-p"])
            .arg(&s.export)
            .arg("-s")
            .arg(s.dir.path().join("a.sock"));
        cmd.args(owner_args()).args(["--sandbox", "chroot"]);
        drop_chroot_capability(&mut cmd);
        assert_eq!(cmd.output().unwrap().status.code(), Some(1));
    }
    // 1: the connection breaks (a frame larger than the protocol allows).
    let mut h = spawn(Flavor::Openat2, &s.export);
    h.send_raw(&[8, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f]);
    assert_eq!(h.wait(Duration::from_secs(10)).unwrap().code(), Some(1));
    // 130 and 143: see sigint_and_sigterm_are_logged_...
    // The table in README.md and the man page says the same.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .unwrap_or_default();
    let man = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/virtfs-proxy-helper.1"
    ))
    .unwrap_or_default();
    if readme.is_empty() || man.is_empty() {
        skip(
            "exit status tables",
            "README.md or docs/ is not readable here",
        );
        return;
    }
    for status in ["| 0 |", "| 1 |", "| 2 |", "| 130 |", "| 143 |"] {
        assert!(
            readme.contains(status),
            "README's exit status table has {status}"
        );
    }
    for status in ["\n0\n", "\n1\n", "\n2\n", "\n130\n", "\n143\n"] {
        assert!(
            man.contains(&format!(".TP{status}")),
            "the man page's EXIT STATUS has {status:?}"
        );
    }
}

/// A guest that puts a newline, an escape sequence or bytes that are not
/// UTF-8 into a path must not be able to write a line of its own into the
/// log, nor reach the operator's terminal.
#[test]
fn client_strings_cannot_forge_log_lines() {
    let s = Scratch::new();
    let forged: &[u8] = b"../etc\nFAKE-LINE forged entry\x1b[31m\r\xff\xfe";
    for flavor in OURS {
        let h = spawn(flavor, &s.export);
        // An escape attempt (a warning) and a plain failure (debug).
        assert!(h.lstat_bytes(forged).is_err());
        let mut missing = b"no-such\n".to_vec();
        missing.extend_from_slice(b"FAKE-LINE two\x07");
        assert!(h.lstat_bytes(&missing).is_err());
        let log = std::fs::read(h.stderr_path()).unwrap();
        drop(h);
        let shown = String::from_utf8(log.clone()).expect("the log is valid UTF-8");
        assert!(
            !log.iter()
                .any(|&b| (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f),
            "no control bytes: {shown:?}"
        );
        assert!(
            shown.lines().all(|l| !l.starts_with("FAKE-LINE")),
            "no forged line: {shown}"
        );
        assert!(
            shown.contains(r"path=../etc\nFAKE-LINE forged entry\x1b[31m\r\xff\xfe"),
            "{shown}"
        );
        assert!(shown.contains(r"no-such\nFAKE-LINE two\x07"), "{shown}");
    }
}
