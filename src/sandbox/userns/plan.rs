//! Whether the helper needs a user namespace of its own, and with which
//! maps: those given, or the automatic one for an ordinary user (podman's,
//! from `/etc/subuid` and `/etc/subgid`, through `newuidmap`), or one id
//! where no range or no setuid helper can be used.

use super::maps::{MapEntry, SubordinateLine, decimal, overlap, parse_subordinate, shown};
use std::path::PathBuf;
use tracing::warn;

/// Who writes the maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writer {
    /// The mapper writes `/proc/PID/*_map` itself: it has CAP_SETUID and
    /// CAP_SETGID, or maps only its own uid and gid (then `setgroups` is
    /// denied first, as the kernel requires).
    Direct { deny_setgroups: bool },
    /// `newuidmap` and `newgidmap`, at these paths.
    Helpers {
        newuidmap: PathBuf,
        newgidmap: PathBuf,
    },
}

/// Where the maps came from, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Given,
    /// The automatic map from the user's subordinate ranges.
    Subordinate,
    /// The automatic one-id map; why no range could be used.
    OneId(String),
    /// The one-id map that id translation asks for: the rules name the
    /// one host id every guest id becomes, so no setuid helper is needed.
    ForTranslation,
}

/// A user namespace to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub uids: Vec<MapEntry>,
    pub gids: Vec<MapEntry>,
    pub writer: Writer,
    pub origin: Origin,
}

/// Whether this process may set any id where it runs (real root, or root
/// of a namespace such as LXD's): then no namespace of its own is needed.
pub fn can_set_ids() -> bool {
    use caps::{CapSet, Capability};
    [Capability::CAP_SETUID, Capability::CAP_SETGID]
        .iter()
        .all(|&c| caps::has_cap(None, CapSet::Effective, c).unwrap_or(false))
}

/// Finds `name` on `PATH` and in the usual places.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    find_in(
        name,
        std::env::split_paths(&path)
            .chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from)),
    )
}

fn find_in(name: &str, mut dirs: impl Iterator<Item = PathBuf>) -> Option<PathBuf> {
    dirs.find_map(|dir| Some(dir.join(name)).filter(|p| p.is_file()))
}

/// The writer for `newuidmap` and `newgidmap` at these paths, or why not.
fn helpers_at(newuidmap: Option<PathBuf>, newgidmap: Option<PathBuf>) -> Result<Writer, String> {
    match (newuidmap, newgidmap) {
        (Some(newuidmap), Some(newgidmap)) => Ok(Writer::Helpers {
            newuidmap,
            newgidmap,
        }),
        _ => Err(
            "newuidmap and newgidmap are not installed: install the `uidmap` package \
             (apt-get install uidmap)"
                .into(),
        ),
    }
}

fn id_helpers() -> Result<Writer, String> {
    // Under no_new_privs (systemd's NoNewPrivileges=, a seccomp filter
    // installed by whoever started the helper) a setuid program gains
    // nothing, and newuidmap's write fails with EPERM.
    if rustix::thread::no_new_privs().unwrap_or(false) {
        return Err(
            "this process runs with no_new_privs (NoNewPrivileges=yes, or a seccomp \
             filter set by its parent), so the setuid newuidmap and newgidmap cannot work; \
             start it without, or use --translate-uid/--translate-gid"
                .into(),
        );
    }
    helpers_at(find_program("newuidmap"), find_program("newgidmap"))
}

/// The login name of `uid`, from `/etc/passwd` (as bytes: a line that is
/// not UTF-8 elsewhere in the file must not hide it). The first line with
/// that uid wins, as getpwuid's files lookup answers.
fn user_name(uid: u32) -> Option<Vec<u8>> {
    let passwd = std::fs::read("/etc/passwd").ok()?;
    name_in_passwd(&passwd, uid)
}

fn name_in_passwd(passwd: &[u8], uid: u32) -> Option<Vec<u8>> {
    passwd.split(|&b| b == b'\n').find_map(|line| {
        let mut f = line.split(|&b| b == b':');
        let name = f.next()?;
        let id = f.nth(1)?;
        (decimal(id) == Some(uid) && !name.is_empty()).then(|| name.to_vec())
    })
}

