//! Least privilege: the kept capability set, creations as the guest's ids,
//! running as root of a user namespace (LXD's invocation), and the message
//! that names --no-chroot where chroot is not permitted.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use virtfs_proxy_helper::protocol::Request;

/// CAP_CHOWN, DAC_OVERRIDE, FOWNER, FSETID, SETGID, SETUID, MKNOD.
const KEPT_MASK: u64 = (1 << 0) | (1 << 1) | (1 << 3) | (1 << 4) | (1 << 6) | (1 << 7) | (1 << 27);

fn cap_field(pid: i32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn only_the_originals_capabilities_are_kept() {
    for flavor in OURS {
        let s = Scratch::new();
        let h = spawn(flavor, &s.export);
        assert!(h.lstat("/").is_ok(), "set-up finished");
        assert_eq!(cap_field(h.serving_pid(), "CapPrm:"), KEPT_MASK);
        assert_eq!(cap_field(h.serving_pid(), "CapEff:"), KEPT_MASK);
        assert_eq!(cap_field(h.serving_pid(), "CapInh:"), 0);
        // Still the full kept set after a creation under another identity.
        let mkdir = Request::Mkdir {
            uid: 0,
            gid: 0,
            path: b"//d",
            mode: 0o755,
        };
        assert_eq!(h.status(&mkdir), 0);
        assert_eq!(cap_field(h.serving_pid(), "CapEff:"), KEPT_MASK);
        assert!(h.finish().success());
    }
}

#[test]
fn creations_take_the_guests_uid_and_gid() {
    if !is_real_root() {
        skip(
            "creations_take_the_guests_uid_and_gid",
            "switching to uid 1234 needs real root (the user-namespace run maps only uid 0; see lxd_invocation_in_a_user_namespace for a mapped range)",
        );
        return;
    }
    for flavor in [Flavor::Openat2, Flavor::Walker, Flavor::Original] {
        if flavor == Flavor::Original && original_unusable().is_some() {
            continue;
        }
        let s = Scratch::new();
        // Only the owner may write: the helper gets in through DAC_OVERRIDE.
        fs::set_permissions(&s.export, fs::Permissions::from_mode(0o700)).unwrap();
        let h = spawn(flavor, &s.export);
        let (uid, gid) = (1234, 4321);
        let create = Request::Create {
            path: b"//file",
            flags: libc::O_CREAT | libc::O_RDWR | libc::O_EXCL,
            mode: 0o644,
            uid,
            gid,
        };
        assert!(h.fd(&create).is_ok());
        assert_eq!(
            h.status(&Request::Mkdir {
                uid,
                gid,
                path: b"//dir",
                mode: 0o755
            }),
            0
        );
        assert_eq!(
            h.status(&Request::Mknod {
                uid,
                gid,
                path: b"//fifo",
                mode: libc::S_IFIFO | 0o600,
                rdev: 0
            }),
            0
        );
        assert_eq!(
            h.status(&Request::Symlink {
                uid,
                gid,
                target: b"file",
                path: b"//sym"
            }),
            0
        );
        for name in ["file", "dir", "fifo", "sym"] {
            let m = fs::symlink_metadata(s.path(name)).unwrap();
            assert_eq!((m.uid(), m.gid()), (uid, gid), "{flavor:?} {name}");
        }
        // Back to the helper's own identity for the next request: a chown
        // needs CAP_CHOWN, which the guest identity does not have.
        assert_eq!(
            h.status(&Request::Chown {
                path: b"//file",
                uid: 7,
                gid: 7
            }),
            0
        );
        assert_eq!(fs::metadata(s.path("file")).unwrap().uid(), 7);
        assert!(h.finish().success());
    }
}

/// Drops CAP_SYS_CHROOT from the bounding set between fork and exec, so
/// the helper, though root, cannot chroot.
fn without_chroot_capability() -> Box<dyn FnMut() -> std::io::Result<()> + Send + Sync> {
    const CAP_SYS_CHROOT: libc::c_ulong = 18;
    Box::new(|| {
        // SAFETY: a plain prctl; nothing allocates between fork and exec.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_CHROOT, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    })
}

#[test]
fn where_chroot_is_not_permitted_the_message_names_no_chroot() {
    if skip_unless_root_here(
        "where_chroot_is_not_permitted_the_message_names_no_chroot",
        "dropping CAP_SYS_CHROOT from the bounding set",
    ) {
        return;
    }
    let s = Scratch::new();
    fs::write(s.path("f"), "x").unwrap();
    let mut spawn = Spawn::new(Flavor::Openat2, &s.export)
        .arg("--sandbox")
        .arg("chroot");
    spawn.pre_exec = Some(without_chroot_capability());
    let mut h = spawn.start();
    let status = h.wait(std::time::Duration::from_secs(10)).expect("exits");
    assert!(!status.success());
    let log = h.stderr();
    assert!(
        log.contains("chroot") && log.contains("--no-chroot"),
        "{log}"
    );

    let mut spawn = Spawn::new(Flavor::Openat2, &s.export).arg("--no-chroot");
    spawn.pre_exec = Some(without_chroot_capability());
    let h = spawn.start();
    assert_eq!(h.lstat("//f").unwrap().size, 1);
    assert!(
        h.stderr()
            .contains("--sandbox none: no chroot or namespace"),
        "{}",
        h.stderr()
    );
    assert!(h.finish().success());
}

/// A pre-exec hook that makes the helper root of a new user namespace
/// whose ids 0..65536 are host ids 100000..165536, as LXD's containers have
/// them: the child unshares, a thread of the test runs newuidmap and
/// newgidmap on it, then the child becomes the namespace's root and execs.
/// Done here rather than with `unshare --map-users`, which util-linux has
/// only from 2.38 on (Debian 11 has 2.36), and without an exec between
/// unsharing and setuid (an exec with an unmapped uid drops every
/// capability).
fn into_mapped_namespace() -> Box<dyn FnMut() -> std::io::Result<()> + Send + Sync> {
    let (ready_rx, ready_tx) = rustix::pipe::pipe().expect("pipe");
    let (go_rx, go_tx) = rustix::pipe::pipe().expect("pipe");
    std::thread::spawn(move || {
        let mut pid = [0u8; 4];
        if rustix::io::read(&ready_rx, &mut pid) != Ok(4) {
            return;
        }
        let pid = i32::from_ne_bytes(pid).to_string();
        let mapped = ["newuidmap", "newgidmap"].iter().all(|tool| {
            std::process::Command::new(tool)
                .args([pid.as_str(), "0", "100000", "65536"])
                .status()
                .is_ok_and(|s| s.success())
        });
        let _ = rustix::io::write(&go_tx, &[mapped as u8]);
    });
    Box::new(move || {
        use std::os::fd::AsRawFd;
        let fail = || Err(std::io::Error::last_os_error());
        // SAFETY: raw syscalls on fds this closure owns and on this
        // process's own credentials; async-signal-safe, as the time between
        // fork and exec needs.
        unsafe {
            if libc::unshare(libc::CLONE_NEWUSER) != 0 {
                return fail();
            }
            let pid = libc::getpid().to_ne_bytes();
            if libc::write(ready_tx.as_raw_fd(), pid.as_ptr().cast(), 4) != 4 {
                return fail();
            }
            let mut mapped = 0u8;
            if libc::read(go_rx.as_raw_fd(), (&raw mut mapped).cast(), 1) != 1 || mapped != 1 {
                return Err(std::io::Error::other("newuidmap or newgidmap failed"));
            }
            if libc::syscall(libc::SYS_setresgid, 0, 0, 0) != 0
                || libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) != 0
                || libc::syscall(libc::SYS_setresuid, 0, 0, 0) != 0
            {
                return fail();
            }
        }
        Ok(())
    })
}

/// LXD: `virtfs-proxy-helper --nodaemon --fd 3 --path SHARE`, as root of a
/// user namespace whose ids 0..65535 map to 100000..165535 on the host;
/// files created for guest uid 1000 belong to host uid 101000.
#[test]
fn lxd_invocation_in_a_user_namespace() {
    if !is_real_root() {
        skip(
            "lxd_invocation_in_a_user_namespace",
            "mapping a uid range into a new user namespace needs real root",
        );
        return;
    }
    let granted = |f| {
        fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("root:100000:65536"))
    };
    if !std::path::Path::new("/usr/bin/newuidmap").exists()
        || !granted("/etc/subuid")
        || !granted("/etc/subgid")
    {
        skip(
            "lxd_invocation_in_a_user_namespace",
            "needs newuidmap (package uidmap) and root:100000:65536 in /etc/subuid and /etc/subgid, as an LXD host has; .ci/run sets both up",
        );
        return;
    }
    for flavor in OURS {
        let s = Scratch::new();
        for p in [s.dir.path(), s.export.as_path()] {
            fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        rustix::fs::chown(
            &s.export,
            Some(rustix::fs::Uid::from_raw(100_000)),
            Some(rustix::fs::Gid::from_raw(100_000)),
        )
        .unwrap();
        let mut spawn = Spawn::new(flavor, &s.export);
        spawn.pre_exec = Some(into_mapped_namespace());
        let h = spawn.start();
        assert!(h.lstat("/").is_ok(), "{}", h.stderr());
        let create = Request::Create {
            path: b"//from-guest",
            flags: libc::O_CREAT | libc::O_RDWR,
            mode: 0o640,
            uid: 1000,
            gid: 1000,
        };
        assert!(h.fd(&create).is_ok(), "{}", h.stderr());
        assert_eq!(
            h.status(&Request::Mkdir {
                uid: 1000,
                gid: 1000,
                path: b"//dir",
                mode: 0o755
            }),
            0
        );
        for name in ["from-guest", "dir"] {
            let m = fs::metadata(s.path(name)).unwrap();
            assert_eq!((m.uid(), m.gid()), (101_000, 101_000), "{flavor:?} {name}");
        }
        // An id outside the map cannot be taken.
        let unmapped = Request::Mkdir {
            uid: 70_000,
            gid: 70_000,
            path: b"//nope",
            mode: 0o755,
        };
        assert_eq!(h.status(&unmapped), errno(rustix::io::Errno::INVAL));
        assert!(h.finish().success());
    }
}
