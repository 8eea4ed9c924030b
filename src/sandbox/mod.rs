//! Confinement of the helper process, in one place: the user namespace and
//! the sandbox kind ([`isolate`]: the helper's own user namespace, then the
//! namespace sandbox's namespaces), then pivot_root or chroot, resource
//! limits, capabilities, Landlock, procfs as the working directory and the
//! seccomp allow-list, applied in that order by [`confine`], and the report
//! of what is active ([`report`]).
//!
//! Each layer holds on its own (docs/security.md); together with the
//! confined resolver (`crate::resolve`) they are what stands between a
//! hostile guest and the host. `--sandbox-report` runs the very same
//! [`confine`] in a throwaway process, so what it reports was tried.

pub mod companions;
pub mod landlock;
pub mod limits;
pub mod namespace;
pub mod report;
pub mod seccomp;
pub mod userns;

pub use self::report::{Outcome, Report};
pub use self::seccomp::SeccompMode;

use crate::error::SetupError;
use crate::privilege::Privileges;
use crate::process::ParentWatch;
use crate::procfs::ProcSelfFd;
use rustix::fd::AsFd;
use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::fs::Mode;
use rustix::io::Errno;
use std::sync::Arc;
use tracing::warn;

/// chroot into the directory `root` refers to, and stay in it: `fchdir`
/// then `chroot(".")`, so the new root is the very directory held open,
/// not whatever its path names by now.
pub fn chroot_into(root: BorrowedFd<'_>) -> Result<(), Errno> {
    rustix::process::fchdir(root)?;
    rustix::process::chroot(".")
}

/// A sandbox kind asked for by name (`--sandbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Namespace,
    Chroot,
    None,
}

/// What the command line asks of the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxRequest {
    /// No choice given: namespace where the kernel allows, else chroot.
    Default,
    Explicit(Choice),
}

/// The layers the command line asks for.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub sandbox: SandboxRequest,
    pub readonly: bool,
    pub seccomp: SeccompMode,
}

/// The sandbox kind [`isolate`] settled on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// The namespaces exist; [`confine`] pivots into the export.
    Namespace {
        explicit: bool,
    },
    /// chroot; the text says why when the default fell back to it.
    Chroot {
        why: String,
    },
    None,
}

/// Step one, before procfs is opened: the helper's own user namespace
/// (`plan`), then the namespace sandbox's namespaces, after which this
/// process is the pid namespace's init (its parent waits outside; see
/// [`namespace::become_init`]). Where the default cannot have its
/// namespaces, it falls back to chroot and says why; an explicit
/// `--sandbox namespace` stops instead.
pub fn isolate(
    root: BorrowedFd<'_>,
    plan: Result<Option<userns::Plan>, String>,
    request: SandboxRequest,
    seccomp: SeccompMode,
    on_failure: OnFailure,
) -> Result<Isolation, SetupError> {
    let mut report = Isolation {
        kind: Kind::None,
        user_namespace: Outcome::Inactive("not needed: this process can set every id".into()),
        namespaces: Outcome::Inactive("none created".into()),
        sandbox: None,
        maps: userns::InForce::default(),
        own_user_namespace: false,
        waiter: Outcome::Inactive("none (no pid namespace)".into()),
        watch: None,
    };
    report.kind = isolate_into(root, plan, request, seccomp, on_failure, &mut report)?;
    Ok(report)
}

/// What [`isolate`] did, for the report.
#[derive(Debug, Clone)]
pub struct Isolation {
    pub kind: Kind,
    pub user_namespace: Outcome,
    pub namespaces: Outcome,
    /// Set when an explicit `--sandbox namespace` failed already.
    pub sandbox: Option<Outcome>,
    /// The id maps in force once the user namespace (if any) exists.
    pub maps: userns::InForce,
    /// The helper made its own user namespace: ids the kernel gives it are
    /// the namespace's, not those of where it was started.
    pub own_user_namespace: bool,
    /// How the waiter outside the pid namespace confined itself.
    pub waiter: Outcome,
    /// The waiter's liveness, for the server's parent-death signal.
    pub watch: Option<Arc<ParentWatch>>,
}

