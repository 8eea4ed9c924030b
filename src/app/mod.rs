//! Start-up: from a parsed command line to a confined helper serving one
//! connection.
//!
//! Every step that can fail runs before the command returns, in this order:
//! 1. in the launching process: the export root (so a relative `--path`
//!    works), the socket file's bind (or the `--fd` checks, in
//!    [`validate`]), logging;
//! 2. detaching (without `--nodaemon`); the launcher then waits for the
//!    daemon's report ([`crate::daemon`]);
//! 3. in the serving process: the socket-file janitor, signal handlers,
//!    procfs, the resolver, then [`sandbox::confine`] (chroot, limits,
//!    capabilities, Landlock, seccomp); then "ready".
//!
//! Only then does the helper wait for QEMU's connection (`--socket`), so
//! nothing that could be known earlier waits for QEMU. Accepting after
//! confinement needs `accept4` and one `getsockopt` in the seccomp list, and
//! a janitor process to remove the socket file, which lies outside the
//! export (see [`crate::endpoint`]).

mod launch;
mod prepare;
mod trial;

use self::launch::{Endpoint, launch, open_root, shed_inherited};
use self::prepare::{Prepared, prepare};

use crate::cli::Cli;
use crate::daemon::{self, Detached, ReadyPipe};
use crate::endpoint::{self, Janitor};
use crate::error::SetupError;
use crate::export::Export;
use crate::idmap::Translation;
use crate::logging::{self, LogTarget};
use crate::resolve::Resolver;
use crate::sandbox::userns::{self, MapEntry};
use crate::sandbox::{self, Isolation, OnFailure, Options, SandboxRequest};
use crate::server::serve;
use crate::transport::Connection;
use crate::xattrmap::XattrMap;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::FileType;
use std::path::PathBuf;
use std::process::ExitCode;
use tracing::{error, info, warn};

/// What [`validate`] made of the command line.
#[derive(Debug, Clone)]
pub struct Checked {
    pub ids: Translation,
    pub sandbox: SandboxRequest,
    pub uid_map: Vec<MapEntry>,
    pub gid_map: Vec<MapEntry>,
    pub xattrs: XattrMap,
}

/// Checks the arguments the parser cannot, before anything else happens:
/// the sandbox options must agree, the id translation rules and the id
/// maps must make sense, the export must be an existing directory (looked
/// at without following a final symlink), and an `--fd` a connected UNIX
/// stream socket. A failure here is a misuse of the command line (exit
/// status 2).
pub fn validate(cli: &Cli) -> Result<Checked, String> {
    let sandbox = cli.sandbox_request()?;
    let ids = cli.translation()?;
    let (uid_map, gid_map) = cli.id_maps()?;
    let xattrs = match &cli.xattrmap {
        Some(rules) => XattrMap::parse(rules).map_err(|e| format!("--xattrmap: {e}"))?,
        None => XattrMap::default(),
    };
    match rustix::fs::lstat(&cli.path) {
        Err(e) => {
            return Err(format!(
                "invalid path \"{}\" specified: {e}",
                cli.path.display()
            ));
        }
        Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::Directory => {
            return Err(format!(
                "specified path \"{}\" is not a directory",
                cli.path.display()
            ));
        }
        Ok(_) => {}
    }
    match cli.fd {
        Some(fd) if !cli.sandbox_report => endpoint::check_inherited(fd)?,
        _ => {}
    }
    Ok(Checked {
        ids,
        sandbox,
        uid_map,
        gid_map,
        xattrs,
    })
}

/// The endpoint once the serving process has taken charge of it.
enum Pending {
    Connected(OwnedFd),
    Listening {
        listener: OwnedFd,
        janitor: Janitor,
        path: PathBuf,
    },
}

fn options(cli: &Cli, checked: &Checked) -> Options {
    Options {
        sandbox: checked.sandbox,
        readonly: cli.readonly,
        seccomp: cli.seccomp.into(),
    }
}

