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

//!
//! Rooms: [`maps`] (the maps' syntax and the kernel's view), [`plan`]
//! (which maps, written by whom), and here creating the namespace and the
//! refusals users meet.

pub mod maps;
pub mod plan;

pub use self::maps::{
    InForce, MapEntry, Subordinate, SubordinateLine, check_map, describe, parse_entry,
    parse_kernel_map, parse_subordinate,
};
pub use self::plan::{Origin, Plan, Writer, can_set_ids, log_plan, pick_range, plan};

use crate::error::SetupError;
use crate::process::{self, Forked};
use rustix::fd::OwnedFd;
use rustix::io::Errno;
use rustix::thread::UnshareFlags;

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
         (kernel.apparmor_restrict_unprivileged_userns=1): load the profile the package \
         installs, which allows `userns,` (apparmor_parser -r \
         /etc/apparmor.d/virtfs-proxy-helper; it attaches to /usr/bin/virtfs-proxy-helper, \
         so a binary elsewhere needs its own), or set the sysctl to 0"
            .to_string()
    })
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
