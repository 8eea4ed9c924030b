//! The userspace resolver: one component at a time, never letting the kernel
//! follow a symlink or look up `..`.

use super::Resolve;
use crate::error::{Context, OpError, OpResult};
use crate::path::ClientPath;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{FileType, OFlags, fstat, fstatfs, openat, readlinkat};
use rustix::io::Errno;
use std::collections::VecDeque;

/// Symlinks expanded per resolution before answering ELOOP, as the kernel's
/// own limit (MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;
/// `PROC_SUPER_MAGIC`: symlinks on procfs may be magic links.
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// Walks a path with `openat(O_PATH | O_NOFOLLOW)` per component.
///
/// Stops:
/// - `..` escaping the root, even when a directory on the way is renamed out
///   of the export mid-walk: `..` pops a stack of parent fds the walker
///   already holds instead of asking the kernel for `..`, so no rename can
///   carry it above the root (EXDEV at the root);
/// - symlinks to anywhere outside: their text is expanded here, relative to
///   the directory that holds them; an absolute target is EXDEV, and a chain
///   longer than 40 is ELOOP;
/// - magic links: the kernel is never asked to follow a link, and any symlink
///   on a procfs is refused outright (ELOOP), a little stricter than
///   RESOLVE_NO_MAGICLINKS, which still allows plain ones like `/proc/self`.
#[derive(Debug, Default)]
pub struct WalkerResolver;

/// One step of the walk: a component still to be resolved.
type Pending = VecDeque<Vec<u8>>;

impl WalkerResolver {
    fn open_component(dir: BorrowedFd<'_>, name: &[u8]) -> OpResult<OwnedFd> {
        openat(
            dir,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .ctx("openat (walker)")
    }

    /// Reads a symlink's target and queues its components in front of what
    /// is left of the path.
    fn expand_symlink(link: &OwnedFd, pending: &mut Pending) -> OpResult<()> {
        let on_proc = fstatfs(link).ctx("fstatfs (walker)")?.f_type == PROC_SUPER_MAGIC;
        if on_proc {
            return Err(OpError::new(Errno::LOOP, "refused: symlink on procfs"));
        }
        let target = readlinkat(link, "", Vec::new()).ctx("readlinkat (walker)")?;
        let target = target.as_bytes();
        if target.is_empty() {
            return Err(OpError::new(Errno::NOENT, "empty symlink"));
        }
        if target.first() == Some(&b'/') {
            return Err(OpError::new(Errno::XDEV, "refused: absolute symlink"));
        }
        for comp in target.rsplit(|&b| b == b'/').filter(|c| !c.is_empty()) {
            pending.push_front(comp.to_vec());
        }
        Ok(())
    }
}

impl Resolve for WalkerResolver {
    fn open_beneath(
        &self,
        root: BorrowedFd<'_>,
        path: ClientPath<'_>,
        follow_final: bool,
    ) -> OpResult<OwnedFd> {
        // A trailing slash follows the final symlink and requires a directory.
        let must_be_dir = path.has_trailing_slash();
        let follow_final = follow_final || must_be_dir;
        let mut pending: Pending = path.components().map(<[u8]>::to_vec).collect();
        // The directories walked so far, below the root; the last is current.
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut symlinks = 0;

        while let Some(comp) = pending.pop_front() {
            let current = stack.last().map_or(root, |fd| fd.as_fd());
            match comp.as_slice() {
                b"." => continue,
                b".." => {
                    if stack.pop().is_none() {
                        return Err(OpError::new(Errno::XDEV, "refused: `..` above the export"));
                    }
                    continue;
                }
                _ => {}
            }
            let fd = Self::open_component(current, &comp)?;
            let is_last = pending.is_empty();
            let file_type = FileType::from_raw_mode(fstat(&fd).ctx("fstat (walker)")?.st_mode);
            if file_type == FileType::Symlink && (!is_last || follow_final) {
                symlinks += 1;
                if symlinks > MAX_SYMLINKS {
                    return Err(OpError::new(Errno::LOOP, "too many symlinks"));
                }
                Self::expand_symlink(&fd, &mut pending)?;
                continue;
            }
            if (!is_last || must_be_dir) && file_type != FileType::Directory {
                return Err(OpError::new(Errno::NOTDIR, "walker"));
            }
            stack.push(fd);
        }
        match stack.pop() {
            Some(fd) => Ok(fd),
            // The path resolved to the root itself.
            None => openat(
                root,
                ".",
                OFlags::PATH | OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .ctx("openat root (walker)"),
        }
    }
}
