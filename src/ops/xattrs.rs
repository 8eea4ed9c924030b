//! T_LGETXATTR, T_LLISTXATTR, T_LSETXATTR, T_LREMOVEXATTR.
//!
//! The `l*xattr` calls must not follow a final symlink, and the fd-based
//! `f*xattr` calls refuse `O_PATH` fds. [`locate`] picks how a call reaches
//! its object, and no client path is ever handed to the kernel:
//! - Linux 6.13+ (`*xattrat`, probed at start-up): the resolved parent's fd
//!   and the single validated name, with `AT_SYMLINK_NOFOLLOW`;
//! - older kernels: the path resolved to an `O_PATH | O_NOFOLLOW` fd, and the
//!   path-based call made on that fd's name in `/proc/self/fd`, the helper's
//!   working directory while serving ([`ProcSelfFd::enter_as_cwd`]): it acts
//!   on exactly the resolved inode, a symlink itself included;
//! - a path ending in the root, `.`, `..` or `name/` names a directory, which
//!   is opened for real and served by the `f*xattr` calls.
//!
//! Names arrive as the host has them (after `--xattrmap`), and with id
//! translation a value stored or read under a POSIX ACL name has its
//! `ACL_USER`/`ACL_GROUP` ids rewritten here, by that host name
//! ([`crate::idmap::Translation::value_to_host`]): whatever guest name a
//! map turns into an ACL name, the kernel never gets an ACL with the
//! guest's ids. Listing and removal carry no ids.

use crate::error::{Context, OpError, OpResult};
use crate::export::{Dir, Export, PathFd, Target};
use crate::path::trim_terminator;
use crate::procfs::ProcSelfFd;
use crate::syscalls::{self, CName, c_name};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{self as sys, XattrFlags};
use rustix::io::Errno;

/// Largest xattr value and list the kernel handles (XATTR_SIZE_MAX,
/// XATTR_LIST_MAX): client sizes above it are capped, never allocated.
pub const XATTR_MAX: usize = 65536;

/// The buffer to allocate for a client-supplied size.
pub fn buffer_size(size: i32) -> OpResult<usize> {
    if size < 0 {
        return Err(OpError::new(Errno::INVAL, "negative xattr size"));
    }
    Ok((size as usize).min(XATTR_MAX))
}

