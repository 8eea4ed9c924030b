//! T_LGETXATTR, T_LLISTXATTR, T_LSETXATTR, T_LREMOVEXATTR.
//!
//! The `l*xattr` calls must not follow a final symlink, and the fd-based
//! `f*xattr` calls refuse `O_PATH` fds. Two ways, neither handing a client
//! path to the kernel:
//! - Linux 6.13+ (`*xattrat`, probed at start-up): the call on the resolved
//!   parent's fd and the single validated name, `AT_SYMLINK_NOFOLLOW`;
//! - elsewhere: the path is resolved to an `O_PATH | O_NOFOLLOW` fd, and the
//!   path-based call is made on that fd's name in `/proc/self/fd`, the
//!   helper's working directory while serving ([`ProcSelfFd::enter_as_cwd`]):
//!   it acts on exactly the resolved inode, a symlink itself included.

use crate::error::{Context, OpError, OpResult};
use crate::export::{Export, Target};
use crate::path::trim_terminator;
use crate::procfs::ProcSelfFd;
use crate::syscalls::{self, c_name};
use rustix::fd::{AsFd, OwnedFd};
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

/// The object itself, not following a final symlink (a trailing slash
/// follows it and requires a directory, as for the kernel's own lookup).
fn resolve(ex: &Export, path: &[u8]) -> OpResult<OwnedFd> {
    ex.open(path, false)
}

/// T_LGETXATTR; `buf` None asks for the length only.
pub fn lgetxattr(
    ex: &Export,
    path: &[u8],
    name: &[u8],
    buf: Option<&mut Vec<u8>>,
) -> OpResult<usize> {
    let name = trim_terminator(name);
    if ex.features.xattrat {
        let attr = c_name(name).ctx("xattr name")?;
        return match ex.target(path)? {
            Target::Entry { parent, name, .. } => {
                let entry = c_name(name.as_bytes()).ctx("name")?;
                syscalls::getxattrat(parent.as_fd(), &entry, &attr, buf.map(|b| b.as_mut_slice()))
            }
            Target::Directory { dir, .. } => {
                let dir = ex.open_dir(&dir)?;
                match buf {
                    None => sys::fgetxattr_query(&dir, name),
                    Some(buf) => sys::fgetxattr(&dir, name, buf.as_mut_slice()),
                }
            }
        }
        .ctx("getxattrat");
    }
    let fd = resolve(ex, path)?;
    let at = ProcSelfFd::cwd_name(fd.as_fd());
    match buf {
        None => sys::getxattr_query(at.as_ref(), name),
        Some(buf) => sys::getxattr(at.as_ref(), name, buf.as_mut_slice()),
    }
    .ctx("getxattr")
}

/// T_LLISTXATTR; `buf` None asks for the length only.
pub fn llistxattr(ex: &Export, path: &[u8], buf: Option<&mut Vec<u8>>) -> OpResult<usize> {
    if ex.features.xattrat {
        return match ex.target(path)? {
            Target::Entry { parent, name, .. } => {
                let entry = c_name(name.as_bytes()).ctx("name")?;
                syscalls::listxattrat(parent.as_fd(), &entry, buf.map(|b| b.as_mut_slice()))
            }
            Target::Directory { dir, .. } => {
                let dir = ex.open_dir(&dir)?;
                match buf {
                    None => sys::flistxattr_query(&dir),
                    Some(buf) => sys::flistxattr(&dir, buf.as_mut_slice()),
                }
            }
        }
        .ctx("listxattrat");
    }
    let fd = resolve(ex, path)?;
    let at = ProcSelfFd::cwd_name(fd.as_fd());
    match buf {
        None => sys::listxattr_query(at.as_ref()),
        Some(buf) => sys::listxattr(at.as_ref(), buf.as_mut_slice()),
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
    let name = trim_terminator(name);
    if ex.features.xattrat {
        let attr = c_name(name).ctx("xattr name")?;
        return match ex.target(path)? {
            Target::Entry { parent, name, .. } => {
                let entry = c_name(name.as_bytes()).ctx("name")?;
                syscalls::setxattrat(parent.as_fd(), &entry, &attr, value, flags as u32)
            }
            Target::Directory { dir, .. } => sys::fsetxattr(
                ex.open_dir(&dir)?,
                name,
                value,
                XattrFlags::from_bits_retain(flags as u32),
            ),
        }
        .ctx("setxattrat");
    }
    let fd = resolve(ex, path)?;
    let at = ProcSelfFd::cwd_name(fd.as_fd());
    sys::setxattr(
        at.as_ref(),
        name,
        value,
        XattrFlags::from_bits_retain(flags as u32),
    )
    .ctx("setxattr")
}

/// T_LREMOVEXATTR.
pub fn lremovexattr(ex: &Export, path: &[u8], name: &[u8]) -> OpResult<()> {
    let name = trim_terminator(name);
    if ex.features.xattrat {
        let attr = c_name(name).ctx("xattr name")?;
        return match ex.target(path)? {
            Target::Entry { parent, name, .. } => {
                let entry = c_name(name.as_bytes()).ctx("name")?;
                syscalls::removexattrat(parent.as_fd(), &entry, &attr)
            }
            Target::Directory { dir, .. } => sys::fremovexattr(ex.open_dir(&dir)?, name),
        }
        .ctx("removexattrat");
    }
    let fd = resolve(ex, path)?;
    let at = ProcSelfFd::cwd_name(fd.as_fd());
    sys::removexattr(at.as_ref(), name).ctx("removexattr")
}
