//! `--translate-uid` / `--translate-gid`: guest ids become host ids in
//! credentials and T_CHOWN, host ids become guest ids in stat replies, and
//! the ids inside POSIX ACL xattrs are rewritten both ways; forbidden ids
//! answer EPERM; bad rules stop the helper before it starts (exit 2),
//! naming the rule. Every case runs under both resolvers.

mod common;

use common::*;
use rustix::io::Errno;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use virtfs_proxy_helper::protocol::Request;

fn with_rules(flavor: Flavor, export: &std::path::Path, rules: &[(&str, &str)]) -> Helper {
    let mut spawn = Spawn::new(flavor, export);
    for (option, rule) in rules {
        spawn = spawn.arg(option);
        if !rule.is_empty() {
            spawn = spawn.arg(rule);
        }
    }
    spawn.start()
}

/// A shifted range, as an LXD-style host would write it: guest 1000+i is
/// host 101000+i for uids and 201000+i for gids.
#[test]
fn guest_ids_are_host_ids_in_credentials_chown_stat_and_acls() {
    if !is_real_root() {
        skip(
            "guest_ids_are_host_ids_in_credentials_chown_stat_and_acls",
            "creating files as host uid 101000 needs real root (the user-namespace run maps only uid 0; see the one-user recipe test)",
        );
        return;
    }
    for flavor in OURS {
        let s = Scratch::new();
        let h = with_rules(
            flavor,
            &s.export,
            &[
                ("--translate-uid", "map:1000:101000:100"),
                ("--translate-gid", "map:1000:201000:100"),
            ],
        );
        let create = Request::Create {
            path: b"//f",
            flags: libc::O_CREAT | libc::O_RDWR,
            mode: 0o644,
            uid: 1000,
            gid: 1001,
        };
        assert!(h.fd(&create).is_ok(), "{}", h.stderr());
        let mkdir = Request::Mkdir {
            uid: 1002,
            gid: 1003,
            path: b"//d",
            mode: 0o755,
        };
        assert_eq!(h.status(&mkdir), 0, "{}", h.stderr());
        let owner = |name: &str| {
            let m = fs::symlink_metadata(s.path(name)).unwrap();
            (m.uid(), m.gid())
        };
        assert_eq!(owner("f"), (101_000, 201_001), "{flavor:?}");
        assert_eq!(owner("d"), (101_002, 201_003), "{flavor:?}");
        let st = h.lstat("//f").unwrap();
        assert_eq!((st.uid, st.gid), (1000, 1001), "the guest sees its own ids");

        // T_CHOWN: -1 leaves an id as it is.
        let chown = Request::Chown {
            path: b"//f",
            uid: 1050,
            gid: u32::MAX,
        };
        assert_eq!(h.status(&chown), 0);
        assert_eq!(owner("f"), (101_050, 201_001));
        assert_eq!(h.lstat("//f").map(|st| (st.uid, st.gid)), Ok((1050, 1001)));

        // A host id no rule covers is shown as itself.
        fs::write(s.path("host-owned"), "x").unwrap();
        rustix::fs::chown(
            s.path("host-owned"),
            Some(rustix::fs::Uid::from_raw(5)),
            Some(rustix::fs::Gid::from_raw(6)),
        )
        .unwrap();
        assert_eq!(
            h.lstat("//host-owned").map(|st| (st.uid, st.gid)),
            Ok((5, 6))
        );

        // A POSIX ACL naming guest uid 1000 and gid 1001.
        let value = named_acl(1000, 1001);
        let status = h.status(&set_acl(&value));
        if status == errno(Errno::OPNOTSUPP) {
            skip(
                "guest_ids_are_host_ids_in_credentials_chown_stat_and_acls (ACLs)",
                "the test's filesystem has no POSIX ACLs",
            );
        } else {
            assert_eq!(status, 0, "{}", h.stderr());
            assert_eq!(
                host_acl(&s.path("f")),
                named_acl(101_000, 201_001),
                "stored with host ids"
            );
            assert_eq!(
                guest_acl(&h).unwrap(),
                value,
                "read back with the guest's ids"
            );
            let size = h.status(&Request::Lgetxattr {
                size: 0,
                path: b"//f",
                name: ACL_ACCESS,
            });
            assert_eq!(size, value.len() as i32);
        }
        assert!(h.finish().success());
    }
}

