//! Start-up: from a parsed command line to a confined helper serving one
//! connection. The order matters and follows the original where it can:
//! socket, daemon, log, root fd, chroot, umask, capabilities, serve.

use crate::cli::{Cli, ResolverChoice};
use crate::export::Export;
use crate::logging::{self, LogTarget};
use crate::privilege::Privileges;
use crate::procfs::ProcSelfFd;
use crate::resolve::{Resolver, ResolverKind, probe_openat2};
use crate::sandbox::{self, Report};
use crate::server::serve;
use crate::transport::Connection;
use rustix::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use rustix::fs::{FileType, Mode, OFlags, fstat, fstatfs, open};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType, sockopt};
use std::path::Path;
use std::process::ExitCode;
use tracing::{error, info, warn};

/// A start-up failure, with the message for the operator.
#[derive(Debug)]
pub struct SetupError(pub String);

impl<E: std::fmt::Display> From<(&str, E)> for SetupError {
    fn from((what, e): (&str, E)) -> Self {
        SetupError(format!("{what}: {e}"))
    }
}

/// Checks the arguments the parser cannot: the export must be an existing
/// directory, looked at without following a final symlink.
pub fn validate(cli: &Cli) -> Result<(), String> {
    match rustix::fs::lstat(&cli.path) {
        Err(e) => Err(format!(
            "invalid path \"{}\" specified: {e}",
            cli.path.display()
        )),
        Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::Directory => Err(format!(
            "specified path \"{}\" is not a directory",
            cli.path.display()
        )),
        Ok(_) => Ok(()),
    }
}

/// Takes over an inherited fd after checking it is a connected stream socket.
fn inherited_socket(fd: i32) -> Result<OwnedFd, SetupError> {
    // SAFETY: only borrowed to inspect it; fstat fails cleanly on a closed fd.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let st = fstat(borrowed)
        .map_err(|e| SetupError(format!("--fd {fd}: not an open file descriptor ({e})")))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Socket {
        return Err(SetupError(format!("--fd {fd}: not a socket")));
    }
    match sockopt::socket_type(borrowed) {
        Ok(SocketType::STREAM) => {}
        Ok(_) => return Err(SetupError(format!("--fd {fd}: not a stream socket"))),
        Err(e) => return Err(SetupError(format!("--fd {fd}: {e}"))),
    }
    // SAFETY: the fd is open (fstat succeeded), was handed to us to own,
    // and nothing else in this process refers to it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A bound, listening socket file, owned by uid:gid, mode 0770 & ~umask.
fn listen_on(path: &Path, uid: u32, gid: u32) -> Result<OwnedFd, SetupError> {
    if rustix::fs::lstat(path).is_ok() {
        return Err(SetupError(format!(
            "socket {} already exists",
            path.display()
        )));
    }
    let addr = SocketAddrUnix::new(path)
        .map_err(|_| SetupError(format!("socket path {} is too long", path.display())))?;
    let sock = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| SetupError::from(("socket", e)))?;
    // Mask the other-bits, as the original does: QEMU's uid/gid get access.
    let old = rustix::process::umask(Mode::from_raw_mode(0o007));
    let bound = rustix::net::bind(&sock, &addr);
    rustix::process::umask(old);
    bound.map_err(|e| SetupError::from(("bind", e)))?;
    rustix::fs::chown(
        path,
        Some(rustix::process::Uid::from_raw(uid)),
        Some(rustix::process::Gid::from_raw(gid)),
    )
    .map_err(|e| SetupError::from(("chown of the socket", e)))?;
    rustix::net::listen(&sock, 1).map_err(|e| SetupError::from(("listen", e)))?;
    Ok(sock)
}

fn accept_one(listener: OwnedFd) -> Result<OwnedFd, SetupError> {
    loop {
        match rustix::net::accept_with(&listener, SocketFlags::CLOEXEC) {
            Err(Errno::INTR) => continue,
            // The listener closes here: exactly one connection is served.
            other => return other.map_err(|e| SetupError::from(("accept", e))),
        }
    }
}

