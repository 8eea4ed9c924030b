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
