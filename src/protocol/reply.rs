//! Encoding replies (and decoding them, for the tests and the fuzz
//! targets): pure, appending to a `Vec`.

use super::{HEADER_SIZE, Header, MAX_PAYLOAD, T_ERROR, T_SUCCESS};

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