fn choose_resolver(
    choice: ResolverChoice,
    openat2: Result<(), Errno>,
) -> Result<Resolver, SetupError> {
    match (choice, openat2) {
        (ResolverChoice::Walker, _) => Ok(Resolver::new(ResolverKind::Walker)),
        (_, Ok(())) => Ok(Resolver::new(ResolverKind::Openat2)),
        (ResolverChoice::Openat2, Err(e)) => Err(SetupError(format!(
            "openat2 is not available here ({e}); use --resolver walker or auto"
        ))),
        (ResolverChoice::Auto, Err(e)) => {
            warn!("openat2 is not available ({e}): resolving paths with the userspace walker");
            Ok(Resolver::new(ResolverKind::Walker))
        }
    }
}

/// Filesystems whose inodes have a generation number (FS_IOC_GETVERSION).
fn has_generation_numbers(root: BorrowedFd<'_>) -> bool {
    const EXT2_SUPER_MAGIC: i64 = 0xEF53;
    const BTRFS_SUPER_MAGIC: i64 = 0x9123683E;
    const REISERFS_SUPER_MAGIC: i64 = 0x52654973;
    const XFS_SUPER_MAGIC: i64 = 0x58465342;
    fstatfs(root).is_ok_and(|st| {
        matches!(
            st.f_type,
            EXT2_SUPER_MAGIC | BTRFS_SUPER_MAGIC | REISERFS_SUPER_MAGIC | XFS_SUPER_MAGIC
        )
    })
}

fn open_root(cli: &Cli) -> Result<OwnedFd, SetupError> {
    // O_NOFOLLOW: the directory checked at start-up cannot have been swapped
    // for a symlink since.
    open(
        &cli.path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SetupError(format!("opening the export {}: {e}", cli.path.display())))
}

/// `--sandbox-report`: what would be active, without changing anything.
pub fn sandbox_report(cli: &Cli) -> Result<Report, SetupError> {
    let root = open_root(cli)?;
    let openat2 = probe_openat2(root.as_fd());
    let resolver = choose_resolver(cli.resolver, openat2)?;
    let permitted = caps::read(None, caps::CapSet::Permitted).unwrap_or_default();
    let (capabilities, missing_capabilities) = Report::capability_names(&permitted);
    Ok(Report {
        chroot: !cli.no_chroot,
        resolver: resolver.kind(),
        openat2_unavailable: openat2.err(),
        landlock_abi: sandbox::landlock::kernel_abi(),
        landlock: None,
        seccomp: cli.seccomp.into(),
        capabilities,
        missing_capabilities,
        nofile: sandbox::limits::NOFILE,
        readonly: cli.readonly,
    })
}

/// Opens the export root, confines the process to it and drops privileges.
/// Seccomp comes later, just before serving.
fn confine(cli: &Cli) -> Result<(Export, Report), SetupError> {
    let root = open_root(cli)?;
    let proc = ProcSelfFd::open().map_err(|e| {
        SetupError(format!(
            "opening /proc/self/fd ({e}): a mounted procfs is needed to reopen resolved files"
        ))
    })?;
    let openat2 = probe_openat2(root.as_fd());
    let resolver = choose_resolver(cli.resolver, openat2)?;
    let getversion = has_generation_numbers(root.as_fd());
    let features = crate::syscalls::Features::probe(root.as_fd());

    if cli.no_chroot {
        rustix::process::fchdir(&root)
            .map_err(|e| SetupError::from(("fchdir to the export", e)))?;
        warn!(
            "--no-chroot: not chrooting; the {} resolver alone confines paths",
            resolver.kind().name()
        );
    } else {
        sandbox::chroot_into(root.as_fd()).map_err(|e| {
            SetupError(format!(
                "chroot into the export failed ({e}); where chroot is not permitted, \
                 run with --no-chroot to rely on path resolution alone"
            ))
        })?;
    }
    rustix::process::umask(Mode::empty());
    let nofile = sandbox::limits::apply();
    let (privileges, _) =
        Privileges::limit_to_kept().map_err(|e| SetupError::from(("limiting capabilities", e)))?;
    let (capabilities, missing_capabilities) = Report::capability_names(privileges.kept());
    if !missing_capabilities.is_empty() {
        warn!(
            "running without {}: requests that need them will fail",
            missing_capabilities.join(",")
        );
    }
    let landlock_abi = sandbox::landlock::kernel_abi();
    let landlock = match sandbox::landlock::restrict_to(root.as_fd(), cli.readonly) {
        Ok(sandbox::landlock::Enforcement::Full) => Some(sandbox::landlock::Enforcement::Full),
        Ok(other) => {
            warn!(
                "Landlock is not fully available on this kernel ({other:?}); continuing without it"
            );
            Some(other)
        }
        Err(e) => {
            warn!("Landlock could not be set up ({e}); continuing without it");
            None
        }
    };
    proc.enter_as_cwd()
        .map_err(|e| SetupError::from(("fchdir to /proc/self/fd", e)))?;
    let report = Report {
        chroot: !cli.no_chroot,
        resolver: resolver.kind(),
        openat2_unavailable: openat2.err(),
        landlock_abi,
        landlock,
        seccomp: cli.seccomp.into(),
        capabilities,
        missing_capabilities,
        nofile,
        readonly: cli.readonly,
    };
    info!(
        export = %cli.path.display(),
        resolver = resolver.kind().name(),
        chroot = !cli.no_chroot,
        readonly = cli.readonly,
        getversion,
        fchmodat2 = features.fchmodat2,
        xattrat = features.xattrat,
        utimensat_empty_path = features.utimensat_empty_path,
        close_range = features.close_range,
        reopen_empty_path = features.reopen_empty_path,
        "confined"
    );
    let export = Export {
        root,
        resolver,
        proc,
        privileges,
        getversion,
        readonly: cli.readonly,
        features,
        deferred: crate::deferred_close::DeferredClose::new(features.close_range),
    };
    Ok((export, report))
}

