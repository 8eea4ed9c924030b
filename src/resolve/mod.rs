//! Path resolution confined beneath the export root.
//!
//! One interface ([`Resolve`]), two implementations:
//! - [`Openat2Resolver`]: the kernel's `openat2(RESOLVE_BENEATH |
//!   RESOLVE_NO_MAGICLINKS)`, atomic against concurrent renames;
//! - [`WalkerResolver`]: a userspace component walker for kernels without
//!   openat2 (ENOSYS) or where a seccomp profile blocks it (EPERM).
//!
//! Both return `O_PATH` fds and give the same guarantee: nothing outside the
//! root is ever reached, whatever symlinks, `..` components or concurrent
//! renames the path meets. Escapes answer `EXDEV`, magic links `ELOOP`.
//! Either one holds on its own, without the chroot around it.

mod openat2;
mod walker;

pub use self::openat2::Openat2Resolver;
pub use self::walker::WalkerResolver;

use crate::deferred_close::DeferredClose;
use crate::error::{Context, OpResult};
use crate::path::ClientPath;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{FileType, Mode, OFlags, fstat, openat};
use rustix::io::Errno;

/// What a resolution returns.
#[derive(Debug)]
pub struct Resolved {
    /// `O_PATH | O_CLOEXEC`.
    pub fd: OwnedFd,
    /// The object's type where the resolver had to learn it anyway (the
    /// walker checks every object it follows), so callers need no `fstat`.
    pub file_type: Option<FileType>,
}

impl Resolved {
    /// The type: as the resolver learned it, else one `fstat`.
    pub fn file_type(&self) -> OpResult<FileType> {
        file_type_of(self.fd.as_fd(), self.file_type)
    }
}

/// `known`, or the type `fstat` reports for `fd`.
pub fn file_type_of(fd: BorrowedFd<'_>, known: Option<FileType>) -> OpResult<FileType> {
    match known {
        Some(t) => Ok(t),
        None => Ok(FileType::from_raw_mode(fstat(fd).ctx("fstat")?.st_mode)),
    }
}

/// Opens the directory `dir` refers to (an `O_PATH` fd is fine) for real,
/// as `.` in itself: no procfs, and nothing but that directory can be
/// reached. `O_NOFOLLOW` is dropped, as it would refuse nothing here.
pub fn open_dot(dir: BorrowedFd<'_>, flags: OFlags) -> OpResult<OwnedFd> {
    let flags = (flags - OFlags::NOFOLLOW) | OFlags::DIRECTORY | OFlags::CLOEXEC;
    openat(dir, ".", flags, Mode::empty()).ctx("openat .")
}

/// Opens a client path beneath a root directory.
pub trait Resolve {
    /// Resolves `path` beneath `root`. With `follow_final` a final symlink
    /// is followed (still beneath `root`); without it the fd refers to the
    /// symlink itself. A trailing slash follows the final symlink
    /// regardless and requires a directory (ENOTDIR), as the kernel's own
    /// lookup does. Intermediate fds the resolver opened and no longer
    /// needs go to `retire`.
    fn open_beneath(
        &self,
        root: BorrowedFd<'_>,
        path: ClientPath<'_>,
        follow_final: bool,
        retire: &DeferredClose,
    ) -> OpResult<Resolved>;

    /// Opens the directory `path` names, for reading it, with `flags`
    /// (which contain `O_DIRECTORY`; a final symlink is followed unless
    /// they contain `O_NOFOLLOW`). Anything but a directory is ENOTDIR and
    /// is never opened, so no FIFO or device node can be reached this way.
    fn open_directory(
        &self,
        root: BorrowedFd<'_>,
        path: ClientPath<'_>,
        flags: OFlags,
        retire: &DeferredClose,
    ) -> OpResult<OwnedFd>;
}

/// Which resolver to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolverKind {
    Openat2,
    Walker,
}

impl ResolverKind {
    pub fn name(self) -> &'static str {
        match self {
            ResolverKind::Openat2 => "openat2",
            ResolverKind::Walker => "walker",
        }
    }
}

/// The resolver chosen at start-up (enum dispatch: no allocation, no vtable).
#[derive(Debug)]
pub enum Resolver {
    Openat2(Openat2Resolver),
    Walker(WalkerResolver),
}

impl Resolver {
    pub fn new(kind: ResolverKind) -> Self {
        match kind {
            ResolverKind::Openat2 => Resolver::Openat2(Openat2Resolver),
            ResolverKind::Walker => Resolver::Walker(WalkerResolver),
        }
    }

    pub fn kind(&self) -> ResolverKind {
        match self {
            Resolver::Openat2(_) => ResolverKind::Openat2,
            Resolver::Walker(_) => ResolverKind::Walker,
        }
    }

    /// Opens `path` with `flags` if it is a regular file, in one step
    /// ([`Openat2Resolver::open_regular`]); anything else is EFTYPE and is
    /// never opened. None where this resolver cannot (the walker: its last
    /// step is an `O_PATH` open, and the check must be on that fd).
    pub fn open_regular(
        &self,
        root: BorrowedFd<'_>,
        path: ClientPath<'_>,
        flags: OFlags,
        retire: &DeferredClose,
    ) -> Option<OpResult<OwnedFd>> {
        match self {
            Resolver::Openat2(_) => Some(Openat2Resolver::open_regular(root, path, flags, retire)),
            Resolver::Walker(_) => None,
        }
    }
}

impl Resolve for Resolver {
    fn open_beneath(
        &self,
        root: BorrowedFd<'_>,
        path: ClientPath<'_>,
        follow_final: bool,
        retire: &DeferredClose,
    ) -> OpResult<Resolved> {
        match self {
            Resolver::Openat2(r) => r.open_beneath(root, path, follow_final, retire),
            Resolver::Walker(r) => r.open_beneath(root, path, follow_final, retire),
        }
    }

    fn open_directory(
        &self,
        root: BorrowedFd<'_>,
        path: ClientPath<'_>,
        flags: OFlags,
        retire: &DeferredClose,
    ) -> OpResult<OwnedFd> {
        match self {
            Resolver::Openat2(r) => r.open_directory(root, path, flags, retire),
            Resolver::Walker(r) => r.open_directory(root, path, flags, retire),
        }
    }
}

/// Whether openat2 can be used here: `Err` carries the errno that rules it
/// out (ENOSYS on old kernels, EPERM under a container's seccomp profile).
pub fn probe_openat2(root: BorrowedFd<'_>) -> Result<(), Errno> {
    match Openat2Resolver::probe(root) {
        Err(e @ (Errno::NOSYS | Errno::PERM)) => Err(e),
        _ => Ok(()),
    }
}