/// The range guest ids 1.. get from one subordinate file (`text`, read
/// from `file`, named in messages): the first of the user's lines (by
/// login name or uid, never by gid; see [`SubordinateLine::belongs_to`])
/// that grants a range the automatic map can use, i.e. one that leaves
/// `own`, the host id guest 0 already has, alone (the kernel refuses a
/// map whose host ranges overlap). Only the first usable line is taken:
/// the automatic map has one range after guest 0. With it, a message
/// for each of the user's lines skipped on the way, naming the line, and
/// for a taken range that other users' lines overlap.
pub fn pick_range(
    file: &str,
    text: &[u8],
    name: Option<&[u8]>,
    uid: u32,
    own: u32,
) -> (Option<MapEntry>, Vec<String>) {
    let lines = parse_subordinate(text);
    let mut notes = Vec::new();
    let at = |l: &SubordinateLine| format!("{file} line {} `{}`", l.number, shown(l.text));
    for line in lines.iter().filter(|l| l.belongs_to(name, uid)) {
        let range = match &line.range {
            Ok(range) => *range,
            Err(why) => {
                notes.push(format!("{}: {why}; skipped", at(line)));
                continue;
            }
        };
        if range.start <= own && own - range.start < range.count {
            notes.push(format!(
                "{}: the range {}..={} holds this user's own id {own}, which guest 0 \
                 already has (the kernel refuses overlapping ranges); skipped",
                at(line),
                range.start,
                u64::from(range.start) + u64::from(range.count) - 1,
            ));
            continue;
        }
        // Guest ids 1..=COUNT: the namespace side must not reach
        // 4294967295 either.
        let count = range.count.min(u32::MAX - 1);
        let entry = MapEntry {
            ns: 1,
            host: range.start,
            count,
        };
        for other in &lines {
            let Ok(theirs) = &other.range else { continue };
            if !other.belongs_to(name, uid)
                && overlap((range.start, count), (theirs.start, theirs.count))
            {
                notes.push(format!(
                    "{}: its range overlaps {}, another user's: guest ids of both \
                     land on the same host ids",
                    at(line),
                    at(other)
                ));
            }
        }
        return (Some(entry), notes);
    }
    (None, notes)
}

/// Decides whether to create a user namespace, and with which maps.
/// `None`: no namespace (this process can already set any id, and no map
/// was given). With id translation (`translating`) and no map, the
/// automatic map is this user alone, written without a setuid helper: the
/// rules decide which host ids the guest's become. An error is one that
/// stops start-up (exit 1).
pub fn plan(
    uid_map: &[MapEntry],
    gid_map: &[MapEntry],
    translating: bool,
) -> Result<Option<Plan>, String> {
    let privileged = can_set_ids();
    let (euid, egid) = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    let own_id_only =
        |map: &[MapEntry], id: u32| matches!(map, [e] if e.count == 1 && e.host == id);
    if !uid_map.is_empty() || !gid_map.is_empty() {
        if uid_map.is_empty() || gid_map.is_empty() {
            return Err("--uid-map and --gid-map go together: give both".into());
        }
        let writer = if privileged {
            Writer::Direct {
                deny_setgroups: false,
            }
        } else if own_id_only(uid_map, euid) && own_id_only(gid_map, egid) {
            Writer::Direct {
                deny_setgroups: true,
            }
        } else {
            id_helpers()?
        };
        return Ok(Some(Plan {
            uids: uid_map.to_vec(),
            gids: gid_map.to_vec(),
            writer,
            origin: Origin::Given,
        }));
    }
    if privileged {
        return Ok(None);
    }
    let own = |id| MapEntry {
        ns: 0,
        host: id,
        count: 1,
    };
    if translating {
        return Ok(Some(Plan {
            uids: vec![own(euid)],
            gids: vec![own(egid)],
            writer: Writer::Direct {
                deny_setgroups: true,
            },
            origin: Origin::ForTranslation,
        }));
    }
    // Both files are keyed by user (name or uid), as newuidmap and
    // newgidmap look them up: by the real uid, whose name getpwuid gives.
    let ruid = rustix::process::getuid().as_raw();
    let name = user_name(ruid);
    let pick = |file: &str, own: u32| {
        let text = std::fs::read(file).unwrap_or_default();
        let (range, notes) = pick_range(file, &text, name.as_deref(), ruid, own);
        for note in notes {
            warn!("{note}");
        }
        range
    };
    let ranges = (pick("/etc/subuid", euid), pick("/etc/subgid", egid));
    let one_id = |why: String| {
        Ok(Some(Plan {
            uids: vec![own(euid)],
            gids: vec![own(egid)],
            writer: Writer::Direct {
                deny_setgroups: true,
            },
            origin: Origin::OneId(why),
        }))
    };
    let (Some(urange), Some(grange)) = ranges else {
        let who = name.map_or_else(|| ruid.to_string(), |n| shown(&n));
        return one_id(format!(
            "/etc/subuid and /etc/subgid give {who} no range; add one \
             (usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {who})"
        ));
    };
    let writer = match id_helpers() {
        Ok(writer) => writer,
        Err(why) => return one_id(why),
    };
    Ok(Some(Plan {
        uids: vec![own(euid), urange],
        gids: vec![own(egid), grange],
        writer,
        origin: Origin::Subordinate,
    }))
}

