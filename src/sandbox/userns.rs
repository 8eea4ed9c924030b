//! The helper's own user namespace: `--uid-map`/`--gid-map`, or, for an
//! ordinary user who gives no map, an automatic one (podman's: guest 0 is
//! the user, guest 1..N the user's `/etc/subuid` range).
//!
//! Inside it the helper is root of its namespace, and the rest of start-up
//! runs unchanged: chroot or the namespace sandbox, the kept capabilities,
//! creations under the guest's ids. The kernel translates every id on its
//! way out and in, stat replies and POSIX ACLs included.
//!
//! The maps are written from outside: a mapper process forked before
//! `unshare(CLONE_NEWUSER)` stays in the parent namespace and writes
//! `/proc/PID/{setgroups,uid_map,gid_map}` itself where it may (real root,
//! or one id that is the user's own), else runs `newuidmap`/`newgidmap`
//! (Debian's `uidmap` package), which check `/etc/subuid` and `/etc/subgid`.

use crate::error::SetupError;
use crate::process::{self, Forked};
use rustix::fd::OwnedFd;
use rustix::io::Errno;
use rustix::thread::UnshareFlags;
use std::path::PathBuf;
use tracing::warn;

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
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
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
    match (find_program("newuidmap"), find_program("newgidmap")) {
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

/// Why the kernel refused a user namespace, with what to change.
pub fn refusal(e: std::io::Error) -> String {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string())
    };
    let mut why = vec![format!("creating a user namespace failed ({e})")];
    if let Some(max) = read("/proc/sys/user/max_user_namespaces") {
        if e.raw_os_error() == Some(libc::ENOSPC) || max == "0" {
            why.push(format!(
                "user namespaces are switched off or used up here: sysctl \
                 user.max_user_namespaces is {max} (raise it: sysctl -w \
                 user.max_user_namespaces=15000)"
            ));
        }
    }
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        why.push(
            "kernel.unprivileged_userns_clone is 0 (sysctl -w kernel.unprivileged_userns_clone=1)"
                .into(),
        );
    }
    if let Some(hint) = apparmor_hint() {
        why.push(hint);
    }
    why.push(
        "or run as root, or with --sandbox none and --translate-uid/--translate-gid, \
         which need no namespace"
            .into(),
    );
    why.join("; ")
}

/// Ubuntu 24.04's restriction, named where it is switched on: it lets
/// `unshare` succeed but takes every capability inside the namespace.
pub fn apparmor_hint() -> Option<String> {
    let on = std::fs::read_to_string("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
        .is_ok_and(|s| s.trim() == "1");
    on.then(|| {
        "AppArmor restricts unprivileged user namespaces here \
         (kernel.apparmor_restrict_unprivileged_userns=1): give this binary a profile \
         with `userns,`, or set the sysctl to 0"
            .to_string()
    })
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

/// Creates the user namespace `plan` describes and makes this process root
/// in it. Nothing is left half set up: when the maps cannot be written the
/// error stops start-up, and the namespace goes with the process.
pub fn enter(plan: &Plan) -> Result<(), SetupError> {
    let pipe = || {
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| SetupError::from(("creating the mapper's pipe", e)))
    };
    let (go_read, go_write) = pipe()?;
    let (why_read, why_write) = pipe()?;
    match process::fork() {
        Err(e) => Err(SetupError::from(("forking the id mapper", e))),
        Ok(Forked::Child) => {
            drop(go_write);
            drop(why_read);
            mapper_main(plan, go_read, why_write)
        }
        Ok(Forked::Parent(pid)) => {
            drop(go_read);
            drop(why_write);
            let unshared = process::unshare_namespaces(UnshareFlags::NEWUSER);
            if let Err(e) = unshared {
                // EOF tells the mapper to stop.
                drop(go_write);
                let _ = process::wait(pid);
                return Err(SetupError(refusal(e)));
            }
            let _ = rustix::io::write(&go_write, b"g");
            let status = process::wait(pid)
                .map_err(|e| SetupError::from(("waiting for the id mapper", e)))?;
            let mut why = Vec::new();
            let mut buf = [0u8; 1024];
            while let Ok(n @ 1..) = rustix::io::read(&why_read, &mut buf) {
                why.extend_from_slice(&buf[..n]);
            }
            if process::status_code(status) != 0 {
                let why = String::from_utf8_lossy(&why);
                return Err(SetupError(format!(
                    "writing the id maps failed: {}",
                    why.trim()
                )));
            }
            become_root(plan);
            Ok(())
        }
    }
}

/// Inside the new namespace: uid and gid 0 where the maps give them, no
/// supplementary groups (they would show as the overflow id).
fn become_root(plan: &Plan) {
    use rustix::process::{Gid, Uid};
    let maps_zero = |m: &[MapEntry]| m.iter().any(|e| e.ns == 0);
    if maps_zero(&plan.gids) {
        let _ = rustix::thread::set_thread_res_gid(Gid::ROOT, Gid::ROOT, Gid::ROOT);
    }
    let _ = rustix::thread::set_thread_groups(&[]);
    if maps_zero(&plan.uids) {
        let _ = rustix::thread::set_thread_res_uid(Uid::ROOT, Uid::ROOT, Uid::ROOT);
    }
}

/// The mapper: waits until the parent has its namespace, writes the maps,
/// exits 0; or writes why not to `why` and exits 1.
fn mapper_main(plan: &Plan, go: OwnedFd, why: OwnedFd) -> ! {
    let mut byte = [0u8; 1];
    let go_ahead = loop {
        match rustix::io::read(&go, &mut byte) {
            Err(Errno::INTR) => continue,
            Ok(1) => break true,
            _ => break false,
        }
    };
    if !go_ahead {
        process::exit_now(1);
    }
    let pid = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get());
    match write_maps(plan, pid) {
        Ok(()) => process::exit_now(0),
        Err(message) => {
            let _ = rustix::io::write(&why, message.as_bytes());
            process::exit_now(1)
        }
    }
}

fn write_maps(plan: &Plan, pid: i32) -> Result<(), String> {
    match &plan.writer {
        Writer::Direct { deny_setgroups } => {
            let write = |file: &str, text: &str| {
                let path = format!("/proc/{pid}/{file}");
                std::fs::write(&path, text).map_err(|e| format!("{path}: {e}"))
            };
            if *deny_setgroups {
                write("setgroups", "deny")?;
            }
            write("uid_map", &kernel_lines(&plan.uids))?;
            write("gid_map", &kernel_lines(&plan.gids))
        }
        Writer::Helpers {
            newuidmap,
            newgidmap,
        } => {
            run_helper(newuidmap, pid, &plan.uids)?;
            run_helper(newgidmap, pid, &plan.gids)
        }
    }
}

fn kernel_lines(map: &[MapEntry]) -> String {
    map.iter()
        .map(|e| format!("{} {} {}\n", e.ns, e.host, e.count))
        .collect()
}

/// Runs `newuidmap PID NS HOST COUNT ...`; its own refusal is the error.
fn run_helper(program: &std::path::Path, pid: i32, map: &[MapEntry]) -> Result<(), String> {
    let mut cmd = std::process::Command::new(program);
    cmd.arg(pid.to_string());
    for e in map {
        cmd.args([e.ns.to_string(), e.host.to_string(), e.count.to_string()]);
    }
    let shown = format!("{cmd:?}").replace('"', "");
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("running {shown}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    Err(format!(
        "{shown} refused: {}; check the ranges /etc/subuid and /etc/subgid give this user",
        said.trim()
    ))
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
}