impl Isolation {
    /// Copies what was decided into the report.
    pub fn fill(&self, report: &mut Report) {
        report.user_namespace = self.user_namespace.clone();
        report.namespaces = self.namespaces.clone();
        report.id_maps = self.maps.describe();
        report.waiter = self.waiter.clone();
        if let Some(sandbox) = &self.sandbox {
            report.sandbox = sandbox.clone();
        }
    }
}

fn isolate_into(
    root: BorrowedFd<'_>,
    plan: Result<Option<userns::Plan>, String>,
    request: SandboxRequest,
    seccomp: SeccompMode,
    on_failure: OnFailure,
    report: &mut Isolation,
) -> Result<Kind, SetupError> {
    let mut created = Vec::new();
    let plan = match plan {
        Ok(plan) => plan,
        Err(why) => {
            report.user_namespace = Outcome::Fails(why.clone());
            if on_failure == OnFailure::Stop {
                return Err(SetupError(why));
            }
            None
        }
    };
    if let Some(plan) = &plan {
        report.user_namespace = match userns::enter(plan) {
            Ok(()) => {
                created.push("user");
                report.own_user_namespace = true;
                userns::log_plan(plan);
                Outcome::Active(match &plan.origin {
                    userns::Origin::Given => "created, with the maps given".into(),
                    userns::Origin::Subordinate => {
                        "created, automatic map: guest 0 is this user, guest 1.. its /etc/subuid and /etc/subgid range"
                            .into()
                    }
                    userns::Origin::ForTranslation => {
                        "created, map of this user alone (guest 0), as id translation needs \
                         no other: no setuid helper"
                            .into()
                    }
                    userns::Origin::OneId(_) => {
                        "created, automatic map of this user alone (guest 0); other guest ids get EINVAL"
                            .into()
                    }
                })
            }
            Err(SetupError(why)) if request == SandboxRequest::Explicit(Choice::None) => {
                warn!("{why}; going on without a user namespace (--sandbox none)");
                Outcome::Inactive(format!("not created ({why})"))
            }
            Err(SetupError(why)) => Outcome::Fails(why),
        };
        if let (Outcome::Fails(why), OnFailure::Stop) = (&report.user_namespace, on_failure) {
            return Err(SetupError(why.clone()));
        }
    }
    report.maps = userns::InForce::read();
    let explicit = match request {
        SandboxRequest::Explicit(Choice::None) => {
            report.namespaces = namespaces_text(&created);
            return Ok(Kind::None);
        }
        SandboxRequest::Explicit(Choice::Chroot) => {
            report.namespaces = namespaces_text(&created);
            return Ok(Kind::Chroot { why: String::new() });
        }
        SandboxRequest::Explicit(Choice::Namespace) => true,
        SandboxRequest::Default => false,
    };
    // The pid namespace first, alone: the fork that follows leaves the
    // waiter outside it and outside the mount namespace the server makes.
    if let Err(why) = namespace::unshare_each(&[namespace::PID_NAMESPACE]) {
        return refused(why, explicit, on_failure, &created, report);
    }
    created.push(namespace::PID_NAMESPACE.1);
    let waiter = namespace::become_init(seccomp)?;
    report.waiter = match waiter.confinement {
        Ok(text) => Outcome::Active(text),
        Err(why) => Outcome::Fails(why),
    };
    if let (Outcome::Fails(why), OnFailure::Stop) = (&report.waiter, on_failure) {
        return Err(SetupError(why.clone()));
    }
    report.watch = Some(Arc::new(waiter.watch));
    // Then the server's own. The mount namespace's copy of the working
    // directory is what gets bind-mounted: make it the export first.
    let unshared = rustix::process::fchdir(root)
        .map_err(|e| format!("fchdir to the export: {e}"))
        .and_then(|()| namespace::unshare_each(&namespace::SERVER_NAMESPACES));
    match unshared {
        Ok(()) => {
            created.extend(namespace::SERVER_NAMESPACES.map(|(_, n)| n));
            report.namespaces = namespaces_text(&created);
            Ok(Kind::Namespace { explicit })
        }
        Err(why) => refused(why, explicit, on_failure, &created, report),
    }
}

