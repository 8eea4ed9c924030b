//! Id maps as the command line gives them (`:NS:HOST:COUNT:`, virtiofsd's
//! syntax) and as the kernel shows them (`/proc/self/uid_map`): parsing,
//! the kernel's own checks, and the one-line description the log and the
//! report use. Pure but for [`InForce::read`].

/// One line of a map: `COUNT` ids from `NS` in the namespace are `HOST`
/// outside (virtiofsd's `:NS:HOST:COUNT:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapEntry {
    pub ns: u32,
    pub host: u32,
    pub count: u32,
}

/// The kernel takes at most this many lines per map.
const MAX_LINES: usize = 340;

/// Parses `:NS:HOST:COUNT:`.
pub fn parse_entry(text: &str) -> Result<MapEntry, String> {
    let fields: Vec<&str> = text.split(':').collect();
    let ["", ns, host, count, ""] = fields.as_slice() else {
        return Err(format!(
            "`{text}`: expected :NS:HOST:COUNT: (for example :0:100000:65536:)"
        ));
    };
    let number = |what: &str, s: &str| {
        s.parse::<u32>()
            .map_err(|_| format!("`{text}`: {what} `{s}` is not a number from 0 to 4294967294"))
    };
    let entry = MapEntry {
        ns: number("NS", ns)?,
        host: number("HOST", host)?,
        count: number("COUNT", count)?,
    };
    if entry.count == 0 {
        return Err(format!("`{text}`: COUNT must be at least 1"));
    }
    for (what, start) in [("NS", entry.ns), ("HOST", entry.host)] {
        if u64::from(start) + u64::from(entry.count) > u64::from(u32::MAX) {
            return Err(format!(
                "`{text}`: {what} {start} plus COUNT {} passes the last id 4294967294 \
                 (COUNT is a count, not the end of a range)",
                entry.count
            ));
        }
    }
    Ok(entry)
}

/// Checks one map as a whole: the kernel refuses overlapping ranges on
/// either side, and more than 340 lines.
pub fn check_map(option: &str, entries: &[MapEntry]) -> Result<(), String> {
    if entries.len() > MAX_LINES {
        return Err(format!("{option}: at most {MAX_LINES} entries"));
    }
    for (i, a) in entries.iter().enumerate() {
        for b in &entries[i + 1..] {
            for (side, x, y) in [("namespace", a.ns, b.ns), ("host", a.host, b.host)] {
                if x < y + b.count && y < x + a.count {
                    return Err(format!(
                        "{option}: {} and {} overlap on the {side} side \
                         (COUNT is a count, not the end of a range)",
                        show(a),
                        show(b)
                    ));
                }
            }
        }
    }
    Ok(())
}

fn show(e: &MapEntry) -> String {
    format!(":{}:{}:{}:", e.ns, e.host, e.count)
}

/// The maps, as the report and the log show them.
pub fn describe(entries: &[MapEntry]) -> String {
    entries
        .iter()
        .map(|e| match e.count {
            1 => format!("{}->{}", e.ns, e.host),
            n => format!(
                "{}..={}->{}..={}",
                e.ns,
                e.ns + (n - 1),
                e.host,
                e.host + (n - 1)
            ),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The maps in force, read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InForce {
    pub uids: Vec<MapEntry>,
    pub gids: Vec<MapEntry>,
}

impl InForce {
    /// `/proc/self/uid_map` and `gid_map` (the initial namespace's are
    /// identity).
    pub fn read() -> Self {
        let parse = |path: &str| {
            std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .filter_map(|line| {
                    let mut f = line.split_whitespace().map(|n| n.parse::<u32>().ok());
                    Some(MapEntry {
                        ns: f.next()??,
                        host: f.next()??,
                        count: f.next()??,
                    })
                })
                .collect()
        };
        InForce {
            uids: parse("/proc/self/uid_map"),
            gids: parse("/proc/self/gid_map"),
        }
    }

    pub fn is_initial(&self) -> bool {
        let all = [MapEntry {
            ns: 0,
            host: 0,
            count: u32::MAX,
        }];
        self.uids == all && self.gids == all
    }

    /// One line: `uid 0->1000, 1..=65536->100000..=165535; gid ...`.
    pub fn describe(&self) -> String {
        if self.is_initial() {
            return "initial namespace (every id is the host's)".into();
        }
        format!("uid {}; gid {}", describe(&self.uids), describe(&self.gids))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_and_refuse() {
        assert_eq!(
            parse_entry(":0:100000:65536:"),
            Ok(MapEntry {
                ns: 0,
                host: 100000,
                count: 65536
            })
        );
        for bad in [
            "0:100000:65536",
            ":0:100000:",
            ":0:x:1:",
            ":0:1:0:",
            ":4294967295:0:1:",
            ":0:4294967000:1000:",
        ] {
            assert!(parse_entry(bad).is_err(), "{bad}");
        }
        let e = |ns, host, count| MapEntry { ns, host, count };
        assert!(check_map("--uid-map", &[e(0, 1000, 1), e(1, 100000, 65536)]).is_ok());
        let overlap = check_map("--uid-map", &[e(0, 100000, 10), e(5, 200000, 10)]).unwrap_err();
        assert!(overlap.contains("namespace side"), "{overlap}");
        let overlap = check_map("--uid-map", &[e(0, 100000, 10), e(20, 100005, 1)]).unwrap_err();
        assert!(overlap.contains("host side"), "{overlap}");
    }
}
