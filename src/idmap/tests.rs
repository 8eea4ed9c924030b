//! Unit tests of the id tables, the rules and the ACL rewrite.

use super::acl::ACL_VERSION;
use super::*;

fn map(rules: &[&str]) -> IdMap {
    let mut m = IdMap::default();
    for r in rules {
        m.add_rule(r).unwrap();
    }
    m
}

#[test]
fn each_rule_kind_means_what_virtiofsd_says() {
    let m = map(&["map:0:100000:1000"]);
    assert_eq!(m.to_host(5), Ok(100_005));
    assert_eq!(m.to_guest(100_005), 5);
    assert_eq!(m.to_host(1000), Ok(1000), "uncovered ids map to themselves");
    let m = map(&["guest:10:20:5"]);
    assert_eq!((m.to_host(12), m.to_guest(22)), (Ok(22), 22));
    let m = map(&["host:20:10:5"]);
    assert_eq!((m.to_host(12), m.to_guest(22)), (Ok(12), 12));
    let m = map(&["squash-guest:0:1001:4294967295", "host:1001:1000:1"]);
    assert_eq!(m.to_host(0), Ok(1001));
    assert_eq!(m.to_host(4_294_967_294), Ok(1001));
    assert_eq!(m.to_guest(1001), 1000);
    let m = map(&["squash-host:100:0:50"]);
    assert_eq!((m.to_guest(149), m.to_guest(150)), (0, 150));
    let m = map(&["forbid-guest:0:1"]);
    assert_eq!(m.to_host(0), Err(Errno::PERM));
    assert_eq!(m.to_host(1), Ok(1));
    assert_eq!(m.to_host(u32::MAX), Ok(u32::MAX), "-1 stays -1");
}

#[test]
fn bad_rules_name_themselves() {
    let cases = [
        ("", "unknown kind"),
        ("map:1:2", "takes 3 numbers"),
        ("forbid-guest:1:2:3", "takes 2 numbers"),
        ("nap:1:2:3", "unknown kind"),
        ("map:x:2:3", "`x` is not a number"),
        ("map:1:2:-3", "`-3` is not a number"),
        ("map:1:2:0", "count is 0"),
        ("map:4294967290:0:10", "reaches past"),
        ("guest:0:4294967290:10", "reaches past"),
        ("squash-guest:0:4294967295:1", "no id"),
        ("forbid-guest:1000:2000", "looks like the end of a range"),
    ];
    for (rule, why) in cases {
        let err = IdMap::default().add_rule(rule).unwrap_err();
        assert!(err.contains(&format!("`{rule}`")), "{err}");
        assert!(err.contains(why), "{rule}: {err}");
    }
    let err = IdMap::default()
        .add_rule("forbid-guest:1000:1999")
        .unwrap_err();
    assert!(err.contains("guest ids 1000..=2998"), "{err}");
    assert!(err.contains("the count is 1000"), "{err}");
}

#[test]
fn overlaps_within_a_direction_are_refused() {
    let mut m = map(&["map:0:100000:1000"]);
    let err = m.add_rule("guest:999:5:1").unwrap_err();
    assert!(
        err.contains("`guest:999:5:1` overlaps `map:0:100000:1000`"),
        "{err}"
    );
    let err = m.add_rule("host:100500:0:1").unwrap_err();
    assert!(err.contains("overlaps"), "{err}");
    // The other direction of a rule that failed halfway is not kept.
    let err = m.add_rule("map:5000:100999:2").unwrap_err();
    assert!(err.contains("overlaps"), "{err}");
    assert_eq!(m.to_host(5000), Ok(5000));
    m.add_rule("guest:1000:5:1").unwrap();
    assert_eq!(m.rules(), ["map:0:100000:1000", "guest:1000:5:1"]);
}

fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = ACL_VERSION.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

