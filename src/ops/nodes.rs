//! T_MKNOD, T_MKDIR, T_SYMLINK, T_LINK, T_RENAME, T_REMOVE: requests that
//! add or remove directory entries. All act through the parent directory's
//! fd and one validated name, never following the final component.

use crate::error::{Context, OpError, OpResult};
use crate::export::{Dir, Export, Target};
use crate::path::{Final, Name};
use crate::privilege::AssumedIdentity;
use rustix::fs::{
    AtFlags, FileType, Mode, linkat, mkdirat, mknodat, renameat, symlinkat, unlinkat,
};
use rustix::io::Errno;

/// Resolves a path that names a new or existing entry. A path ending in the
/// root, `.` or `..` names an existing directory, which gets `errno` (the
/// kernel's answer for that case) once it is known to exist.
fn entry<'a>(ex: &'a Export, path: &'a [u8], errno: Errno) -> OpResult<(Dir<'a>, Name<'a>)> {
    match ex.target(path)? {
        Target::Entry { parent, name } => Ok((parent, name)),
        Target::Directory { .. } => Err(OpError::new(errno, "path names an existing directory")),
    }
}

/// The file type encoded in a mknod mode. 0 means a regular file, as for
/// mknod(2); a directory is EPERM and anything unknown EINVAL, as the kernel
/// answers.
fn mknod_type(mode: u32) -> OpResult<FileType> {
    const S_IFMT: u32 = 0o170000;
    match mode & S_IFMT {
        0 => Ok(FileType::RegularFile),
        _ => match FileType::from_raw_mode(mode) {
            FileType::Directory => Err(OpError::new(Errno::PERM, "mknod of a directory")),
            FileType::Symlink | FileType::Unknown => Err(OpError::new(Errno::INVAL, "mknod type")),
            t => Ok(t),
        },
    }
}

/// T_MKNOD, as the guest's uid/gid.
pub fn mknod(ex: &Export, uid: u32, gid: u32, path: &[u8], mode: u32, rdev: u64) -> OpResult<()> {
    let (parent, name) = entry(ex, path, Errno::EXIST)?;
    let file_type = mknod_type(mode)?;
    let _identity = AssumedIdentity::assume(&ex.privileges, uid, gid)
        .ctx("switching to the guest's uid/gid")?;
    mknodat(
        &parent,
        name.as_bytes(),
        file_type,
        Mode::from_raw_mode(mode),
        rdev,
    )
    .ctx("mknodat")
}

/// T_MKDIR, as the guest's uid/gid.
pub fn mkdir(ex: &Export, uid: u32, gid: u32, path: &[u8], mode: u32) -> OpResult<()> {
    let (parent, name) = entry(ex, path, Errno::EXIST)?;
    let _identity = AssumedIdentity::assume(&ex.privileges, uid, gid)
        .ctx("switching to the guest's uid/gid")?;
    mkdirat(&parent, name.as_bytes(), Mode::from_raw_mode(mode)).ctx("mkdirat")
}

/// T_SYMLINK, as the guest's uid/gid. The target is stored verbatim: it is
/// data here, and only ever resolved beneath the root later.
pub fn symlink(ex: &Export, uid: u32, gid: u32, target: &[u8], path: &[u8]) -> OpResult<()> {
    let (parent, name) = entry(ex, path, Errno::EXIST)?;
    let _identity = AssumedIdentity::assume(&ex.privileges, uid, gid)
        .ctx("switching to the guest's uid/gid")?;
    symlinkat(target, &parent, name.as_bytes()).ctx("symlinkat")
}

/// T_LINK: a hard link; a symlink as `old` is linked itself, not followed.
pub fn link(ex: &Export, old: &[u8], new: &[u8]) -> OpResult<()> {
    let (old_parent, old_name) = entry(ex, old, Errno::PERM)?;
    let (new_parent, new_name) = entry(ex, new, Errno::EXIST)?;
    linkat(
        &old_parent,
        old_name.as_bytes(),
        &new_parent,
        new_name.as_bytes(),
        AtFlags::empty(),
    )
    .ctx("linkat")
}

/// T_RENAME.
pub fn rename(ex: &Export, old: &[u8], new: &[u8]) -> OpResult<()> {
    let (old_parent, old_name) = entry(ex, old, Errno::BUSY)?;
    let (new_parent, new_name) = entry(ex, new, Errno::BUSY)?;
    renameat(
        &old_parent,
        old_name.as_bytes(),
        &new_parent,
        new_name.as_bytes(),
    )
    .ctx("renameat")
}

/// T_REMOVE: remove(3), a file or an empty directory.
pub fn remove(ex: &Export, path: &[u8]) -> OpResult<()> {
    let (parent, name) = match ex.target(path)? {
        Target::Entry { parent, name } => (parent, name),
        // rmdir's own answers for these.
        Target::Directory { last, .. } => {
            let errno = match last {
                Final::Dot => Errno::INVAL,
                Final::DotDot => Errno::NOTEMPTY,
                _ => Errno::BUSY,
            };
            return Err(OpError::new(errno, "remove of the root, `.` or `..`"));
        }
    };
    match unlinkat(&parent, name.as_bytes(), AtFlags::empty()) {
        Err(Errno::ISDIR) => unlinkat(&parent, name.as_bytes(), AtFlags::REMOVEDIR).ctx("rmdir"),
        other => other.ctx("unlinkat"),
    }
}
