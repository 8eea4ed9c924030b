//! T_LGETXATTR, T_LLISTXATTR, T_LSETXATTR, T_LREMOVEXATTR.
//!
//! The `l*xattr` calls must not follow a final symlink, and the fd-based
//! `f*xattr` calls refuse `O_PATH` fds (before Linux 6.13's `*xattrat`). So
//! the helper changes its working directory to the resolved parent for the
//! duration of one call and passes the single validated name: the kernel
//! then looks up exactly one component, in a directory already known to be
//! beneath the root. [`InDirectory`] always changes back.

use crate::error::{Context, OpError, OpResult};
use crate::export::{Export, Target};
use crate::path::Name;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{self as sys, XattrFlags};
use rustix::io::Errno;

/// Largest xattr value and list the kernel handles (XATTR_SIZE_MAX,
/// XATTR_LIST_MAX): client sizes above it are capped, never allocated.
const XATTR_MAX: usize = 65536;

/// The buffer to allocate for a client-supplied size.
pub fn buffer_size(size: i32) -> OpResult<usize> {
    if size < 0 {
        return Err(OpError::new(Errno::INVAL, "negative xattr size"));
    }
    Ok((size as usize).min(XATTR_MAX))
}

/// While alive, the working directory is `dir`; dropping it returns to the
/// export root.
#[must_use = "the working directory reverts when the guard is dropped"]
struct InDirectory<'a> {
    root: BorrowedFd<'a>,
}

impl<'a> InDirectory<'a> {
    fn enter(dir: BorrowedFd<'_>, root: BorrowedFd<'a>) -> OpResult<Self> {
        rustix::process::fchdir(dir).ctx("fchdir to the parent")?;
        Ok(InDirectory { root })
    }
}

impl Drop for InDirectory<'_> {
    fn drop(&mut self) {
        if let Err(e) = rustix::process::fchdir(self.root) {
            tracing::error!("cannot return to the export root: {e}; exiting");
            std::process::exit(1);
        }
    }
}

/// Where an xattr call acts: a name in the working directory (its parent),
/// or a real fd of the directory the path ends in.
enum XattrTarget<'a> {
    InCwd {
        _cwd: InDirectory<'a>,
        name: Name<'a>,
    },
    Dir(OwnedFd),
}

fn locate<'a>(ex: &'a Export, path: &'a [u8]) -> OpResult<XattrTarget<'a>> {
    match ex.target(path)? {
        Target::Entry { parent, name, .. } => Ok(XattrTarget::InCwd {
            _cwd: InDirectory::enter(parent.as_fd(), ex.root.as_fd())?,
            name,
        }),
        Target::Directory { dir, .. } => Ok(XattrTarget::Dir(ex.open_dir(&dir)?)),
    }
}

/// T_LGETXATTR; `buf` None asks for the length only.
pub fn lgetxattr(
    ex: &Export,
    path: &[u8],
    name: &[u8],
    buf: Option<&mut Vec<u8>>,
) -> OpResult<usize> {
    match (locate(ex, path)?, buf) {
        (XattrTarget::InCwd { name: n, .. }, None) => sys::lgetxattr_query(n.as_bytes(), name),
        (XattrTarget::InCwd { name: n, .. }, Some(buf)) => {
            sys::lgetxattr(n.as_bytes(), name, buf.as_mut_slice())
        }
        (XattrTarget::Dir(fd), None) => sys::fgetxattr_query(&fd, name),
        (XattrTarget::Dir(fd), Some(buf)) => sys::fgetxattr(&fd, name, buf.as_mut_slice()),
    }
    .ctx("getxattr")
}

/// T_LLISTXATTR; `buf` None asks for the length only.
pub fn llistxattr(ex: &Export, path: &[u8], buf: Option<&mut Vec<u8>>) -> OpResult<usize> {
    match (locate(ex, path)?, buf) {
        (XattrTarget::InCwd { name: n, .. }, None) => sys::llistxattr_query(n.as_bytes()),
        (XattrTarget::InCwd { name: n, .. }, Some(buf)) => {
            sys::llistxattr(n.as_bytes(), buf.as_mut_slice())
        }
        (XattrTarget::Dir(fd), None) => sys::flistxattr_query(&fd),
        (XattrTarget::Dir(fd), Some(buf)) => sys::flistxattr(&fd, buf.as_mut_slice()),
    }
    .ctx("listxattr")
}

/// T_LSETXATTR. The value stored is at most the bytes the message carries:
/// a size field larger than the value (the original read past the message)
/// or negative is EINVAL; a smaller one stores that prefix, as the original.
pub fn lsetxattr(
    ex: &Export,
    path: &[u8],
    name: &[u8],
    value: &[u8],
    size: i32,
    flags: i32,
) -> OpResult<()> {
    if size < 0 || size as usize > value.len() {
        return Err(OpError::new(
            Errno::INVAL,
            "xattr size does not match the value",
        ));
    }
    let value = &value[..size as usize];
    let flags = XattrFlags::from_bits_retain(flags as u32);
    match locate(ex, path)? {
        XattrTarget::InCwd { name: n, .. } => sys::lsetxattr(n.as_bytes(), name, value, flags),
        XattrTarget::Dir(fd) => sys::fsetxattr(&fd, name, value, flags),
    }
    .ctx("setxattr")
}

/// T_LREMOVEXATTR.
pub fn lremovexattr(ex: &Export, path: &[u8], name: &[u8]) -> OpResult<()> {
    match locate(ex, path)? {
        XattrTarget::InCwd { name: n, .. } => sys::lremovexattr(n.as_bytes(), name),
        XattrTarget::Dir(fd) => sys::fremovexattr(&fd, name),
    }
    .ctx("removexattr")
}
