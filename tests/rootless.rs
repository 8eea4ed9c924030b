//! Rootless operation and the namespace sandbox: the helper's own user
//! namespace (`--uid-map`/`--gid-map` as root, the automatic map as an
//! ordinary user), the refusals users meet (user namespaces switched off,
//! a namespace the kernel refuses, contradictory options), and the
//! `nodev,nosuid` mount refusing a device node on its own.
//!
//! Where a test needs real root (to map a range, to become another user,
//! to make a device node) it says so when it skips. The refusal tests
//! lower a limit inside a user namespace of their own: the host's sysctls
//! stay untouched.

mod common;

use common::*;
use rustix::io::Errno;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Output};
use virtfs_proxy_helper::protocol::Request;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// T_CREATE of a new file at `path` as guest `uid`:`gid`.
fn create(path: &[u8], uid: u32, gid: u32) -> Request<'_> {
    Request::Create {
        path,
        flags: libc::O_CREAT | libc::O_RDWR,
        mode: 0o644,
        uid,
        gid,
    }
}

fn program(name: &str) -> bool {
    ["/usr/bin", "/bin"]
        .iter()
        .any(|d| std::path::Path::new(d).join(name).exists())
}

#[test]
fn contradictory_and_malformed_options_exit_2() {
    let s = Scratch::new();
    let export = s.export.to_str().unwrap();
    for (args, says) in [
        (
            vec!["--no-chroot", "--sandbox", "chroot"],
            "--no-chroot means --sandbox none; it contradicts --sandbox chroot",
        ),
        (
            vec!["--no-chroot", "--sandbox", "namespace"],
            "contradicts --sandbox namespace",
        ),
        (vec!["--sandbox", "jail"], "invalid value 'jail'"),
        (
            vec!["--uid-map", ":0:100000:", "--gid-map", ":0:100000:1:"],
            "--uid-map `:0:100000:`: expected :NS:HOST:COUNT:",
        ),
        (
            vec!["--uid-map", ":0:100000:65536:"],
            "--uid-map and --gid-map go together",
        ),
        (
            vec![
                "--uid-map",
                ":0:100000:10:",
                "--uid-map",
                ":5:200000:10:",
                "--gid-map",
                ":0:100000:1:",
            ],
            "overlap on the namespace side",
        ),
        (
            vec!["--uid-map", ":0:100000:4294967000:", "--gid-map", ":0:1:1:"],
            "COUNT is a count, not the end of a range",
        ),
    ] {
        let out = Command::new(our_binary())
            .args(["--sandbox-report", "-p", export])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
    }
    // The alias alone, and with its own meaning, are fine.
    for args in [
        vec!["--no-chroot"],
        vec!["--no-chroot", "--sandbox", "none"],
    ] {
        let out = Command::new(our_binary())
            .args(["--sandbox-report", "-p", export])
            .args(&args)
            .output()
            .unwrap();
        assert!(text(&out).contains("sandbox:       none"), "{}", text(&out));
    }
}

