//! The namespace sandbox (`--sandbox namespace`): new mount, pid, network,
//! ipc and uts namespaces; the export bind-mounted (recursively) with
//! `nodev,nosuid`; `pivot_root` into it with the old root detached.
//!
//! What each part stops:
//! - the mount namespace and `pivot_root`: nothing of the host's tree is
//!   reachable by path, even if every other layer failed (where chroot
//!   leaves the old root a `chroot("..")`-style escape away for a process
//!   with CAP_SYS_CHROOT, a detached root is gone);
//! - `nodev`: a device node in the export (made on the host, or through a
//!   bug) cannot be opened through this mount, a layer apart from the
//!   helper's own ENXIO check;
//! - `nosuid`: nothing executed from the export gains privilege;
//! - pid, network, ipc, uts: the helper sees no other process (its procfs
//!   is a private instance of its own pid namespace, `crate::procfs`),
//!   socket, IPC object or host name;
//! - slave propagation: host mounts and umounts under the export reach the
//!   server as they reach the original; nothing of the server's reaches
//!   the host.
//!
//! A process outside the pid namespace stays behind ([`become_init`]),
//! confined on its own: it forwards the signals that end the helper to the
//! server (the namespace's init) and ends with its status, so the
//! exit-status table holds.

use super::seccomp::{Process, SeccompMode};
use crate::error::SetupError;
use crate::process::{self, Forked, ParentWatch, SignalMask};
use rustix::fd::{AsFd, AsRawFd, OwnedFd};
use rustix::fs::{CWD, Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{
    MountFlags, MountPropagationFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags,
};
use rustix::thread::UnshareFlags;
use std::sync::atomic::{AtomicI32, Ordering};

/// The pid namespace, created first and alone: it takes effect at the
/// next fork ([`become_init`]), which leaves the waiter outside it and in
/// the mount namespace it had, so the server's `pivot_root` never moves the
/// waiter's root or working directory into the export.
pub const PID_NAMESPACE: (UnshareFlags, &str) = (UnshareFlags::NEWPID, "pid");

/// The namespaces the server creates for itself after the fork, in order.
pub const SERVER_NAMESPACES: [(UnshareFlags, &str); 4] = [
    (UnshareFlags::NEWNS, "mount"),
    (UnshareFlags::NEWNET, "net"),
    (UnshareFlags::NEWIPC, "ipc"),
    (UnshareFlags::NEWUTS, "uts"),
];

/// The namespaces' names, as the report lists them.
pub fn names() -> String {
    SERVER_NAMESPACES
        .iter()
        .chain([&PID_NAMESPACE])
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

/// Creates `namespaces`, one at a time so that a refusal names the one the
/// kernel refused. Before the mount namespace, the working directory must
/// be the export: the mount namespace's copy of it is what
/// [`pivot_into_cwd`] mounts.
pub fn unshare_each(namespaces: &[(UnshareFlags, &str)]) -> Result<(), String> {
    for &(flag, name) in namespaces {
        if let Err(e) = process::unshare_namespaces(flag) {
            let mut why = format!("the kernel refused a new {name} namespace ({e})");
            if e.raw_os_error() == Some(libc::EPERM) {
                why.push_str(
                    ": creating one needs CAP_SYS_ADMIN here (real root, or root of a \
                     user namespace)",
                );
                if let Some(hint) = super::userns::apparmor_hint() {
                    why.push_str("; ");
                    why.push_str(&hint);
                }
            } else if e.raw_os_error() == Some(libc::ENOSPC) {
                let short = if name == "mount" { "mnt" } else { name };
                let sysctl = format!("user.max_{short}_namespaces");
                why.push_str(&format!(": the limit {sysctl} is reached or 0"));
            }
            return Err(why);
        }
    }
    Ok(())
}

/// The server's pid, for the waiter's signal handler.
static INIT_PID: AtomicI32 = AtomicI32::new(-1);

extern "C" fn forward(sig: libc::c_int) {
    let pid = INIT_PID.load(Ordering::SeqCst);
    if pid > 0 {
        process::kill(pid, sig);
    }
}

/// What the server knows of the waiter after [`become_init`].
pub struct Waiter {
    /// Its liveness, for the parent-death signal's re-arming.
    pub watch: ParentWatch,
    /// How it confined itself, as it said (a failure text on error).
    pub confinement: Result<String, String>,
}

/// Forks the pid namespace's first process, which goes on to serve and is
/// the only one to return from here. This process becomes the waiter: it
/// confines itself ([`super::companions`]: no capability, its own seccomp
/// list, no core, cwd `/`), tells the server how that went, forwards the
/// signals that end the helper, waits for the server and then for the
/// socket-file janitor, and ends as the server did (the same exit status,
/// or the same signal).
///
/// The server must not outlive the waiter, whose pid is what QEMU, LXD or
/// a test holds: it arms `PR_SET_PDEATHSIG` and keeps the read end of a
/// pipe only the waiter can write to ([`ParentWatch`]).
pub fn become_init(seccomp: SeccompMode) -> Result<Waiter, SetupError> {
    let forwarded = crate::signals::HANDLED.map(|(sig, _, _)| sig);
    let (read_end, write_end) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| SetupError::from(("creating the waiter's pipe", e)))?;
    let blocked = SignalMask::block(&forwarded);
    match process::fork() {
        Err(e) => {
            blocked.restore();
            Err(SetupError::from(("forking the pid namespace's init", e)))
        }
        Ok(Forked::Child) => {
            drop(write_end);
            let _ = rustix::process::set_parent_process_death_signal(Some(
                rustix::process::Signal::KILL,
            ));
            crate::logging::set_pid(host_pid());
            blocked.restore();
            // The waiter's line; EOF when it died before writing it (the
            // death signal may have been armed too late to fire).
            let line = process::read_line(&read_end).ok_or_else(|| {
                SetupError("the waiter outside the pid namespace ended during start-up".into())
            })?;
            rustix::io::ioctl_fionbio(&read_end, true)
                .map_err(|e| SetupError::from(("the waiter's pipe: O_NONBLOCK", e)))?;
            let confinement = match line.strip_prefix("FAILS: ") {
                Some(why) => Err(why.to_owned()),
                None => Ok(line),
            };
            // The waiter may have written its line and died before the
            // death signal above was armed (which then never fires): its
            // closed write end says so.
            let watch = ParentWatch::new(read_end);
            if !watch.parent_alive() {
                return Err(SetupError(
                    "the waiter outside the pid namespace ended during start-up".into(),
                ));
            }
            Ok(Waiter { watch, confinement })
        }
        Ok(Forked::Parent(init)) => {
            drop(read_end);
            INIT_PID.store(init, Ordering::SeqCst);
            process::close_all_except(&[write_end.as_raw_fd()]);
            process::set_name(c"vph-nswait");
            for sig in forwarded {
                let _ = process::on_signal(sig, forward, &forwarded);
            }
            blocked.restore();
            process::unblock(&forwarded);
            let line = match super::companions::confine(Process::Waiter, &[], seccomp) {
                Ok(text) => format!("{text}\n"),
                Err(why) => format!("FAILS: {}\n", why.replace('\n', " ")),
            };
            let _ = rustix::io::write(&write_end, line.as_bytes());
            // `write_end` stays open for as long as this process lives:
            // its closing is how the server learns that the waiter ended.
            waiter_main(init, write_end)
        }
    }
}

/// This process's pid as the host sees it: the procfs mounted at `/proc`
/// is the host's, whose `self` names it in the host's pid namespace.
fn host_pid() -> u32 {
    rustix::fs::readlink("/proc/self", Vec::new())
        .ok()
        .and_then(|p| p.to_str().ok()?.parse().ok())
        .unwrap_or_else(|| rustix::process::getpid().as_raw_nonzero().get() as u32)
}

fn waiter_main(init: libc::pid_t, _alive: OwnedFd) -> ! {
    let mut init_status = None;
    loop {
        match process::wait_any() {
            Ok((pid, status)) if pid == init => init_status = Some(status),
            Ok(_) => {}
            // ECHILD: the server and the janitor have both ended.
            Err(_) => break,
        }
    }
    let Some(status) = init_status else {
        process::exit_now(1)
    };
    if libc::WIFSIGNALED(status) {
        // End the same way, so that a caller sees the signal, not a code.
        let sig = libc::WTERMSIG(status);
        process::reset_and_raise(sig);
    }
    process::exit_now(i32::from(process::status_code(status)))
}

/// Bind-mounts the working directory (the mount namespace's copy of the
/// export) recursively with `nodev,nosuid` (and read-only with
/// `readonly`: a layer apart from the helper's own EROFS answers),
/// `pivot_root`s into it and detaches the old root. Returns the new root's
/// fd and how the flags were applied, for the report.
pub fn pivot_into_cwd(readonly: bool) -> Result<(OwnedFd, String), String> {
    let step = |what: &str, e: Errno| format!("namespace sandbox: {what}: {e}");
    // Slave, as virtiofsd does: nothing mounted here propagates back to
    // the host's namespace, while a host umount or a new host mount under
    // the export reaches the server, as it reaches the original (which has
    // no mount namespace). Only host mounts that are shared propagate.
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )
    .map_err(|e| step("making mounts slaves of the host's", e))?;
    let tree = rustix::mount::open_tree(
        CWD,
        ".",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_RECURSIVE,
    )
    .map_err(|e| step("cloning the export's mount tree", e))?;
    const NODEV_NOSUID: u64 = 0x4 | 0x2; // MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID
    const RDONLY: u64 = 0x1; // MOUNT_ATTR_RDONLY
    let set = NODEV_NOSUID | if readonly { RDONLY } else { 0 };
    let flags = if readonly {
        "ro,nodev,nosuid"
    } else {
        "nodev,nosuid"
    };
    let recursive = match crate::syscalls::mount_setattr_recursive(tree.as_fd(), set) {
        Ok(()) => true,
        Err(Errno::NOSYS) => false,
        Err(e) => return Err(step("setting nodev,nosuid", e)),
    };
    rustix::mount::move_mount(
        tree.as_fd(),
        "",
        CWD,
        ".",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| step("attaching the export's mount", e))?;
    rustix::process::fchdir(&tree).map_err(|e| step("entering the export's mount", e))?;
    let how = if recursive {
        format!("{flags} (the export and every mount under it)")
    } else {
        remount_nodev_nosuid(readonly).map_err(|e| step("remounting nodev,nosuid", e))?;
        format!(
            "{flags} (the export's own mount; mounts under it keep their flags before \
             Linux 5.12)"
        )
    };
    rustix::process::pivot_root(".", ".").map_err(|e| step("pivot_root", e))?;
    rustix::mount::unmount(".", UnmountFlags::DETACH)
        .map_err(|e| step("detaching the old root", e))?;
    rustix::process::chdir("/").map_err(|e| step("chdir /", e))?;
    let root = rustix::fs::open(
        "/",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| step("opening the new root", e))?;
    Ok((root, how))
}

/// Before `mount_setattr` (Linux 5.12): a bind remount of the mount at the
/// working directory, keeping the flags it has (a user namespace may not
/// clear locked ones) and adding nodev and nosuid (and rdonly).
fn remount_nodev_nosuid(readonly: bool) -> Result<(), Errno> {
    let st = rustix::fs::statvfs(".")?;
    let have = st.f_flag.bits();
    let mut flags = MountFlags::BIND | MountFlags::NODEV | MountFlags::NOSUID;
    if readonly {
        flags |= MountFlags::RDONLY;
    }
    for (st_bit, flag) in [
        (libc::ST_RDONLY, MountFlags::RDONLY),
        (libc::ST_NOEXEC, MountFlags::NOEXEC),
        (libc::ST_NOATIME, MountFlags::NOATIME),
        (libc::ST_NODIRATIME, MountFlags::NODIRATIME),
        (libc::ST_RELATIME, MountFlags::RELATIME),
    ] {
        if have & st_bit != 0 {
            flags |= flag;
        }
    }
    rustix::mount::mount_remount(".", flags, "")
}
