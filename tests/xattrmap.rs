//! `--xattrmap`: guest xattr names stored under host names by virtiofsd's
//! rules, for T_LGETXATTR, T_LSETXATTR, T_LREMOVEXATTR and T_LLISTXATTR,
//! under both resolvers. The mapped prefix cannot be forged; where the
//! kernel cannot store a mapped name the guest gets its answer; POSIX ACLs
//! stay unmapped and translated, and whether a value is an ACL (whose ids
//! are translated) is decided by the host name the map produces;
//! `--readonly` still answers EROFS; bad rules exit 2 naming the rule.

mod common;

use common::*;
use rustix::io::Errno;
use std::fs;
use std::process::Command;
use virtfs_proxy_helper::protocol::Request;

const SELINUX_MAP: &str = ":map:security.:user.virtiofs.:";

fn with_map(flavor: Flavor, export: &std::path::Path, rules: &str) -> Helper {
    Spawn::new(flavor, export)
        .arg("--xattrmap")
        .arg(rules)
        .start()
}

fn set(h: &Helper, path: &str, name: &str, value: &[u8]) -> i32 {
    h.status(&Request::Lsetxattr {
        path: path.as_bytes(),
        name: name.as_bytes(),
        value,
        size: value.len() as i32,
        flags: 0,
    })
}

fn get(h: &Helper, path: &str, name: &str) -> Result<Vec<u8>, i32> {
    h.response(&Request::Lgetxattr {
        size: 256,
        path: path.as_bytes(),
        name: name.as_bytes(),
    })
    .map(|p| p[2..].to_vec())
}

fn remove(h: &Helper, path: &str, name: &str) -> i32 {
    h.status(&Request::Lremovexattr {
        path: path.as_bytes(),
        name: name.as_bytes(),
    })
}

/// The guest's listing: its names, and the size-0 answer, which must be
/// the listing's own length.
fn list(h: &Helper, path: &str) -> Vec<String> {
    let len = h.status(&Request::Llistxattr {
        size: 0,
        path: path.as_bytes(),
    });
    let raw = h
        .response(&Request::Llistxattr {
            size: 65536,
            path: path.as_bytes(),
        })
        .unwrap()[2..]
        .to_vec();
    assert_eq!(len as usize, raw.len(), "size 0 answers the mapped length");
    if len > 0 {
        // One byte short of the listing: ERANGE, as the kernel answers.
        let short = h.response(&Request::Llistxattr {
            size: len - 1,
            path: path.as_bytes(),
        });
        assert_eq!(short.unwrap_err(), errno(Errno::RANGE));
    }
    raw.split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect()
}

fn host_names(path: &std::path::Path) -> Vec<String> {
    let mut buf = vec![0u8; 4096];
    let n = rustix::fs::llistxattr(path, &mut buf[..]).unwrap();
    let mut names: Vec<String> = buf[..n]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    names.sort();
    names
}