/// A namespace the kernel refused: an explicit `--sandbox namespace`
/// stops (or, for the report, goes on with none); the default falls back
/// to chroot and says why.
fn refused(
    why: String,
    explicit: bool,
    on_failure: OnFailure,
    created: &[&str],
    report: &mut Isolation,
) -> Result<Kind, SetupError> {
    report.namespaces = namespaces_text(created);
    if explicit {
        report.sandbox = Some(Outcome::Fails(format!("--sandbox namespace: {why}")));
        return match on_failure {
            OnFailure::Stop => Err(SetupError(format!("--sandbox namespace: {why}"))),
            OnFailure::Record => Ok(Kind::None),
        };
    }
    warn!("the namespace sandbox is not available ({why}): falling back to chroot");
    Ok(Kind::Chroot {
        why: format!("the default, since the namespace sandbox is not available: {why}"),
    })
}

fn namespaces_text(created: &[&str]) -> Outcome {
    match created {
        [] => Outcome::Inactive("none created".into()),
        names => Outcome::Active(format!("{} (created)", names.join(","))),
    }
}

/// What happens when a layer fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Stop at the first layer a real run requires (the real run).
    Stop,
    /// Record it and go on with the next layer (`--sandbox-report`).
    Record,
}

/// What [`confine`] leaves: the report of every layer, the capability
/// set in force (None when limiting it failed), and the export's new root
/// after `pivot_root` (the namespace sandbox's `nodev,nosuid` mount; the
/// old fd must not serve then).
pub struct Confined {
    pub report: Report,
    pub privileges: Option<Privileges>,
    pub new_root: Option<OwnedFd>,
}

/// Applies every layer to this process, in order: `pivot_root` into the
/// export (namespace sandbox), chroot, or only `fchdir` to the export
/// (`--sandbox none`), as [`isolate`] chose; umask 0 and resource limits, the kept
/// capabilities, Landlock, `/proc/self/fd` as the working directory, and
/// last the seccomp filter. `proc` is None when procfs could not be opened
/// (the report then says so). `report` comes filled with what was decided
/// before (resolver, kernel features).
pub fn confine(
    root: BorrowedFd<'_>,
    isolation: &Isolation,
    proc: Option<&ProcSelfFd>,
    options: Options,
    mut report: Report,
    on_failure: OnFailure,
) -> Result<Confined, SetupError> {
    let check = |outcome: &Outcome| match (outcome, on_failure) {
        (Outcome::Fails(why), OnFailure::Stop) => Err(SetupError(why.clone())),
        _ => Ok(()),
    };
    check(&report.resolver)?;
    check(&report.procfs)?;

    let new_root = enter_root(root, &isolation.kind, options.readonly, &mut report);
    check(&report.sandbox)?;
    let root = new_root.as_ref().map_or(root, |r| r.as_fd());

    rustix::process::umask(Mode::empty());
    report.nofile = limits::apply();

    let privileges = match Privileges::limit_to_kept(isolation.watch.clone()) {
        Ok((privileges, _)) => {
            let (kept, missing) = Report::capability_names(privileges.kept());
            if !missing.is_empty() {
                warn!(
                    "running without {}: requests that need them will fail",
                    missing.join(",")
                );
            }
            report.capabilities = Outcome::Active(kept.join(","));
            report.missing_capabilities = missing;
            Some(privileges)
        }
        Err(e) => {
            report.capabilities = Outcome::Fails(format!("limiting capabilities: {e}"));
            None
        }
    };
    check(&report.capabilities)?;

    report.landlock = restrict_with_landlock(root, options.readonly);

    if let Some(proc) = proc {
        report.procfs = match proc.enter_as_cwd() {
            Ok(()) => report.procfs.clone(),
            Err(e) => Outcome::Fails(format!("fchdir to /proc/self/fd: {e}")),
        };
        check(&report.procfs)?;
    }

    // Landlock and seccomp set it too, but neither may be in force.
    if let Err(e) = rustix::thread::set_no_new_privs(true) {
        report.seccomp = Outcome::Fails(format!("setting no_new_privs: {e}"));
        check(&report.seccomp)?;
    }
    report.seccomp = install_seccomp(options.seccomp);
    check(&report.seccomp)?;
    Ok(Confined {
        report,
        privileges,
        new_root,
    })
}

