//! Detaching into the background without hiding failures.
//!
//! The launching process does not return until the detached helper says it
//! is ready (confined and about to wait for QEMU) or why it is not: the
//! helper writes one line to a pipe, `ready` or `error: MESSAGE`. So every
//! set-up failure reaches the terminal and the exit status, and a command
//! that returned 0 left a helper that is really serving.

use crate::error::SetupError;
use rustix::fd::OwnedFd;
use rustix::io::Errno;
use std::process::ExitCode;

/// Which side of the fork this is.
pub enum Detached {
    /// The launching process: it should exit with this status.
    Launcher(ExitCode),
    /// The detached helper, with the pipe to report on.
    Daemon(ReadyPipe),
}

/// The detached helper's end of the ready pipe.
#[derive(Debug)]
pub struct ReadyPipe(OwnedFd);

impl ReadyPipe {
    /// Set-up is complete: the launcher exits 0.
    pub fn ready(self) {
        let _ = write_all(&self.0, b"ready\n");
    }

    /// Set-up failed: the launcher prints `message` and exits 1.
    pub fn failed(self, message: &str) {
        let line = crate::logging::sanitize_line(message.as_bytes());
        let _ = write_all(&self.0, format!("error: {line}\n").as_bytes());
    }
}

fn write_all(fd: &OwnedFd, mut bytes: &[u8]) -> Result<(), Errno> {
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Forks the daemon (new session, working directory `/`, standard streams
/// on /dev/null) and, in the launcher, waits for its report.
pub fn detach() -> Result<Detached, SetupError> {
    let (read_end, write_end) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| SetupError::from(("creating the ready pipe", e)))?;
    match daemonize::Daemonize::new().working_directory("/").execute() {
        daemonize::Outcome::Parent(Ok(_)) => {
            drop(write_end);
            // The daemon (in a session of its own) holds the socket file
            // now; the launcher may be interrupted while it waits.
            crate::process::unblock(&crate::signals::HANDLED.map(|h| h.0));
            Ok(Detached::Launcher(wait_for_report(read_end)))
        }
        daemonize::Outcome::Parent(Err(e)) => Err(SetupError::from(("daemonizing", e))),
        daemonize::Outcome::Child(Ok(_)) => {
            drop(read_end);
            Ok(Detached::Daemon(ReadyPipe(write_end)))
        }
        daemonize::Outcome::Child(Err(e)) => {
            ReadyPipe(write_end).failed(&format!("daemonizing: {e}"));
            std::process::exit(1);
        }
    }
}

fn wait_for_report(pipe: OwnedFd) -> ExitCode {
    let mut report = Vec::new();
    let mut buf = [0u8; 4096];
    // Until EOF: the daemon closes its end after reporting, or by exiting.
    while report.len() < 64 * 1024 {
        match rustix::io::read(&pipe, &mut buf) {
            Ok(0) => break,
            Ok(n) => report.extend_from_slice(&buf[..n]),
            Err(Errno::INTR) => {}
            Err(_) => break,
        }
        if report.ends_with(b"\n") {
            break;
        }
    }
    let report = String::from_utf8_lossy(&report);
    let program = crate::logging::PROGRAM;
    match report.trim_end() {
        "ready" => ExitCode::SUCCESS,
        line => {
            match line.strip_prefix("error: ") {
                Some(message) => eprintln!("{program}: {message}"),
                None => eprintln!("{program}: the helper exited during set-up; see syslog"),
            }
            ExitCode::FAILURE
        }
    }
}
