//! Newer syscalls rustix does not wrap yet, each probed once at start-up so
//! the helper uses them where the kernel has them and falls back to
//! `/proc/self/fd` elsewhere:
//! - `fchmodat2(fd, "", mode, AT_EMPTY_PATH)` (Linux 6.6): chmod of the
//!   inode an `O_PATH` fd holds, with no procfs lookup;
//! - `getxattrat`, `listxattrat`, `setxattrat`, `removexattrat` (Linux
//!   6.13): xattr calls on a directory fd and one name, with
//!   `AT_SYMLINK_NOFOLLOW`.
//!
//! - `utimensat(fd, "", times, AT_EMPTY_PATH)` (Linux 5.8): times of the
//!   inode an `O_PATH` fd holds, without looking its name up again;
//! - `close_range` (Linux 5.9): closing a batch of fds in one call
//!   ([`crate::deferred_close`]);
//! - `openat(fd, "", flags | O_EMPTYPATH)` (Linux 7.2): reopening the inode
//!   an `O_PATH` fd holds without going through `/proc/self/fd`;
//! - `openat2` with `OPENAT2_REGULAR` (Linux 7.2): an open that fails with
//!   EFTYPE, before opening anything, unless the object is a regular file;
//!   T_OPEN of a file becomes one syscall.
//!
//! Each cuts a lookup or a syscall from a request: a procfs lookup (about
//! 0.7 µs here) from every T_CHMOD and xattr request, a second lookup of the
//! name from T_UTIME, one `close` from most requests.

use rustix::fd::{AsRawFd, BorrowedFd, IntoRawFd, OwnedFd};
use rustix::io::Errno;
use std::ffi::CString;

mod xattr;
pub use self::xattr::{getxattrat, listxattrat, removexattrat, setxattrat};

const SYS_FCHMODAT2: libc::c_long = 452;
// The same numbers on every architecture (the unified syscall table).
const SYS_SETXATTRAT: libc::c_long = 463;
const SYS_GETXATTRAT: libc::c_long = 464;
const SYS_LISTXATTRAT: libc::c_long = 465;
const SYS_REMOVEXATTRAT: libc::c_long = 466;

/// Syscall numbers for the seccomp allow-list.
pub const NUMBERS: [(libc::c_long, &str); 6] = [
    (
        libc::SYS_close_range,
        "closing resolved O_PATH fds in batches",
    ),
    (SYS_FCHMODAT2, "T_CHMOD on an O_PATH fd"),
    (SYS_GETXATTRAT, "T_LGETXATTR on parent fd + name"),
    (SYS_LISTXATTRAT, "T_LLISTXATTR on parent fd + name"),
    (SYS_SETXATTRAT, "T_LSETXATTR on parent fd + name"),
    (SYS_REMOVEXATTRAT, "T_LREMOVEXATTR on parent fd + name"),
];

/// Which of these syscalls the running kernel has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    pub fchmodat2: bool,
    pub xattrat: bool,
    /// `utimensat` takes `AT_EMPTY_PATH`.
    pub utimensat_empty_path: bool,
    pub close_range: bool,
    /// `openat` takes `O_EMPTYPATH`, proven by reopening the root.
    pub reopen_empty_path: bool,
    /// `openat2` takes `OPENAT2_REGULAR`, proven by its EFTYPE for the root.
    pub openat2_regular: bool,
}

