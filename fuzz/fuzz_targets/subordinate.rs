//! The subordinate-id files (`/etc/subuid`, `/etc/subgid`) as bytes: any
//! input parses without a panic; every range a line is granted has a count
//! and stays below id 4294967295; the range the automatic map takes for a
//! user (named by the first line's owner, with uid 1000 and own host id
//! taken from the input's length) is one of that user's well-formed lines,
//! leaves the user's own id alone and fits the namespace side. The same
//! bytes as a kernel id map (`/proc/self/uid_map`) and, where UTF-8, as
//! `--uid-map` entries (one per line) parse without a panic too, into
//! entries the kernel would take; describing them never overflows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use virtfs_proxy_helper::sandbox::userns::{
    MapEntry, check_map, describe, parse_entry, parse_kernel_map, parse_subordinate, pick_range,
};

fuzz_target!(|data: &[u8]| {
    let lines = parse_subordinate(data);
    for line in &lines {
        assert!(line.number >= 1);
        assert!(!line.text.is_empty());
        if let Ok(range) = &line.range {
            assert!(range.count > 0);
            assert!(range.start.checked_add(range.count).is_some());
        }
    }
    let name = lines.first().map(|l| l.owner);
    let own = data.len() as u32;
    let (picked, notes) = pick_range("/etc/subuid", data, name, 1000, own);
    for note in &notes {
        assert!(note.starts_with("/etc/subuid line "), "{note}");
    }
    if let Some(entry) = picked {
        assert_eq!(entry.ns, 1);
        assert!(entry.count > 0);
        assert!(entry.ns.checked_add(entry.count).is_some());
        assert!(entry.host.checked_add(entry.count).is_some());
        assert!(
            own < entry.host || own - entry.host >= entry.count,
            "the user's own id is guest 0's"
        );
        assert!(lines.iter().any(|l| {
            l.belongs_to(name, 1000)
                && l.range
                    .as_ref()
                    .is_ok_and(|r| r.start == entry.host && r.count >= entry.count)
        }));
        let own_entry = MapEntry {
            ns: 0,
            host: own,
            count: 1,
        };
        assert!(check_map("automatic", &[own_entry, entry]).is_ok());
    }

    let (entries, _) = parse_kernel_map(data);
    for e in &entries {
        assert!(e.count > 0);
        assert!(e.ns.checked_add(e.count).is_some() && e.host.checked_add(e.count).is_some());
    }
    let _ = describe(&entries);
    let _ = check_map("kernel", &entries);

    if let Ok(text) = std::str::from_utf8(data) {
        let given: Vec<_> = text.lines().filter_map(|l| parse_entry(l).ok()).collect();
        let _ = check_map("--uid-map", &given);
        let _ = describe(&given);
    }
});
