//! The 9p proxy wire protocol as QEMU's `hw/9pfs/9p-proxy.c` speaks it.
//!
//! Pure code: decoding borrows from a byte slice and encoding appends to a
//! `Vec`, with no I/O, so every function here can be fuzzed and unit-tested
//! on its own. `docs/protocol.md` describes the format in prose.
//!
//! All integers are host-endian (QEMU and the helper always share a host).

/// Size of the `{type, size}` header in front of every message.
pub const HEADER_SIZE: usize = 8;
/// Largest payload either side accepts (`PROXY_MAX_IO_SZ`).
pub const MAX_PAYLOAD: usize = 65536;
/// The int sent in place of an errno when an fd rides along (`V9FS_FD_VALID`).
pub const FD_VALID: i32 = i32::MAX;

/// Reply header type of a successful status or response.
pub const T_SUCCESS: u32 = 0;
/// Reply header type of a failed status or response.
pub const T_ERROR: u32 = 1;

/// Request types, numbered as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum RequestType {
    Open = 2,
    Create = 3,
    Mknod = 4,
    Mkdir = 5,
    Symlink = 6,
    Link = 7,
    Lstat = 8,
    Readlink = 9,
    Statfs = 10,
    Chmod = 11,
    Chown = 12,
    Truncate = 13,
    Utime = 14,
    Rename = 15,
    Remove = 16,
    Lgetxattr = 17,
    Llistxattr = 18,
    Lsetxattr = 19,
    Lremovexattr = 20,
    Getversion = 21,
}

/// How the helper answers a request type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// One `sendmsg` carrying an int, and on success an fd (SCM_RIGHTS).
    Fd,
    /// Header plus a single `d` status (0 or -errno).
    Status,
    /// Header plus a marshalled payload, or `T_ERROR` plus `d -errno`.
    Response,
}

impl RequestType {
    pub const ALL: [RequestType; 20] = [
        Self::Open,
        Self::Create,
        Self::Mknod,
        Self::Mkdir,
        Self::Symlink,
        Self::Link,
        Self::Lstat,
        Self::Readlink,
        Self::Statfs,
        Self::Chmod,
        Self::Chown,
        Self::Truncate,
        Self::Utime,
        Self::Rename,
        Self::Remove,
        Self::Lgetxattr,
        Self::Llistxattr,
        Self::Lsetxattr,
        Self::Lremovexattr,
        Self::Getversion,
    ];

    pub fn from_wire(raw: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| *t as u32 == raw)
    }

    pub fn reply_kind(self) -> ReplyKind {
        use RequestType::*;
        match self {
            Open | Create => ReplyKind::Fd,
            Lstat | Readlink | Statfs | Lgetxattr | Llistxattr | Getversion => ReplyKind::Response,
            Mknod | Mkdir | Symlink | Link | Chmod | Chown | Truncate | Utime | Rename | Remove
            | Lsetxattr | Lremovexattr => ReplyKind::Status,
        }
    }

    /// Whether the request changes the export (refused by `--readonly`).
    /// T_OPEN is judged by its flags instead.
    pub fn mutates(self) -> bool {
        use RequestType::*;
        match self {
            Create | Mknod | Mkdir | Symlink | Link | Chmod | Chown | Truncate | Utime | Rename
            | Remove | Lsetxattr | Lremovexattr => true,
            Open | Lstat | Readlink | Statfs | Lgetxattr | Llistxattr | Getversion => false,
        }
    }

    /// The name the original and QEMU's headers use, for logs.
    pub fn name(self) -> &'static str {
        use RequestType::*;
        match self {
            Open => "T_OPEN",
            Create => "T_CREATE",
            Mknod => "T_MKNOD",
            Mkdir => "T_MKDIR",
            Symlink => "T_SYMLINK",
            Link => "T_LINK",
            Lstat => "T_LSTAT",
            Readlink => "T_READLINK",
            Statfs => "T_STATFS",
            Chmod => "T_CHMOD",
            Chown => "T_CHOWN",
            Truncate => "T_TRUNCATE",
            Utime => "T_UTIME",
            Rename => "T_RENAME",
            Remove => "T_REMOVE",
            Lgetxattr => "T_LGETXATTR",
            Llistxattr => "T_LLISTXATTR",
            Lsetxattr => "T_LSETXATTR",
            Lremovexattr => "T_LREMOVEXATTR",
            Getversion => "T_GETVERSION",
        }
    }
}

