//! Step 1, in the launching process: the launcher's fds shed, the export
//! root and the endpoint (the socket file bound, or the `--fd` socket taken).

use crate::cli::Cli;
use crate::endpoint::{self, SocketFile};
use crate::error::SetupError;
use rustix::fd::OwnedFd;
use rustix::fs::{FileType, Mode, OFlags, open};
use rustix::io::Errno;

/// How QEMU's connection arrives.
pub(super) enum Endpoint {
    /// `--fd`: already connected.
    Connected(OwnedFd),
    /// `--socket`: bound and listening, not yet accepted.
    Listening(OwnedFd, SocketFile),
}

pub(super) fn open_root(cli: &Cli) -> Result<OwnedFd, SetupError> {
    // O_NOFOLLOW: the directory checked at start-up cannot have been swapped
    // for a symlink since.
    open(
        &cli.path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SetupError(format!("opening the export {}: {e}", cli.path.display())))
}

/// Before anything opens an fd (step 1 and `--sandbox-report` alike): of
/// what the launcher left open, only the standard streams and the `--fd`
/// socket stay. Anything else (a shell's `10</`, a service manager's
/// leftovers) would be held by the server through confinement and reach
/// the setuid `newuidmap`/`newgidmap`: a directory among them is a host
/// path beneath every layer. A standard stream the helper does not use
/// (stdin; stdout but for `--sandbox-report`'s report), or one that is a
/// directory, an `O_PATH` fd or `/dev/null`, becomes a dead pipe end
/// ([`dead_end`]). stderr carries the log in the foreground: a file or a
/// terminal there is the launcher's choice, and docs/security.md says what
/// a compromised server can do to it.
pub(super) fn shed_inherited(cli: &Cli) -> Result<(), SetupError> {
    // --sandbox-report serves no connection: its --fd goes too.
    let served = cli.fd.filter(|_| !cli.sandbox_report);
    crate::process::close_all_except(served.as_slice());
    for fd in 0..3 {
        let stream = crate::process::inherited_fd(fd);
        let st = rustix::fs::fstat(stream);
        let directory = st
            .as_ref()
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
        let path_only = rustix::fs::fcntl_getfl(stream).is_ok_and(|f| f.contains(OFlags::PATH));
        let dev_null = st.as_ref().is_ok_and(|st| {
            FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice
                && st.st_rdev == rustix::fs::makedev(1, 3)
        });
        let unused = fd == 0 || (fd == 1 && !cli.sandbox_report);
        if served != Some(fd) && (directory || path_only || dev_null || unused) {
            dead_end(fd)?;
        }
    }
    Ok(())
}

/// Makes standard stream `fd` (0, 1 or 2) one end of a pipe whose other
/// end is closed: reads see EOF, writes EPIPE (SIGPIPE is ignored). Not
/// `/dev/null`: that is a host inode, which a compromised server with
/// CAP_FOWNER and CAP_CHOWN could chmod or chown for the whole host
/// (`fchmodat(0, "", AT_EMPTY_PATH)`); a pipe is anonymous. Never closed
/// outright, so that no file opened later takes the number and gets log
/// lines written into it.
pub(super) fn dead_end(fd: i32) -> Result<(), SetupError> {
    let failed = |e: Errno| SetupError(format!("replacing standard stream {fd} with a pipe: {e}"));
    let (read_end, write_end) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(failed)?;
    match fd {
        0 => rustix::stdio::dup2_stdin(&read_end),
        1 => rustix::stdio::dup2_stdout(&write_end),
        _ => rustix::stdio::dup2_stderr(&write_end),
    }
    .map_err(failed)
}

/// Steps 1: the export root and the endpoint, in the launching process.
pub(super) fn launch(cli: &Cli) -> Result<(OwnedFd, Endpoint), SetupError> {
    let root = open_root(cli)?;
    let endpoint = match (&cli.socket, cli.fd, cli.uid, cli.gid) {
        (Some(path), _, Some(uid), Some(gid)) => {
            let (listener, file) = endpoint::listen_on(path, uid, gid)?;
            Endpoint::Listening(listener, file)
        }
        (None, Some(fd), _, _) => Endpoint::Connected(endpoint::take_inherited(fd)?),
        // clap requires exactly one of --fd and --socket, and --uid and
        // --gid with --socket.
        _ => return Err(SetupError("no connection to serve".into())),
    };
    Ok((root, endpoint))
}