impl Features {
    /// Asks the kernel with harmless calls on `root`: ENOSYS (or a seccomp
    /// profile's EPERM) means missing.
    pub fn probe(root: BorrowedFd<'_>) -> Self {
        let missing = |r: Result<usize, Errno>| matches!(r, Err(Errno::NOSYS | Errno::PERM));
        // An invalid mode bit pattern is refused before anything changes:
        // flags 0x8000_0000 are not valid AT_ flags, so the call fails with
        // EINVAL where it exists.
        // SAFETY: a valid fd, a NUL-terminated empty path, no pointers out.
        let chmod = unsafe {
            ret(libc::syscall(
                SYS_FCHMODAT2,
                root.as_raw_fd(),
                c"".as_ptr(),
                0,
                0x8000_0000u32,
            ))
        };
        let xattr = getxattrat(root, c".", c"user.virtfs-proxy-helper-probe", None);
        // Both times UTIME_OMIT: nothing changes where the flag is known;
        // kernels before 5.8 refuse the flag with EINVAL.
        let omit = rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        };
        let times = rustix::fs::Timestamps {
            last_access: omit,
            last_modification: omit,
        };
        let utimensat =
            rustix::fs::utimensat(root, "", &times, rustix::fs::AtFlags::EMPTY_PATH).is_ok();
        // An empty range (first > last) is EINVAL where the call exists.
        // SAFETY: closes nothing: the range is empty.
        let close_range = unsafe { ret(libc::syscall(libc::SYS_close_range, 1u32, 0u32, 0u32)) };
        Features {
            fchmodat2: !missing(chmod),
            xattrat: !missing(xattr),
            utimensat_empty_path: utimensat,
            close_range: !missing(close_range),
            reopen_empty_path: probe_reopen_empty_path(root),
            openat2_regular: probe_openat2_regular(root),
        }
    }

    /// Whether serving needs no procfs at all: every reopen has
    /// `O_EMPTYPATH`, chmod has `fchmodat2`, and the xattr calls have their
    /// `*xattrat` forms, so `/proc/self/fd` is never looked at.
    pub fn procfs_free(&self) -> bool {
        self.reopen_empty_path && self.fchmodat2 && self.xattrat
    }
}

/// `OPENAT2_REGULAR` in `open_how.flags` (`linux/openat2.h`, Linux 7.2).
pub const OPENAT2_REGULAR: u64 = 1 << 32;
/// What openat2 answers with `OPENAT2_REGULAR` for anything but a regular
/// file (`asm-generic/errno.h`, Linux 7.2).
pub const EFTYPE: Errno = Errno::from_raw_os_error(134);

/// `struct open_how`.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(dirfd, path, {flags, 0, resolve})` with flags wider than
/// `OFlags` can carry (`OPENAT2_REGULAR` is bit 32).
pub fn openat2_wide(
    dirfd: BorrowedFd<'_>,
    path: &std::ffi::CStr,
    flags: u64,
    resolve: u64,
) -> Result<rustix::fd::OwnedFd, Errno> {
    let how = OpenHow {
        flags,
        mode: 0,
        resolve,
    };
    // SAFETY: a NUL-terminated path and an `open_how` of the size passed,
    // both alive for the call; the kernel returns a new fd or an error.
    let fd = unsafe {
        ret(libc::syscall(
            libc::SYS_openat2,
            dirfd.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        ))
    }?;
    // SAFETY: openat2 succeeded, so `fd` is a new descriptor owned by no one
    // else.
    Ok(unsafe { <rustix::fd::OwnedFd as rustix::fd::FromRawFd>::from_raw_fd(fd as i32) })
}

/// Whether `openat2` knows `OPENAT2_REGULAR`: asked to open the root (a
/// directory) with it, a kernel with the flag answers EFTYPE; one without
/// refuses the unknown bit with EINVAL.
fn probe_openat2_regular(root: BorrowedFd<'_>) -> bool {
    let flags = (libc::O_RDONLY | libc::O_CLOEXEC) as u64 | OPENAT2_REGULAR;
    let resolve = rustix::fs::ResolveFlags::BENEATH.bits();
    matches!(openat2_wide(root, c".", flags, resolve), Err(e) if e == EFTYPE)
}

/// `O_EMPTYPATH` where its value is the generic one (the architectures with
/// their own `O_*` numbering are left out: there the probe says no).
const O_EMPTYPATH: Option<u32> = if cfg!(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64",
    target_arch = "loongarch64",
    target_arch = "s390x",
)) {
    Some(1 << 26)
} else {
    None
};

