//! The export: the root fd held since start-up, the resolver, the procfs
//! handle, and the ways an operation reaches its target through them.
//!
//! Every operation reaches the filesystem through one of two shapes:
//! - an `O_PATH` fd of the object itself ([`Export::open`]), for operations
//!   that follow a final symlink (open, statfs, chmod, truncate, getversion);
//! - a [`Target`]: the parent directory's fd and one validated [`Name`], for
//!   operations that must not follow it (lstat, chown, utime, link, rename,
//!   remove and the creations). The `l*xattr` calls use an `O_PATH |
//!   O_NOFOLLOW` fd of the object, named through `/proc/self/fd`.
//!
//! Either way no client-supplied path with more than one component ever
//! reaches a path-based syscall.

use crate::deferred_close::DeferredClose;
use crate::error::{Context, OpResult};
use crate::path::{ClientPath, Final, Name};
use crate::privilege::Privileges;
use crate::procfs::ProcSelfFd;
use crate::resolve::{Resolve, Resolver};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{FileType, OFlags};

/// Everything the request handlers need, set up once before serving.
#[derive(Debug)]
pub struct Export {
    /// The export root, opened `O_RDONLY | O_DIRECTORY` before chroot.
    pub root: OwnedFd,
    pub resolver: Resolver,
    /// `/proc/self/fd`, where the kernel lacks a syscall that spares it
    /// (None: `Features::procfs_free`).
    pub proc: Option<ProcSelfFd>,
    pub privileges: Privileges,
    /// Whether the export's filesystem answers FS_IOC_GETVERSION.
    pub getversion: bool,
    /// `--readonly`: every request that would change the export answers
    /// EROFS, whatever the host mount allows.
    pub readonly: bool,
    /// Newer syscalls this kernel has (probed at start-up).
    pub features: crate::syscalls::Features,
    /// Where resolved `O_PATH` fds go when a request is done with them.
    pub deferred: DeferredClose,
    /// `--translate-uid`/`--translate-gid`: applied where ids cross the
    /// wire (`ops::handle`), never inside an operation.
    pub ids: crate::idmap::Translation,
    /// Xattr name mapping (`--xattrmap`); empty: names pass unchanged.
    pub xattrs: crate::xattrmap::XattrMap,
}

/// The fd of a resolved path, for one request: an `O_PATH` fd from the
/// resolver, or the held root itself when the path names the root (no
/// resolution needed). Dropping a resolved fd hands it to
/// [`DeferredClose`], which closes it with others in one syscall.
#[derive(Debug)]
pub struct PathFd<'a> {
    fd: Held<'a>,
    /// Known when the resolver learned it.
    file_type: Option<FileType>,
    deferred: &'a DeferredClose,
}

impl PathFd<'_> {
    /// The object's type: from the resolver where it checked it, else one
    /// `fstat`.
    pub fn file_type(&self) -> OpResult<FileType> {
        crate::resolve::file_type_of(self.as_fd(), self.file_type)
    }
}

#[derive(Debug)]
enum Held<'a> {
    /// `None` only while dropping.
    Resolved(Option<OwnedFd>),
    Root(BorrowedFd<'a>),
}

impl AsFd for PathFd<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.fd {
            Held::Resolved(fd) => fd.as_ref().expect("present until dropped").as_fd(),
            Held::Root(fd) => *fd,
        }
    }
}

impl Drop for PathFd<'_> {
    fn drop(&mut self) {
        if let Held::Resolved(fd) = &mut self.fd {
            if let Some(fd) = fd.take() {
                self.deferred.defer(fd);
            }
        }
    }
}

/// An existing object a non-following request reads or changes.
#[derive(Debug)]
pub enum Object<'a> {
    /// A name directly in the export root: reached with one `*at()` call on
    /// the held root fd, no resolution needed.
    InRoot(Name<'a>),
    /// Anything deeper: an `O_PATH | O_NOFOLLOW` fd of the object itself,
    /// from one resolution of the whole path (cheaper than resolving the
    /// parent and looking the name up again).
    Fd(PathFd<'a>),
}

/// A directory fd: the held root, or one opened for this request.
#[derive(Debug)]
pub enum Dir<'a> {
    Root(BorrowedFd<'a>),
    Opened(PathFd<'a>),
}

impl AsFd for Dir<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Dir::Root(fd) => *fd,
            Dir::Opened(fd) => fd.as_fd(),
        }
    }
}

/// What a non-following operation acts on.
#[derive(Debug)]
pub enum Target<'a> {
    /// An entry `name` inside the directory `parent`. `slash`: the path
    /// ended in `name/`, so the entry must be a directory (only produced by
    /// [`Export::entry`], for the requests that add or remove entries).
    Entry {
        parent: Dir<'a>,
        name: Name<'a>,
        slash: bool,
    },
    /// The path ends in the root, `.` or `..`: a directory that cannot be
    /// addressed by parent and name. `dir` is its `O_PATH` fd; `last` tells
    /// which it was, for the errno a mutation of it gets.
    Directory { dir: PathFd<'a>, last: Final<'a> },
}

