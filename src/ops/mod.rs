//! One function per request type, and the dispatcher that picks it.
//!
//! - `files`: T_OPEN, T_CREATE, T_GETVERSION (they hand out or read fds)
//! - `nodes`: T_MKNOD, T_MKDIR, T_SYMLINK, T_LINK, T_RENAME, T_REMOVE
//! - `attrs`: T_LSTAT, T_READLINK, T_STATFS, T_CHMOD, T_CHOWN, T_TRUNCATE, T_UTIME
//! - `xattrs`: T_LGETXATTR, T_LLISTXATTR, T_LSETXATTR, T_LREMOVEXATTR
//!
//! Handlers return values, never bytes on the wire; `crate::server` turns a
//! [`Reply`] into the reply kind the request type calls for.

mod attrs;
mod files;
mod nodes;
mod xattrs;

use crate::error::{OpError, OpResult};
use crate::export::Export;
use crate::protocol::{HEADER_SIZE, ReplyKind, Request, WireStat, WireStatFs, encode_string_with};
use rustix::fd::OwnedFd;
use rustix::io::Errno;
use std::borrow::Cow;

/// The outcome of one request, before encoding.
#[derive(Debug)]
pub enum Reply {
    /// An fd to pass with SCM_RIGHTS (T_OPEN, T_CREATE).
    Fd(OpResult<OwnedFd>),
    /// A status: 0, or a length for the size-0 xattr queries.
    Status(OpResult<i32>),
    /// A response whose payload the handler appended to the output buffer,
    /// after [`HEADER_SIZE`] placeholder bytes.
    Response(OpResult<()>),
}

impl Reply {
    /// A failure in the reply shape `kind` calls for.
    pub fn failure(kind: ReplyKind, err: OpError) -> Self {
        match kind {
            ReplyKind::Fd => Reply::Fd(Err(err)),
            ReplyKind::Status => Reply::Status(Err(err)),
            ReplyKind::Response => Reply::Response(Err(err)),
        }
    }

    pub fn error(&self) -> Option<OpError> {
        match self {
            Reply::Fd(r) => r.as_ref().err().copied(),
            Reply::Status(r) => r.as_ref().err().copied(),
            Reply::Response(r) => r.as_ref().err().copied(),
        }
    }
}

