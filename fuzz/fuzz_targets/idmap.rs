//! Id translation: rules as the command line gives them (one per line of
//! the input's first part, uid rules then gid rules after an empty line),
//! then hostile POSIX ACL values (the rest) rewritten both ways. Parsing
//! must never panic; an accepted rule set must translate every id; a value
//! is rewritten whole or not at all, keeps its length, its header, tags
//! and permissions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use virtfs_proxy_helper::idmap::Translation;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (rules, acl) = data.split_at(split);
    let acl = acl.get(1..).unwrap_or(&[]);
    let Ok(rules) = std::str::from_utf8(rules) else {
        return;
    };
    let mut t = Translation::default();
    let (uid_rules, gid_rules) = rules.split_once("\n\n").unwrap_or((rules, ""));
    for rule in uid_rules.lines() {
        let _ = t.uids.add_rule(rule);
    }
    for rule in gid_rules.lines() {
        let _ = t.gids.add_rule(rule);
    }
    for id in [0u32, 1, 999, 1000, 65535, 100_000, u32::MAX - 1, u32::MAX] {
        let _ = t.uids.to_host(id);
        let _ = t.gids.to_guest(id);
    }
    let mut to_host = acl.to_vec();
    match t.acl_to_host(&mut to_host) {
        Ok(()) => {
            assert_eq!(to_host.len(), acl.len());
            assert_eq!(to_host[..4], acl[..4], "the header is never rewritten");
            for (a, b) in to_host[4..].chunks(8).zip(acl[4..].chunks(8)) {
                assert_eq!(a[..4], b[..4], "tags and permissions are never rewritten");
            }
        }
        Err(_) => assert_eq!(to_host, acl, "a refused value is left unchanged"),
    }
    let mut to_guest = acl.to_vec();
    t.acl_to_guest(&mut to_guest);
    assert_eq!(to_guest.len(), acl.len());
});