/// `:map:security.:user.virtiofs.:`: the guest sets and reads
/// `security.selinux`, stored as `user.virtiofs.security.selinux`; it
/// cannot set the prefixed name itself; a raw prefixed host name is shown
/// only as its mapped name, and raw `security.*` host names are hidden.
fn the_prefix_cannot_be_forged(flavor: Flavor) {
    let s = Scratch::new();
    fs::write(s.path("f"), "x").unwrap();
    fs::write(s.path("g"), "x").unwrap();
    // Made on the host: a raw prefixed name.
    rustix::fs::setxattr(
        s.path("g"),
        "user.virtiofs.security.label",
        b"from-host",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let h = with_map(flavor, &s.export, SELINUX_MAP);
    assert_eq!(
        set(&h, "//f", "security.selinux", b"system_u:object_r:x:s0"),
        0
    );
    assert_eq!(
        host_names(&s.path("f")),
        ["user.virtiofs.security.selinux"],
        "stored under the prefix"
    );
    assert_eq!(
        get(&h, "//f", "security.selinux").unwrap(),
        b"system_u:object_r:x:s0"
    );
    assert_eq!(list(&h, "//f"), ["security.selinux"]);
    // Forging the stored name: refused, nothing stored.
    assert_eq!(
        set(&h, "//f", "user.virtiofs.security.selinux", b"forged"),
        errno(Errno::PERM)
    );
    assert_eq!(
        get(&h, "//f", "user.virtiofs.security.selinux").unwrap_err(),
        errno(Errno::PERM)
    );
    assert_eq!(
        get(&h, "//f", "security.selinux").unwrap(),
        b"system_u:object_r:x:s0"
    );
    // The host's raw prefixed name shows only as its mapped name.
    assert_eq!(list(&h, "//g"), ["security.label"]);
    assert_eq!(get(&h, "//g", "security.label").unwrap(), b"from-host");
    // Other names pass unchanged; removal maps too.
    assert_eq!(set(&h, "//f", "user.plain", b"1"), 0);
    assert_eq!(list(&h, "//f"), ["security.selinux", "user.plain"]);
    assert_eq!(remove(&h, "//f", "security.selinux"), 0);
    assert_eq!(host_names(&s.path("f")), ["user.plain"]);
    // A raw security.* name on the host (root only) is hidden.
    if is_real_root()
        && rustix::fs::setxattr(
            s.path("g"),
            "security.vph-test",
            b"raw",
            rustix::fs::XattrFlags::empty(),
        )
        .is_ok()
    {
        assert_eq!(list(&h, "//g"), ["security.label"]);
    }
    assert!(h.finish().success());
}

/// A listing longer than a page (where the filesystem holds one) is mapped
/// whole: the helper reads it again at the maximum size.
fn a_long_listing(flavor: Flavor) {
    // ext4 keeps an inode's xattrs within one block; tmpfs (/dev/shm)
    // holds longer listings.
    let Ok(dir) = tempfile::Builder::new()
        .prefix("vph-test-shm")
        .tempdir_in("/dev/shm")
    else {
        skip("a_long_listing", "no /dev/shm here");
        return;
    };
    let export = dir.path().join("export");
    fs::create_dir(&export).unwrap();
    let f = export.join("f");
    fs::write(&f, "x").unwrap();
    let mut made = Vec::new();
    for i in 0..60 {
        let name = format!("user.virtiofs.security.{i:02}{}", "n".repeat(60));
        let set = rustix::fs::setxattr(&f, name.as_str(), b"", rustix::fs::XattrFlags::empty());
        if set.is_err() {
            break;
        }
        made.push(name["user.virtiofs.".len()..].to_string());
    }
    if made.iter().map(|n| n.len() + 15).sum::<usize>() <= 4096 {
        skip(
            "a_long_listing",
            "this filesystem holds no xattr listing longer than a page",
        );
        return;
    }
    let h = with_map(flavor, &export, SELINUX_MAP);
    let mut shown = list(&h, "//f");
    shown.sort();
    assert_eq!(shown, made);
    assert!(h.finish().success());
}

/// Each rule type and scope, with another separator per rule; a name no
/// rule matches is refused.
fn each_rule_type(flavor: Flavor) {
    let s = Scratch::new();
    fs::write(s.path("f"), "x").unwrap();
    let rules = "/prefix/client/trusted./user.t./ |prefix|server||user.t.| \
                 :bad:all:user.secret.:user.secret.: :unsupported:client:security.capability:: \
                 :ok:all:user.::";
    let h = with_map(flavor, &s.export, rules);
    assert_eq!(set(&h, "//f", "trusted.overlay.opaque", b"y"), 0);
    assert_eq!(host_names(&s.path("f")), ["user.t.trusted.overlay.opaque"]);
    assert_eq!(get(&h, "//f", "trusted.overlay.opaque").unwrap(), b"y");
    assert_eq!(set(&h, "//f", "user.secret.x", b"1"), errno(Errno::PERM));
    assert_eq!(
        set(&h, "//f", "security.capability", b"1"),
        errno(Errno::NOTSUP)
    );
    assert_eq!(set(&h, "//f", "user.ok", b"1"), 0);
    // Matches no rule: refused.
    assert_eq!(set(&h, "//f", "system.other", b"1"), errno(Errno::PERM));
    rustix::fs::setxattr(
        s.path("f"),
        "user.secret.hidden",
        b"h",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    assert_eq!(list(&h, "//f"), ["trusted.overlay.opaque", "user.ok"]);
    assert!(h.finish().success());
}

/// Where the kernel cannot store a mapped name, the guest gets the
/// kernel's answer: `user.*` xattrs are for regular files and directories
/// only, so a mapped name on a symlink is EPERM.
fn the_kernels_answer_for_a_symlink(flavor: Flavor) {
    let s = Scratch::new();
    std::os::unix::fs::symlink("nowhere", s.path("l")).unwrap();
    fs::write(s.path("f"), "x").unwrap();
    let h = with_map(flavor, &s.export, SELINUX_MAP);
    assert_eq!(set(&h, "//l", "security.selinux", b"x"), errno(Errno::PERM));
    // A name that fits XATTR_NAME_MAX (255) only without the prefix.
    let long = format!("security.{}", "n".repeat(240));
    assert_eq!(set(&h, "//f", &long, b"x"), errno(Errno::RANGE));
    assert!(h.finish().success());
}

/// POSIX ACLs stay unmapped unless a rule names them, and keep their
/// translated ids.
fn acls_stay_unmapped_and_translated(flavor: Flavor) {
    if !is_real_root() {
        skip(
            "acls_stay_unmapped_and_translated",
            "storing an ACL that names host uid 101000 needs real root (the user-namespace runs do not map it)",
        );
        return;
    }
    let s = Scratch::new();
    fs::write(s.path("f"), "x").unwrap();
    let h = Spawn::new(flavor, &s.export)
        .arg("--xattrmap")
        .arg(SELINUX_MAP)
        .arg("--translate-uid")
        .arg("map:1000:101000:100")
        .arg("--translate-gid")
        .arg("map:1000:101000:100")
        .start();
    let value = named_acl(1000, 1000);
    assert_eq!(h.status(&set_acl(&value)), 0, "{}", h.stderr());
    assert!(host_names(&s.path("f")).contains(&"system.posix_acl_access".to_string()));
    assert_eq!(host_acl(&s.path("f")), named_acl(101_000, 101_000));
    assert_eq!(get(&h, "//f", "system.posix_acl_access").unwrap(), value);
    assert!(h.finish().success());
}

/// Renames the guest's `posix_acl_access` to the host's
/// `system.posix_acl_access` (and shows it back); every other name passes.
const TO_ACL_MAP: &str = ":prefix:all:posix_acl_access:system.: :ok:all:::";

/// A guest name that `--xattrmap` stores as a POSIX ACL is translated as an
/// ACL: whether a value carries ids is the host name's to say. Before, the
/// guest's name decided, and the ACL reached the host with guest 1000
/// untranslated.
fn a_name_mapped_to_an_acl_is_translated(flavor: Flavor) {
    if !is_real_root() {
        skip(
            "a_name_mapped_to_an_acl_is_translated",
            "storing an ACL that names host uid 101000 needs real root (the user-namespace runs do not map it)",
        );
        return;
    }
    let s = Scratch::new();
    fs::write(s.path("f"), "x").unwrap();
    let h = Spawn::new(flavor, &s.export)
        .arg("--xattrmap")
        .arg(TO_ACL_MAP)
        .arg("--translate-uid")
        .arg("map:1000:101000:100")
        .arg("--translate-gid")
        .arg("map:1000:201000:100")
        .start();
    let value = named_acl(1000, 1001);
    assert_eq!(
        set(&h, "//f", "posix_acl_access", &value),
        0,
        "{}",
        h.stderr()
    );
    assert_eq!(
        host_acl(&s.path("f")),
        named_acl(101_000, 201_001),
        "stored with the host's ids"
    );
    assert_eq!(get(&h, "//f", "posix_acl_access").unwrap(), value);
    assert!(list(&h, "//f").contains(&"posix_acl_access".to_string()));
    // Read under its host name too (an `ok` rule passes it): the same ids.
    assert_eq!(get(&h, "//f", "system.posix_acl_access").unwrap(), value);
    assert_eq!(remove(&h, "//f", "posix_acl_access"), 0);
    assert!(!host_names(&s.path("f")).contains(&"system.posix_acl_access".to_string()));
    assert!(h.finish().success());
}

/// `forbid-guest:0:1`: an ACL naming uid 0 is EPERM under a guest name the
/// map stores as an ACL, as under the ACL's own name, and nothing is
/// stored. An ACL name the map stores under `user.` is no ACL on the host
/// (the kernel enforces nothing of it): its value is stored as the guest
/// wrote it and read back the same.
fn a_name_mapped_to_an_acl_cannot_smuggle_a_forbidden_id(flavor: Flavor) {
    let s = Scratch::new();
    fs::write(s.path("f"), "x").unwrap();
    let forbid = |map: &str| {
        Spawn::new(flavor, &s.export)
            .arg("--xattrmap")
            .arg(map)
            .arg("--translate-uid")
            .arg("forbid-guest:0:1")
            .start()
    };
    let my_gid = rustix::process::getegid().as_raw();
    let root_acl = named_acl(0, my_gid);
    let h = forbid(TO_ACL_MAP);
    for name in ["posix_acl_access", "system.posix_acl_access"] {
        assert_eq!(
            set(&h, "//f", name, &root_acl),
            errno(Errno::PERM),
            "{name}: {}",
            h.stderr()
        );
    }
    assert!(host_names(&s.path("f")).is_empty(), "nothing stored");
    assert!(h.finish().success());
    let h = forbid(":map::user.virtiofs.:");
    assert_eq!(set(&h, "//f", "system.posix_acl_access", &root_acl), 0);
    assert_eq!(
        host_names(&s.path("f")),
        ["user.virtiofs.system.posix_acl_access"]
    );
    let mut raw = vec![0u8; 256];
    let n = rustix::fs::lgetxattr(
        s.path("f"),
        "user.virtiofs.system.posix_acl_access",
        &mut raw[..],
    )
    .unwrap();
    assert_eq!(raw[..n], root_acl[..], "stored as the guest wrote it");
    assert_eq!(get(&h, "//f", "system.posix_acl_access").unwrap(), root_acl);
    assert!(h.finish().success());
}

/// With `--readonly`, every xattr change answers EROFS, mapped or not.
fn readonly_still_refuses(flavor: Flavor) {
    let s = Scratch::new();
    fs::write(s.path("f"), "x").unwrap();
    let h = Spawn::new(flavor, &s.export)
        .arg("--readonly")
        .arg("--xattrmap")
        .arg(SELINUX_MAP)
        .start();
    for name in ["security.selinux", "user.virtiofs.x", "user.plain"] {
        assert_eq!(set(&h, "//f", name, b"v"), errno(Errno::ROFS), "{name}");
        assert_eq!(remove(&h, "//f", name), errno(Errno::ROFS), "{name}");
    }
    assert!(host_names(&s.path("f")).is_empty());
    assert!(h.finish().success());
}

macro_rules! both_resolvers {
    ($($name:ident),*) => {
        $( mod $name {
            use super::*;
            #[test] fn openat2() { super::$name(Flavor::Openat2) }
            #[test] fn walker() { super::$name(Flavor::Walker) }
        } )*
    };
}

both_resolvers!(
    the_prefix_cannot_be_forged,
    a_long_listing,
    each_rule_type,
    the_kernels_answer_for_a_symlink,
    acls_stay_unmapped_and_translated,
    a_name_mapped_to_an_acl_is_translated,
    a_name_mapped_to_an_acl_cannot_smuggle_a_forbidden_id,
    readonly_still_refuses
);

#[test]
fn bad_rules_exit_2_and_the_report_prints_the_rules() {
    let s = Scratch::new();
    for (rules, says) in [
        ("", "no rules"),
        (":prefix:all:a", "unterminated"),
        (":frob:all:::", "unknown type `frob`"),
        (":ok:nowhere:::", "unknown scope `nowhere`"),
        (":map::p.: :ok:all:::", "follows a `map` rule"),
    ] {
        let out = Command::new(our_binary())
            .args(["--sandbox-report", "-p"])
            .arg(&s.export)
            .args(["--xattrmap", rules])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{rules:?}: {text}");
        assert!(
            text.contains("--xattrmap: ") && text.contains(says),
            "{rules:?}: {text}"
        );
    }
    let out = Command::new(our_binary())
        .args(["--sandbox-report", "-p"])
        .arg(&s.export)
        .args(["--xattrmap", SELINUX_MAP])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("xattrmap:      {SELINUX_MAP}")),
        "{text}"
    );
}
