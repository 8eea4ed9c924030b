//! Decoding requests: pure, borrowing from the payload.

use super::RequestType;

/// Why a payload could not be decoded. The frame itself was sound, so the
/// request gets an error reply (EINVAL) and the connection stays up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The payload ended before the field `field`.
    Truncated { field: &'static str },
    /// A string's length prefix runs past the end of the payload.
    StringOverrun { field: &'static str, len: usize },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated { field } => write!(f, "payload ends before field `{field}`"),
            DecodeError::StringOverrun { field, len } => {
                write!(
                    f,
                    "string `{field}` claims {len} bytes, more than the payload holds"
                )
            }
        }
    }
}

/// A decoded request. Strings borrow from the payload and are raw bytes: the
/// protocol does not promise UTF-8 and may carry NUL bytes, which the
/// handlers refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    Open {
        path: &'a [u8],
        flags: i32,
    },
    Create {
        path: &'a [u8],
        flags: i32,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Mknod {
        uid: u32,
        gid: u32,
        path: &'a [u8],
        mode: u32,
        rdev: u64,
    },
    Mkdir {
        uid: u32,
        gid: u32,
        path: &'a [u8],
        mode: u32,
    },
    Symlink {
        uid: u32,
        gid: u32,
        target: &'a [u8],
        path: &'a [u8],
    },
    Link {
        old: &'a [u8],
        new: &'a [u8],
    },
    Lstat {
        path: &'a [u8],
    },
    Readlink {
        path: &'a [u8],
        bufsize: i32,
    },
    Statfs {
        path: &'a [u8],
    },
    Chmod {
        path: &'a [u8],
        mode: u32,
    },
    Chown {
        path: &'a [u8],
        uid: u32,
        gid: u32,
    },
    Truncate {
        path: &'a [u8],
        length: i64,
    },
    Utime {
        path: &'a [u8],
        atime: (i64, i64),
        mtime: (i64, i64),
    },
    Rename {
        old: &'a [u8],
        new: &'a [u8],
    },
    Remove {
        path: &'a [u8],
    },
    Lgetxattr {
        size: i32,
        path: &'a [u8],
        name: &'a [u8],
    },
    Llistxattr {
        size: i32,
        path: &'a [u8],
    },
    Lsetxattr {
        path: &'a [u8],
        name: &'a [u8],
        value: &'a [u8],
        size: i32,
        flags: i32,
    },
    Lremovexattr {
        path: &'a [u8],
        name: &'a [u8],
    },
    Getversion {
        path: &'a [u8],
    },
}

impl Request<'_> {
    /// The request's type.
    pub fn kind(&self) -> RequestType {
        match self {
            Request::Open { .. } => RequestType::Open,
            Request::Create { .. } => RequestType::Create,
            Request::Mknod { .. } => RequestType::Mknod,
            Request::Mkdir { .. } => RequestType::Mkdir,
            Request::Symlink { .. } => RequestType::Symlink,
            Request::Link { .. } => RequestType::Link,
            Request::Lstat { .. } => RequestType::Lstat,
            Request::Readlink { .. } => RequestType::Readlink,
            Request::Statfs { .. } => RequestType::Statfs,
            Request::Chmod { .. } => RequestType::Chmod,
            Request::Chown { .. } => RequestType::Chown,
            Request::Truncate { .. } => RequestType::Truncate,
            Request::Utime { .. } => RequestType::Utime,
            Request::Rename { .. } => RequestType::Rename,
            Request::Remove { .. } => RequestType::Remove,
            Request::Lgetxattr { .. } => RequestType::Lgetxattr,
            Request::Llistxattr { .. } => RequestType::Llistxattr,
            Request::Lsetxattr { .. } => RequestType::Lsetxattr,
            Request::Lremovexattr { .. } => RequestType::Lremovexattr,
            Request::Getversion { .. } => RequestType::Getversion,
        }
    }
}

