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
//! - pid, network, ipc, uts: the helper sees no other process, socket,
//!   IPC object or host name.
//!
//! A process outside the pid namespace stays behind ([`become_init`]): it
//! forwards SIGINT and SIGTERM to the server (the namespace's init) and
//! ends with its status, so the exit-status table holds.

use crate::error::SetupError;
use crate::process::{self, Forked, SignalMask};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{CWD, Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{
    MountFlags, MountPropagationFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags,
};
use rustix::thread::UnshareFlags;
use std::sync::atomic::{AtomicI32, Ordering};

/// The namespaces, in the order they are created; the pid namespace last,
/// since it takes effect at the next fork.
pub const NAMESPACES: [(UnshareFlags, &str); 5] = [
    (UnshareFlags::NEWNS, "mount"),
    (UnshareFlags::NEWNET, "net"),
    (UnshareFlags::NEWIPC, "ipc"),
    (UnshareFlags::NEWUTS, "uts"),
    (UnshareFlags::NEWPID, "pid"),
];

/// The namespaces' names, as the report lists them.
pub fn names() -> String {
    NAMESPACES.map(|(_, n)| n).join(",")
}

/// Creates the namespaces, one at a time so that a refusal names the one
/// the kernel refused. The working directory must be the export: the
/// mount namespace's copy of it is what [`pivot_into_cwd`] mounts.
pub fn unshare_all() -> Result<(), String> {
    for (flag, name) in NAMESPACES {
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

/// Forks the pid namespace's first process, which goes on to serve and is
/// the only one to return from here. This process becomes the waiter:
/// it holds no fd but the standard streams, forwards SIGINT and SIGTERM,
/// waits for the server and then for the socket-file janitor, and ends as
/// the server did (the same exit status, or the same signal).
pub fn become_init() -> Result<(), SetupError> {
    let forwarded = [libc::SIGINT, libc::SIGTERM];
    let blocked = SignalMask::block(&forwarded);
    match process::fork() {
        Err(e) => {
            blocked.restore();
            Err(SetupError::from(("forking the pid namespace's init", e)))
        }
        Ok(Forked::Child) => {
            // The server must not outlive the waiter (who is what QEMU,
            // LXD or a test holds the pid of).
            let _ = rustix::process::set_parent_process_death_signal(Some(
                rustix::process::Signal::KILL,
            ));
            crate::logging::set_pid(host_pid());
            blocked.restore();
            Ok(())
        }
        Ok(Forked::Parent(init)) => {
            INIT_PID.store(init, Ordering::SeqCst);
            process::close_all_except(&[]);
            process::set_name(c"vph-nswait");
            for sig in forwarded {
                let _ = process::on_signal(sig, forward, &forwarded);
            }
            blocked.restore();
            waiter_main(init)
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

fn waiter_main(init: libc::pid_t) -> ! {
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
    // Nothing mounted here may propagate back to the host's namespace.
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(|e| step("making mounts private", e))?;
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
