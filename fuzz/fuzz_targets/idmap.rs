//! Id translation: rules as the command line gives them (one per line of
//! the input's first part, uid rules then gid rules after an empty line),
//! then hostile POSIX ACL values (the rest) rewritten both ways, once as
//! is and once through a user namespace's id map (lines `NS HOST COUNT`
//! after a second empty line, as the helper's own namespace adds them;
//! the kernel's map may hold any such lines). Parsing must never panic; an accepted rule set must translate every id; a value
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
    let (uid_rules, rest) = rules.split_once("\n\n").unwrap_or((rules, ""));
    let (gid_rules, ns_lines) = rest.split_once("\n\n").unwrap_or((rest, ""));
    for rule in uid_rules.lines() {
        let _ = t.uids.add_rule(rule);
    }
    for rule in gid_rules.lines() {
        let _ = t.gids.add_rule(rule);
    }
    let namespace: Vec<(u32, u32, u32)> = ns_lines
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace().map(|n| n.parse::<u32>().ok());
            Some((f.next()??, f.next()??, f.next()??))
        })
        .collect();
    for pass in 0..2 {
        if pass == 1 {
            if namespace.is_empty() {
                break;
            }
            t.uids.set_namespace(namespace.clone());
            t.gids.set_namespace(namespace.clone());
        }
        for id in [0u32, 1, 999, 1000, 65535, 100_000, u32::MAX - 1, u32::MAX] {
            let _ = t.uids.to_host(id);
            let _ = t.gids.to_guest(id);
        }
        check_acl(&t, acl);
    }
});

fn check_acl(t: &Translation, acl: &[u8]) {
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
}