/// Reads fields in wire order from a payload.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Truncated { field });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn d(&mut self, field: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_ne_bytes(
            self.take(4, field)?.try_into().expect("4 bytes"),
        ))
    }

    fn u(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(self.d(field)? as u32)
    }

    fn q(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_ne_bytes(
            self.take(8, field)?.try_into().expect("8 bytes"),
        ))
    }

    fn s(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = u16::from_ne_bytes(self.take(2, field)?.try_into().expect("2 bytes")) as usize;
        self.take(len, field)
            .map_err(|_| DecodeError::StringOverrun { field, len })
    }
}

/// Decodes the payload of a request of type `kind`. Trailing bytes after the
/// last field are ignored, as the original's unmarshaller ignores them.
pub fn decode_request(kind: RequestType, payload: &[u8]) -> Result<Request<'_>, DecodeError> {
    let mut r = Reader { rest: payload };
    let req = match kind {
        RequestType::Open => Request::Open {
            path: r.s("path")?,
            flags: r.d("flags")?,
        },
        RequestType::Create => Request::Create {
            path: r.s("path")?,
            flags: r.d("flags")?,
            mode: r.u("mode")?,
            uid: r.u("uid")?,
            gid: r.u("gid")?,
        },
        RequestType::Mknod => Request::Mknod {
            uid: r.u("uid")?,
            gid: r.u("gid")?,
            path: r.s("path")?,
            mode: r.u("mode")?,
            rdev: r.q("rdev")? as u64,
        },
        RequestType::Mkdir => Request::Mkdir {
            uid: r.u("uid")?,
            gid: r.u("gid")?,
            path: r.s("path")?,
            mode: r.u("mode")?,
        },
        RequestType::Symlink => Request::Symlink {
            uid: r.u("uid")?,
            gid: r.u("gid")?,
            target: r.s("target")?,
            path: r.s("linkpath")?,
        },
        RequestType::Link => Request::Link {
            old: r.s("oldpath")?,
            new: r.s("newpath")?,
        },
        RequestType::Lstat => Request::Lstat { path: r.s("path")? },
        RequestType::Readlink => Request::Readlink {
            path: r.s("path")?,
            bufsize: r.d("bufsize")?,
        },
        RequestType::Statfs => Request::Statfs { path: r.s("path")? },
        RequestType::Chmod => Request::Chmod {
            path: r.s("path")?,
            mode: r.u("mode")?,
        },
        RequestType::Chown => Request::Chown {
            path: r.s("path")?,
            uid: r.u("uid")?,
            gid: r.u("gid")?,
        },
        RequestType::Truncate => Request::Truncate {
            path: r.s("path")?,
            length: r.q("length")?,
        },
        RequestType::Utime => Request::Utime {
            path: r.s("path")?,
            atime: (r.q("atime_sec")?, r.q("atime_nsec")?),
            mtime: (r.q("mtime_sec")?, r.q("mtime_nsec")?),
        },
        RequestType::Rename => Request::Rename {
            old: r.s("oldpath")?,
            new: r.s("newpath")?,
        },
        RequestType::Remove => Request::Remove { path: r.s("path")? },
        RequestType::Lgetxattr => Request::Lgetxattr {
            size: r.d("size")?,
            path: r.s("path")?,
            name: r.s("name")?,
        },
        RequestType::Llistxattr => Request::Llistxattr {
            size: r.d("size")?,
            path: r.s("path")?,
        },
        RequestType::Lsetxattr => Request::Lsetxattr {
            path: r.s("path")?,
            name: r.s("name")?,
            value: r.s("value")?,
            size: r.d("size")?,
            flags: r.d("flags")?,
        },
        RequestType::Lremovexattr => Request::Lremovexattr {
            path: r.s("path")?,
            name: r.s("name")?,
        },
        RequestType::Getversion => Request::Getversion { path: r.s("path")? },
    };
    Ok(req)
}
