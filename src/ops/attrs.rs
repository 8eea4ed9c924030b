//! T_LSTAT, T_READLINK, T_STATFS, T_CHMOD, T_CHOWN, T_TRUNCATE, T_UTIME:
//! reading and changing an object's attributes.

use crate::error::{Context, OpError, OpResult};
use crate::export::{Export, Object, Target};
use crate::protocol::{WireStat, WireStatFs, encode_string_with};
use rustix::fd::AsFd;
use rustix::fs::{
    AtFlags, FileType, Mode, OFlags, Stat, Timespec, Timestamps, chownat, fstat, fstatfs,
    ftruncate, futimens, readlinkat_raw, statat, utimensat,
};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};

fn wire_stat(st: &Stat) -> WireStat {
    WireStat {
        dev: st.st_dev,
        ino: st.st_ino,
        nlink: st.st_nlink,
        mode: st.st_mode,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev,
        size: st.st_size,
        blksize: st.st_blksize,
        blocks: st.st_blocks,
        atime: (st.st_atime, st.st_atime_nsec as i64),
        mtime: (st.st_mtime, st.st_mtime_nsec as i64),
        ctime: (st.st_ctime, st.st_ctime_nsec as i64),
    }
}

/// T_LSTAT: does not follow a final symlink.
pub fn lstat(ex: &Export, path: &[u8]) -> OpResult<WireStat> {
    let st = match ex.object(path)? {
        Object::InRoot(name) => {
            statat(&ex.root, name.as_bytes(), AtFlags::SYMLINK_NOFOLLOW).ctx("fstatat")?
        }
        Object::Fd(fd) => fstat(&fd).ctx("fstat")?,
    };
    Ok(wire_stat(&st))
}

/// T_READLINK: at most `bufsize - 1` bytes of the target, as the original,
/// written as an `s` string into `out`, straight from the kernel (no
/// allocation; a target is shorter than PATH_MAX, so no client size is ever
/// allocated). A `bufsize` below 2 is EINVAL, what readlink(2) answers for
/// an empty buffer (the original crashed on negative sizes).
pub fn readlink(ex: &Export, path: &[u8], bufsize: i32, out: &mut Vec<u8>) -> OpResult<()> {
    if bufsize < 2 {
        return Err(OpError::new(Errno::INVAL, "readlink buffer size"));
    }
    let object = ex.object(path)?;
    let room = (bufsize as usize - 1).min(crate::path::PATH_MAX);
    encode_string_with(out, room, |buf| match object {
        Object::InRoot(name) => readlinkat_raw(&ex.root, name.as_bytes(), buf),
        // On an fd that is not a symlink the kernel answers ENOENT; the
        // object exists, so readlink(2)'s answer is EINVAL.
        Object::Fd(fd) => readlinkat_raw(&fd, "", buf).map_err(|e| match e {
            Errno::NOENT => Errno::INVAL,
            e => e,
        }),
    })
    .ctx("readlinkat")
}

/// T_STATFS: follows a final symlink (beneath the root).
pub fn statfs(ex: &Export, path: &[u8]) -> OpResult<WireStatFs> {
    let fd = ex.open(path, true)?;
    let st = fstatfs(&fd).ctx("fstatfs")?;
    // The halves are ints, widened with their sign as the original does.
    let fsid = crate::syscalls::fsid_halves(&st);
    Ok(WireStatFs {
        fs_type: st.f_type as u64,
        bsize: st.f_bsize as u64,
        blocks: st.f_blocks,
        bfree: st.f_bfree,
        bavail: st.f_bavail,
        files: st.f_files,
        ffree: st.f_ffree,
        fsid: [fsid[0] as i64 as u64, fsid[1] as i64 as u64],
        namelen: st.f_namelen as u64,
        frsize: st.f_frsize as u64,
    })
}

/// T_CHMOD: follows a final symlink (beneath the root). There is no chmod
/// for `O_PATH` fds before Linux 6.6's fchmodat2, and a path-based chmod
/// would follow whatever symlink a racing host put in place of the checked
/// name; chmod through `/proc/self/fd/N` acts on exactly the resolved inode.
pub fn chmod(ex: &Export, path: &[u8], mode: u32) -> OpResult<()> {
    let fd = ex.open(path, true)?;
    if ex.features.fchmodat2 {
        return crate::syscalls::fchmod_fd(fd.as_fd(), mode & 0o7777).ctx("fchmodat2");
    }
    ex.procfs()?
        .chmod(fd.as_fd(), Mode::from_raw_mode(mode))
        .ctx("chmod through /proc/self/fd")
}

/// T_CHOWN: lchown semantics; -1 leaves an id unchanged.
pub fn chown(ex: &Export, path: &[u8], uid: u32, gid: u32) -> OpResult<()> {
    let owner = (uid != u32::MAX).then(|| Uid::from_raw(uid));
    let group = (gid != u32::MAX).then(|| Gid::from_raw(gid));
    match ex.object(path)? {
        Object::InRoot(name) => chownat(
            &ex.root,
            name.as_bytes(),
            owner,
            group,
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .ctx("fchownat"),
        Object::Fd(fd) => chownat(
            &fd,
            "",
            owner,
            group,
            AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        )
        .ctx("fchownat AT_EMPTY_PATH"),
    }
}

/// T_TRUNCATE: follows a final symlink (beneath the root). `truncate(2)`
/// takes a path; instead the resolved inode is reopened for writing through
/// `/proc/self/fd` (regular files only, so no FIFO or device is opened) and
/// truncated with `ftruncate`.
pub fn truncate(ex: &Export, path: &[u8], length: i64) -> OpResult<()> {
    if length < 0 {
        return Err(OpError::new(Errno::INVAL, "negative length"));
    }
    let opath = ex.open(path, true)?;
    match opath.file_type()? {
        FileType::RegularFile => {}
        FileType::Directory => return Err(OpError::new(Errno::ISDIR, "truncate of a directory")),
        _ => return Err(OpError::new(Errno::INVAL, "truncate of a special file")),
    }
    let fd = ex.reopen(opath.as_fd(), OFlags::WRONLY | OFlags::NONBLOCK)?;
    ftruncate(&fd, length as u64).ctx("ftruncate")
}

/// T_UTIME: does not follow a final symlink. UTIME_NOW and UTIME_OMIT pass
/// through in the nanosecond fields.
pub fn utime(ex: &Export, path: &[u8], atime: (i64, i64), mtime: (i64, i64)) -> OpResult<()> {
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: atime.0,
            tv_nsec: atime.1 as _,
        },
        last_modification: Timespec {
            tv_sec: mtime.0,
            tv_nsec: mtime.1 as _,
        },
    };
    if ex.features.utimensat_empty_path {
        // One resolution of the whole path, then the times of exactly that
        // inode (a symlink itself included), as T_LSTAT does.
        return match ex.object(path)? {
            Object::InRoot(name) => {
                utimensat(&ex.root, name.as_bytes(), &times, AtFlags::SYMLINK_NOFOLLOW)
            }
            Object::Fd(fd) => utimensat(
                &fd,
                "",
                &times,
                AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
            ),
        }
        .ctx("utimensat");
    }
    // Before Linux 5.8: the parent's fd and the name.
    match ex.target(path)? {
        Target::Entry { parent, name, .. } => {
            utimensat(&parent, name.as_bytes(), &times, AtFlags::SYMLINK_NOFOLLOW).ctx("utimensat")
        }
        Target::Directory { dir, .. } => futimens(ex.open_dir(&dir)?, &times).ctx("futimens"),
    }
}