/// The header in front of every request and every non-fd reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: u32,
    pub size: u32,
}

impl Header {
    pub fn decode(bytes: &[u8; HEADER_SIZE]) -> Self {
        Header {
            kind: u32::from_ne_bytes(bytes[0..4].try_into().expect("4 bytes")),
            size: u32::from_ne_bytes(bytes[4..8].try_into().expect("4 bytes")),
        }
    }

    pub fn encode(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.kind.to_ne_bytes());
        out.extend_from_slice(&self.size.to_ne_bytes());
    }
}

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

/// `struct stat` as the client unmarshals it (116 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WireStat {
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: i64,
    pub blksize: i64,
    pub blocks: i64,
    pub atime: (i64, i64),
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

/// Size of an encoded [`WireStat`].
pub const STAT_SIZE: usize = 116;
/// Size of an encoded [`WireStatFs`].
pub const STATFS_SIZE: usize = 88;

impl WireStat {
    pub fn encode(&self, out: &mut Vec<u8>) {
        for q in [self.dev, self.ino, self.nlink] {
            out.extend_from_slice(&q.to_ne_bytes());
        }
        for d in [self.mode, self.uid, self.gid] {
            out.extend_from_slice(&d.to_ne_bytes());
        }
        out.extend_from_slice(&self.rdev.to_ne_bytes());
        let rest = [
            self.size,
            self.blksize,
            self.blocks,
            self.atime.0,
            self.atime.1,
            self.mtime.0,
            self.mtime.1,
            self.ctime.0,
            self.ctime.1,
        ];
        for q in rest {
            out.extend_from_slice(&q.to_ne_bytes());
        }
    }

    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < STAT_SIZE {
            return None;
        }
        let q = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let d = |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        Some(WireStat {
            dev: q(0),
            ino: q(8),
            nlink: q(16),
            mode: d(24),
            uid: d(28),
            gid: d(32),
            rdev: q(36),
            size: q(44) as i64,
            blksize: q(52) as i64,
            blocks: q(60) as i64,
            atime: (q(68) as i64, q(76) as i64),
            mtime: (q(84) as i64, q(92) as i64),
            ctime: (q(100) as i64, q(108) as i64),
        })
    }
}

/// `struct statfs` as the client unmarshals it (88 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WireStatFs {
    pub fs_type: u64,
    pub bsize: u64,
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub fsid: [u64; 2],
    pub namelen: u64,
    pub frsize: u64,
}

impl WireStatFs {
    fn fields(&self) -> [u64; 11] {
        [
            self.fs_type,
            self.bsize,
            self.blocks,
            self.bfree,
            self.bavail,
            self.files,
            self.ffree,
            self.fsid[0],
            self.fsid[1],
            self.namelen,
            self.frsize,
        ]
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        for q in self.fields() {
            out.extend_from_slice(&q.to_ne_bytes());
        }
    }

    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < STATFS_SIZE {
            return None;
        }
        let q = |i: usize| u64::from_ne_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        Some(WireStatFs {
            fs_type: q(0),
            bsize: q(1),
            blocks: q(2),
            bfree: q(3),
            bavail: q(4),
            files: q(5),
            ffree: q(6),
            fsid: [q(7), q(8)],
            namelen: q(9),
            frsize: q(10),
        })
    }
}

/// Appends a status message: `{T_SUCCESS|T_ERROR, 4}` then `d status`.
/// A non-negative `status` is a success (0, or a length for the size-0
/// xattr queries); a negative one is `-errno`.
pub fn encode_status(out: &mut Vec<u8>, status: i32) {
    let kind = if status < 0 { T_ERROR } else { T_SUCCESS };
    Header { kind, size: 4 }.encode(out);
    out.extend_from_slice(&status.to_ne_bytes());
}

/// Turns `out`, which holds `HEADER_SIZE` placeholder bytes followed by a
/// marshalled payload, into a complete success response. A payload larger
/// than [`MAX_PAYLOAD`] becomes `-ENOBUFS`, as in the original.
pub fn finish_response(out: &mut Vec<u8>, enobufs: i32) {
    let size = out.len() - HEADER_SIZE;
    if size > MAX_PAYLOAD {
        out.clear();
        encode_status(out, -enobufs);
        return;
    }
    let mut header = Vec::with_capacity(HEADER_SIZE);
    Header {
        kind: T_SUCCESS,
        size: size as u32,
    }
    .encode(&mut header);
    out[..HEADER_SIZE].copy_from_slice(&header);
}

