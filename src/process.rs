//! Process calls: fork, wait, `_exit`, signal masks and handlers, naming a
//! process, closing the fds a child must not keep. The one room where they
//! need `unsafe` (file syscalls have theirs in [`crate::syscalls`]); each
//! use says why it is sound. Namespace calls belong here too.
//!
//! Every function here is async-signal-safe unless it says otherwise, so
//! the signal handler (`crate::signals`) and freshly forked children may
//! call them.

use rustix::fd::{BorrowedFd, FromRawFd, OwnedFd};
use std::io;

/// Which side of a [`fork`] this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    Child,
    Parent(libc::pid_t),
}

/// fork(2). The helper never starts a thread, so the child may run any
/// code, allocation included; it must end in [`exit_now`], never return
/// into the parent's control flow past its own work.
pub fn fork() -> io::Result<Forked> {
    // SAFETY: the process is single-threaded (the helper starts no thread;
    // tracing and clap start none), so the child inherits consistent locks
    // and allocator state.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// `_exit(2)`: ends a forked child (or the process from a signal handler)
/// without the parent's destructors, atexit handlers or stdio flushes.
pub fn exit_now(status: i32) -> ! {
    // SAFETY: _exit takes no pointers and never returns.
    unsafe { libc::_exit(status) }
}

/// Waits for child `pid` to end, retrying on EINTR; its wait status.
pub fn wait(pid: libc::pid_t) -> io::Result<i32> {
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child into a local status word.
        if unsafe { libc::waitpid(pid, &mut status, 0) } >= 0 {
            return Ok(status);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Closes a raw fd this process owns and never uses again (for a signal
/// handler, which cannot drop an `OwnedFd` it does not hold).
pub fn close_raw(fd: libc::c_int) {
    // SAFETY: the caller owns `fd` and gives up every use of it.
    unsafe { libc::close(fd) };
}

/// A signal mask to put back with [`SignalMask::restore`].
pub struct SignalMask(libc::sigset_t);

impl SignalMask {
    /// Blocks `signals` for this thread; returns the mask before.
    pub fn block(signals: &[libc::c_int]) -> Self {
        // SAFETY: sigset_t is plain data, initialised by sigemptyset before
        // use; pthread_sigmask only reads `set` and writes `old`.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &sig in signals {
                libc::sigaddset(&mut set, sig);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            SignalMask(old)
        }
    }

    pub fn restore(&self) {
        // SAFETY: the mask came from pthread_sigmask.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}

/// Ignores `signals` (SIG_IGN).
pub fn ignore(signals: &[libc::c_int]) {
    for &sig in signals {
        // SAFETY: a constant disposition; no handler runs.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
}

/// Installs `handler` for `sig`, with `also_blocked` blocked while it runs.
/// The handler must make async-signal-safe calls only.
pub fn on_signal(
    sig: libc::c_int,
    handler: extern "C" fn(libc::c_int),
    also_blocked: &[libc::c_int],
) -> io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value;
    // the handler is an `extern "C" fn(c_int)`, as sa_handler expects.
    let rc = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as *const () as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        for &other in also_blocked {
            libc::sigaddset(&mut action.sa_mask, other);
        }
        libc::sigaction(sig, &action, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Names this process (what `ps` and `top` show), at most 15 bytes.
pub fn set_name(name: &std::ffi::CStr) {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16
    // bytes; `name` is NUL-terminated and the kernel truncates longer ones.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
}

/// Closes every fd from 3 up except `keep`: for a freshly forked child
/// that must not hold the listener, the export or the daemon's ready pipe.
pub fn close_all_except(keep: &[i32]) {
    let mut keep = keep.to_vec();
    keep.sort_unstable();
    let mut first = 3u32;
    for k in keep.iter().map(|&k| k as u32).chain([u32::MAX]) {
        if k > first {
            // SAFETY: this child owns every fd in the range and uses none of
            // them again; the kept ones are outside it.
            let closed = unsafe { crate::syscalls::close_range(first, k - 1) };
            if closed.is_err() {
                // close_range is missing before Linux 5.9: one at a time.
                for fd in first..(k - 1).min(65_536) {
                    close_raw(fd as i32);
                }
            }
        }
        first = k.saturating_add(1);
    }
}

/// An fd number this process inherited (`--fd`), borrowed to inspect it.
/// Any number is fine: calls on a closed one fail cleanly (EBADF).
pub fn inherited_fd(fd: i32) -> BorrowedFd<'static> {
    // SAFETY: only used to inspect what the number refers to, before
    // anything in this process opens or closes fds; nothing closes it
    // while borrowed.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// Takes ownership of an inherited fd, once checked to be open and meant
/// for this process (`--fd`).
pub fn own_inherited_fd(fd: i32) -> OwnedFd {
    // SAFETY: the caller checked the fd is open and was handed to this
    // process to own; nothing else in it refers to the number.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Waits for any child to end, retrying on EINTR: its pid and wait status.
/// ECHILD when none is left.
pub fn wait_any() -> io::Result<(libc::pid_t, i32)> {
    let mut status = 0;
    loop {
        // SAFETY: waits for any child of ours into a local status word.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid >= 0 {
            return Ok((pid, status));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Sends `sig` to process `pid` (errors ignored: the process may be gone).
pub fn kill(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: no pointers; a pid of ours.
    unsafe { libc::kill(pid, sig) };
}

/// The exit status a shell would report for a wait status: the code, or
/// 128 + the signal that ended the process.
pub fn status_code(status: i32) -> u8 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status) as u8
    } else {
        128u8.wrapping_add(libc::WTERMSIG(status) as u8)
    }
}

/// unshare(2) for namespaces only: `flags` must not hold `CLONE_FILES`
/// or `CLONE_FS`-style flags that split state other threads share.
pub fn unshare_namespaces(flags: rustix::thread::UnshareFlags) -> io::Result<()> {
    use rustix::thread::UnshareFlags as F;
    let namespaces =
        F::NEWNS | F::NEWUSER | F::NEWPID | F::NEWNET | F::NEWIPC | F::NEWUTS | F::NEWCGROUP;
    if !namespaces.contains(flags) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: only namespace flags (checked above), never CLONE_FILES,
    // whose hazard (fds other threads see) is why rustix marks unshare
    // unsafe; the helper is single-threaded anyway.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(io::Error::from)
}

/// Ends this process with signal `sig`, as a child that died of it did:
/// the default disposition back, the signal unblocked and raised. Exits
/// 128 + `sig` if the signal does not end the process.
pub fn reset_and_raise(sig: libc::c_int) -> ! {
    // SAFETY: a constant disposition, a local signal set, and raise; no
    // handler of ours runs.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
    }
    exit_now(128 + sig)
}

/// Reads raw fd `fd` until EOF or an error other than EINTR: for a signal
/// handler waiting on a pipe it cannot hold as an `OwnedFd`.
pub fn read_until_eof_raw(fd: libc::c_int) {
    let mut byte = 0u8;
    loop {
        // SAFETY: reads at most one byte into a local.
        let n = unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
        if n == 0 || (n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted) {
            return;
        }
    }
}
