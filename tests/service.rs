//! Running as a service: `dist/instance`, the wrapper
//! `virtfs-proxy-helper@.service` starts for each connection and
//! `virtfs-proxy-helper@.socket` runs before and after it listens, run as
//! systemd runs it (the connection accepted on `RUN/NAME.sock` as fd 3,
//! the instance file in `CONF/NAME.conf`); the journal's priority prefixes
//! on stderr; and the helper under the unit's capability bounding set,
//! `no_new_privs` and a read-only `/usr` and `/etc` (what the unit's
//! `CapabilityBoundingSet=`, `NoNewPrivileges=` and `ProtectSystem=full`
//! impose). Not here: a booted systemd starting the units, with the
//! unit's seccomp-based directives (RestrictNamespaces=,
//! RestrictAddressFamilies=, MemoryDenyWriteExecute=, LockPersonality=,
//! RestrictRealtime=, SystemCallArchitectures=): ci/service-boot.sh boots
//! a Debian 12 container for that, and ci/package.sh runs
//! `systemd-analyze verify` on the installed units.

mod common;

use common::*;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

/// A file of `dist/`, or None (and a SKIPPED line) where this user may not
/// read the source tree (the unprivileged passes; the root pass runs it).
fn dist(test: &str, rel: &str) -> Option<PathBuf> {
    let path = Path::new(MANIFEST).join("dist").join(rel);
    match std::fs::read(&path) {
        Ok(_) => Some(path),
        Err(e) => {
            skip(test, &format!("dist/{rel} is not readable here ({e})"));
            None
        }
    }
}

/// One export's configuration and socket directory, as on a host:
/// `conf/NAME.conf`, `run/NAME.sock`, and the export `share/`.
struct Host {
    dir: tempfile::TempDir,
    wrapper: PathBuf,
}

impl Host {
    fn new(wrapper: PathBuf) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["conf", "run", "share"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        std::fs::write(dir.path().join("share/file"), b"data").unwrap();
        Host { dir, wrapper }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn conf(&self, name: &str, text: &str) {
        std::fs::write(self.path(&format!("conf/{name}.conf")), text).unwrap();
    }

    fn wrapper(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(&self.wrapper)
            .args(args)
            .env("VPH_CONF_DIR", self.path("conf"))
            .env("VPH_RUN_DIR", self.path("run"))
            .env("VPH_HELPER", our_binary())
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null());
        cmd
    }

    /// `instance serve` with fd 3 a connection accepted on `run/NAME.sock`,
    /// as systemd starts it; returns it running with QEMU's end.
    fn serve(&self, name: &str, wrap: impl FnOnce(Command) -> Command) -> (Served, UnixStream) {
        let sock = self.path(&format!("run/{name}.sock"));
        let _ = std::fs::remove_file(&sock);
        let listener = UnixListener::bind(&sock).unwrap();
        let qemu = UnixStream::connect(&sock).unwrap();
        let (conn, _) = listener.accept().unwrap();
        let raw = conn.as_raw_fd();
        let log = self.path(&format!("{name}.log"));
        let mut cmd = wrap(self.wrapper(&["serve"]));
        cmd.stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        // SAFETY: as_fd3 only calls dup2/fcntl, async-signal-safe.
        unsafe {
            cmd.pre_exec(move || as_fd3(raw));
        }
        let child = cmd.spawn().unwrap();
        drop(conn);
        (Served { child, log }, qemu)
    }
}

struct Served {
    child: Child,
    log: PathBuf,
}

impl Served {
    fn finish(mut self, limit: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, std::fs::read_to_string(&self.log).unwrap());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "instance serve did not finish:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Serves one lstat of `file` on `qemu`'s connection, then disconnects.
fn one_request(served: Served, qemu: UnixStream) -> (ExitStatus, String, Result<i64, i32>) {
    let fd: rustix::fd::OwnedFd = qemu.into();
    let h = Helper::adopt(0, fd);
    let stat = h.lstat("file").map(|st| st.size);
    drop(h);
    let (status, log) = served.finish(Duration::from_secs(20));
    (status, log, stat)
}

#[test]
fn serve_runs_the_helper_on_the_export_its_instance_file_names() {
    let Some(wrapper) = dist("serve_runs_the_helper", "instance") else {
        return;
    };
    let host = Host::new(wrapper);
    host.conf(
        "share",
        &format!(
            "# a comment\n\nEXPORT='{}'\n  OPTIONS=\"--readonly --log-level debug\"  \n",
            host.path("share").display()
        ),
    );
    let (served, qemu) = host.serve("share", |c| c);
    let (status, log, stat) = one_request(served, qemu);
    assert_eq!(stat, Ok(4), "lstat of the export's file:\n{log}");
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        log.contains("serving the connection inherited as fd 3"),
        "{log}"
    );
    assert!(
        log.contains("readonly=on"),
        "OPTIONS reach the helper:\n{log}"
    );
    assert!(
        log.contains(&format!("export={}", host.path("share").display())),
        "{log}"
    );
}