/// Where an xattr call acts. Lives on the stack for one request; its size
/// is the stack-held name's.
#[allow(clippy::large_enum_variant)]
enum At<'a> {
    /// A name in its parent directory (`*xattrat`).
    Entry { parent: Dir<'a>, name: CName },
    /// A directory, opened for real (`f*xattr`).
    Directory(OwnedFd),
    /// The resolved `O_PATH | O_NOFOLLOW` fd, named in `/proc/self/fd`.
    Proc(PathFd<'a>),
}

fn locate<'a>(ex: &'a Export, path: &'a [u8]) -> OpResult<At<'a>> {
    if !ex.features.xattrat {
        return Ok(At::Proc(ex.open(path, false)?));
    }
    match ex.target(path)? {
        Target::Entry { parent, name, .. } => Ok(At::Entry {
            parent,
            name: c_name(name.as_bytes()).ctx("name")?,
        }),
        Target::Directory { dir, .. } => Ok(At::Directory(ex.open_dir(&dir)?)),
    }
}

/// T_LGETXATTR of the host's name `attr`; `buf` None asks for the length
/// only. A POSIX ACL's ids come back as the guest's.
pub fn lgetxattr(
    ex: &Export,
    path: &[u8],
    attr: &[u8],
    mut buf: Option<&mut [u8]>,
) -> OpResult<usize> {
    let attr = trim_terminator(attr);
    let c_attr = c_name(attr).ctx("xattr name")?;
    let len = match (locate(ex, path)?, buf.as_deref_mut()) {
        (At::Entry { parent, name }, buf) => {
            syscalls::getxattrat(parent.as_fd(), name.as_c_str(), c_attr.as_c_str(), buf)
        }
        (At::Directory(fd), None) => sys::fgetxattr_query(&fd, attr),
        (At::Directory(fd), Some(buf)) => sys::fgetxattr(&fd, attr, buf),
        (At::Proc(fd), None) => {
            sys::getxattr_query(ProcSelfFd::cwd_name(fd.as_fd()).as_ref(), attr)
        }
        (At::Proc(fd), Some(buf)) => {
            sys::getxattr(ProcSelfFd::cwd_name(fd.as_fd()).as_ref(), attr, buf)
        }
    }
    .ctx("getxattr")?;
    if let Some(buf) = buf {
        let read = len.min(buf.len());
        ex.ids.value_to_guest(attr, &mut buf[..read]);
    }
    Ok(len)
}

/// T_LLISTXATTR; `buf` None asks for the length only.
pub fn llistxattr(ex: &Export, path: &[u8], buf: Option<&mut [u8]>) -> OpResult<usize> {
    list_at(&locate(ex, path)?, buf)
}

fn list_at(at: &At<'_>, buf: Option<&mut [u8]>) -> OpResult<usize> {
    match (at, buf) {
        (At::Entry { parent, name }, buf) => {
            syscalls::listxattrat(parent.as_fd(), name.as_c_str(), buf)
        }
        (At::Directory(fd), None) => sys::flistxattr_query(fd),
        (At::Directory(fd), Some(buf)) => sys::flistxattr(fd, buf),
        (At::Proc(fd), None) => sys::listxattr_query(ProcSelfFd::cwd_name(fd.as_fd()).as_ref()),
        (At::Proc(fd), Some(buf)) => sys::listxattr(ProcSelfFd::cwd_name(fd.as_fd()).as_ref(), buf),
    }
    .ctx("listxattr")
}

/// The whole listing, however long (at most XATTR_LIST_MAX), with the path
/// resolved once: into a page first, which holds every usual listing, and
/// only where that is too small (ERANGE) once more at the maximum.
pub fn llistxattr_all(ex: &Export, path: &[u8]) -> OpResult<Vec<u8>> {
    const USUAL: usize = 4096;
    let at = locate(ex, path)?;
    let mut names = vec![0u8; USUAL];
    let n = match list_at(&at, Some(&mut names)) {
        Err(e) if e.errno == Errno::RANGE => {
            names = vec![0u8; XATTR_MAX];
            list_at(&at, Some(&mut names))?
        }
        other => other?,
    };
    names.truncate(n);
    Ok(names)
}

/// T_LSETXATTR of the host's name `attr`. The value stored is at most the
/// bytes the message carries: a size field larger than the value (the
/// original read past the message) or negative is EINVAL; a smaller one
/// stores that prefix, as the original. A POSIX ACL's ids are stored as
/// the host's; a forbidden one is EPERM, a malformed ACL EINVAL, before
/// the kernel sees either.
pub fn lsetxattr(
    ex: &Export,
    path: &[u8],
    attr: &[u8],
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
    let attr = trim_terminator(attr);
    let value = ex
        .ids
        .value_to_host(attr, &value[..size as usize])
        .ctx("translating the ids of a POSIX ACL")?;
    let value = value.as_ref();
    let c_attr = c_name(attr).ctx("xattr name")?;
    let xflags = XattrFlags::from_bits_retain(flags as u32);
    match locate(ex, path)? {
        At::Entry { parent, name } => syscalls::setxattrat(
            parent.as_fd(),
            name.as_c_str(),
            c_attr.as_c_str(),
            value,
            flags as u32,
        ),
        At::Directory(fd) => sys::fsetxattr(&fd, attr, value, xflags),
        At::Proc(fd) => sys::setxattr(
            ProcSelfFd::cwd_name(fd.as_fd()).as_ref(),
            attr,
            value,
            xflags,
        ),
    }
    .ctx("setxattr")
}

/// T_LREMOVEXATTR.
pub fn lremovexattr(ex: &Export, path: &[u8], attr: &[u8]) -> OpResult<()> {
    let attr = trim_terminator(attr);
    let c_attr = c_name(attr).ctx("xattr name")?;
    match locate(ex, path)? {
        At::Entry { parent, name } => {
            syscalls::removexattrat(parent.as_fd(), name.as_c_str(), c_attr.as_c_str())
        }
        At::Directory(fd) => sys::fremovexattr(&fd, attr),
        At::Proc(fd) => sys::removexattr(ProcSelfFd::cwd_name(fd.as_fd()).as_ref(), attr),
    }
    .ctx("removexattr")
}
