//! A handle on this process's `/proc/self/fd`, opened before chroot.
//!
//! Resolution yields `O_PATH` fds, and several operations need more than an
//! `O_PATH` fd allows: reading or writing the file (T_OPEN, T_TRUNCATE,
//! T_GETVERSION) and chmod, which has no `O_PATH` form before
//! `fchmodat2(AT_EMPTY_PATH)` (Linux 6.6). Going through `/proc/self/fd/N`
//! acts on exactly the inode the fd holds: no path is looked up again, so
//! nothing can be swapped in between the type check and the open. This is the
//! "reopen" libpathrs uses.

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags, fstatfs, open, openat};
use rustix::io::Errno;
use std::os::fd::AsRawFd;

const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// `/proc/self/fd` of this process.
#[derive(Debug)]
pub struct ProcSelfFd {
    dir: OwnedFd,
}

/// The decimal name of an fd inside `/proc/self/fd`, without allocating.
struct FdName {
    buf: [u8; 12],
    len: usize,
}

impl FdName {
    fn new(fd: BorrowedFd<'_>) -> Self {
        Self::of_number(fd.as_raw_fd())
    }

    fn of_number(fd: i32) -> Self {
        let mut n = fd as u32;
        let mut digits = [0u8; 12];
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let mut buf = [0u8; 12];
        for i in 0..len {
            buf[i] = digits[len - 1 - i];
        }
        FdName { buf, len }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl AsRef<[u8]> for FdName {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl ProcSelfFd {
    /// Opens `/proc/self/fd` and checks that it really is procfs. Must run
    /// after daemonizing (the pid is bound at open time) and before chroot.
    pub fn open() -> Result<Self, Errno> {
        let dir = open(
            "/proc/self/fd",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        if fstatfs(&dir)?.f_type != PROC_SUPER_MAGIC {
            return Err(Errno::NODEV);
        }
        Ok(ProcSelfFd { dir })
    }

    /// `/proc/self/fd` of the host's procfs, and nothing else of it: a
    /// detached bind mount (`open_tree` clone) of that one directory, whose
    /// `..` is itself. What the chroot sandbox's server holds: the directory
    /// itself lies outside the chroot, and `..` from it would lead to the
    /// host's `/`, where CAP_CHOWN and CAP_FOWNER change any file
    /// (Landlock stops opens, not chmod or chown). In a user namespace of
    /// the helper's own, the clone needs a mount namespace of its own too,
    /// which it makes (nothing is mounted in it).
    pub fn open_confined() -> Result<Self, String> {
        use rustix::mount::{OpenTreeFlags, open_tree};
        // Opened anew each time: a clone must come from the caller's
        // current mount namespace.
        let clone = || {
            let host = Self::open()?;
            open_tree(
                &host.dir,
                "",
                OpenTreeFlags::OPEN_TREE_CLONE
                    | OpenTreeFlags::OPEN_TREE_CLOEXEC
                    | OpenTreeFlags::AT_EMPTY_PATH,
            )
        };
        let dir = clone()
            .or_else(|e| match e {
                Errno::PERM => {
                    crate::process::unshare_namespaces(rustix::thread::UnshareFlags::NEWNS)
                        .map_err(|_| e)
                        .and_then(|()| clone())
                }
                e => Err(e),
            })
            .map_err(|e| {
                format!(
                    "cloning /proc/self/fd ({e}): without the clone the server would hold the \
                     host's procfs, from which `..` leads to the host's /; run as root (or \
                     root of a user namespace), or with --sandbox namespace"
                )
            })?;
        Ok(ProcSelfFd { dir })
    }

    /// Opens the very inode `fd` refers to with `flags`, which must not
    /// contain `O_NOFOLLOW` (it would refuse the magic link itself) nor
    /// `O_CREAT` ([`crate::export::Export::reopen`] strips both).
    pub fn reopen(&self, fd: BorrowedFd<'_>, flags: OFlags) -> Result<OwnedFd, Errno> {
        openat(&self.dir, FdName::new(fd).as_bytes(), flags, Mode::empty())
    }

    /// `self/fd` of a procfs instance of this process's own pid namespace,
    /// and nothing else of it: the namespace sandbox's server holds no host
    /// procfs, so neither its working directory nor any fd it holds leads
    /// to another process's `root` or `cwd` (in a pid namespace of its own,
    /// it is the only process such an instance shows, `subset=pid` leaving
    /// out everything but the pid directories); and since what it holds is
    /// a bind mount of `self/fd` alone, whose `..` is itself, not even its
    /// own `exe` (a magic link to the host's binary, which a server with
    /// CAP_CHOWN could otherwise chown) is in reach: only its own fds are.
    ///
    /// The instance is mounted over `/proc` in the server's mount namespace
    /// (gone with the old root at `pivot_root`), `self/fd` cloned from it.
    /// Call it before `pivot_root`: in a user namespace the kernel allows a
    /// new procfs only while a fully visible one is mounted there.
    pub fn open_private() -> Result<Self, String> {
        use rustix::mount::{
            FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags,
            fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, open_tree,
        };
        let step = |what: &str, e: Errno| format!("a private procfs: {what}: {e}");
        let fs = fsopen("proc", FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| step("fsopen", e))?;
        fsconfig_set_string(&fs, "subset", "pid").map_err(|e| step("subset=pid", e))?;
        fsconfig_create(&fs).map_err(|e| step("creating it", e))?;
        let attrs = MountAttrFlags::MOUNT_ATTR_NOSUID
            | MountAttrFlags::MOUNT_ATTR_NODEV
            | MountAttrFlags::MOUNT_ATTR_NOEXEC;
        let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs).map_err(|e| {
            let mut why = step("fsmount", e);
            if e == Errno::PERM {
                why.push_str(
                    " (in a user namespace the kernel allows a new procfs only where a fully \
                     visible one is mounted: not where /proc has paths masked, as in many \
                     containers)",
                );
            }
            why
        })?;
        // Attached, so that a subtree of it can be cloned (a detached
        // mount's cannot be before Linux 6.15), and so that closing `mnt`
        // dissolves nothing (which would wait for an RCU grace period).
        move_mount(
            &mnt,
            "",
            rustix::fs::CWD,
            "/proc",
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(|e| step("mounting it over /proc in the server's mount namespace", e))?;
        let dir = open_tree(
            rustix::fs::CWD,
            "/proc/self/fd",
            OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
        )
        .map_err(|e| step("cloning self/fd", e))?;
        if fstatfs(&dir).map_err(|e| step("fstatfs", e))?.f_type != PROC_SUPER_MAGIC {
            return Err(step("not procfs", Errno::NODEV));
        }
        Ok(ProcSelfFd { dir })
    }

    /// Makes `/proc/self/fd` the working directory, so that the path-based
    /// xattr calls can name a resolved fd by its number (there are no
    /// `*xattrat` calls before Linux 6.13, and the `f*xattr` calls refuse
    /// `O_PATH` fds). Only names made by [`FdName`] are ever looked up there.
    pub fn enter_as_cwd(&self) -> Result<(), Errno> {
        rustix::process::fchdir(&self.dir)
    }

    /// The name of `fd` relative to the working directory set by
    /// [`ProcSelfFd::enter_as_cwd`]: a path-based call on it acts on exactly
    /// the inode `fd` holds, and on a symlink itself when `fd` is an
    /// `O_PATH | O_NOFOLLOW` fd of one (the magic link is not followed
    /// further), which gives the `l*xattr` semantics.
    pub fn cwd_name(fd: BorrowedFd<'_>) -> impl AsRef<[u8]> {
        FdName::new(fd)
    }

    /// chmod of the inode `fd` refers to (any type, symlinks excepted: an
    /// `O_PATH` fd of a symlink makes the kernel answer EOPNOTSUPP).
    pub fn chmod(&self, fd: BorrowedFd<'_>, mode: Mode) -> Result<(), Errno> {
        rustix::fs::chmodat(
            &self.dir,
            FdName::new(fd).as_bytes(),
            mode,
            rustix::fs::AtFlags::empty(),
        )
    }

    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_names_are_decimal() {
        for n in [0, 7, 10, 1234, i32::MAX] {
            assert_eq!(FdName::of_number(n).as_bytes(), n.to_string().as_bytes());
        }
    }
}