fn start(cli: &Cli) -> Result<Connection, SetupError> {
    // Set up the socket before daemonizing, so that errors reach the
    // terminal and the socket file exists once the parent returns.
    enum Pending {
        Connected(OwnedFd),
        Listening(OwnedFd),
    }
    let pending = match (&cli.socket, cli.fd) {
        (Some(path), _) => Pending::Listening(listen_on(
            path,
            cli.uid.expect("clap requires --uid with --socket"),
            cli.gid.expect("clap requires --gid with --socket"),
        )?),
        (None, Some(fd)) => Pending::Connected(inherited_socket(fd)?),
        (None, None) => unreachable!("clap requires --fd or --socket"),
    };
    if cli.nodaemon {
        logging::init(LogTarget::Stderr, cli.log_level.into())
            .map_err(|e| SetupError::from(("logging", e)))?;
    } else {
        if let Err(e) = logging::init(LogTarget::Syslog, cli.log_level.into()) {
            eprintln!(
                "{}: syslog is not reachable ({e}); logs are discarded",
                logging::PROGRAM
            );
        }
        daemonize::Daemonize::new()
            .working_directory("/")
            .start()
            .map_err(|e| SetupError::from(("daemonizing", e)))?;
    }
    info!("started");
    let sock = match pending {
        Pending::Connected(fd) => fd,
        Pending::Listening(listener) => accept_one(listener)?,
    };
    Ok(Connection::new(sock))
}

/// Runs the helper; the exit status is 0 after a clean disconnect.
pub fn run(cli: Cli) -> ExitCode {
    if cli.sandbox_report {
        return match sandbox_report(&cli) {
            Ok(report) => {
                print!("{report}");
                ExitCode::SUCCESS
            }
            Err(SetupError(msg)) => {
                eprintln!("{}: {msg}", logging::PROGRAM);
                ExitCode::FAILURE
            }
        };
    }
    let setup = start(&cli)
        .and_then(|conn| Ok((conn, confine(&cli)?)))
        .and_then(|(conn, (export, report))| {
            let program = sandbox::seccomp::program(report.seccomp)
                .map_err(|e| SetupError::from(("building the seccomp filter", e)))?;
            info!("sandbox: {}", report.summary());
            if let Some(program) = program {
                sandbox::seccomp::install(&program)
                    .map_err(|e| SetupError::from(("installing the seccomp filter", e)))?;
            }
            Ok((conn, export))
        });
    let (mut conn, export) = match setup {
        Ok(ready) => ready,
        Err(SetupError(msg)) => {
            error!("{msg}");
            if !tracing::dispatcher::has_been_set() || !cli.nodaemon {
                eprintln!("{}: {msg}", logging::PROGRAM);
            }
            return ExitCode::FAILURE;
        }
    };
    match serve(&mut conn, &export) {
        Ok(served) => {
            info!(requests = served, "client disconnected; done");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!("closing the connection: {e}");
            ExitCode::FAILURE
        }
    }
}
