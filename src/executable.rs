//! Which executable the helper's processes run from.
//!
//! A process's `/proc/PID/exe` is a magic link to its executable. Where the
//! server holds the host's procfs (`--sandbox chroot` and `none`, on kernels
//! that need one), a compromised server with CAP_CHOWN and CAP_FOWNER could
//! reach the host's binary through it and chown or chmod it, and root runs
//! that file next time. There, the helper runs again from a sealed memfd
//! copy of itself ([`reexec_from_sealed_copy`], as runc does): what
//! `/proc/PID/exe` then leads to is anonymous and cannot change. (The
//! namespace sandbox's server keeps only `self/fd` of its own procfs, from
//! which no `exe` is in reach: `crate::procfs`.)

use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags};
use std::ffi::CString;

/// Why [`reexec_from_sealed_copy`] left this process running from the
/// host's binary, for the log (set at most once, before logging starts).
pub static NOT_SEALED: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Whether this process runs from a sealed memfd copy of its executable.
pub fn runs_from_sealed_copy() -> bool {
    rustix::fs::readlink("/proc/self/exe", Vec::new())
        .is_ok_and(|p| p.as_bytes().starts_with(b"/memfd:"))
}

/// Runs this program again, with the same arguments and environment, from
/// a sealed memfd copy of its own executable. Returns only when that is
/// done already or cannot be done (no procfs to read the executable from,
/// `vm.memfd_noexec=2`, ...); the reason is kept in [`NOT_SEALED`].
pub fn reexec_from_sealed_copy() {
    if runs_from_sealed_copy() {
        return;
    }
    let Err(why) = sealed_copy().and_then(|memfd| -> Result<std::convert::Infallible, String> {
        let args: Vec<CString> = std::env::args_os()
            .filter_map(|a| CString::new(a.into_encoded_bytes()).ok())
            .collect();
        let vars: Vec<CString> = std::env::vars_os()
            .filter_map(|(k, v)| {
                let mut kv = k.into_encoded_bytes();
                kv.push(b'=');
                kv.extend(v.into_encoded_bytes());
                CString::new(kv).ok()
            })
            .collect();
        let e = crate::syscalls::execveat_empty_path(&memfd, &args, &vars);
        Err(format!("execveat of the copy: {e}"))
    });
    let _ = NOT_SEALED.set(why);
}

/// A memfd holding a copy of `/proc/self/exe`, sealed against any change.
fn sealed_copy() -> Result<rustix::fd::OwnedFd, String> {
    let exe = rustix::fs::open(
        "/proc/self/exe",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("opening /proc/self/exe: {e}"))?;
    let size = rustix::fs::fstat(&exe)
        .map_err(|e| format!("fstat: {e}"))?
        .st_size as usize;
    let name = c"virtfs-proxy-helper";
    let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    // MFD_EXEC where vm.memfd_noexec asks for it (Linux 6.3+); older
    // kernels do not know the flag.
    let memfd = rustix::fs::memfd_create(name, flags | MemfdFlags::EXEC)
        .or_else(|_| rustix::fs::memfd_create(name, flags))
        .map_err(|e| format!("memfd_create: {e}"))?;
    let mut copied = 0;
    while copied < size {
        match rustix::fs::sendfile(&memfd, &exe, None, size - copied) {
            Ok(0) => break,
            Ok(n) => copied += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(format!("copying the executable: {e}")),
        }
    }
    if copied != size {
        return Err(format!("copying the executable: {copied} of {size} bytes"));
    }
    rustix::fs::fcntl_add_seals(
        &memfd,
        SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE,
    )
    .map_err(|e| format!("sealing the copy: {e}"))?;
    Ok(memfd)
}