/// As real root, `--uid-map :0:1000000:65536:` gives the helper a shifted
/// range, as LXD's raw.idmap does: the guest's ids land shifted on the
/// host, stat replies and POSIX ACLs come back unshifted, and ids outside
/// the range are refused.
#[test]
fn root_with_a_shifted_range() {
    if !is_real_root() {
        skip(
            "root_with_a_shifted_range",
            "writing a map of other host ids needs real root",
        );
        return;
    }
    for flavor in OURS {
        let s = Scratch::new();
        for p in [s.dir.path(), s.export.as_path()] {
            fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::os::unix::fs::chown(&s.export, Some(1_000_000), Some(1_000_000)).unwrap();
        let h = Spawn::new(flavor, &s.export)
            .arg("--uid-map")
            .arg(":0:1000000:65536:")
            .arg("--gid-map")
            .arg(":0:1000000:65536:")
            .start();
        assert!(h.fd(&create(b"//by-root", 0, 0)).is_ok(), "{}", h.stderr());
        assert!(h.fd(&create(b"//f", 1000, 1000)).is_ok(), "{}", h.stderr());
        let mkdir = Request::Mkdir {
            uid: 1000,
            gid: 1000,
            path: b"//d",
            mode: 0o755,
        };
        assert_eq!(h.status(&mkdir), 0);
        let chown = Request::Chown {
            path: b"//by-root",
            uid: 1001,
            gid: 1001,
        };
        assert_eq!(h.status(&chown), 0);
        for (name, host) in [("by-root", 1_001_001), ("f", 1_001_000), ("d", 1_001_000)] {
            let m = fs::metadata(s.path(name)).unwrap();
            assert_eq!(
                (m.uid(), m.gid()),
                (host, host),
                "{flavor:?} {name} on the host"
            );
        }
        let st = h.lstat("//f").unwrap();
        assert_eq!((st.uid, st.gid), (1000, 1000), "the guest sees its own ids");
        // A POSIX ACL naming guest uid 1000 lands as host 1001000.
        let value = named_acl(1000, 1000);
        assert_eq!(h.status(&set_acl(&value)), 0, "{}", h.stderr());
        assert_eq!(host_acl(&s.path("f")), named_acl(1_001_000, 1_001_000));
        assert_eq!(
            guest_acl(&h).unwrap(),
            value,
            "read back with the guest's ids"
        );
        // An id outside the range cannot be taken, and a host id outside
        // it shows as the overflow id (docs/rootless.md says so).
        let outside = create(b"//nope", 70_000, 0);
        assert_eq!(h.fd(&outside).unwrap_err(), errno(Errno::INVAL));
        fs::write(s.path("host-made"), "x").unwrap();
        std::os::unix::fs::chown(s.path("host-made"), Some(5000), Some(5000)).unwrap();
        let st = h.lstat("//host-made").unwrap();
        assert_eq!((st.uid, st.gid), (65534, 65534), "unmapped host ids");
        assert!(
            h.stderr().contains("id maps:")
                || h.stderr()
                    .contains("ids=\"uid 0..=65535->1000000..=1065535"),
            "{}",
            h.stderr()
        );
        assert!(h.finish().success());
    }
}

/// The uid an ordinary user's run uses here, and its subordinate range
/// (from /etc/subuid and /etc/subgid) if it has one.
const ORDINARY: u32 = 65534;

fn range_of_nobody(file: &str) -> Option<(u32, u32)> {
    fs::read_to_string(file).ok()?.lines().find_map(|l| {
        let mut f = l.split(':');
        let owner = f.next()?;
        let start = f.next()?.parse().ok()?;
        let count = f.next()?.parse().ok()?;
        (owner == "nobody" || owner == "65534").then_some((start, count))
    })
}

/// Between fork and exec: become uid and gid 65534 with no groups.
fn as_ordinary_user() -> Box<dyn FnMut() -> std::io::Result<()> + Send + Sync> {
    Box::new(|| {
        // SAFETY: plain id syscalls between fork and exec; nothing
        // allocates.
        let rc = unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setresgid(ORDINARY, ORDINARY, ORDINARY) != 0
            {
                -1
            } else {
                libc::setresuid(ORDINARY, ORDINARY, ORDINARY)
            }
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    })
}

/// An ordinary user who gives no map gets one: guest 0 is the user, and
/// guest 1.. the user's /etc/subuid range where it has one (through
/// newuidmap); without a range, only guest 0, with a warning that names
/// the fix.
#[test]
fn an_ordinary_user_gets_an_automatic_map() {
    if !is_real_root() {
        skip(
            "an_ordinary_user_gets_an_automatic_map",
            "becoming another ordinary user needs real root",
        );
        return;
    }
    let ranges = (
        range_of_nobody("/etc/subuid"),
        range_of_nobody("/etc/subgid"),
    );
    let ranged = matches!(ranges, (Some(_), Some(_))) && program("newuidmap");
    if !ranged {
        skip(
            "an_ordinary_user_gets_an_automatic_map (the subuid range)",
            "nobody has no /etc/subuid and /etc/subgid range here, or newuidmap is missing; \
             ci/test.sh adds one. Testing the one-id map only",
        );
    }
    for flavor in OURS {
        let s = Scratch::new();
        for p in [s.dir.path(), s.export.as_path()] {
            fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::os::unix::fs::chown(&s.export, Some(ORDINARY), Some(ORDINARY)).unwrap();
        let mut spawn = Spawn::new(flavor, &s.export);
        spawn.pre_exec = Some(as_ordinary_user());
        let h = spawn.start();
        assert!(h.fd(&create(b"//by-root", 0, 0)).is_ok(), "{}", h.stderr());
        let m = fs::metadata(s.path("by-root")).unwrap();
        assert_eq!(
            (m.uid(), m.gid()),
            (ORDINARY, ORDINARY),
            "guest 0 is the user"
        );
        let st = h.lstat("//by-root").unwrap();
        assert_eq!((st.uid, st.gid), (0, 0));
        let by_1000 = h.fd(&create(b"//by-1000", 1000, 1000));
        match ranges {
            (Some((ustart, _)), Some((gstart, _))) if ranged => {
                assert!(by_1000.is_ok(), "{}", h.stderr());
                let m = fs::metadata(s.path("by-1000")).unwrap();
                assert_eq!((m.uid(), m.gid()), (ustart + 999, gstart + 999));
                assert_eq!(h.lstat("//by-1000").unwrap().uid, 1000);
                assert!(h.stderr().contains("automatic map: guest 0 is this user"));
            }
            _ => {
                assert_eq!(by_1000.unwrap_err(), errno(Errno::INVAL));
                let log = h.stderr();
                assert!(
                    log.contains("only guest uid and gid 0 are mapped")
                        && log.contains("usermod --add-subuids"),
                    "{log}"
                );
            }
        }
        assert!(h.finish().success());
    }
}

/// `/etc/subuid` and `/etc/subgid` are both looked up by the user (login
/// name or uid), as newuidmap and newgidmap do, never by its gid; hostile
/// lines (`x:4294967295:1`, which overflowed the parser, and one of the
/// user's own) are passed over, the user's own with a warning naming it.
/// The helper runs as a user `vphtest`, uid 64999 and gid 4000, which a
/// copy of `/etc/passwd` adds; that copy and the test's own subordinate
/// files are bind-mounted over the real ones in a mount namespace of the
/// helper's own (the host's files stay untouched; newuidmap, run from
/// there, reads them too). `/etc/subgid` names owner `4000` (the user
/// with uid 4000, not this one) before this user's line: the old lookup
/// by gid took that range, which newgidmap refused (exit 1).
#[test]
fn subordinate_files_are_keyed_by_the_user_not_its_gid() {
    const TEST: &str = "subordinate_files_are_keyed_by_the_user_not_its_gid";
    const UID: u32 = 64999;
    const GID: u32 = 4000;
    if !is_real_root() {
        skip(
            TEST,
            "becoming another user and bind-mounting over /etc/passwd need real root",
        );
        return;
    }
    let etc = ["/etc/subuid", "/etc/subgid", "/etc/passwd"];
    if !["newuidmap", "newgidmap", "unshare", "setpriv"]
        .iter()
        .all(|p| program(p))
        || !etc.iter().all(|f| std::path::Path::new(f).is_file())
    {
        skip(
            TEST,
            "needs newuidmap and newgidmap (package uidmap), unshare and setpriv (util-linux), \
             and /etc/subuid and /etc/subgid to mount over (ci/test.sh adds them)",
        );
        return;
    }
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    if passwd
        .lines()
        .any(|l| l.starts_with("vphtest:") || l.split(':').nth(2) == Some("64999"))
    {
        skip(TEST, "this host has a user vphtest or a uid 64999 already");
        return;
    }
    for flavor in OURS {
        let s = Scratch::new();
        for p in [s.dir.path(), s.export.as_path()] {
            fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::os::unix::fs::chown(&s.export, Some(UID), Some(GID)).unwrap();
        let file = |name: &str, text: &str| {
            let path = s.dir.path().join(name);
            fs::write(&path, text).unwrap();
            path.to_str().unwrap().to_string()
        };
        let files = [
            file(
                "subuid",
                "x:4294967295:1\nvphtest:4294967295:1\nvphtest:3000000:65536\n",
            ),
            file(
                "subgid",
                "x:4294967295:1\n4000:4000000:65536\n64999:5000000:65536\n",
            ),
            file(
                "passwd",
                &format!("{passwd}vphtest:x:{UID}:{GID}::/nonexistent:/usr/sbin/nologin\n"),
            ),
        ];
        let script = "mount --bind \"$0\" /etc/subuid && mount --bind \"$1\" /etc/subgid && \
                      mount --bind \"$2\" /etc/passwd && shift 2 && \
                      exec setpriv --reuid=64999 --regid=4000 --clear-groups \"$@\"";
        let mut spawn = Spawn::new(flavor, &s.export);
        spawn.wrapper = ["unshare", "--mount", "--propagation", "private"]
            .into_iter()
            .chain(["sh", "-c", script])
            .map(String::from)
            .chain(files)
            .collect();
        let h = spawn.start();
        assert!(h.fd(&create(b"//by-root", 0, 0)).is_ok(), "{}", h.stderr());
        let m = fs::metadata(s.path("by-root")).unwrap();
        assert_eq!((m.uid(), m.gid()), (UID, GID), "guest 0 is the user");
        let by_1000 = h.fd(&create(b"//by-1000", 1000, 1000));
        assert!(by_1000.is_ok(), "{}", h.stderr());
        let m = fs::metadata(s.path("by-1000")).unwrap();
        assert_eq!(
            (m.uid(), m.gid()),
            (3_000_999, 5_000_999),
            "the user's own ranges, not those of uid 4000"
        );
        let st = h.lstat("//by-1000").unwrap();
        assert_eq!((st.uid, st.gid), (1000, 1000));
        let log = h.stderr();
        assert!(log.contains("automatic map: guest 0 is this user"), "{log}");
        assert!(
            log.contains(
                "/etc/subuid line 2 `vphtest:4294967295:1`: START 4294967295 plus COUNT 1 \
                 passes the last id 4294967294"
            ),
            "{log}"
        );
        assert!(
            !log.contains("line 1 `x:"),
            "another user's line is theirs: {log}"
        );
        assert!(h.finish().success());
    }
}

/// Runs `sh -c "echo 0 > /proc/sys/user/LIMIT; then"` as root of a new user
/// namespace (`unshare -Ur`): the limit is lowered for that namespace and
/// its children only. `$VPH` names the helper. The output, or None when
/// the test cannot run here (said, with why).
fn with_limit_lowered(test: &str, limit: &str, then: &str) -> Option<String> {
    if !program("unshare") || !program("setpriv") {
        skip(
            test,
            "unshare or setpriv (util-linux) is not available here",
        );
        return None;
    }
    let script = format!("echo 0 > /proc/sys/user/{limit} || exit 99; {then}");
    let out = Command::new("unshare")
        .args(["-Ur", "sh", "-c", &script])
        .env("VPH", our_binary())
        .output()
        .unwrap();
    let all = text(&out);
    if all.contains("unshare failed") {
        skip(
            test,
            "this process may not make a user namespace (unshare -Ur)",
        );
        return None;
    }
    if out.status.code() == Some(99) {
        skip(
            test,
            &format!("this kernel does not let a namespace's root lower user.{limit}"),
        );
        return None;
    }
    Some(all)
}

/// User namespaces switched off (`user.max_user_namespaces` 0): an
/// ordinary user's start names the sysctl and stops (exit 1), leaving no
/// socket file. The limit is lowered inside a namespace of the test's own,
/// and the helper started there without capabilities, as an ordinary user
/// would be.
#[test]
fn user_namespaces_switched_off_are_named() {
    let s = Scratch::new();
    let sock = s.dir.path().join("vph.sock");
    let then = format!(
        "setpriv --inh-caps=-all --bounding-set=-all -- \"$VPH\" --sandbox-report -p '{export}'; \
         echo \"report status $?\"; \
         setpriv --inh-caps=-all --bounding-set=-all -- \"$VPH\" -n -p '{export}' -s '{sock}' -u 0 -g 0; \
         echo \"run status $?\"",
        export = s.export.display(),
        sock = sock.display()
    );
    let Some(all) = with_limit_lowered(
        "user_namespaces_switched_off_are_named",
        "max_user_namespaces",
        &then,
    ) else {
        return;
    };
    assert!(all.contains("report status 1"), "{all}");
    assert!(all.contains("run status 1"), "{all}");
    assert!(
        all.contains("user ns:       FAILS: creating a user namespace failed")
            && all.contains("user.max_user_namespaces is 0"),
        "{all}"
    );
    assert!(all.contains("--sandbox none and --translate-uid"), "{all}");
    assert!(!sock.exists(), "nothing is left half set up");
}

/// An explicit `--sandbox namespace` that the kernel refuses (here: no
/// network namespace may be made) stops with status 1, naming which one
/// and why; the default falls back to chroot and says why.
#[test]
fn a_refused_namespace_is_named_and_the_default_falls_back_to_chroot() {
    let s = Scratch::new();
    let then = format!(
        "\"$VPH\" --sandbox-report --sandbox namespace -p '{export}'; echo \"explicit status $?\"; \
         \"$VPH\" --sandbox-report -p '{export}'; echo \"default status $?\"",
        export = s.export.display()
    );
    let Some(all) = with_limit_lowered(
        "a_refused_namespace_is_named_and_the_default_falls_back_to_chroot",
        "max_net_namespaces",
        &then,
    ) else {
        return;
    };
    assert!(all.contains("explicit status 1"), "{all}");
    assert!(
        all.contains(
            "sandbox:       FAILS: --sandbox namespace: the kernel refused a new net namespace"
        ),
        "{all}"
    );
    assert!(all.contains("default status 0"), "{all}");
    assert!(
        all.contains("sandbox:       chroot (the default, since the namespace sandbox is not available: the kernel refused a new net namespace"),
        "{all}"
    );
}

/// The namespace sandbox mounts the export `nodev,nosuid`: a device node
/// in it cannot be opened through the helper's mount, a layer apart from
/// the helper's own ENXIO check. Opened through the serving process's
/// root (`/proc/PID/root`), the node is refused by the mount alone, while
/// the host opens it through its own mount.
#[test]
fn the_nodev_mount_refuses_a_device_node_on_its_own() {
    if !is_real_root() {
        skip(
            "the_nodev_mount_refuses_a_device_node_on_its_own",
            "making a device node needs real root",
        );
        return;
    }
    let s = Scratch::new();
    let node = s.path("null");
    let made = rustix::fs::mknodat(
        rustix::fs::CWD,
        &node,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    );
    if made.is_err() || fs::OpenOptions::new().write(true).open(&node).is_err() {
        skip(
            "the_nodev_mount_refuses_a_device_node_on_its_own",
            "the scratch directory's own mount is nodev here",
        );
        return;
    }
    let h = Spawn::new(Flavor::Openat2, &s.export)
        .arg("--sandbox")
        .arg("namespace")
        .start();
    assert!(h.lstat("//null").is_ok(), "{}", h.stderr());
    let server = h.serving_pid();
    assert_ne!(
        server,
        h.pid(),
        "the server runs in a pid namespace of its own"
    );
    let mountinfo = fs::read_to_string(format!("/proc/{server}/mountinfo")).unwrap();
    let root = mountinfo
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .expect("the server's root mount");
    let options = root.split_whitespace().nth(5).unwrap();
    assert!(
        options.contains("nodev") && options.contains("nosuid"),
        "{root}"
    );
    let through_helper = fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{server}/root/null"));
    assert_eq!(
        through_helper.unwrap_err().raw_os_error(),
        Some(libc::EACCES),
        "nodev refuses the node"
    );
    // And the helper's own check answers ENXIO before the mount is asked.
    let open = Request::Open {
        path: b"//null",
        flags: libc::O_RDWR,
    };
    assert_eq!(h.fd(&open).unwrap_err(), errno(Errno::NXIO));
    assert!(h.finish().success());
}

/// A map `/etc/subuid` does not allow: newuidmap's own refusal is shown,
/// the start stops with status 1 and leaves no socket file.
#[test]
fn a_map_the_subuid_file_does_not_allow_shows_newuidmaps_refusal() {
    if !is_real_root() || !program("newuidmap") {
        skip(
            "a_map_the_subuid_file_does_not_allow_shows_newuidmaps_refusal",
            "needs real root (to become an ordinary user) and newuidmap (package uidmap)",
        );
        return;
    }
    let s = Scratch::new();
    for p in [s.dir.path(), s.export.as_path()] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o777)).unwrap();
    }
    let sock = s.dir.path().join("vph.sock");
    let mut cmd = Command::new(our_binary());
    cmd.args(["-n", "-p"])
        .arg(&s.export)
        .arg("-s")
        .arg(&sock)
        .args(["-u", "65534", "-g", "65534"])
        .args(["--uid-map", ":0:65534:1:", "--uid-map", ":1:500000:10:"])
        .args(["--gid-map", ":0:65534:1:", "--gid-map", ":1:500000:10:"]);
    // SAFETY: the hook makes plain id syscalls only (see as_ordinary_user).
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(as_ordinary_user());
    }
    let out = cmd.output().unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("writing the id maps failed") && all.contains("refused: newuidmap:"),
        "{all}"
    );
    assert!(!sock.exists(), "nothing is left half set up");
}