#[test]
fn acl_entries_are_translated_both_ways() {
    let mut t = Translation::default();
    t.uids.add_rule("map:1000:101000:100").unwrap();
    t.gids.add_rule("map:1000:201000:100").unwrap();
    t.uids.add_rule("forbid-guest:0:1").unwrap();
    let guest = acl(&[
        (0x01, 6, u32::MAX),
        (ACL_USER, 4, 1000),
        (0x04, 4, u32::MAX),
        (ACL_GROUP, 4, 1001),
        (0x10, 6, u32::MAX),
        (0x20, 0, u32::MAX),
    ]);
    let mut v = guest.clone();
    t.acl_to_host(&mut v).unwrap();
    let host = acl(&[
        (0x01, 6, u32::MAX),
        (ACL_USER, 4, 101_000),
        (0x04, 4, u32::MAX),
        (ACL_GROUP, 4, 201_001),
        (0x10, 6, u32::MAX),
        (0x20, 0, u32::MAX),
    ]);
    assert_eq!(v, host);
    t.acl_to_guest(&mut v);
    assert_eq!(v, guest);
    let mut forbidden = acl(&[(ACL_USER, 4, 0), (ACL_GROUP, 4, 1000)]);
    let before = forbidden.clone();
    assert_eq!(t.acl_to_host(&mut forbidden), Err(Errno::PERM));
    assert_eq!(forbidden, before, "nothing changed by a refused value");
    for bad in [
        vec![],
        vec![2, 0, 0],
        acl(&[(ACL_USER, 4, 1)])[..9].to_vec(),
    ] {
        let mut b = bad.clone();
        assert_eq!(t.acl_to_host(&mut b), Err(Errno::INVAL));
    }
    let mut v1 = acl(&[(ACL_USER, 4, 1000)]);
    v1[0] = 1;
    assert_eq!(t.acl_to_host(&mut v1.clone()), Err(Errno::INVAL));
    assert!(Translation::is_acl(b"system.posix_acl_default\0"));
    assert!(!Translation::is_acl(b"user.posix_acl_access"));
}

#[test]
fn rules_then_the_namespace_map() {
    // The recipe of one host user (1001) inside the helper's own
    // namespace, which maps that user to its root.
    let mut m = map(&["squash-guest:0:1001:4294967295", "host:1001:1000:1"]);
    m.set_namespace(vec![(0, 1001, 1)]);
    assert_eq!(m.to_host(1000), Ok(0), "lands as the namespace's root");
    assert_eq!(m.to_host(u32::MAX), Ok(u32::MAX), "-1 stays -1");
    assert_eq!(m.to_guest(0), 1000, "shown as guest 1000");
    assert_eq!(m.to_guest(65534), 65534, "the overflow id stays");
    // A host id the namespace does not map cannot be stored.
    let mut m = map(&["map:0:5000:10"]);
    m.set_namespace(vec![(0, 1001, 1)]);
    assert_eq!(m.to_host(3), Err(Errno::INVAL));
    // Hostile lines never overflow.
    m.set_namespace(vec![(u32::MAX - 1, 5000, 100)]);
    assert_eq!(m.to_host(9), Err(Errno::INVAL));
    assert_eq!(m.to_guest(u32::MAX - 1), 0);
}

/// Whether a value is an ACL is the host name's to say (the one
/// `--xattrmap` produced): an ACL name is rewritten, a forbidden id in it
/// is EPERM and a malformed value EINVAL; any other name's value passes
/// as it is, whatever it holds.
#[test]
fn values_are_rewritten_by_the_host_name() {
    let mut t = Translation::default();
    t.uids.add_rule("map:1000:101000:100").unwrap();
    t.uids.add_rule("forbid-guest:0:1").unwrap();
    let guest = acl(&[(ACL_USER, 4, 1000)]);
    let host = acl(&[(ACL_USER, 4, 101_000)]);
    for name in [ACL_ACCESS, ACL_DEFAULT, b"system.posix_acl_access\0"] {
        let stored = t.value_to_host(name, &guest).unwrap();
        assert!(matches!(stored, Cow::Owned(_)));
        assert_eq!(*stored, host[..]);
        let mut read = host.clone();
        t.value_to_guest(name, &mut read);
        assert_eq!(read, guest);
        let root = acl(&[(ACL_USER, 4, 0)]);
        assert_eq!(t.value_to_host(name, &root), Err(Errno::PERM));
        assert_eq!(t.value_to_host(name, b"junk"), Err(Errno::INVAL));
    }
    for name in [
        &b"user.virtiofs.system.posix_acl_access"[..],
        b"posix_acl_access",
        b"user.x",
    ] {
        let root = acl(&[(ACL_USER, 4, 0)]);
        assert!(matches!(t.value_to_host(name, &root), Ok(Cow::Borrowed(v)) if v == root));
        let mut read = host.clone();
        t.value_to_guest(name, &mut read);
        assert_eq!(read, host);
    }
    // Without rules nothing is rewritten, not even a malformed ACL.
    let none = Translation::default();
    assert!(matches!(
        none.value_to_host(ACL_ACCESS, b"junk"),
        Ok(Cow::Borrowed(_))
    ));
}
