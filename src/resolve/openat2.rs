//! The kernel resolver: one `openat2` call per path.

use super::{Resolve, Resolved};
use crate::deferred_close::DeferredClose;
use crate::error::{OpError, OpResult};
use crate::path::ClientPath;
use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags, ResolveFlags, openat2};
use rustix::io::Errno;

/// How often an `EAGAIN` is retried. The kernel answers EAGAIN when a rename
/// or mount raced with a `..` lookup under RESOLVE_BENEATH; retrying is what
/// the man page prescribes, and the bound keeps a hostile host from pinning
/// the helper in a loop.
const EAGAIN_RETRIES: usize = 64;

/// Stops: `..` above the root and absolute symlinks (EXDEV, checked by the
/// kernel atomically against concurrent renames), and magic links such as
/// `/proc/self/root` or `/proc/self/exe` of a procfs inside the export (ELOOP).
#[derive(Debug, Default, Clone, Copy)]
pub struct Openat2Resolver;

impl Openat2Resolver {
    const HOW: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);

    pub(super) fn probe(root: BorrowedFd<'_>) -> Result<(), Errno> {
        openat2(
            root,
            ".",
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            Self::HOW,
        )
        .map(drop)
    }
}

impl Openat2Resolver {
    /// openat2 answers ELOOP both for a symlink loop and for a refused magic
    /// link. Only on that error path, ask the walker (which tells them
    /// apart) so that magic-link attempts reach the security log.
    fn classify_loop(
        root: BorrowedFd<'_>,
        path: ClientPath<'_>,
        follow_final: bool,
        retire: &DeferredClose,
    ) -> OpError {
        match super::WalkerResolver.open_beneath(root, path, follow_final, retire) {
            Err(e) if e.is_escape_attempt() => OpError::new(Errno::LOOP, "refused: magic link"),
            _ => OpError::new(Errno::LOOP, "openat2"),
        }
    }
}

impl Openat2Resolver {
    /// One confined `openat2` with `flags`, retried on EAGAIN.
    fn open(
        root: BorrowedFd<'_>,
        path: ClientPath<'_>,
        flags: OFlags,
        retire: &DeferredClose,
    ) -> OpResult<OwnedFd> {
        let rel: &[u8] = if path.is_root() {
            b"."
        } else {
            path.as_bytes()
        };
        let flags = flags | OFlags::CLOEXEC;
        for _ in 0..EAGAIN_RETRIES {
            match openat2(root, rel, flags, Mode::empty(), Self::HOW) {
                Err(Errno::AGAIN) => continue,
                Err(Errno::XDEV) => {
                    return Err(OpError::new(Errno::XDEV, "refused: path leaves the export"));
                }
                Err(Errno::LOOP) => {
                    let follow_final = !flags.contains(OFlags::NOFOLLOW);
                    return Err(Self::classify_loop(root, path, follow_final, retire));
                }
                Err(errno) => return Err(OpError::new(errno, "openat2")),
                Ok(fd) => return Ok(fd),
            }
        }
        Err(OpError::new(
            Errno::AGAIN,
            "openat2 kept racing with renames",
        ))
    }
}

impl Resolve for Openat2Resolver {
    fn open_beneath(
        &self,
        root: BorrowedFd<'_>,
        path: ClientPath<'_>,
        follow_final: bool,
        retire: &DeferredClose,
    ) -> OpResult<Resolved> {
        let mut flags = OFlags::PATH;
        if !follow_final {
            flags |= OFlags::NOFOLLOW;
        }
        let fd = Self::open(root, path, flags, retire)?;
        Ok(Resolved {
            fd,
            file_type: None,
        })
    }

    /// One `openat2` with the client's flags: with `O_DIRECTORY` the kernel
    /// refuses anything else before opening it.
    fn open_directory(
        &self,
        root: BorrowedFd<'_>,
        path: ClientPath<'_>,
        flags: OFlags,
        retire: &DeferredClose,
    ) -> OpResult<OwnedFd> {
        debug_assert!(flags.contains(OFlags::DIRECTORY));
        Self::open(root, path, flags | OFlags::DIRECTORY, retire)
    }
}
