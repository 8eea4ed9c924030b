//! The 9p proxy wire protocol as QEMU's `hw/9pfs/9p-proxy.c` speaks it.
//!
//! Pure code: decoding borrows from a byte slice and encoding appends to a
//! `Vec`, with no I/O, so every function here can be fuzzed and unit-tested
//! on its own. `docs/protocol.md` describes the format in prose.
//!
//! All integers are host-endian (QEMU and the helper always share a host).

//!
//! The rooms: this file has the message types and the header;
//! [`request`] decodes requests, [`reply`] encodes replies (and decodes
//! them, for the tests), [`client`] encodes requests as QEMU does.

mod reply;
mod request;

pub use reply::*;
pub use request::*;

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

/// Request encoders, as QEMU's client marshals them. Used by the tests, the
/// benchmark and the fuzz targets; the helper itself only decodes.
pub mod client;

#[cfg(test)]
mod tests;