/// Whether `openat(fd, "", O_EMPTYPATH)` reopens `fd`'s inode. Older
/// kernels drop the unknown bit and answer ENOENT for the empty path, so
/// only a kernel with the flag can pass: the reopened fd must be the root.
fn probe_reopen_empty_path(root: BorrowedFd<'_>) -> bool {
    let Some(flag) = O_EMPTYPATH else {
        return false;
    };
    let flags = rustix::fs::OFlags::RDONLY
        | rustix::fs::OFlags::DIRECTORY
        | rustix::fs::OFlags::CLOEXEC
        | rustix::fs::OFlags::from_bits_retain(flag);
    let Ok(reopened) = rustix::fs::openat(root, "", flags, rustix::fs::Mode::empty()) else {
        return false;
    };
    match (rustix::fs::fstat(root), rustix::fs::fstat(&reopened)) {
        (Ok(a), Ok(b)) => (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino),
        _ => false,
    }
}

/// Opens exactly the inode `fd` (an `O_PATH` fd) holds, with `flags`:
/// `openat(fd, "", flags | O_EMPTYPATH)`. Only where
/// [`Features::reopen_empty_path`] says the kernel has it.
pub fn reopen_empty_path(
    fd: BorrowedFd<'_>,
    flags: rustix::fs::OFlags,
) -> Result<rustix::fd::OwnedFd, Errno> {
    let flag = O_EMPTYPATH.ok_or(Errno::NOSYS)?;
    rustix::fs::openat(
        fd,
        "",
        flags | rustix::fs::OFlags::from_bits_retain(flag),
        rustix::fs::Mode::empty(),
    )
}

fn ret(r: libc::c_long) -> Result<usize, Errno> {
    if r < 0 {
        Err(Errno::from_raw_os_error(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        ))
    } else {
        Ok(r as usize)
    }
}

/// `close_range(first, last, 0)`: closes every fd from `first` to `last`.
///
/// # Safety
/// The caller owns every fd in the range and none is used afterwards.
pub unsafe fn close_range(first: u32, last: u32) -> Result<(), Errno> {
    // SAFETY: the caller's contract; no pointers.
    unsafe { ret(libc::syscall(libc::SYS_close_range, first, last, 0u32)) }.map(drop)
}

/// A name for a syscall: one terminating NUL added, any inner NUL refused.
/// Kept on the stack when it fits, as every name the kernel accepts does
/// (NAME_MAX and XATTR_NAME_MAX are 255); a longer one goes to the heap so
/// that the kernel still gives its own answer (ENAMETOOLONG, ERANGE).
pub fn c_name(bytes: &[u8]) -> Result<CName, Errno> {
    if bytes.contains(&0) {
        return Err(Errno::INVAL);
    }
    if bytes.len() < CName::STACK {
        let mut buf = [0u8; CName::STACK];
        buf[..bytes.len()].copy_from_slice(bytes);
        return Ok(CName::Stack {
            buf,
            len: bytes.len(),
        });
    }
    CString::new(bytes)
        .map(CName::Heap)
        .map_err(|_| Errno::INVAL)
}

/// A NUL-terminated name made by [`c_name`].
// Large on purpose: the point is to keep the usual name off the heap.
#[allow(clippy::large_enum_variant)]
pub enum CName {
    Stack { buf: [u8; CName::STACK], len: usize },
    Heap(CString),
}

impl CName {
    const STACK: usize = 256;

    pub fn as_c_str(&self) -> &std::ffi::CStr {
        match self {
            CName::Stack { buf, len } => std::ffi::CStr::from_bytes_with_nul(&buf[..=*len])
                .expect("one NUL, at the end: checked by c_name"),
            CName::Heap(c) => c.as_c_str(),
        }
    }
}

/// chmod of exactly the inode `fd` holds (an `O_PATH` fd is fine).
pub fn fchmod_fd(fd: BorrowedFd<'_>, mode: u32) -> Result<(), Errno> {
    // SAFETY: a valid fd and a NUL-terminated empty path; nothing is written
    // through any pointer.
    unsafe {
        ret(libc::syscall(
            SYS_FCHMODAT2,
            fd.as_raw_fd(),
            c"".as_ptr(),
            mode,
            libc::AT_EMPTY_PATH,
        ))
    }
    .map(drop)
}