/// Logs what a plan means for the guest, once.
pub fn log_plan(plan: &Plan) {
    if let Origin::OneId(why) = &plan.origin {
        warn!(
            "only guest uid and gid 0 are mapped (to this user): every other guest id will get \
             EINVAL on creation and chown. {why}; or give --uid-map/--gid-map, or \
             --translate-uid/--translate-gid rules"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::userns::maps::describe;

    fn range(host: u32, count: u32) -> Option<MapEntry> {
        Some(MapEntry { ns: 1, host, count })
    }

    /// `pick_range` for alice (uid 1000, own host id 1000).
    fn alice(text: &[u8]) -> (Option<MapEntry>, Vec<String>) {
        pick_range("/etc/subuid", text, Some(b"alice"), 1000, 1000)
    }

    #[test]
    fn subordinate_ranges_by_name_or_uid() {
        let text = b"alice:100000:65536\n1001:200000:1000\nbad line\n";
        assert_eq!(alice(text), (range(100000, 65536), vec![]));
        let bob = pick_range("/etc/subuid", text, Some(b"bob"), 1001, 1001);
        assert_eq!(bob, (range(200000, 1000), vec![]));
        let carol = pick_range("/etc/subuid", text, Some(b"carol"), 1002, 1002);
        assert_eq!(carol, (None, vec![]));
        // No name known: the uid alone.
        let nameless = pick_range("/etc/subuid", text, None, 1001, 1001);
        assert_eq!(nameless.0, range(200000, 1000));
        assert_eq!(
            describe(&[MapEntry {
                ns: 0,
                host: 1000,
                count: 1
            }]),
            "0->1000"
        );
    }

    /// `/etc/subgid` is keyed by the user, as newgidmap looks it up: a
    /// line whose owner is the user's gid in decimal belongs to the user
    /// with that uid, not to this one.
    #[test]
    fn subgid_is_keyed_by_the_user_not_its_gid() {
        let subgid = b"1001:300000:10\n1000:400000:10\n";
        // alice: uid 1000, gid 1001.
        let (picked, _) = pick_range("/etc/subgid", subgid, Some(b"alice"), 1000, 1001);
        assert_eq!(picked, range(400000, 10));
        let (picked, _) = pick_range(
            "/etc/subgid",
            b"1001:300000:10\n",
            Some(b"alice"),
            1000,
            1001,
        );
        assert_eq!(picked, None, "the gid's line is another user's");
    }

    /// Every hostile line: no panic, no overflow; the user's own is
    /// skipped with a message naming the file, the line and what is
    /// wrong; another user's is none of this user's business.
    #[test]
    fn hostile_lines_are_skipped_naming_the_line() {
        let long = format!("alice:100000:{}", "1".repeat(2000));
        let cases: &[(&[u8], &str)] = &[
            (
                b"alice:4294967295:1",
                "START 4294967295 plus COUNT 1 passes the last id",
            ),
            (
                b"alice:99999999999:1",
                "START `99999999999` is not a decimal number",
            ),
            (
                b"alice:1:99999999999",
                "COUNT `99999999999` is not a decimal number",
            ),
            (b"alice:4294967000:1000", "passes the last id 4294967294"),
            (b"alice:100000:4294967295", "passes the last id"),
            (b"alice:100000:0", "COUNT is 0"),
            (b"alice", "expected OWNER:START:COUNT"),
            (b"alice:1", "expected OWNER:START:COUNT"),
            (b"alice:1:2:3", "expected OWNER:START:COUNT"),
            (b"alice::5", "START `` is not a decimal number"),
            (b"alice:a:b", "START `a` is not a decimal number"),
            (
                b"alice:+100000:5",
                "START `+100000` is not a decimal number",
            ),
            (
                b"alice: 100000:5",
                "START ` 100000` is not a decimal number",
            ),
            (
                b"alice:0x186a0:5",
                "START `0x186a0` is not a decimal number",
            ),
            (
                b"alice:0100000:5",
                "has a leading 0, which newuidmap reads as octal",
            ),
            (b"alice:1\xff:5", "START `1\\xff` is not a decimal number"),
            (b"alice:-1:5", "START `-1` is not a decimal number"),
            (long.as_bytes(), "2013 bytes long, more than the 1023"),
            (b"alice:500:1000", "holds this user's own id 1000"),
            (b"alice:0:4294967295", "holds this user's own id 1000"),
        ];
        for (line, says) in cases {
            // Another user's hostile line first: it is passed over.
            let mut text = b"x:4294967295:1\nx:1:0\n\xff\xfe:1:2\n".to_vec();
            text.extend_from_slice(line);
            text.push(b'\n');
            let shown_line = String::from_utf8_lossy(line);
            let (picked, notes) = alice(&text);
            assert_eq!(picked, None, "{shown_line}");
            assert_eq!(notes.len(), 1, "{shown_line}: {notes:?}");
            assert!(
                notes[0].starts_with("/etc/subuid line 4 `") && notes[0].contains(says),
                "{shown_line}: {}",
                notes[0]
            );
            assert!(notes[0].len() < 400, "a long line is cut: {}", notes[0]);
            // A good line after it is taken.
            text.extend_from_slice(b"1000:200000:65536\n");
            assert_eq!(alice(&text).0, range(200000, 65536), "{shown_line}");
        }
    }

    #[test]
    fn odd_but_valid_lines() {
        // CRLF endings and blank lines; the last possible range; a
        // non-UTF-8 name is compared as bytes.
        let text = b"\r\n\n  alice:100000:65536\r\n";
        assert_eq!(alice(text), (range(100000, 65536), vec![]));
        let (picked, notes) = alice(b"alice:4294967294:1");
        assert_eq!((picked, notes), (range(4294967294, 1), vec![]));
        let (picked, _) = pick_range("/etc/subuid", b"b\xffb:7:8", Some(b"b\xffb"), 5, 5);
        assert_eq!(picked, range(7, 8));
        assert_eq!(
            name_in_passwd(b"\xff:x:1:1::/:/bin/sh\nb\xffb:x:5:5::/:/bin/sh\n", 5),
            Some(b"b\xffb".to_vec())
        );
        assert_eq!(name_in_passwd(b"root:x:0:0::/:/bin/sh\n", 5), None);
        assert_eq!(name_in_passwd(b":x:5:5\nroot:x:x5:0::/:/bin/sh\n", 5), None);
        assert_eq!(name_in_passwd(b"five:x:05:0\n", 5), Some(b"five".to_vec()));
    }

    #[test]
    fn overlapping_ranges() {
        // Overlapping another user's range: taken (newuidmap allows it),
        // with a warning naming both lines.
        let text = b"bob:100000:65536\nalice:165535:10\n";
        let (picked, notes) = alice(text);
        assert_eq!(picked, range(165535, 10));
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains(
                "line 2 `alice:165535:10`: its range overlaps /etc/subuid line 1 `bob:100000:65536`"
            ),
            "{}",
            notes[0]
        );
        // The user's own overlapping lines: the first usable one is taken.
        let (picked, notes) = alice(b"alice:100000:10\n1000:100005:10\n");
        assert_eq!((picked, notes), (range(100000, 10), vec![]));
    }

    #[test]
    fn missing_id_helpers_name_the_uidmap_package() {
        let empty = tempfile::tempdir().unwrap();
        let found = find_in("newuidmap", [empty.path().to_path_buf()].into_iter());
        assert_eq!(found, None);
        let why = helpers_at(found, None).unwrap_err();
        assert!(why.contains("install the `uidmap` package"), "{why}");
    }
}
