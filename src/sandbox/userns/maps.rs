//! Id maps as the command line gives them (`:NS:HOST:COUNT:`, virtiofsd's
//! syntax), as the kernel shows them (`/proc/self/uid_map`) and as
//! `/etc/subuid` and `/etc/subgid` grant them (`OWNER:START:COUNT`):
//! parsing, the kernel's own checks, and the one-line description the log
//! and the report use. Pure but for [`InForce::read`]: every parser takes
//! text (bytes where a file may hold anything) and answers without
//! arithmetic that can overflow, so each fuzzes on its own.

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

/// Bytes of a hostile line or entry shown in a message: enough to find it.
const SHOWN: usize = 80;

/// `text` for a message, as the log escapes a client's path (invalid
/// UTF-8 as `\xff`, control and bidi characters escaped), cut after
/// [`SHOWN`] bytes: no line can flood or forge the log.
pub(crate) fn shown(text: &[u8]) -> String {
    let cut = text.get(..SHOWN).unwrap_or(text);
    let more = if cut.len() < text.len() { "..." } else { "" };
    format!("{}{more}", crate::logging::Escaped(cut))
}

/// A decimal id or count, 0 to 4294967295: ASCII digits only (no sign, no
/// space, no `0x`; `str::parse` alone would take a `+`).
pub(crate) fn decimal(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Checks the ranges of one entry as the kernel does: a count of at least
/// 1, and neither side reaching id 4294967295, which is no id.
fn check_entry(e: &MapEntry) -> Result<(), String> {
    if e.count == 0 {
        return Err("COUNT must be at least 1".into());
    }
    for (what, start) in [("NS", e.ns), ("HOST", e.host)] {
        if start.checked_add(e.count).is_none() {
            return Err(format!(
                "{what} {start} plus COUNT {} passes the last id 4294967294 \
                 (COUNT is a count, not the end of a range)",
                e.count
            ));
        }
    }
    Ok(())
}

/// Parses `:NS:HOST:COUNT:`.
pub fn parse_entry(text: &str) -> Result<MapEntry, String> {
    let quoted = shown(text.as_bytes());
    let fields: Vec<&str> = text.split(':').collect();
    let ["", ns, host, count, ""] = fields.as_slice() else {
        return Err(format!(
            "`{quoted}`: expected :NS:HOST:COUNT: (for example :0:100000:65536:)"
        ));
    };
    let number = |what: &str, s: &str| {
        decimal(s.as_bytes()).ok_or_else(|| {
            format!(
                "`{quoted}`: {what} `{}` is not a number from 0 to 4294967294",
                shown(s.as_bytes())
            )
        })
    };
    let entry = MapEntry {
        ns: number("NS", ns)?,
        host: number("HOST", host)?,
        count: number("COUNT", count)?,
    };
    check_entry(&entry).map_err(|why| format!("`{quoted}`: {why}"))?;
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
                if overlap((x, a.count), (y, b.count)) {
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

/// Whether two `(start, count)` ranges share an id; in 64 bits, so no
/// range near the top can wrap around.
pub(crate) fn overlap((x, xn): (u32, u32), (y, yn): (u32, u32)) -> bool {
    let (x, xn, y, yn) = (u64::from(x), u64::from(xn), u64::from(y), u64::from(yn));
    x < y + yn && y < x + xn
}

fn show(e: &MapEntry) -> String {
    format!(":{}:{}:{}:", e.ns, e.host, e.count)
}

/// `start..=last` of `count` ids (`start` alone for one), without
/// overflow however the range was made.
fn span(start: u32, count: u32) -> String {
    match count {
        0 => format!("{start} (no id)"),
        1 => start.to_string(),
        n => format!("{start}..={}", u64::from(start) + u64::from(n) - 1),
    }
}

/// The maps, as the report and the log show them.
pub fn describe(entries: &[MapEntry]) -> String {
    entries
        .iter()
        .map(|e| format!("{}->{}", span(e.ns, e.count), span(e.host, e.count)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses a map as the kernel shows it (`/proc/self/uid_map`: lines of
/// `NS HOST COUNT`, right-aligned): the entries, and what was wrong with
/// any line left out (naming it). The kernel writes only well-formed
/// lines; this is checked anyway, since what is read here decides which
/// ids translation stores.
pub fn parse_kernel_map(text: &[u8]) -> (Vec<MapEntry>, Vec<String>) {
    let mut entries = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let fields: Vec<Option<u32>> = line
            .split(u8::is_ascii_whitespace)
            .filter(|f| !f.is_empty())
            .map(decimal)
            .collect();
        let entry = match fields.as_slice() {
            [Some(ns), Some(host), Some(count)] => MapEntry {
                ns: *ns,
                host: *host,
                count: *count,
            },
            _ => {
                bad.push(format!(
                    "line {} `{}`: expected NS HOST COUNT",
                    i + 1,
                    shown(line)
                ));
                continue;
            }
        };
        match check_entry(&entry) {
            Ok(()) => entries.push(entry),
            Err(why) => bad.push(format!("line {} `{}`: {why}", i + 1, shown(line))),
        }
    }
    (entries, bad)
}

/// The maps in force, read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InForce {
    pub uids: Vec<MapEntry>,
    pub gids: Vec<MapEntry>,
}

impl InForce {
    /// `/proc/self/uid_map` and `gid_map` (the initial namespace's are
    /// identity). A line that does not parse is left out, with a warning:
    /// translation then refuses the ids it would have mapped (EINVAL)
    /// rather than guess.
    pub fn read() -> Self {
        let parse = |path: &str| {
            let (entries, bad) = parse_kernel_map(&std::fs::read(path).unwrap_or_default());
            for why in bad {
                tracing::warn!("{path} {why}; left out");
            }
            entries
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

/// A range `/etc/subuid` or `/etc/subgid` grants: host ids `start` to
/// `start + count - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subordinate {
    pub start: u32,
    pub count: u32,
}

/// One line of `/etc/subuid` or `/etc/subgid` (`OWNER:START:COUNT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubordinateLine<'a> {
    /// Counted from 1, as editors count.
    pub number: usize,
    /// The line, without the whitespace around it.
    pub text: &'a [u8],
    /// A login name, or a uid in decimal; as the file has it (any bytes).
    pub owner: &'a [u8],
    /// The range, or why the line grants none (the line is then skipped,
    /// as newuidmap skips it).
    pub range: Result<Subordinate, String>,
}

impl SubordinateLine<'_> {
    /// Whether the line is the user's: its owner is the login name or the
    /// uid in decimal, the two keys shadow-utils' newuidmap and newgidmap
    /// (and podman) look both files up by. Never the gid: `/etc/subgid`
    /// is keyed by user too.
    pub fn belongs_to(&self, name: Option<&[u8]>, uid: u32) -> bool {
        Some(self.owner) == name || self.owner == uid.to_string().as_bytes()
    }
}

/// Lines longer than this grant nothing: shadow-utils reads a line into a
/// buffer of 1024 bytes and ignores one that does not fit.
pub const SUBORDINATE_LINE_MAX: usize = 1023;

/// Parses `/etc/subuid` or `/etc/subgid` as bytes: every line but blank
/// ones, in order, each with its range or why it has none. Never panics,
/// whatever the bytes: a line that is too long, not three fields, not
/// UTF-8 where numbers belong, a START or COUNT that is not a decimal
/// number below 2^32, a COUNT of 0, or a range reaching id 4294967295
/// (which is no id) gets an error naming what is wrong.
pub fn parse_subordinate(text: &[u8]) -> Vec<SubordinateLine<'_>> {
    text.split(|&b| b == b'\n')
        .enumerate()
        .filter_map(|(i, raw)| {
            let line = raw.trim_ascii();
            if line.is_empty() {
                return None;
            }
            let owner = line.split(|&b| b == b':').next().unwrap_or_default();
            Some(SubordinateLine {
                number: i + 1,
                text: line,
                owner,
                range: subordinate_range(line),
            })
        })
        .collect()
}

fn subordinate_range(line: &[u8]) -> Result<Subordinate, String> {
    if line.len() > SUBORDINATE_LINE_MAX {
        return Err(format!(
            "{} bytes long, more than the {SUBORDINATE_LINE_MAX} newuidmap reads",
            line.len()
        ));
    }
    let fields: Vec<&[u8]> = line.split(|&b| b == b':').collect();
    let [owner, start, count] = fields.as_slice() else {
        return Err("expected OWNER:START:COUNT (for example alice:100000:65536)".into());
    };
    if owner.is_empty() {
        return Err("the OWNER is empty".into());
    }
    let number = |what: &str, s: &[u8]| {
        if s.len() > 1 && s[0] == b'0' && decimal(s).is_some() {
            // shadow-utils reads numbers with strtoul(.., 0): newuidmap
            // would take `0100000` as octal 32768, and refuse a map of
            // 100000.
            return Err(format!(
                "{what} `{}` has a leading 0, which newuidmap reads as octal: \
                 write it in decimal",
                shown(s)
            ));
        }
        decimal(s).ok_or_else(|| {
            format!(
                "{what} `{}` is not a decimal number from 0 to 4294967294",
                shown(s)
            )
        })
    };
    let range = Subordinate {
        start: number("START", start)?,
        count: number("COUNT", count)?,
    };
    if range.count == 0 {
        return Err("COUNT is 0: the line grants no id".into());
    }
    if range.start.checked_add(range.count).is_none() {
        return Err(format!(
            "START {} plus COUNT {} passes the last id 4294967294 \
             (COUNT is a count, not the end of a range)",
            range.start, range.count
        ));
    }
    Ok(range)
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

    /// Hostile `--uid-map` entries: refused naming the entry, never a
    /// panic; a long one is cut in the message.
    #[test]
    fn hostile_entries_are_refused() {
        let long = format!(":0:1:{}:", "9".repeat(5000));
        for (bad, says) in [
            (
                ":4294967295:0:1:",
                "NS 4294967295 plus COUNT 1 passes the last id",
            ),
            (":0:4294967295:1:", "HOST 4294967295 plus COUNT 1 passes"),
            (":0:0:4294967295:", ""),
            (":1:0:4294967295:", "NS 1 plus COUNT 4294967295 passes"),
            (":0:0:4294967296:", "COUNT `4294967296` is not a number"),
            (
                ":0:99999999999999999999:1:",
                "HOST `99999999999999999999` is not a number",
            ),
            (":+0:1:1:", "NS `+0` is not a number"),
            (": 0:1:1:", "NS ` 0` is not a number"),
            (":0:-1:1:", "HOST `-1` is not a number"),
            (":0:1:0:", "COUNT must be at least 1"),
            (":0:1:1", "expected :NS:HOST:COUNT:"),
            (":0:1:1::", "expected :NS:HOST:COUNT:"),
            (":0:\u{202e}1:1:", "HOST `\\u{202e}1` is not a number"),
            (long.as_str(), "..."),
        ] {
            if bad == ":0:0:4294967295:" {
                // The whole id space but -1: what the initial namespace has.
                assert_eq!(parse_entry(bad).map(|e| e.count), Ok(u32::MAX));
                continue;
            }
            let why = parse_entry(bad).unwrap_err();
            assert!(why.contains(says), "{bad}: {why}");
            assert!(why.len() < 400, "{why}");
        }
        // Entries made elsewhere (not parsed): still no overflow.
        let e = |ns, host, count| MapEntry { ns, host, count };
        let top = [e(u32::MAX, 0, 5), e(0, u32::MAX, 5)];
        assert!(check_map("--uid-map", &top).is_ok());
        let top = [e(u32::MAX, 0, 5), e(u32::MAX - 1, 10, 5)];
        assert!(check_map("--uid-map", &top).is_err());
        assert_eq!(
            describe(&[e(u32::MAX, u32::MAX, u32::MAX), e(7, 8, 0)]),
            "4294967295..=8589934589->4294967295..=8589934589, 7 (no id)->8 (no id)"
        );
    }

    /// `/proc/self/uid_map` as the kernel writes it, and lines it never
    /// writes: left out, each named.
    #[test]
    fn kernel_maps_parse_and_refuse() {
        let initial = b"         0          0 4294967295\n";
        let (entries, bad) = parse_kernel_map(initial);
        assert_eq!(
            entries,
            [MapEntry {
                ns: 0,
                host: 0,
                count: u32::MAX
            }]
        );
        assert!(bad.is_empty());
        let (entries, bad) = parse_kernel_map(b"0 1000 1\n1 100000 65536\n\n");
        assert_eq!(entries.len(), 2);
        assert!(bad.is_empty());
        let long = format!("0 0 {}", "1".repeat(3000));
        for (line, says) in [
            ("4294967295 0 2", "NS 4294967295 plus COUNT 2 passes"),
            ("0 4294967295 1", "HOST 4294967295 plus COUNT 1 passes"),
            ("0 0 0", "COUNT must be at least 1"),
            ("0 0 4294967296", "expected NS HOST COUNT"),
            ("0 0", "expected NS HOST COUNT"),
            ("0 0 1 1", "expected NS HOST COUNT"),
            ("-1 0 1", "expected NS HOST COUNT"),
            ("0 0 1\u{0}", "expected NS HOST COUNT"),
            (long.as_str(), "..."),
        ] {
            let text = format!("0 1000 1\n{line}\n");
            let (entries, bad) = parse_kernel_map(text.as_bytes());
            assert_eq!(entries.len(), 1, "{line}");
            assert_eq!(bad.len(), 1, "{line}");
            assert!(
                bad[0].starts_with("line 2 `") && bad[0].contains(says),
                "{}",
                bad[0]
            );
            assert!(bad[0].len() < 400, "{}", bad[0]);
        }
        let (entries, bad) = parse_kernel_map(b"0 \xff 1\n\xfe\xfd");
        assert!(entries.is_empty());
        assert_eq!(bad.len(), 2);
        assert!(bad[0].contains("`0 \\xff 1`"), "{}", bad[0]);
    }

    #[test]
    fn subordinate_files_parse_line_by_line() {
        let text = b"alice:100000:65536\n\n  \nbob:1:0\n\xff:x\n1000:5:5\r\n";
        let lines = parse_subordinate(text);
        let numbers: Vec<usize> = lines.iter().map(|l| l.number).collect();
        assert_eq!(numbers, [1, 4, 5, 6], "blank lines are not lines of anyone");
        assert_eq!(lines[0].owner, b"alice");
        assert_eq!(
            lines[0].range,
            Ok(Subordinate {
                start: 100000,
                count: 65536
            })
        );
        assert_eq!(
            lines[1].range,
            Err("COUNT is 0: the line grants no id".into())
        );
        assert_eq!(lines[2].owner, b"\xff");
        assert!(lines[2].range.is_err());
        assert_eq!(lines[3].text, b"1000:5:5");
        assert!(lines[3].belongs_to(Some(b"carol"), 1000));
        assert!(!lines[3].belongs_to(Some(b"carol"), 100));
        assert!(lines[0].belongs_to(Some(b"alice"), 5));
        assert!(!lines[0].belongs_to(None, 5));
    }
}
