//! T_OPEN, T_CREATE and T_GETVERSION: the requests that open files.

use crate::error::{Context, OpError, OpResult};
use crate::export::{Export, PathFd, Target};
use crate::privilege::AssumedIdentity;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{FileType, Mode, OFlags, openat};
use rustix::io::Errno;

/// Checks, on an `O_PATH` fd, that the object is a regular file or a
/// directory, and only then opens that very inode with `flags`.
///
/// Stops: a FIFO blocking the helper forever, and any open of a device node
/// (a tape rewinds on open); the original opened first and checked after.
fn open_checked(ex: &Export, opath: &PathFd<'_>, flags: OFlags) -> OpResult<OwnedFd> {
    let file_type = opath.file_type()?;
    if file_type == FileType::Symlink {
        // Only reached with O_NOFOLLOW: open(2)'s answer for a final symlink.
        return Err(OpError::new(Errno::LOOP, "O_NOFOLLOW on a symlink"));
    }
    if !matches!(file_type, FileType::RegularFile | FileType::Directory) {
        return Err(OpError::new(
            Errno::NXIO,
            "refused: not a regular file or directory",
        ));
    }
    ex.reopen(opath.as_fd(), flags)
}

fn client_flags(flags: i32) -> OpResult<OFlags> {
    let flags = OFlags::from_bits_retain(flags as u32);
    // O_TMPFILE would create an unnamed file as the helper; QEMU never sends
    // it, nor O_CREAT in T_OPEN (its client strips it).
    if flags.contains(OFlags::TMPFILE) {
        return Err(OpError::new(Errno::INVAL, "O_TMPFILE is not served"));
    }
    Ok(flags)
}

/// T_OPEN: opens an existing file or directory, following a final symlink
/// unless the flags say O_NOFOLLOW.
pub fn open(ex: &Export, path: &[u8], flags: i32) -> OpResult<OwnedFd> {
    let flags = client_flags(flags)?;
    if flags.contains(OFlags::CREATE) {
        return Err(OpError::new(Errno::INVAL, "O_CREAT in T_OPEN"));
    }
    let writes = flags.intersects(OFlags::WRONLY | OFlags::RDWR | OFlags::TRUNC | OFlags::APPEND);
    if ex.readonly && writes {
        return Err(OpError::new(Errno::ROFS, "read-only export"));
    }
    if flags.contains(OFlags::DIRECTORY) {
        // QEMU opens every directory it lists this way. O_DIRECTORY makes
        // the kernel check the type before it opens anything, atomically:
        // the check-then-reopen below is not needed, and three syscalls
        // are saved.
        return ex.open_directory(path, flags);
    }
    if !flags.contains(OFlags::PATH) {
        // One syscall where the kernel can check the type itself (Linux
        // 7.2's OPENAT2_REGULAR). EFTYPE: not a regular file, and nothing
        // was opened; a directory still opens below, anything else is
        // ENXIO there.
        match ex.open_regular(path, flags) {
            Some(Ok(fd)) => return Ok(fd),
            Some(Err(e)) if e.errno != crate::syscalls::EFTYPE => return Err(e),
            Some(Err(_)) | None => {}
        }
    }
    let follow = !flags.contains(OFlags::NOFOLLOW);
    let opath = ex.open(path, follow)?;
    open_checked(ex, &opath, flags)
}

/// T_CREATE: creates a regular file as the guest's uid/gid and opens it.
///
/// The file is created with `O_CREAT | O_EXCL | O_NOFOLLOW` in its parent,
/// so the open can only ever return a fresh regular file; when it exists and
/// the client did not ask for O_EXCL, the existing object is opened as
/// T_OPEN would (type checked first), still under the guest's identity.
pub fn create(
    ex: &Export,
    path: &[u8],
    flags: i32,
    mode: u32,
    uid: u32,
    gid: u32,
) -> OpResult<OwnedFd> {
    let flags = client_flags(flags)?;
    let exclusive = flags.contains(OFlags::EXCL);
    let (parent, name) = match ex.entry(path)? {
        // open(`name/`, O_CREAT) is EISDIR whatever `name` is.
        Target::Entry { slash: true, .. } => {
            return Err(OpError::new(Errno::ISDIR, "O_CREAT with a trailing slash"));
        }
        Target::Entry { parent, name, .. } => (parent, name),
        Target::Directory { .. } if exclusive => {
            return Err(OpError::new(Errno::EXIST, "create of a directory path"));
        }
        Target::Directory { .. } => {
            return Err(OpError::new(Errno::ISDIR, "create of a directory path"));
        }
    };
    let _identity = AssumedIdentity::assume(&ex.privileges, uid, gid)
        .ctx("switching to the guest's uid/gid")?;
    let create_flags = flags | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match openat(
        &parent,
        name.as_bytes(),
        create_flags,
        Mode::from_raw_mode(mode),
    ) {
        Err(Errno::EXIST) if !exclusive => {
            let opath = ex.open(path, true)?;
            open_checked(ex, &opath, flags)
        }
        other => other.ctx("openat O_CREAT"),
    }
}

/// T_GETVERSION: the inode generation number, on filesystems that have one
/// (the export's type is checked once at start-up); 0 elsewhere, without
/// looking at the path, as the original answers.
pub fn getversion(ex: &Export, path: &[u8]) -> OpResult<u64> {
    if !ex.getversion {
        return Ok(0);
    }
    let opath = ex.open(path, true)?;
    let fd = open_checked(ex, &opath, OFlags::RDONLY | OFlags::NONBLOCK)?;
    crate::syscalls::fs_ioc_getversion(fd.as_fd()).ctx("ioctl FS_IOC_GETVERSION")
}