/// `forbid-guest`: EPERM for creations, T_CHOWN and ACL entries with the
/// forbidden ids, and nothing changes.
#[test]
fn forbidden_guest_ids_answer_eperm() {
    for flavor in OURS {
        let s = Scratch::new();
        fs::write(s.path("f"), "x").unwrap();
        let h = with_rules(
            flavor,
            &s.export,
            &[
                ("--translate-uid", "forbid-guest:4000:10"),
                ("--translate-gid", "forbid-guest:4000:10"),
            ],
        );
        let eperm = errno(Errno::PERM);
        // The other id is the test's own: one every run can take.
        let (me, my_gid) = (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        );
        let create = Request::Create {
            path: b"//new",
            flags: libc::O_CREAT | libc::O_RDWR,
            mode: 0o644,
            uid: 4005,
            gid: my_gid,
        };
        assert_eq!(h.fd(&create).unwrap_err(), eperm);
        let mkdir = Request::Mkdir {
            uid: me,
            gid: 4009,
            path: b"//d",
            mode: 0o755,
        };
        assert_eq!(h.status(&mkdir), eperm);
        let chown = Request::Chown {
            path: b"//f",
            uid: 4000,
            gid: u32::MAX,
        };
        assert_eq!(h.status(&chown), eperm);
        assert_eq!(h.status(&set_acl(&named_acl(4001, 0))), eperm);
        // A malformed ACL is refused before it reaches the kernel.
        let set = Request::Lsetxattr {
            path: b"//f",
            name: ACL_ACCESS,
            value: b"\x02\0\0\0\x02\0",
            size: 6,
            flags: 0,
        };
        assert_eq!(h.status(&set), errno(Errno::INVAL));
        assert!(!s.path("new").exists() && !s.path("d").exists());
        // Ids next to the range are fine.
        let chown = Request::Chown {
            path: b"//f",
            uid: 4010,
            gid: u32::MAX,
        };
        if is_real_root() {
            assert_eq!(h.status(&chown), 0);
        }
        assert!(h.finish().success());
    }
}

/// The one-user recipe: every guest write lands as the helper's own user,
/// which the guest sees as 1000; needs no setuid helper and no id range,
/// so it works as root of a one-id user namespace too (CI's second pass),
/// and as an ordinary user with `--no-chroot` (where chroot is refused).
#[test]
fn one_user_recipe_lands_every_write_as_the_helpers_user() {
    let me = rustix::process::geteuid().as_raw();
    let my_gid = rustix::process::getegid().as_raw();
    for flavor in OURS {
        let s = Scratch::new();
        let mut extra = Vec::new();
        if me != 0 {
            extra.push(("--no-chroot", ""));
        }
        let squash_uid = format!("squash-guest:0:{me}:4294967295");
        let squash_gid = format!("squash-guest:0:{my_gid}:4294967295");
        let show_uid = format!("host:{me}:1000:1");
        let show_gid = format!("host:{my_gid}:1000:1");
        let mut rules = vec![
            ("--translate-uid", squash_uid.as_str()),
            ("--translate-uid", &show_uid),
            ("--translate-gid", &squash_gid),
            ("--translate-gid", &show_gid),
        ];
        rules.extend(extra);
        let h = with_rules(flavor, &s.export, &rules);
        for (i, (uid, gid)) in [(0, 0), (1000, 1000), (4242, 77)].into_iter().enumerate() {
            let path = format!("//by-{i}");
            let create = Request::Create {
                path: path.as_bytes(),
                flags: libc::O_CREAT | libc::O_RDWR,
                mode: 0o644,
                uid,
                gid,
            };
            assert!(h.fd(&create).is_ok(), "guest {uid}:{gid}: {}", h.stderr());
            let m = fs::metadata(s.path(&format!("by-{i}"))).unwrap();
            assert_eq!(
                (m.uid(), m.gid()),
                (me, my_gid),
                "lands as the helper's user"
            );
            let st = h.lstat(&path).unwrap();
            assert_eq!((st.uid, st.gid), (1000, 1000), "shown as guest 1000");
        }
        assert!(h.finish().success());
    }
}

/// The report and the start-up log name the rules in force.
#[test]
fn the_report_and_the_log_name_the_rules() {
    let s = Scratch::new();
    let out = Command::new(our_binary())
        .args(["--sandbox-report", "--no-chroot", "--path"])
        .arg(&s.export)
        .args([
            "--translate-uid",
            "map:0:100000:65536",
            "--translate-gid",
            "forbid-guest:7:1",
        ])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("translation:   uid map:0:100000:65536; gid forbid-guest:7:1"),
        "{report}"
    );
    let h = with_rules(
        Flavor::Openat2,
        &s.export,
        &[("--translate-uid", "host:5:6:1")],
    );
    assert!(h.lstat("/").is_ok());
    assert!(
        h.stderr().contains(
            "id translation: uid host:5:6:1; gid none; ids no rule covers map to themselves"
        ),
        "{}",
        h.stderr()
    );
    assert!(h.finish().success());
}

#[test]
fn bad_rules_exit_2_naming_the_rule() {
    let s = Scratch::new();
    let cases: [(&[&str], &str); 5] = [
        (
            &["--translate-uid", "forbid-guest:1000:2000"],
            "`forbid-guest:1000:2000`: the count 2000 looks like the end of a range; this rule would cover guest ids 1000..=2999",
        ),
        (
            &[
                "--translate-gid",
                "map:0:100000:65536",
                "--translate-gid",
                "guest:65535:5:1",
            ],
            "--translate-gid `guest:65535:5:1` overlaps `map:0:100000:65536`",
        ),
        (
            &["--translate-uid", "map:1:2"],
            "`map:1:2`: map takes 3 numbers",
        ),
        (
            &["--translate-uid", "mop:1:2:3"],
            "`mop:1:2:3`: unknown kind",
        ),
        (&["--translate-uid", "map:1:2:0"], "the count is 0"),
    ];
    for (args, message) in cases {
        let out = Command::new(our_binary())
            .args(["--nodaemon", "--fd", "0", "--path"])
            .arg(&s.export)
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}