#[test]
fn a_bad_instance_file_fails_the_connection_with_one_line() {
    let Some(wrapper) = dist("a_bad_instance_file", "instance") else {
        return;
    };
    let host = Host::new(wrapper);
    let share = host.path("share");
    std::os::unix::fs::symlink(&share, host.path("link")).unwrap();
    std::fs::write(host.path("plain"), b"").unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        ("missing", String::new(), "no instance file"),
        (
            "noexport",
            "OPTIONS=--readonly\n".into(),
            "EXPORT is not set",
        ),
        (
            "symlink",
            format!("EXPORT={}\n", host.path("link").display()),
            "is a symlink (the helper refuses one)",
        ),
        (
            "absent",
            format!("EXPORT={}/nothing\n", share.display()),
            "does not exist",
        ),
        (
            "file",
            format!("EXPORT={}\n", host.path("plain").display()),
            "is not a directory",
        ),
        (
            "relative",
            "EXPORT=share\n".into(),
            "is not an absolute path",
        ),
        (
            "unknown",
            format!("EXPORT={}\nREADONLY=yes\n", share.display()),
            "line 2: unknown key 'READONLY'",
        ),
        (
            "notkv",
            format!("EXPORT={}\n--readonly\n", share.display()),
            "line 2: not KEY=VALUE",
        ),
        (
            "quote",
            format!("EXPORT=\"{}\n", share.display()),
            "line 1: unterminated quote",
        ),
        (
            "fd",
            format!("EXPORT={}\nOPTIONS=--fd 4\n", share.display()),
            "OPTIONS may not hold --fd",
        ),
        (
            "short",
            format!("EXPORT={}\nOPTIONS=-p /\n", share.display()),
            "OPTIONS may not hold the short option -p",
        ),
    ];
    for (name, text, want) in &cases {
        if name != &"missing" {
            host.conf(name, text);
        }
        let (served, qemu) = host.serve(name, |c| c);
        let (status, log) = served.finish(Duration::from_secs(10));
        drop(qemu);
        assert_eq!(status.code(), Some(1), "{name}: {log}");
        assert_eq!(log.lines().count(), 1, "{name}: one line:\n{log}");
        assert!(
            log.starts_with(&format!("virtfs-proxy-helper@{name}: ")) && log.contains(want),
            "{name}: wanted '{want}':\n{log}"
        );
    }
    // An option the helper does not know: its own usage error, status 2.
    host.conf(
        "bogus",
        &format!("EXPORT={}\nOPTIONS=--bogus\n", share.display()),
    );
    let (served, _qemu) = host.serve("bogus", |c| c);
    let (status, log) = served.finish(Duration::from_secs(10));
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(log.contains("unexpected argument '--bogus'"), "{log}");
}