/// Appends a `s` string: a 16-bit length and the bytes. Callers keep strings
/// under 64 KiB; a longer one is cut rather than mis-framed.
pub fn encode_string(out: &mut Vec<u8>, s: &[u8]) {
    let len = s.len().min(u16::MAX as usize);
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&s[..len]);
}

/// Bytes of the length field that starts a `s` string.
pub const STRING_LEN_SIZE: usize = 2;

/// Appends a `s` string whose bytes `fill` writes in place, into at most
/// `room` bytes, returning how many it wrote. On error nothing is appended.
pub fn encode_string_with<E>(
    out: &mut Vec<u8>,
    room: usize,
    fill: impl FnOnce(&mut [u8]) -> Result<usize, E>,
) -> Result<(), E> {
    let start = out.len();
    out.resize(start + STRING_LEN_SIZE + room, 0);
    match fill(&mut out[start + STRING_LEN_SIZE..]) {
        Ok(len) => {
            out.truncate(start + STRING_LEN_SIZE + len.min(room));
            encode_string_length(out, start);
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// Completes a `s` string whose bytes were written in place: `out[start..]`
/// is a [`STRING_LEN_SIZE`] placeholder followed by the bytes. Fills in the
/// length, cutting the bytes to 64 KiB - 1 as [`encode_string`] does.
pub fn encode_string_length(out: &mut Vec<u8>, start: usize) {
    let len = (out.len() - start - STRING_LEN_SIZE).min(u16::MAX as usize);
    out.truncate(start + STRING_LEN_SIZE + len);
    out[start..start + STRING_LEN_SIZE].copy_from_slice(&(len as u16).to_ne_bytes());
}

/// Request encoders, as QEMU's client marshals them. Used by the tests, the
/// benchmark and the fuzz targets; the helper itself only decodes.
pub mod client {
    use super::*;

    fn frame(kind: RequestType, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = vec![0; HEADER_SIZE];
        body(&mut out);
        let size = (out.len() - HEADER_SIZE) as u32;
        let mut header = Vec::new();
        Header {
            kind: kind as u32,
            size,
        }
        .encode(&mut header);
        out[..HEADER_SIZE].copy_from_slice(&header);
        out
    }

    /// A path QEMU holds as a `V9fsPath`: its size counts the C terminator,
    /// so it travels with a trailing NUL (added here unless present).
    fn path(out: &mut Vec<u8>, p: &[u8]) {
        if p.last() == Some(&0) {
            encode_string(out, p);
        } else {
            let mut with_nul = p.to_vec();
            with_nul.push(0);
            encode_string(out, &with_nul);
        }
    }

    fn d(out: &mut Vec<u8>, v: i32) {
        out.extend_from_slice(&v.to_ne_bytes());
    }

    fn q(out: &mut Vec<u8>, v: i64) {
        out.extend_from_slice(&v.to_ne_bytes());
    }

    /// Encodes a request exactly as QEMU 7.2's `v9fs_request` does: paths
    /// of existing objects (T_OPEN, T_LSTAT, T_READLINK, T_STATFS, T_CHMOD,
    /// T_CHOWN, T_TRUNCATE, T_UTIME, T_LINK's old path, the xattr calls,
    /// T_GETVERSION) with a trailing NUL; paths it builds for new names
    /// (T_CREATE, T_MKNOD, T_MKDIR, T_SYMLINK, T_LINK's new path, T_RENAME,
    /// T_REMOVE), names, targets and values without.
    pub fn encode(req: &Request<'_>) -> Vec<u8> {
        match *req {
            Request::Open { path, flags } => frame(RequestType::Open, |o| {
                self::path(o, path);
                d(o, flags);
            }),
            Request::Create {
                path,
                flags,
                mode,
                uid,
                gid,
            } => frame(RequestType::Create, |o| {
                encode_string(o, path);
                for v in [flags, mode as i32, uid as i32, gid as i32] {
                    d(o, v);
                }
            }),
            Request::Mknod {
                uid,
                gid,
                path,
                mode,
                rdev,
            } => frame(RequestType::Mknod, |o| {
                d(o, uid as i32);
                d(o, gid as i32);
                encode_string(o, path);
                d(o, mode as i32);
                q(o, rdev as i64);
            }),
            Request::Mkdir {
                uid,
                gid,
                path,
                mode,
            } => frame(RequestType::Mkdir, |o| {
                d(o, uid as i32);
                d(o, gid as i32);
                encode_string(o, path);
                d(o, mode as i32);
            }),
            Request::Symlink {
                uid,
                gid,
                target,
                path,
            } => frame(RequestType::Symlink, |o| {
                d(o, uid as i32);
                d(o, gid as i32);
                encode_string(o, target);
                encode_string(o, path);
            }),
            Request::Link { old, new } => frame(RequestType::Link, |o| {
                self::path(o, old);
                encode_string(o, new);
            }),
            Request::Lstat { path } => frame(RequestType::Lstat, |o| self::path(o, path)),
            Request::Readlink { path, bufsize } => frame(RequestType::Readlink, |o| {
                self::path(o, path);
                d(o, bufsize);
            }),
            Request::Statfs { path } => frame(RequestType::Statfs, |o| self::path(o, path)),
            Request::Chmod { path, mode } => frame(RequestType::Chmod, |o| {
                self::path(o, path);
                d(o, mode as i32);
            }),
            Request::Chown { path, uid, gid } => frame(RequestType::Chown, |o| {
                self::path(o, path);
                d(o, uid as i32);
                d(o, gid as i32);
            }),
            Request::Truncate { path, length } => frame(RequestType::Truncate, |o| {
                self::path(o, path);
                q(o, length);
            }),
            Request::Utime { path, atime, mtime } => frame(RequestType::Utime, |o| {
                self::path(o, path);
                for v in [atime.0, atime.1, mtime.0, mtime.1] {
                    q(o, v);
                }
            }),
            Request::Rename { old, new } => frame(RequestType::Rename, |o| {
                encode_string(o, old);
                encode_string(o, new);
            }),
            Request::Remove { path } => frame(RequestType::Remove, |o| encode_string(o, path)),
            Request::Lgetxattr { size, path, name } => frame(RequestType::Lgetxattr, |o| {
                d(o, size);
                self::path(o, path);
                encode_string(o, name);
            }),
            Request::Llistxattr { size, path } => frame(RequestType::Llistxattr, |o| {
                d(o, size);
                self::path(o, path);
            }),
            Request::Lsetxattr {
                path,
                name,
                value,
                size,
                flags,
            } => frame(RequestType::Lsetxattr, |o| {
                self::path(o, path);
                encode_string(o, name);
                encode_string(o, value);
                d(o, size);
                d(o, flags);
            }),
            Request::Lremovexattr { path, name } => frame(RequestType::Lremovexattr, |o| {
                self::path(o, path);
                encode_string(o, name);
            }),
            Request::Getversion { path } => frame(RequestType::Getversion, |o| self::path(o, path)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_requests() -> Vec<Request<'static>> {
        vec![
            Request::Open {
                path: b"//a/b",
                flags: 0o100002,
            },
            Request::Create {
                path: b"//new",
                flags: 0o101,
                mode: 0o644,
                uid: 1000,
                gid: 100,
            },
            Request::Mknod {
                uid: 1,
                gid: 2,
                path: b"//fifo",
                mode: 0o10644,
                rdev: 0x1234_5678_9abc,
            },
            Request::Mkdir {
                uid: 0,
                gid: 0,
                path: b"//d",
                mode: 0o755,
            },
            Request::Symlink {
                uid: 5,
                gid: 6,
                target: b"../x",
                path: b"//l",
            },
            Request::Link {
                old: b"//a",
                new: b"//b",
            },
            Request::Lstat { path: b"/" },
            Request::Readlink {
                path: b"//l",
                bufsize: 4096,
            },
            Request::Statfs { path: b"/" },
            Request::Chmod {
                path: b"//a",
                mode: 0o600,
            },
            Request::Chown {
                path: b"//a",
                uid: u32::MAX,
                gid: 7,
            },
            Request::Truncate {
                path: b"//a",
                length: -1,
            },
            Request::Utime {
                path: b"//a",
                atime: (1, 2),
                mtime: (3, (1 << 30) - 2),
            },
            Request::Rename {
                old: b"//a",
                new: b"//c",
            },
            Request::Remove { path: b"//c" },
            Request::Lgetxattr {
                size: 0,
                path: b"//a",
                name: b"user.x",
            },
            Request::Llistxattr {
                size: -5,
                path: b"//a",
            },
            Request::Lsetxattr {
                path: b"//a",
                name: b"user.x",
                value: b"v\0v",
                size: 3,
                flags: 1,
            },
            Request::Lremovexattr {
                path: b"//a",
                name: b"user.x",
            },
            Request::Getversion { path: b"//a" },
        ]
    }

    fn kind_of(req: &Request<'_>) -> RequestType {
        let frame = client::encode(req);
        let header = Header::decode(frame[..HEADER_SIZE].try_into().unwrap());
        RequestType::from_wire(header.kind).unwrap()
    }

    #[test]
    fn every_request_round_trips_through_the_client_encoder() {
        let samples = sample_requests();
        assert_eq!(samples.len(), 20, "one sample per request type");
        for req in &samples {
            let frame = client::encode(req);
            let header = Header::decode(frame[..HEADER_SIZE].try_into().unwrap());
            assert_eq!(header.size as usize, frame.len() - HEADER_SIZE);
            let decoded = decode_request(kind_of(req), &frame[HEADER_SIZE..]).unwrap();
            assert_eq!(decoded.kind(), req.kind());
            assert_eq!(client::encode(&decoded), frame, "{req:?}");
        }
    }

    #[test]
    fn paths_carry_a_nul_where_qemu_sends_a_v9fspath() {
        let lstat = client::encode(&Request::Lstat { path: b"/" });
        assert_eq!(&lstat[HEADER_SIZE..], &[2, 0, b'/', 0]);
        let remove = client::encode(&Request::Remove { path: b"//a" });
        assert_eq!(&remove[HEADER_SIZE..], &[3, 0, b'/', b'/', b'a']);
    }

    #[test]
    fn every_truncation_is_an_error_never_a_panic() {
        for req in sample_requests() {
            let frame = client::encode(&req);
            let payload = &frame[HEADER_SIZE..];
            for cut in 0..payload.len() {
                assert!(decode_request(kind_of(&req), &payload[..cut]).is_err());
            }
        }
    }

    #[test]
    fn a_string_written_in_place_encodes_as_encode_string() {
        for len in [0usize, 1, 5, 65535, 65536] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut expected = vec![9u8; 3];
            encode_string(&mut expected, &bytes);
            let mut in_place = vec![9u8; 3];
            in_place.extend_from_slice(&[0; STRING_LEN_SIZE]);
            in_place.extend_from_slice(&bytes);
            encode_string_length(&mut in_place, 3);
            assert_eq!(in_place, expected, "length {len}");
        }
    }

    #[test]
    fn string_longer_than_payload_is_reported() {
        let mut payload = Vec::new();
        payload.extend_from_slice(&100u16.to_ne_bytes());
        payload.extend_from_slice(b"short");
        assert_eq!(
            decode_request(RequestType::Lstat, &payload),
            Err(DecodeError::StringOverrun {
                field: "path",
                len: 100
            })
        );
    }

    #[test]
    fn unknown_types_are_not_requests() {
        for raw in [0, 1, 22, 0xffff_ffff] {
            assert_eq!(RequestType::from_wire(raw), None);
        }
    }

    #[test]
    fn stat_and_statfs_have_the_wire_sizes() {
        let mut out = Vec::new();
        WireStat::default().encode(&mut out);
        assert_eq!(out.len(), STAT_SIZE);
        out.clear();
        WireStatFs::default().encode(&mut out);
        assert_eq!(out.len(), STATFS_SIZE);
        let st = WireStat {
            dev: 1,
            ino: 2,
            nlink: 3,
            mode: 4,
            uid: 5,
            gid: 6,
            rdev: 7,
            size: 8,
            blksize: 9,
            blocks: 10,
            atime: (11, 12),
            mtime: (13, 14),
            ctime: (15, 16),
        };
        out.clear();
        st.encode(&mut out);
        assert_eq!(WireStat::decode(&out), Some(st));
    }

    #[test]
    fn status_and_oversized_response() {
        let mut out = Vec::new();
        encode_status(&mut out, -2);
        assert_eq!(Header::decode(out[..8].try_into().unwrap()).kind, T_ERROR);
        assert_eq!(i32::from_ne_bytes(out[8..12].try_into().unwrap()), -2);

        let mut out = vec![0u8; HEADER_SIZE + MAX_PAYLOAD + 1];
        finish_response(&mut out, 105);
        assert_eq!(out.len(), 12);
        assert_eq!(i32::from_ne_bytes(out[8..12].try_into().unwrap()), -105);
    }
}
