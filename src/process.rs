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

/// Unblocks `signals` for this thread.
pub fn unblock(signals: &[libc::c_int]) {
    // SAFETY: a local sigset_t, initialised by sigemptyset before use;
    // pthread_sigmask only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &sig in signals {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
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
/// that must not hold the listener, the export or the daemon's ready pipe,
/// and at start-up for whatever the launcher left open.
///
/// One `close_range` per span between kept fds; where the kernel or a
/// container's seccomp profile refuses it, one `close` per fd number up to
/// [`fd_bound`] (see [`close_all_except_with`]).
pub fn close_all_except(keep: &[i32]) {
    close_all_except_with(
        keep,
        fd_bound,
        // SAFETY: `close_all_except_with` passes spans that hold no kept
        // fd; this process owns every other fd from 3 up and, by this
        // function's contract, uses none of them again.
        |first, last| unsafe { crate::syscalls::close_range(first, last) }.is_ok(),
        |fd| close_raw(fd as libc::c_int),
    );
}

/// What [`close_all_except`] decides, apart from the closing itself (so
/// that tests can run it without closing their own fds): every span of fd
/// numbers from 3 up that holds no fd of `keep` goes to `close_range`
/// (first, last), in ascending order; a span it refuses (returns false)
/// goes to `close_one` fd by fd, up to one below `bound()`, called at most
/// once and only then. `keep` may be in any order, hold duplicates, or
/// numbers below 3 (never closed anyway); negative ones name no fd.
/// Allocates nothing: it runs in freshly forked children.
pub fn close_all_except_with(
    keep: &[i32],
    bound: impl FnOnce() -> u32,
    mut close_range: impl FnMut(u32, u32) -> bool,
    mut close_one: impl FnMut(u32),
) {
    let mut bound = Some(bound);
    let mut limit = None;
    let mut close_span = |first: u32, last: u32| {
        if close_range(first, last) {
            return;
        }
        let end = *limit.get_or_insert_with(|| bound.take().map_or(0, |f| f()));
        // Every fd of the span, its last one included: an fd at or above
        // `end` cannot be open.
        for fd in first..=last.min(end.saturating_sub(1)) {
            close_one(fd);
        }
    };
    let mut first = 3u32;
    loop {
        // The lowest kept fd not yet passed: `keep` is searched again each
        // time rather than sorted, which would need a copy.
        let next = keep
            .iter()
            .filter_map(|&k| u32::try_from(k).ok())
            .filter(|&k| k >= first)
            .min();
        match next {
            Some(k) => {
                if k > first {
                    close_span(first, k - 1);
                }
                // k <= i32::MAX: no overflow.
                first = k + 1;
            }
            None => {
                close_span(first, u32::MAX);
                return;
            }
        }
    }
}

/// One past the highest fd number that can be open in this process, for
/// closing fds one at a time: the RLIMIT_NOFILE hard limit (the kernel
/// gives out no fd at or above the soft limit, which never exceeds it),
/// capped at 2^20, the default `fs.nr_open` (each number tried costs a
/// `close`); higher where `/proc/self/fd` lists a higher fd, as it does for
/// one opened before the limit was lowered. Without procfs the limit alone
/// counts.
pub fn fd_bound() -> u32 {
    use rustix::process::{Resource, getrlimit};
    const CAP: u64 = 1 << 20;
    let limits = getrlimit(Resource::Nofile);
    let limit = [limits.current, limits.maximum]
        .into_iter()
        .map(|l| l.unwrap_or(CAP).min(CAP))
        .max()
        .unwrap_or(CAP) as u32;
    limit.max(highest_listed_fd().map_or(0, |fd| fd.saturating_add(1)))
}

/// The highest fd number `/proc/self/fd` lists (the listing's own fd
/// left out), where that is a procfs; `None` without one. Allocates
/// nothing.
pub fn highest_listed_fd() -> Option<u32> {
    use rustix::fs::{Mode, OFlags, RawDir};
    let dir = rustix::fs::open(
        "/proc/self/fd",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    // Anything else mounted there (a tmpfs hiding procfs) lists nothing
    // this process holds.
    if rustix::fs::fstatfs(&dir).ok()?.f_type != rustix::fs::PROC_SUPER_MAGIC {
        return None;
    }
    let own = rustix::fd::AsRawFd::as_raw_fd(&dir) as u32;
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 2048];
    let mut entries = RawDir::new(&dir, &mut buf);
    let mut highest = None;
    while let Some(entry) = entries.next() {
        let Ok(entry) = entry else { break };
        let fd = std::str::from_utf8(entry.file_name().to_bytes())
            .ok()
            .and_then(|name| name.parse::<u32>().ok());
        if let Some(fd) = fd.filter(|&fd| fd != own) {
            highest = highest.max(Some(fd));
        }
    }
    highest
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

/// The server's watch on its parent, the waiter outside the pid namespace
/// (`crate::sandbox::namespace`): the read end of a pipe whose only write
/// end the waiter holds, non-blocking, beside `PR_SET_PDEATHSIG`.
///
/// The kernel clears the parent-death signal whenever the effective or
/// filesystem ids change, or capabilities are raised back: every creation
/// under a guest's identity does both. [`ParentWatch::rearm`] sets it again
/// after each such change, then reads the pipe: the waiter's write end is
/// closed when it exits, before the kernel would send the signal, so a
/// waiter that died while the signal was cleared shows as EOF.
#[derive(Debug)]
pub struct ParentWatch(OwnedFd);

impl ParentWatch {
    /// Takes the pipe's read end (the write end already closed here).
    pub fn new(read_end: OwnedFd) -> Self {
        ParentWatch(read_end)
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        rustix::fd::AsFd::as_fd(&self.0)
    }

    /// Arms `PR_SET_PDEATHSIG` (SIGKILL) again; false when the parent has
    /// already gone, so the caller must end.
    pub fn rearm(&self) -> bool {
        let _ =
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
        self.parent_alive()
    }

    /// Whether the write end is still open: EAGAIN on the empty pipe.
    pub fn parent_alive(&self) -> bool {
        let mut byte = [0u8; 1];
        loop {
            match rustix::io::read(&self.0, &mut byte) {
                Err(rustix::io::Errno::INTR) => continue,
                Ok(0) => return false,
                _ => return true,
            }
        }
    }
}

/// One line (at most 4 KiB kept) from a pipe, without its newline; None at
/// EOF before one: how a companion process tells the server how its
/// confinement went.
pub fn read_line(fd: &OwnedFd) -> Option<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match rustix::io::read(fd, &mut byte) {
            Err(rustix::io::Errno::INTR) => continue,
            Ok(1) if byte[0] == b'\n' => return Some(String::from_utf8_lossy(&line).into_owned()),
            Ok(1) if line.len() < 4096 => line.push(byte[0]),
            Ok(1) => {}
            _ => return None,
        }
    }
}