#[test]
fn serve_refuses_what_systemd_would_not_pass() {
    let Some(wrapper) = dist("serve_refuses", "instance") else {
        return;
    };
    let host = Host::new(wrapper);
    let run = |fd3: Option<&UnixStream>| {
        let mut cmd = host.wrapper(&["serve"]);
        cmd.stderr(Stdio::piped());
        if let Some(s) = fd3 {
            let raw = s.as_raw_fd();
            // SAFETY: as_fd3 only calls dup2/fcntl, async-signal-safe.
            unsafe {
                cmd.pre_exec(move || as_fd3(raw));
            }
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(None);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("fd 3 is not open"), "{err}");
    let (a, _b) = UnixStream::pair().unwrap();
    let (code, err) = run(Some(&a));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("has no path (a socketpair?)"), "{err}");
    // A socket outside the socket directory, or not named NAME.sock.
    let other = tempfile::tempdir().unwrap();
    for (path, want) in [
        (other.path().join("share.sock"), "not in"),
        (host.path("run/share.socket"), "not"),
    ] {
        let listener = UnixListener::bind(&path).unwrap();
        let _qemu = UnixStream::connect(&path).unwrap();
        let (conn, _) = listener.accept().unwrap();
        let (code, err) = run(Some(&conn));
        assert_eq!(code, Some(1), "{err}");
        assert!(
            err.contains(&format!("{}", path.display())) && err.contains(want),
            "{err}"
        );
    }
    let (code, err) = {
        let out = host.wrapper(&["start"]).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(code, Some(1));
    assert!(err.contains("usage: instance check NAME"), "{err}");
}

#[test]
fn check_and_own_prepare_the_socket_for_its_user_and_group() {
    let test = "check_and_own";
    let Some(wrapper) = dist(test, "instance") else {
        return;
    };
    let host = Host::new(wrapper);
    let share = host.path("share");
    let status = |args: &[&str]| {
        let out = host.wrapper(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    host.conf(
        "nouser",
        &format!("EXPORT={}\nSOCKET_USER=no-such-user-vph\n", share.display()),
    );
    let (code, err) = status(&["check", "nouser"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("SOCKET_USER=no-such-user-vph is no user here"),
        "{err}"
    );
    host.conf(
        "nogroup",
        &format!(
            "EXPORT={}\nSOCKET_GROUP=no-such-group-vph\n",
            share.display()
        ),
    );
    let (code, err) = status(&["check", "nogroup"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("SOCKET_GROUP=no-such-group-vph is no group here"),
        "{err}"
    );
    let (code, err) = status(&["check", "../x"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("instance name '../x'"), "{err}");

    host.conf(
        "vm",
        &format!(
            "EXPORT={}\nSOCKET_USER=65534\nSOCKET_GROUP=65534\n",
            share.display()
        ),
    );
    let (code, err) = status(&["check", "vm"]);
    assert_eq!((code, err.as_str()), (Some(0), ""));
    let (code, err) = status(&["own", "vm"]);
    assert_eq!(code, Some(1), "no socket yet: {err}");
    assert!(err.contains("is not a socket"), "{err}");
    if !is_real_root() {
        skip(test, "giving the socket to uid 65534 needs real root");
        return;
    }
    let sock = host.path("run/vm.sock");
    let _listener = UnixListener::bind(&sock).unwrap();
    let (code, err) = status(&["own", "vm"]);
    assert_eq!((code, err.as_str()), (Some(0), ""));
    let meta = std::fs::symlink_metadata(&sock).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
}

/// `DEVICE:INODE` of a file, as systemd writes `$JOURNAL_STREAM`.
fn stream_id(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).unwrap();
    format!("{}:{}", meta.dev(), meta.ino())
}

#[test]
fn stderr_lines_carry_journal_priorities_only_on_the_journal_stream() {
    let Some(wrapper) = dist("journal_priorities", "instance") else {
        return;
    };
    let host = Host::new(wrapper);
    host.conf("j", &format!("EXPORT={}\n", host.path("share").display()));
    // The journal's stream is the helper's stderr: every line has a prefix.
    let log = host.path("j.log");
    std::fs::write(&log, b"").unwrap();
    let journal = stream_id(&log);
    let (served, qemu) = host.serve("j", |mut c| {
        c.env("JOURNAL_STREAM", &journal);
        c
    });
    let (status, text, stat) = one_request(served, qemu);
    assert_eq!((status.code(), stat), (Some(0), Ok(4)), "{text}");
    assert!(text.lines().count() >= 3, "{text}");
    for line in text.lines() {
        assert!(line.starts_with("<6>2"), "an info line with <6>: {line}");
    }
    // Another file's identity (stderr redirected away from the journal):
    // no prefix.
    let other = host.path("other");
    std::fs::write(&other, b"").unwrap();
    let elsewhere = stream_id(&other);
    let (served, qemu) = host.serve("j", |mut c| {
        c.env("JOURNAL_STREAM", &elsewhere);
        c
    });
    let (status, text, _) = one_request(served, qemu);
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(text.lines().all(|l| !l.starts_with('<')), "{text}");
    // The wrapper's refusal is an error, <3>.
    host.conf("bad", "OPTIONS=\n");
    std::fs::write(host.path("bad.log"), b"").unwrap();
    let journal = stream_id(&host.path("bad.log"));
    let (served, _qemu) = host.serve("bad", |mut c| {
        c.env("JOURNAL_STREAM", &journal);
        c
    });
    let (status, text) = served.finish(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1));
    assert!(text.starts_with("<3>virtfs-proxy-helper@bad: "), "{text}");
}

/// The unit's `CapabilityBoundingSet=`, read from the unit file.
fn unit_bounding_set(unit: &str) -> Vec<String> {
    unit.lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("the service sets CapabilityBoundingSet=")
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_lowercase())
        .collect()
}

#[test]
fn the_helper_serves_under_the_units_bounding_set_nnp_and_read_only_system() {
    let test = "the_helper_serves_under_the_units_sandbox";
    let Some(wrapper) = dist(test, "instance") else {
        return;
    };
    let Some(unit) = dist(test, "systemd/virtfs-proxy-helper@.service") else {
        return;
    };
    if !is_real_root() {
        skip(
            test,
            "the unit's service runs as real root; this user is not",
        );
        return;
    }
    let unit = std::fs::read_to_string(unit).unwrap();
    assert!(unit.contains("\nNoNewPrivileges=yes\n") && unit.contains("\nProtectSystem=full\n"));
    let caps = unit_bounding_set(&unit);
    assert_eq!(caps.len(), 9, "{caps:?}");
    let bounding = format!(
        "-all,{}",
        caps.iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let host = Host::new(wrapper);
    host.conf(
        "unit",
        &format!(
            "EXPORT={}\nOPTIONS=--log-level debug\n",
            host.path("share").display()
        ),
    );
    // ProtectSystem=full: /usr, /boot, /efi and /etc read-only, in a mount
    // namespace of the service's own.
    let (served, qemu) = host.serve("unit", |c| {
        let mut outer = Command::new("unshare");
        outer
            .args(["--mount", "--propagation", "private", "sh", "-ec"])
            .arg(
                "for d in /usr /boot /efi /etc; do
               [ -d $d ] || continue
               mount --bind $d $d && mount -o remount,bind,ro $d
             done
             exec setpriv --no-new-privs --inh-caps=-all --bounding-set=\"$0\" \"$@\"",
            );
        outer.arg(&bounding).arg(c.get_program()).args(c.get_args());
        for (k, v) in c.get_envs() {
            match v {
                Some(v) => outer.env(k, v),
                None => outer.env_remove(k),
            };
        }
        outer.stdin(Stdio::null());
        outer
    });
    let (status, log, stat) = one_request(served, qemu);
    assert_eq!(stat, Ok(4), "lstat under the unit's limits:\n{log}");
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        log.contains("sandbox=\"namespace"),
        "the namespace sandbox:\n{log}"
    );
    assert!(
        log.contains("capabilities=CAP_CHOWN,CAP_DAC_OVERRIDE,CAP_FOWNER,CAP_FSETID,CAP_MKNOD,CAP_SETGID,CAP_SETUID"),
        "{log}"
    );
}

#[test]
fn the_signal_line_carries_its_priority_too() {
    // The line a signal handler writes is rendered ahead of time
    // (logging::Prerendered): it must carry the prefix as the others do.
    let share = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("stderr");
    let file = std::fs::File::create(&log).unwrap();
    let journal = stream_id(&log);
    let (qemu, conn) = UnixStream::pair().unwrap();
    let raw = conn.as_raw_fd();
    let mut cmd = Command::new(our_binary());
    cmd.args(["--nodaemon", "--fd", "3", "--path"])
        .arg(share.path())
        .env("JOURNAL_STREAM", &journal)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file);
    // SAFETY: as_fd3 only calls dup2/fcntl, async-signal-safe.
    unsafe {
        cmd.pre_exec(move || as_fd3(raw));
    }
    let mut child = cmd.spawn().unwrap();
    drop(conn);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("sandbox:")
    {
        assert!(Instant::now() < deadline, "the helper did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    drop(qemu);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(143), "{text}");
    let last = text.lines().last().unwrap();
    assert!(
        last.starts_with("<4>2") && last.contains("WARN received SIGTERM"),
        "the signal's warning last, with <4>:\n{text}"
    );
    for line in text.lines() {
        let want = if line.contains(" WARN ") {
            "<4>2"
        } else {
            "<6>2"
        };
        assert!(line.starts_with(want), "{want} on: {line}");
    }
}
