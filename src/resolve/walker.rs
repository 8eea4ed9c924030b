//! The userspace resolver: one component at a time, never letting the kernel
//! follow a symlink or look up `..`.

use super::{Resolve, Resolved};
use crate::deferred_close::DeferredClose;
use crate::error::{Context, OpError, OpResult};
use crate::path::ClientPath;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{FileType, Mode, OFlags, fstat, fstatfs, openat, readlinkat};
use rustix::io::Errno;
use std::borrow::Cow;

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

/// The components still to resolve, the next one last: borrowed from the
/// client path, owned when a symlink's target put them there.
type Pending<'a> = Vec<Cow<'a, [u8]>>;

impl WalkerResolver {
    const FLAGS: OFlags = OFlags::PATH.union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

    fn open_component(dir: BorrowedFd<'_>, name: &[u8]) -> OpResult<OwnedFd> {
        openat(dir, name, Self::FLAGS, Mode::empty()).ctx("openat (walker)")
    }

    /// Opens a component that has to be a directory. `Ok(None)`: it is not
    /// one (the kernel said ENOTDIR, which is also its answer for a symlink
    /// under `O_NOFOLLOW`), so the caller looks closer. Saves the `fstat`
    /// of every intermediate directory, the common case.
    fn open_directory_component(dir: BorrowedFd<'_>, name: &[u8]) -> OpResult<Option<OwnedFd>> {
        match openat(dir, name, Self::FLAGS | OFlags::DIRECTORY, Mode::empty()) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NOTDIR) => Ok(None),
            Err(e) => Err(OpError::new(e, "openat (walker)")),
        }
    }

    /// Reads a symlink's target and queues its components in front of what
    /// is left of the path.
    fn expand_symlink(link: &OwnedFd, pending: &mut Pending<'_>) -> OpResult<()> {
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
            pending.push(Cow::Owned(comp.to_vec()));
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
        retire: &DeferredClose,
    ) -> OpResult<Resolved> {
        // A trailing slash follows the final symlink and requires a directory.
        let must_be_dir = path.has_trailing_slash();
        let follow_final = follow_final || must_be_dir;
        let mut pending: Pending<'_> = path.components().map(Cow::Borrowed).collect();
        pending.reverse();
        // The directories walked so far, below the root; the last is current.
        let mut stack = Stack {
            fds: Vec::new(),
            retire,
        };
        let mut symlinks = 0;
        // The type of the object on top of the stack, where it was checked.
        let mut file_type = Some(FileType::Directory);

        while let Some(comp) = pending.pop() {
            let current = stack.fds.last().map_or(root, |fd| fd.as_fd());
            match &*comp {
                b"." => continue,
                b".." => {
                    match stack.fds.pop() {
                        Some(fd) => retire.defer(fd),
                        None => {
                            return Err(OpError::new(
                                Errno::XDEV,
                                "refused: `..` above the export",
                            ));
                        }
                    }
                    file_type = Some(FileType::Directory);
                    continue;
                }
                _ => {}
            }
            let is_last = pending.is_empty();
            let needs_dir = !is_last || must_be_dir;
            if needs_dir {
                if let Some(dir) = Self::open_directory_component(current, &comp)? {
                    stack.fds.push(dir);
                    file_type = Some(FileType::Directory);
                    continue;
                }
            }
            let fd = Self::open_component(current, &comp)?;
            if is_last && !follow_final {
                // Whatever it is, the object itself is the answer.
                stack.fds.push(fd);
                file_type = None;
                continue;
            }
            let this_type = FileType::from_raw_mode(fstat(&fd).ctx("fstat (walker)")?.st_mode);
            if this_type == FileType::Symlink {
                symlinks += 1;
                if symlinks > MAX_SYMLINKS {
                    return Err(OpError::new(Errno::LOOP, "too many symlinks"));
                }
                Self::expand_symlink(&fd, &mut pending)?;
                retire.defer(fd);
                continue;
            }
            if needs_dir && this_type != FileType::Directory {
                return Err(OpError::new(Errno::NOTDIR, "walker"));
            }
            stack.fds.push(fd);
            file_type = Some(this_type);
        }
        let fd = match stack.fds.pop() {
            Some(fd) => fd,
            // The path resolved to the root itself.
            None => openat(root, ".", OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
                .ctx("openat root (walker)")?,
        };
        Ok(Resolved { fd, file_type })
    }

    /// Resolves the path, checks the type on the `O_PATH` fd, and opens the
    /// directory through it as `.` ([`super::open_dot`]).
    fn open_directory(
        &self,
        root: BorrowedFd<'_>,
        path: ClientPath<'_>,
        flags: OFlags,
        retire: &DeferredClose,
    ) -> OpResult<OwnedFd> {
        let follow_final = !flags.contains(OFlags::NOFOLLOW);
        let resolved = self.open_beneath(root, path, follow_final, retire)?;
        let result = match resolved.file_type() {
            Ok(FileType::Directory) => super::open_dot(resolved.fd.as_fd(), flags),
            // open(2)'s answer, O_NOFOLLOW on a symlink included.
            Ok(_) => Err(OpError::new(
                Errno::NOTDIR,
                "O_DIRECTORY on a non-directory",
            )),
            Err(e) => Err(e),
        };
        retire.defer(resolved.fd);
        result
    }
}

/// The directory fds of a walk; whatever is left when the walk ends (with
/// an answer or an error) goes to the batch of deferred closes.
struct Stack<'r> {
    fds: Vec<OwnedFd>,
    retire: &'r DeferredClose,
}

impl Drop for Stack<'_> {
    fn drop(&mut self) {
        for fd in self.fds.drain(..) {
            self.retire.defer(fd);
        }
    }
}
