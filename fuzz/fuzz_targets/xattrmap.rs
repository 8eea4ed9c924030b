//! Xattr name mapping: rules as `--xattrmap` takes them (the input's first
//! line), then hostile names (the rest, split at NUL) in both directions.
//! Parsing must never panic. Under a single `map` rule (the shorthand that
//! guards against forged names) a stored name lists back as a guest name
//! that maps to that very host name: no guest can reach another's. For
//! every accepted rule set a host listing maps to NUL-terminated names and
//! never grows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use virtfs_proxy_helper::xattrmap::XattrMap;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (rules, names) = data.split_at(split);
    let Ok(rules) = std::str::from_utf8(rules) else {
        return;
    };
    let Ok(map) = XattrMap::parse(rules) else {
        return;
    };
    let names = names.get(1..).unwrap_or(&[]);
    let trimmed = rules.trim();
    let single_map = trimmed.chars().next().is_some_and(|sep| {
        let fields: Vec<&str> = trimmed.split(sep).collect();
        fields.len() == 5 && fields[1] == "map"
    });
    for name in names.split(|&b| b == 0).filter(|_| single_map) {
        if let Ok(host) = map.to_host(name) {
            // What the guest stores, listed back, is the guest's own name
            // (or hidden): never another guest name.
            if let Some(shown) = map.to_guest(&host) {
                let maps_back = map.to_host(shown).map(|h| h.into_owned());
                assert!(
                    maps_back.as_deref() == Ok(&host[..]),
                    "{name:?} -> {host:?} -> {shown:?} -> {maps_back:?}"
                );
            }
        }
    }
    let shown = map.list_to_guest(names);
    assert!(shown.len() <= names.len(), "a listing never grows");
    assert!(shown.is_empty() || shown.ends_with(&[0]));
});
