//! T_MKNOD, T_MKDIR, T_SYMLINK, T_LINK, T_RENAME, T_REMOVE: requests that
//! add or remove directory entries. All act through the parent directory's
//! fd and one validated name, never following the final component.

use crate::error::{Context, OpError, OpResult};
use crate::export::{Dir, Export, Target};
use crate::path::{Final, Name, trim_terminator};
use crate::privilege::AssumedIdentity;
use rustix::fs::{
    AtFlags, FileType, Mode, linkat, mkdirat, mknodat, renameat, statat, symlinkat, unlinkat,
};
use rustix::io::Errno;

/// A directory entry a request adds or removes: its parent, its name, and
/// whether the path ended in `name/`.
struct Slot<'a> {
    parent: Dir<'a>,
    name: Name<'a>,
    slash: bool,
}

impl Slot<'_> {
    /// The entry's own type (a symlink is not followed), None if absent.
    fn file_type(&self) -> OpResult<Option<FileType>> {
        match statat(
            &self.parent,
            self.name.as_bytes(),
            AtFlags::SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(OpError::new(e, "fstatat")),
        }
    }

    /// The kernel's rule for `name/` in a request that creates something
    /// other than a directory: EEXIST if the name exists, ENOENT if not.
    fn refuse_slash_for_non_directory(self) -> OpResult<Self> {
        if !self.slash {
            return Ok(self);
        }
        match self.file_type()? {
            Some(_) => Err(OpError::new(
                Errno::EXIST,
                "trailing slash on an existing name",
            )),
            None => Err(OpError::new(
                Errno::NOENT,
                "trailing slash on a new non-directory",
            )),
        }
    }
}

/// Resolves a path that names a new or existing entry. A path ending in the
/// root, `.` or `..` names an existing directory, which gets `errno` (the
/// kernel's answer for that case) once it is known to exist.
fn slot<'a>(ex: &'a Export, path: &'a [u8], errno: Errno) -> OpResult<Slot<'a>> {
    match ex.entry(path)? {
        Target::Entry {
            parent,
            name,
            slash,
        } => Ok(Slot {
            parent,
            name,
            slash,
        }),
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
    let slot = slot(ex, path, Errno::EXIST)?.refuse_slash_for_non_directory()?;
    let file_type = mknod_type(mode)?;
    let _identity = AssumedIdentity::assume(&ex.privileges, uid, gid)
        .ctx("switching to the guest's uid/gid")?;
    mknodat(
        &slot.parent,
        slot.name.as_bytes(),
        file_type,
        Mode::from_raw_mode(mode),
        rdev,
    )
    .ctx("mknodat")
}

/// T_MKDIR, as the guest's uid/gid. `name/` is fine: it is a directory.
pub fn mkdir(ex: &Export, uid: u32, gid: u32, path: &[u8], mode: u32) -> OpResult<()> {
    let slot = slot(ex, path, Errno::EXIST)?;
    let _identity = AssumedIdentity::assume(&ex.privileges, uid, gid)
        .ctx("switching to the guest's uid/gid")?;
    mkdirat(
        &slot.parent,
        slot.name.as_bytes(),
        Mode::from_raw_mode(mode),
    )
    .ctx("mkdirat")
}

/// T_SYMLINK, as the guest's uid/gid. The target is stored verbatim: it is
/// data here, and only ever resolved beneath the root later.
pub fn symlink(ex: &Export, uid: u32, gid: u32, target: &[u8], path: &[u8]) -> OpResult<()> {
    let slot = slot(ex, path, Errno::EXIST)?.refuse_slash_for_non_directory()?;
    let _identity = AssumedIdentity::assume(&ex.privileges, uid, gid)
        .ctx("switching to the guest's uid/gid")?;
    symlinkat(trim_terminator(target), &slot.parent, slot.name.as_bytes()).ctx("symlinkat")
}

/// T_LINK: a hard link; a symlink as `old` is linked itself, not followed.
pub fn link(ex: &Export, old: &[u8], new: &[u8]) -> OpResult<()> {
    let old_slot = slot(ex, old, Errno::PERM)?;
    if old_slot.slash {
        // `old/` is looked up following a symlink and must be a directory,
        // which cannot be hard-linked.
        ex.open(old, true)?;
        return Err(OpError::new(Errno::PERM, "hard link to a directory"));
    }
    let new_slot = slot(ex, new, Errno::EXIST)?.refuse_slash_for_non_directory()?;
    linkat(
        &old_slot.parent,
        old_slot.name.as_bytes(),
        &new_slot.parent,
        new_slot.name.as_bytes(),
        AtFlags::empty(),
    )
    .ctx("linkat")
}

/// T_RENAME.
pub fn rename(ex: &Export, old: &[u8], new: &[u8]) -> OpResult<()> {
    let old_slot = slot(ex, old, Errno::BUSY)?;
    let new_slot = slot(ex, new, Errno::BUSY)?;
    if old_slot.slash || new_slot.slash {
        // With a trailing slash on either side the source must be a directory.
        match old_slot.file_type()? {
            None => return Err(OpError::new(Errno::NOENT, "renameat")),
            Some(FileType::Directory) => {}
            Some(_) => {
                return Err(OpError::new(
                    Errno::NOTDIR,
                    "trailing slash on a non-directory",
                ));
            }
        }
    }
    renameat(
        &old_slot.parent,
        old_slot.name.as_bytes(),
        &new_slot.parent,
        new_slot.name.as_bytes(),
    )
    .ctx("renameat")
}

/// T_REMOVE: remove(3), a file or an empty directory.
pub fn remove(ex: &Export, path: &[u8]) -> OpResult<()> {
    let slot = match ex.entry(path)? {
        Target::Entry {
            parent,
            name,
            slash,
        } => Slot {
            parent,
            name,
            slash,
        },
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
    let (parent, name) = (&slot.parent, slot.name.as_bytes());
    if slot.slash {
        // unlink(`name/`) fails; remove(3) then tries rmdir, which needs the
        // entry itself to be a directory.
        return match slot.file_type()? {
            None => Err(OpError::new(Errno::NOENT, "unlinkat")),
            Some(FileType::Directory) => unlinkat(parent, name, AtFlags::REMOVEDIR).ctx("rmdir"),
            Some(_) => Err(OpError::new(
                Errno::NOTDIR,
                "trailing slash on a non-directory",
            )),
        };
    }
    match unlinkat(parent, name, AtFlags::empty()) {
        Err(Errno::ISDIR) => unlinkat(parent, name, AtFlags::REMOVEDIR).ctx("rmdir"),
        other => other.ctx("unlinkat"),
    }
}