/// Makes the export this process's root: `pivot_root` (namespace sandbox;
/// returns the new root's fd), chroot, or with `--sandbox none` only the
/// working directory. Fills in the report's sandbox and export mount.
fn enter_root(
    root: BorrowedFd<'_>,
    kind: &Kind,
    readonly: bool,
    report: &mut Report,
) -> Option<OwnedFd> {
    let chroot_why = match kind {
        Kind::None => {
            let failed = report.sandbox.fails();
            report.sandbox = match rustix::process::fchdir(root) {
                // An explicit --sandbox namespace that failed (report mode).
                Ok(()) if failed => report.sandbox.clone(),
                Ok(()) => Outcome::Inactive("none (--sandbox none): the resolver alone".into()),
                Err(e) => Outcome::Fails(format!("fchdir to the export: {e}")),
            };
            return None;
        }
        Kind::Namespace { explicit } => match namespace::pivot_into_cwd(readonly) {
            Ok((new_root, how)) => {
                let why = if *explicit {
                    "--sandbox namespace"
                } else {
                    "the default, the kernel allows it"
                };
                report.sandbox = Outcome::Active(format!(
                    "namespace ({why}): pivot_root into the export, the old root detached"
                ));
                report.export_mount = Outcome::Active(how);
                return Some(new_root);
            }
            Err(why) if *explicit => {
                report.sandbox = Outcome::Fails(why);
                return None;
            }
            Err(why) => {
                warn!("{why}: falling back to chroot");
                format!("the default, since the namespace sandbox failed: {why}")
            }
        },
        Kind::Chroot { why } => why.clone(),
    };
    report.sandbox = match chroot_into(root) {
        Ok(()) if chroot_why.is_empty() => Outcome::Active("chroot (--sandbox chroot)".into()),
        Ok(()) => Outcome::Active(format!("chroot ({chroot_why})")),
        Err(e) => Outcome::Fails(format!(
            "chroot into the export failed ({e}); where chroot is not permitted, \
             run with --sandbox none (or --no-chroot) to rely on path resolution alone"
        )),
    };
    None
}

/// Landlock is best effort: a kernel without it, or one that refuses it,
/// leaves the other layers in place (and says so).
fn restrict_with_landlock(root: BorrowedFd<'_>, readonly: bool) -> Outcome {
    let abi = landlock::kernel_abi();
    match landlock::restrict_to(root, readonly) {
        _ if abi == 0 => Outcome::Inactive("unavailable (kernel without Landlock)".into()),
        Ok(landlock::Enforcement::Full) => Outcome::Active(format!("ABI {abi}, fully enforced")),
        Ok(landlock::Enforcement::Partial) => {
            Outcome::Active(format!("ABI {abi}, partially enforced"))
        }
        Ok(landlock::Enforcement::Unavailable) => {
            Outcome::Inactive(format!("ABI {abi}, not enforced"))
        }
        Err(e) => Outcome::Inactive(format!(
            "ABI {abi}, could not be set up ({e}); continuing without it"
        )),
    }
}

fn install_seccomp(mode: SeccompMode) -> Outcome {
    let how = match mode {
        SeccompMode::Off => return Outcome::Inactive("off (--seccomp off)".into()),
        SeccompMode::Kill => "kill",
        SeccompMode::Log => "log",
    };
    let installed = seccomp::program(mode)
        .map_err(|e| format!("building the seccomp filter: {e}"))
        .and_then(|program| match program {
            Some(p) => seccomp::install(&p).map_err(|e| {
                format!(
                    "installing the seccomp filter: {e}; where seccomp filters are not \
                     permitted, run with --seccomp off"
                )
            }),
            None => Ok(()),
        });
    match installed {
        Ok(()) => Outcome::Active(format!(
            "{how} ({} syscalls allowed{})",
            seccomp::allowed_count(),
            if mode == SeccompMode::Log {
                ", others logged"
            } else {
                ""
            }
        )),
        Err(e) => Outcome::Fails(e),
    }
}