/// The helper's own user namespace and the sandbox's namespaces
/// ([`sandbox::isolate`]). In a user namespace the helper made itself, the
/// translation rules' host ids (those of where it was started) are then
/// read through the namespace's id map.
fn isolate(
    root: BorrowedFd<'_>,
    checked: &mut Checked,
    seccomp: sandbox::SeccompMode,
    on_failure: OnFailure,
) -> Result<Isolation, SetupError> {
    let plan = userns::plan(
        &checked.uid_map,
        &checked.gid_map,
        !checked.ids.is_identity(),
    );
    let isolation = sandbox::isolate(root, plan, checked.sandbox, seccomp, on_failure)?;
    if isolation.own_user_namespace && !checked.ids.is_identity() {
        let lines = |m: &[MapEntry]| m.iter().map(|e| (e.ns, e.host, e.count)).collect();
        checked.ids.uids.set_namespace(lines(&isolation.maps.uids));
        checked.ids.gids.set_namespace(lines(&isolation.maps.gids));
    }
    Ok(isolation)
}

/// Every layer, in order: the namespaces ([`isolate`]), procfs and the
/// kernel's features ([`prepare`], after the pid namespace's fork, since
/// `/proc/self` is bound at open time), then [`sandbox::confine`]. The
/// real start and `--sandbox-report`'s trial both run exactly this.
fn apply_layers(
    cli: &Cli,
    root: BorrowedFd<'_>,
    checked: &mut Checked,
    on_failure: OnFailure,
) -> Result<(Isolation, Prepared, sandbox::Confined), SetupError> {
    let mut isolation = isolate(root, checked, cli.seccomp.into(), on_failure)?;
    let (prepared, report) = prepare(cli, root, checked, &mut isolation);
    let confined = sandbox::confine(
        root,
        &isolation,
        prepared.proc.as_ref(),
        options(cli, checked),
        report,
        on_failure,
    )?;
    Ok((isolation, prepared, confined))
}

/// Step 3: everything in the serving process before it reports ready.
fn set_up(
    cli: &Cli,
    mut checked: Checked,
    root: OwnedFd,
    endpoint: Endpoint,
) -> Result<(Pending, Export), SetupError> {
    info!("started");
    // The janitor first: from here on every exit removes the socket file.
    let pending = match endpoint {
        Endpoint::Connected(sock) => {
            info!(
                "serving the connection inherited as fd {} ({})",
                cli.fd.unwrap_or(-1),
                endpoint::describe_peer(sock.as_fd())
            );
            Pending::Connected(sock)
        }
        Endpoint::Listening(listener, file) => {
            let path = file.path().to_path_buf();
            let janitor = file.hand_to_janitor(cli.seccomp.into())?;
            if let Err(why) = &janitor.confinement {
                return Err(SetupError(format!("the socket-file janitor: {why}")));
            }
            Pending::Listening {
                listener,
                janitor,
                path,
            }
        }
    };
    crate::signals::install().map_err(|e| SetupError::from(("installing signal handlers", e)))?;
    let export_path = std::fs::canonicalize(&cli.path).unwrap_or_else(|_| cli.path.clone());
    let (isolation, prepared, confined) =
        apply_layers(cli, root.as_fd(), &mut checked, OnFailure::Stop)?;
    // After pivot_root, the export's new mount (nodev,nosuid) serves.
    let root = confined.new_root.unwrap_or(root);
    let ids = checked.ids;
    let xattrs = checked.xattrs;
    // confine() stopped at a missing resolver or capability set, and at a
    // missing procfs where the kernel needs it.
    let (Some(resolver), Some(privileges)) = (prepared.resolver, confined.privileges) else {
        return Err(SetupError(
            "set-up left no resolver or capability set".into(),
        ));
    };
    let proc = prepared.proc;
    let mut report = confined.report;
    if let Pending::Listening { janitor, .. } = &pending {
        report.janitor = match &janitor.confinement {
            Ok(text) => sandbox::Outcome::Active(text.clone()),
            Err(why) => sandbox::Outcome::Fails(why.clone()),
        };
    }
    if isolation.kind == sandbox::Kind::None {
        warn!(
            "--sandbox none: no chroot or namespace; the {} resolver alone confines paths",
            resolver.name()
        );
    }
    let features = report.features;
    info!(
        export = %export_path.display(),
        resolver = resolver.name(),
        sandbox = report.sandbox_name(),
        readonly = cli.readonly,
        getversion = prepared.getversion,
        fchmodat2 = features.fchmodat2,
        xattrat = features.xattrat,
        utimensat_empty_path = features.utimensat_empty_path,
        close_range = features.close_range,
        reopen_empty_path = features.reopen_empty_path,
        openat2_regular = features.openat2_regular,
        procfs = proc.is_some(),
        "confined"
    );
    if proc.is_none() {
        info!("procfs: not used; this kernel has O_EMPTYPATH, fchmodat2 and the *xattrat calls");
    }
    info!("sandbox: {}", report.summary());
    if !ids.is_identity() {
        info!(
            "id translation: {}; ids no rule covers map to themselves",
            ids.describe()
        );
    }
    let export = Export {
        root,
        resolver: Resolver::new(resolver),
        proc,
        privileges,
        getversion: prepared.getversion,
        readonly: cli.readonly,
        features,
        deferred: crate::deferred_close::DeferredClose::new(features.close_range),
        ids,
        xattrs,
    };
    Ok((pending, export))
}