/// `FS_IOC_GETVERSION`, `_IOR('v', 1, long)`.
const FS_IOC_GETVERSION: rustix::ioctl::Opcode =
    rustix::ioctl::opcode::read::<core::ffi::c_long>(b'v', 1);

/// The inode generation number (`FS_IOC_GETVERSION`) of an open file.
pub fn fs_ioc_getversion(fd: BorrowedFd<'_>) -> Result<u64, Errno> {
    // The kernel stores an int; the rest of the zeroed u64 stays 0 (the
    // original sent that half uninitialised).
    let mut version: u64 = 0;
    // SAFETY: FS_IOC_GETVERSION writes at most sizeof(long) == 8 bytes
    // through the pointer, and `version` is an initialised, writable u64.
    unsafe {
        rustix::ioctl::ioctl(
            fd,
            rustix::ioctl::Updater::<{ FS_IOC_GETVERSION }, u64>::new(&mut version),
        )
    }?;
    Ok(version)
}

/// The Landlock ABI version the running kernel offers (0: none).
pub fn landlock_abi() -> i64 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: the documented version query: NULL attributes, size 0.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    v.max(0)
}

/// The two ints of a statfs's `f_fsid`, which rustix keeps private.
pub fn fsid_halves(st: &rustix::fs::StatFs) -> [i32; 2] {
    // SAFETY: rustix's `Fsid` is `#[repr(C)] struct { val: [c_int; 2] }`
    // (the kernel's `__kernel_fsid_t`); the two types have the same size and
    // layout, and every bit pattern is valid for both.
    unsafe { std::mem::transmute(st.f_fsid) }
}

/// Closes the leading run of `fds` whose numbers ascend one by one (at
/// least the first fd) and takes it out of `fds`: with one `close_range`
/// where the run is longer than one, else, or where `close_range` fails,
/// one `close` each.
pub fn close_leading_run(fds: &mut Vec<OwnedFd>) {
    let Some(first) = fds.first().map(AsRawFd::as_raw_fd) else {
        return;
    };
    let run = fds
        .iter()
        .enumerate()
        .take_while(|(i, fd)| fd.as_raw_fd() == first + *i as i32)
        .count();
    if run > 1 {
        let last = first + run as i32 - 1;
        // SAFETY: the fds numbered `first` to `last` are exactly the
        // `OwnedFd`s of `fds[..run]` (counted just above), owned through
        // `fds`; on success they are taken out and forgotten below, so none
        // is closed twice or used afterwards.
        if unsafe { close_range(first as u32, last as u32) }.is_ok() {
            fds.drain(..run).for_each(|fd| {
                let _ = fd.into_raw_fd();
            });
            return;
        }
    }
    // Dropping closes them one by one.
    drop(fds.drain(..run));
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, {set})` (Linux
/// 5.12): sets mount attributes (`MOUNT_ATTR_*`) on the mount tree `fd`
/// refers to, leaving every other attribute as it is. ENOSYS before 5.12.
pub fn mount_setattr_recursive(fd: BorrowedFd<'_>, set: u64) -> Result<(), Errno> {
    /// `struct mount_attr` (linux/mount.h), version 0.
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const SYS_MOUNT_SETATTR: libc::c_long = 442;
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: the path is a static empty C string; `attr` lives across the
    // call and its size is passed; the kernel only reads both.
    unsafe {
        ret(libc::syscall(
            SYS_MOUNT_SETATTR,
            fd.as_raw_fd(),
            c"".as_ptr(),
            (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        ))
    }
    .map(drop)
}

/// `SO_PEERCRED`: the peer's pid (0 when it lies outside this process's
/// pid namespace, which rustix's `socket_peercred` cannot express), uid
/// and gid, as this process's namespaces see them.
pub fn peer_credentials(sock: BorrowedFd<'_>) -> Result<(i32, u32, u32), Errno> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are locals that outlive the call; the kernel
    // writes at most `len` bytes into `cred`.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    ret(rc as libc::c_long).map(|_| (cred.pid, cred.uid, cred.gid))
}
