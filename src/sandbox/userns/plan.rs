//! Whether the helper needs a user namespace of its own, and with which
//! maps: those given, or the automatic one for an ordinary user (podman's,
//! from `/etc/subuid` and `/etc/subgid`, through `newuidmap`), or one id
//! where no range or no setuid helper can be used.

use super::maps::MapEntry;
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

/// The user's name, from `/etc/passwd`.
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let id = f.nth(1)?;
        (id.parse::<u32>().ok()? == uid).then(|| name.to_string())
    })
}

/// The first range `/etc/subuid` (or `/etc/subgid`) gives `name` or `id`.
pub fn subordinate_range(file: &str, name: Option<&str>, id: u32) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(file).ok()?;
    parse_subordinate(&text, name, id)
}

fn parse_subordinate(text: &str, name: Option<&str>, id: u32) -> Option<(u32, u32)> {
    text.lines().find_map(|line| {
        let mut f = line.trim().split(':');
        let owner = f.next()?;
        let start = f.next()?.parse::<u32>().ok()?;
        let count = f.next()?.parse::<u32>().ok()?;
        let mine = Some(owner) == name || owner.parse::<u32>().ok() == Some(id);
        // Guest ids 1..=count; the last must stay below 4294967295.
        let count = count.min(u32::MAX - 1 - start).min(u32::MAX - 2);
        (mine && count > 0).then_some((start, count))
    })
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
    let name = user_name(euid);
    let ranges = (
        subordinate_range("/etc/subuid", name.as_deref(), euid),
        subordinate_range("/etc/subgid", name.as_deref(), egid),
    );
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
    let (Some((ustart, ucount)), Some((gstart, gcount))) = ranges else {
        let who = name.unwrap_or_else(|| euid.to_string());
        return one_id(format!(
            "/etc/subuid and /etc/subgid give {who} no range; add one \
             (usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {who})"
        ));
    };
    let writer = match id_helpers() {
        Ok(writer) => writer,
        Err(why) => return one_id(why),
    };
    let range = |start, count| MapEntry {
        ns: 1,
        host: start,
        count,
    };
    Ok(Some(Plan {
        uids: vec![own(euid), range(ustart, ucount)],
        gids: vec![own(egid), range(gstart, gcount)],
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

    #[test]
    fn subordinate_ranges_by_name_or_id() {
        let text = "alice:100000:65536\n1001:200000:1000\nbad line\n";
        assert_eq!(
            parse_subordinate(text, Some("alice"), 1000),
            Some((100000, 65536))
        );
        assert_eq!(
            parse_subordinate(text, Some("bob"), 1001),
            Some((200000, 1000))
        );
        assert_eq!(parse_subordinate(text, Some("carol"), 1002), None);
        assert_eq!(
            describe(&[MapEntry {
                ns: 0,
                host: 1000,
                count: 1
            }]),
            "0->1000"
        );
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