/// After "ready": the connection itself.
fn connect(pending: Pending) -> Result<OwnedFd, SetupError> {
    match pending {
        Pending::Connected(sock) => Ok(sock),
        Pending::Listening {
            listener,
            janitor,
            path,
        } => {
            let sock = endpoint::accept_one(listener, &janitor, &path)?;
            info!(
                "QEMU connected to {} ({}); the socket file is removed",
                path.display(),
                endpoint::describe_peer(sock.as_fd())
            );
            janitor.finish();
            Ok(sock)
        }
    }
}

/// Runs the helper. Exit status: 0 after a clean disconnect, 1 when set-up
/// fails or the connection breaks, 128 + N after signal N (SIGINT, SIGTERM);
/// misuse (2) is reported by `main` before this runs.
/// `checked` is what [`validate`] made of the command line.
pub fn run(cli: Cli, checked: Checked) -> ExitCode {
    // First of all: `main` and `validate` leave no fd of their own open.
    if let Err(SetupError(msg)) = shed_inherited(&cli) {
        eprintln!("{}: {msg}", logging::PROGRAM);
        return ExitCode::FAILURE;
    }
    if cli.sandbox_report {
        return trial::sandbox_report(&cli, checked);
    }
    crate::signals::hold();
    let (root, endpoint) = match launch(&cli) {
        Ok(launched) => launched,
        Err(SetupError(msg)) => {
            eprintln!("{}: {msg}", logging::PROGRAM);
            return ExitCode::FAILURE;
        }
    };
    let mut ready: Option<ReadyPipe> = None;
    if cli.nodaemon {
        if let Err(e) = logging::init(LogTarget::Stderr, cli.log_level.into()) {
            eprintln!("{}: logging: {e}", logging::PROGRAM);
        }
    } else {
        if let Err(e) = logging::init(LogTarget::Syslog, cli.log_level.into()) {
            eprintln!(
                "{}: syslog is not reachable ({e}); logs are discarded",
                logging::PROGRAM
            );
        }
        match daemon::detach() {
            Ok(Detached::Launcher(status)) => return status,
            Ok(Detached::Daemon(pipe)) => {
                // Detaching put the host's /dev/null on all three.
                for fd in 0..3 {
                    if let Err(SetupError(msg)) = launch::dead_end(fd) {
                        pipe.failed(&msg);
                        return ExitCode::FAILURE;
                    }
                }
                ready = Some(pipe)
            }
            Err(SetupError(msg)) => {
                if let Endpoint::Listening(_, file) = &endpoint {
                    file.remove();
                }
                eprintln!("{}: {msg}", logging::PROGRAM);
                return ExitCode::FAILURE;
            }
        }
    }
    let pending = match set_up(&cli, checked, root, endpoint) {
        Ok((pending, export)) => {
            if let Pending::Listening { path, .. } = &pending {
                info!(
                    "listening on {}; waiting for QEMU to connect",
                    path.display()
                );
            }
            if let Some(pipe) = ready.take() {
                pipe.ready();
            }
            (pending, export)
        }
        Err(SetupError(msg)) => {
            error!("{msg}");
            if let Some(pipe) = ready.take() {
                pipe.failed(&msg);
            }
            return ExitCode::FAILURE;
        }
    };
    let (pending, export) = pending;
    let sock = match connect(pending) {
        Ok(sock) => sock,
        Err(SetupError(msg)) => {
            error!("{msg}");
            return ExitCode::FAILURE;
        }
    };
    let mut conn = Connection::new(sock);
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
