//! The `*xattrat` calls (Linux 6.13): extended attributes of the inode an
//! `O_PATH` fd holds, without procfs. Only where [`super::Features`] says
//! the kernel has them.

use super::{SYS_GETXATTRAT, SYS_LISTXATTRAT, SYS_REMOVEXATTRAT, SYS_SETXATTRAT, ret};
use rustix::fd::{AsRawFd, BorrowedFd};
use rustix::io::Errno;

/// `struct xattr_args` of the `*xattrat` calls.
#[repr(C)]
struct XattrArgs {
    value: u64,
    size: u32,
    flags: u32,
}

/// `getxattrat(dir, name, AT_SYMLINK_NOFOLLOW, attr)`; `value` None asks
/// for the length.
pub fn getxattrat(
    dir: BorrowedFd<'_>,
    name: &std::ffi::CStr,
    attr: &std::ffi::CStr,
    value: Option<&mut [u8]>,
) -> Result<usize, Errno> {
    let (ptr, len) = value.map_or((std::ptr::null_mut(), 0), |v| (v.as_mut_ptr(), v.len()));
    let mut args = XattrArgs {
        value: ptr as u64,
        size: len as u32,
        flags: 0,
    };
    // SAFETY: NUL-terminated strings; `args` describes `len` writable bytes
    // (or none), and its size is passed as the kernel expects.
    unsafe {
        ret(libc::syscall(
            SYS_GETXATTRAT,
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            attr.as_ptr(),
            &mut args as *mut XattrArgs,
            std::mem::size_of::<XattrArgs>(),
        ))
    }
}

/// `listxattrat(dir, name, AT_SYMLINK_NOFOLLOW)`; `list` None asks for the
/// length.
pub fn listxattrat(
    dir: BorrowedFd<'_>,
    name: &std::ffi::CStr,
    list: Option<&mut [u8]>,
) -> Result<usize, Errno> {
    let (ptr, len) = list.map_or((std::ptr::null_mut(), 0), |v| (v.as_mut_ptr(), v.len()));
    // SAFETY: a NUL-terminated name and `len` writable bytes at `ptr`.
    unsafe {
        ret(libc::syscall(
            SYS_LISTXATTRAT,
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            ptr,
            len,
        ))
    }
}

/// `setxattrat(dir, name, AT_SYMLINK_NOFOLLOW, attr, value, flags)`.
pub fn setxattrat(
    dir: BorrowedFd<'_>,
    name: &std::ffi::CStr,
    attr: &std::ffi::CStr,
    value: &[u8],
    flags: u32,
) -> Result<(), Errno> {
    let args = XattrArgs {
        value: value.as_ptr() as u64,
        size: value.len() as u32,
        flags,
    };
    // SAFETY: NUL-terminated strings; `args` describes `value`, which is only
    // read, and its size is passed as the kernel expects.
    unsafe {
        ret(libc::syscall(
            SYS_SETXATTRAT,
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            attr.as_ptr(),
            &args as *const XattrArgs,
            std::mem::size_of::<XattrArgs>(),
        ))
    }
    .map(drop)
}

/// `removexattrat(dir, name, AT_SYMLINK_NOFOLLOW, attr)`.
pub fn removexattrat(
    dir: BorrowedFd<'_>,
    name: &std::ffi::CStr,
    attr: &std::ffi::CStr,
) -> Result<(), Errno> {
    // SAFETY: NUL-terminated strings only.
    unsafe {
        ret(libc::syscall(
            SYS_REMOVEXATTRAT,
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            attr.as_ptr(),
        ))
    }
    .map(drop)
}
