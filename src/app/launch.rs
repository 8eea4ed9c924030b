//! Step 1, in the launching process: the launcher's fds shed, the
//! executable sealed where the server could reach it, the export root and
//! the endpoint (the socket file bound, or the `--fd` socket taken).

use super::Checked;
use crate::cli::Cli;
use crate::endpoint::{self, SocketFile};
use crate::error::SetupError;
use crate::sandbox;
use rustix::fd::{AsFd, OwnedFd};
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
/// path beneath every layer. A directory or an `O_PATH` fd on a standard
/// stream is one too, and so is any file on stdin or stdout, which a
/// serving helper never uses (a host file there could be read, or chowned
/// through `fchownat(0, "", AT_EMPTY_PATH)`, by a compromised server):
/// each becomes /dev/null rather than closed, so that no file opened later
/// takes its number and gets log lines written into it. stderr carries the
/// log in the foreground; docs/security.md says what that means.
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
        // stdout carries --sandbox-report's report.
        let unused = fd == 0 || (fd == 1 && !cli.sandbox_report);
        if served == Some(fd) || dev_null || !(directory || path_only || unused) {
            continue;
        }
        let failed = |what: &str, e: Errno| {
            SetupError(format!(
                "fd {fd}: a standard stream the helper does not use, or a host path it \
                 must not hold; {what} /dev/null to replace it: {e}"
            ))
        };
        let null = open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| failed("opening", e))?;
        match fd {
            0 => rustix::stdio::dup2_stdin(&null),
            1 => rustix::stdio::dup2_stdout(&null),
            _ => rustix::stdio::dup2_stderr(&null),
        }
        .map_err(|e| failed("duplicating", e))?;
    }
    Ok(())
}

/// Under `--sandbox chroot` or `none` the server holds the host's procfs
/// (where the kernel needs one), and through it `/proc/self/exe`, a magic
/// link to the host's binary that a server with CAP_CHOWN could chown:
/// there, every process of the helper runs from a sealed copy instead
/// ([`crate::executable::reexec_from_sealed_copy`], about 1.5 ms). The
/// namespace sandbox's server holds only `self/fd` of its own procfs, so
/// it needs none.
pub(super) fn seal_executable_where_reachable(cli: &Cli, checked: &Checked) {
    use sandbox::{Choice, SandboxRequest};
    if !matches!(
        checked.sandbox,
        SandboxRequest::Explicit(Choice::Chroot | Choice::None)
    ) {
        return;
    }
    let procfs_free = open_root(cli)
        .is_ok_and(|root| crate::syscalls::Features::probe(root.as_fd()).procfs_free());
    if !procfs_free {
        crate::executable::reexec_from_sealed_copy();
    }
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
