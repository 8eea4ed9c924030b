//! SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2: logged, then the
//! helper exits with status 128 + the signal number (130, 143, 129, 131,
//! 138 and 140, as a shell reports them).
//!
//! The handler does everything itself, with async-signal-safe calls only: it
//! writes a line rendered in advance, lets the socket-file janitor remove
//! the socket file (see `crate::endpoint`) and waits for it, and calls
//! `_exit`. Doing the work in the handler, rather than setting a flag for
//! the loop, means no window in which a signal arrives just before a
//! blocking `accept` or `recv` and is never acted on; and it needs no
//! syscall beyond those the seccomp allow-list already has.

use crate::logging::Prerendered;
use crate::process;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};
use tracing::Level;

/// The signals handled, with the exit status each leads to.
/// The original dies of each of them by their default action; so does the
/// helper, with its socket file removed and a log line. As the init of a
/// pid namespace (`--sandbox namespace`) the server would otherwise ignore
/// every one of them sent from outside it.
pub const HANDLED: [(libc::c_int, &str, u8); 6] = [
    (libc::SIGINT, "SIGINT", 128 + libc::SIGINT as u8),
    (libc::SIGTERM, "SIGTERM", 128 + libc::SIGTERM as u8),
    (libc::SIGHUP, "SIGHUP", 128 + libc::SIGHUP as u8),
    (libc::SIGQUIT, "SIGQUIT", 128 + libc::SIGQUIT as u8),
    (libc::SIGUSR1, "SIGUSR1", 128 + libc::SIGUSR1 as u8),
    (libc::SIGUSR2, "SIGUSR2", 128 + libc::SIGUSR2 as u8),
];

static LINES: OnceLock<[Prerendered; HANDLED.len()]> = OnceLock::new();
/// The janitor's pipe (write end), its `done` pipe (read end) and pid
/// while it waits, or -1.
static JANITOR_PIPE: AtomicI32 = AtomicI32::new(-1);
static JANITOR_DONE: AtomicI32 = AtomicI32::new(-1);
static JANITOR_PID: AtomicI32 = AtomicI32::new(-1);

/// Installs the handlers. Call it in the process that serves (after
/// detaching): syslog lines carry its pid.
pub fn install() -> Result<(), std::io::Error> {
    let _ = LINES.set(HANDLED.map(|(_, name, status)| {
        Prerendered::new(
            Level::WARN,
            &format!("received {name}; exiting with status {status}"),
        )
    }));
    // The other handled signals are blocked while one is handled.
    let all = HANDLED.map(|(sig, _, _)| sig);
    for sig in all {
        process::on_signal(sig, on_signal, &all)?;
    }
    // Held since before the socket file was bound (`hold`): one that came
    // in between is handled now, the file removed.
    process::unblock(&all);
    Ok(())
}

/// Blocks the handled signals until [`install`] (or a process forked in
/// between, which installs its own handlers) unblocks them: from the bind
/// of the socket file on, none may end the helper before the janitor that
/// removes the file exists. SIGKILL cannot be held.
pub fn hold() {
    let _ = process::SignalMask::block(&HANDLED.map(|(sig, _, _)| sig));
}

/// Tells the handler about the janitor: on a signal, it closes `pipe` (the
/// janitor then removes the socket file), waits for EOF on `done` (the
/// file is gone) and reaps `pid` where it is our child.
pub fn watch_janitor(pipe: libc::c_int, done: libc::c_int, pid: libc::pid_t) {
    JANITOR_PID.store(pid, Ordering::SeqCst);
    JANITOR_DONE.store(done, Ordering::SeqCst);
    JANITOR_PIPE.store(pipe, Ordering::SeqCst);
}

/// The janitor is done (or its pipe is about to be closed elsewhere).
pub fn forget_janitor() {
    JANITOR_PIPE.store(-1, Ordering::SeqCst);
    JANITOR_DONE.store(-1, Ordering::SeqCst);
    JANITOR_PID.store(-1, Ordering::SeqCst);
}

extern "C" fn on_signal(sig: libc::c_int) {
    let index = HANDLED.iter().position(|&(s, _, _)| s == sig).unwrap_or(1);
    if let Some(lines) = LINES.get() {
        lines[index].emit();
    }
    let pipe = JANITOR_PIPE.swap(-1, Ordering::SeqCst);
    let done = JANITOR_DONE.swap(-1, Ordering::SeqCst);
    let pid = JANITOR_PID.swap(-1, Ordering::SeqCst);
    // The pipe fd belongs to the janitor handle, which is never used again:
    // the process exits here.
    if pipe >= 0 {
        process::close_raw(pipe);
    }
    if done >= 0 {
        process::read_until_eof_raw(done);
    }
    if pid > 0 {
        let _ = process::wait(pid);
    }
    process::exit_now(i32::from(HANDLED[index].2))
}