/// Runs one decoded request. `out` is empty on entry; a response payload is
/// written to it after a header-sized gap.
pub fn handle(ex: &Export, req: &Request<'_>, out: &mut Vec<u8>) -> Reply {
    out.resize(HEADER_SIZE, 0);
    if ex.readonly && req.kind().mutates() {
        let err = OpError::new(Errno::ROFS, "read-only export");
        return Reply::failure(req.kind().reply_kind(), err);
    }
    let status = |r: OpResult<()>| Reply::Status(r.map(|()| 0));
    // Ids cross the wire here and nowhere else: guest ids to the host's on
    // the way in, the host's to the guest's on the way out (`ex.ids`).
    let to_host = |uid, gid| {
        ex.ids
            .to_host(uid, gid)
            .map_err(|e| OpError::new(e, "a --translate rule forbids this guest id"))
    };
    match *req {
        Request::Open { path, flags } => Reply::Fd(files::open(ex, path, flags)),
        Request::Create {
            path,
            flags,
            mode,
            uid,
            gid,
        } => Reply::Fd(
            to_host(uid, gid).and_then(|(uid, gid)| files::create(ex, path, flags, mode, uid, gid)),
        ),
        Request::Getversion { path } => Reply::Response(
            files::getversion(ex, path).map(|v| out.extend_from_slice(&v.to_ne_bytes())),
        ),
        Request::Mknod {
            uid,
            gid,
            path,
            mode,
            rdev,
        } => status(
            to_host(uid, gid).and_then(|(uid, gid)| nodes::mknod(ex, uid, gid, path, mode, rdev)),
        ),
        Request::Mkdir {
            uid,
            gid,
            path,
            mode,
        } => {
            status(to_host(uid, gid).and_then(|(uid, gid)| nodes::mkdir(ex, uid, gid, path, mode)))
        }
        Request::Symlink {
            uid,
            gid,
            target,
            path,
        } => status(
            to_host(uid, gid).and_then(|(uid, gid)| nodes::symlink(ex, uid, gid, target, path)),
        ),
        Request::Link { old, new } => status(nodes::link(ex, old, new)),
        Request::Rename { old, new } => status(nodes::rename(ex, old, new)),
        Request::Remove { path } => status(nodes::remove(ex, path)),
        Request::Lstat { path } => {
            Reply::Response(attrs::lstat(ex, path).map(|mut st: WireStat| {
                ex.ids.stat_to_guest(&mut st);
                st.encode(out)
            }))
        }
        Request::Readlink { path, bufsize } => {
            Reply::Response(attrs::readlink(ex, path, bufsize, out))
        }
        Request::Statfs { path } => {
            Reply::Response(attrs::statfs(ex, path).map(|st: WireStatFs| st.encode(out)))
        }
        Request::Chmod { path, mode } => status(attrs::chmod(ex, path, mode)),
        Request::Chown { path, uid, gid } => {
            status(to_host(uid, gid).and_then(|(uid, gid)| attrs::chown(ex, path, uid, gid)))
        }
        Request::Truncate { path, length } => status(attrs::truncate(ex, path, length)),
        Request::Utime { path, atime, mtime } => status(attrs::utime(ex, path, atime, mtime)),
        Request::Lgetxattr { size, path, name } => xattr_reply(size, out, |buf| {
            let host_name = xattr_name_to_host(ex, name)?;
            xattrs::lgetxattr(ex, path, &host_name, buf)
        }),
        Request::Llistxattr { size, path } => xattr_reply(size, out, |buf| {
            if ex.xattrs.is_empty() {
                return xattrs::llistxattr(ex, path, buf);
            }
            // The guest's listing differs in length from the host's: read
            // the whole host listing, then map it.
            let host = xattrs::llistxattr_all(ex, path)?;
            let shown = ex.xattrs.list_to_guest(&host);
            match buf {
                None => Ok(shown.len()),
                Some(buf) if shown.len() > buf.len() => {
                    Err(OpError::new(Errno::RANGE, "listxattr: the mapped listing"))
                }
                Some(buf) => {
                    buf[..shown.len()].copy_from_slice(&shown);
                    Ok(shown.len())
                }
            }
        }),
        Request::Lsetxattr {
            path,
            name,
            value,
            size,
            flags,
        } => {
            // As much of the value as the size field stores (lsetxattr
            // checks the field itself).
            let stored = usize::try_from(size).map_or(value.len(), |n| n.min(value.len()));
            status(xattr_name_to_host(ex, name).and_then(|host_name| {
                xattrs::lsetxattr(ex, path, &host_name, &value[..stored], size, flags)
            }))
        }
        Request::Lremovexattr { path, name } => status(
            xattr_name_to_host(ex, name)
                .and_then(|host_name| xattrs::lremovexattr(ex, path, &host_name)),
        ),
    }
}

/// A guest's xattr name as the host stores it (`--xattrmap`). The ACL id
/// translation keys on this host name (in `xattrs`), so no map can move an
/// ACL's ids past it.
fn xattr_name_to_host<'n>(ex: &Export, name: &'n [u8]) -> OpResult<Cow<'n, [u8]>> {
    ex.xattrs
        .to_host(name)
        .map_err(|e| OpError::new(e, "--xattrmap refused the name"))
}

/// The two shapes of an xattr reply: size 0 asks for the length only and
/// gets a status-shaped `d length`; a positive size gets `s value`, read by
/// the kernel straight into the reply buffer (no copy, no allocation).
fn xattr_reply(
    size: i32,
    out: &mut Vec<u8>,
    op: impl FnOnce(Option<&mut [u8]>) -> OpResult<usize>,
) -> Reply {
    if size == 0 {
        return Reply::Status(op(None).map(|len| len as i32));
    }
    let capacity = match xattrs::buffer_size(size) {
        Ok(n) => n,
        Err(e) => return Reply::Response(Err(e)),
    };
    Reply::Response(encode_string_with(out, capacity, |buf| op(Some(buf))))
}