impl Export {
    /// Resolves `raw` beneath the root to an `O_PATH` fd of the object.
    pub fn open(&self, raw: &[u8], follow_final: bool) -> OpResult<PathFd<'_>> {
        self.resolve(ClientPath::parse(raw)?, follow_final)
    }

    fn resolve(&self, path: ClientPath<'_>, follow_final: bool) -> OpResult<PathFd<'_>> {
        let (fd, file_type) = if path.is_root() {
            // The root is held open already: resolving "." again would only
            // cost an openat2 and a close.
            (Held::Root(self.root.as_fd()), Some(FileType::Directory))
        } else {
            let resolved = self.resolver.open_beneath(
                self.root.as_fd(),
                path,
                follow_final,
                &self.deferred,
            )?;
            (Held::Resolved(Some(resolved.fd)), resolved.file_type)
        };
        Ok(PathFd {
            fd,
            file_type,
            deferred: &self.deferred,
        })
    }

    /// Opens the directory `raw` names for reading it, with the client's
    /// `flags` (which contain `O_DIRECTORY`): one confined open, in which
    /// the kernel refuses anything but a directory before opening it.
    pub fn open_directory(&self, raw: &[u8], flags: OFlags) -> OpResult<OwnedFd> {
        let path = ClientPath::parse(raw)?;
        if path.is_root() {
            return crate::resolve::open_dot(self.root.as_fd(), flags);
        }
        self.resolver
            .open_directory(self.root.as_fd(), path, flags, &self.deferred)
    }

    /// Opens `raw` with `flags` in one confined `openat2` if it names a
    /// regular file (`OPENAT2_REGULAR`); EFTYPE, with nothing opened, for
    /// anything else. None where the kernel lacks the flag or the walker
    /// resolves: the caller then checks the type on an `O_PATH` fd.
    pub fn open_regular(&self, raw: &[u8], flags: OFlags) -> Option<OpResult<OwnedFd>> {
        if !self.features.openat2_regular {
            return None;
        }
        let path = match ClientPath::parse(raw) {
            Ok(path) => path,
            Err(e) => return Some(Err(e)),
        };
        self.resolver
            .open_regular(self.root.as_fd(), path, flags, &self.deferred)
    }

    /// The object `raw` names, not following a final symlink (a trailing
    /// slash follows it and requires a directory, as the kernel's lookup).
    pub fn object<'a>(&'a self, raw: &'a [u8]) -> OpResult<Object<'a>> {
        let path = ClientPath::parse(raw)?;
        if !path.has_trailing_slash() {
            if let (parent, Final::Name(name)) = path.split_last() {
                if parent.is_root() {
                    return Ok(Object::InRoot(name));
                }
            }
        }
        Ok(Object::Fd(self.resolve(path, false)?))
    }

    /// The target of a request that reads or changes an existing object
    /// without following a final symlink. A path ending in `name/` is looked
    /// up as the kernel does: the final symlink is followed and the result
    /// must be a directory, which is then acted on through its own fd.
    pub fn target<'a>(&'a self, raw: &'a [u8]) -> OpResult<Target<'a>> {
        let path = ClientPath::parse(raw)?;
        if path.has_trailing_slash() {
            let dir = self.resolve(path, true)?;
            return Ok(Target::Directory {
                dir,
                last: Final::Dot,
            });
        }
        self.split(path)
    }

    /// The target of a request that adds or removes a directory entry: the
    /// parent and the name, with a trailing slash kept as a flag so the
    /// request can apply the kernel's rule for it.
    pub fn entry<'a>(&'a self, raw: &'a [u8]) -> OpResult<Target<'a>> {
        self.split(ClientPath::parse(raw)?)
    }

    fn split<'a>(&'a self, path: ClientPath<'a>) -> OpResult<Target<'a>> {
        let (parent, last) = path.split_last();
        match last {
            Final::Name(name) => {
                let parent = if parent.is_root() {
                    Dir::Root(self.root.as_fd())
                } else {
                    Dir::Opened(self.resolve(parent, true)?)
                };
                Ok(Target::Entry {
                    parent,
                    name,
                    slash: path.has_trailing_slash(),
                })
            }
            Final::Root | Final::Dot | Final::DotDot => {
                let dir = self.resolve(path, true)?;
                Ok(Target::Directory { dir, last })
            }
        }
    }

    /// Opens the very inode the `O_PATH` fd `opath` holds, with `flags`:
    /// with `O_EMPTYPATH` where the kernel has it, else through
    /// `/proc/self/fd`. Either way no path is looked up again, so nothing
    /// can be swapped in between a type check on `opath` and the open.
    /// `O_NOFOLLOW` is stripped (through procfs it would refuse the magic
    /// link itself), and so are `O_CREAT` and `O_EXCL`: a reopen creates
    /// nothing.
    pub fn reopen(&self, opath: BorrowedFd<'_>, flags: OFlags) -> OpResult<OwnedFd> {
        let flags = (flags - (OFlags::NOFOLLOW | OFlags::CREATE | OFlags::EXCL)) | OFlags::CLOEXEC;
        if self.features.reopen_empty_path {
            return crate::syscalls::reopen_empty_path(opath, flags).ctx("reopen O_EMPTYPATH");
        }
        self.procfs()?
            .reopen(opath, flags)
            .ctx("reopen through /proc/self/fd")
    }

    /// `/proc/self/fd`; only reached where a newer syscall is missing, and
    /// then it was opened at start-up.
    pub fn procfs(&self) -> OpResult<&ProcSelfFd> {
        self.proc.as_ref().ok_or(crate::error::OpError::new(
            rustix::io::Errno::NOSYS,
            "no procfs",
        ))
    }

    /// A real (not `O_PATH`) read-only fd on a directory the resolver
    /// returned, for the calls that refuse `O_PATH` fds (xattrs, futimens).
    pub fn open_dir(&self, dir: impl AsFd) -> OpResult<OwnedFd> {
        crate::resolve::open_dot(dir.as_fd(), OFlags::RDONLY)
    }
}
