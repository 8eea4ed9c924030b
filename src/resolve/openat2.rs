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
    /// The path as openat2 takes it beneath the root: the root itself is ".".
    fn relative(path: ClientPath<'_>) -> &[u8] {
        if path.is_root() {
            b"."
        } else {
            path.as_bytes()
        }
    }

    /// One confined `openat2` with `flags`, retried on EAGAIN.
    fn open(
        root: BorrowedFd<'_>,
        path: ClientPath<'_>,
        flags: OFlags,
        retire: &DeferredClose,
    ) -> OpResult<OwnedFd> {
        let rel = Self::relative(path);
        let flags = flags | OFlags::CLOEXEC;
        Self::retried(root, path, flags, retire, || {
            openat2(root, rel, flags, Mode::empty(), Self::HOW)
        })
    }

    /// One confined `openat2` with `flags | OPENAT2_REGULAR` (Linux 7.2):
    /// it opens `path` only if it is a regular file, and answers EFTYPE,
    /// without opening anything, for a directory, FIFO, socket, device or
    /// (with `O_NOFOLLOW`) symlink. Type check and open are one atomic step
    /// in the kernel, so T_OPEN of a file needs no `O_PATH` fd, no `fstat`
    /// and no reopen. Only where the kernel has the flag (probed).
    pub fn open_regular(
        root: BorrowedFd<'_>,
        path: ClientPath<'_>,
        flags: OFlags,
        retire: &DeferredClose,
    ) -> OpResult<OwnedFd> {
        let rel = Self::relative(path);
        // PATH_MAX bytes with the NUL; ClientPath is shorter and has none.
        let mut buf = [0u8; crate::path::PATH_MAX];
        let c_path = buf
            .get_mut(..rel.len() + 1)
            .and_then(|dst| {
                dst[..rel.len()].copy_from_slice(rel);
                std::ffi::CStr::from_bytes_with_nul(dst).ok()
            })
            .ok_or(OpError::new(Errno::INVAL, "path for openat2"))?;
        let flags = flags | OFlags::CLOEXEC;
        let wide = u64::from(flags.bits()) | crate::syscalls::OPENAT2_REGULAR;
        Self::retried(root, path, flags, retire, || {
            crate::syscalls::openat2_wide(root, c_path, wide, Self::HOW.bits())
        })
    }

    /// Runs `call` (one confined openat2), retrying EAGAIN, and names its
    /// refusals for the log.
    fn retried(
        root: BorrowedFd<'_>,
        path: ClientPath<'_>,
        flags: OFlags,
        retire: &DeferredClose,
        mut call: impl FnMut() -> Result<OwnedFd, Errno>,
    ) -> OpResult<OwnedFd> {
        for _ in 0..EAGAIN_RETRIES {
            match call() {
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
