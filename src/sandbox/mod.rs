//! Confinement of the helper process, in one place: chroot, resource
//! limits, capabilities, Landlock, procfs as the working directory and the
//! seccomp allow-list, applied in that order by [`confine`], and the report
//! of what is active ([`report`]).
//!
//! Each layer holds on its own (docs/security.md); together with the
//! confined resolver (`crate::resolve`) they are what stands between a
//! hostile guest and the host. `--sandbox-report` runs the very same
//! [`confine`] in a throwaway process, so what it reports was tried.

pub mod landlock;
pub mod limits;
pub mod report;
pub mod seccomp;

pub use self::report::{Outcome, Report};
pub use self::seccomp::SeccompMode;

use crate::error::SetupError;
use crate::privilege::Privileges;
use crate::procfs::ProcSelfFd;
use rustix::fd::BorrowedFd;
use rustix::fs::Mode;
use rustix::io::Errno;
use tracing::warn;

/// chroot into the directory `root` refers to, and stay in it: `fchdir`
/// then `chroot(".")`, so the new root is the very directory held open,
/// not whatever its path names by now.
pub fn chroot_into(root: BorrowedFd<'_>) -> Result<(), Errno> {
    rustix::process::fchdir(root)?;
    rustix::process::chroot(".")
}

/// The layers the command line asks for.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub chroot: bool,
    pub readonly: bool,
    pub seccomp: SeccompMode,
}

/// What happens when a layer fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Stop at the first layer a real run requires (the real run).
    Stop,
    /// Record it and go on with the next layer (`--sandbox-report`).
    Record,
}

/// What [`confine`] leaves: the report of every layer, and the capability
/// set in force (None when limiting it failed).
pub struct Confined {
    pub report: Report,
    pub privileges: Option<Privileges>,
}

/// Applies every layer to this process, in order: chroot (or `fchdir` to
/// the export with `--no-chroot`), umask 0 and resource limits, the kept
/// capabilities, Landlock, `/proc/self/fd` as the working directory, and
/// last the seccomp filter. `proc` is None when procfs could not be opened
/// (the report then says so). `report` comes filled with what was decided
/// before (resolver, kernel features).
pub fn confine(
    root: BorrowedFd<'_>,
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

    report.chroot = enter_root(root, options.chroot);
    check(&report.chroot)?;

    rustix::process::umask(Mode::empty());
    report.nofile = limits::apply();

    let privileges = match Privileges::limit_to_kept() {
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
            Ok(()) => Outcome::Active("/proc/self/fd".into()),
            Err(e) => Outcome::Fails(format!("fchdir to /proc/self/fd: {e}")),
        };
        check(&report.procfs)?;
    }

    report.seccomp = install_seccomp(options.seccomp);
    check(&report.seccomp)?;
    Ok(Confined { report, privileges })
}

/// chroot into the export, or with `--no-chroot` only make it the working
/// directory.
fn enter_root(root: BorrowedFd<'_>, chroot: bool) -> Outcome {
    if !chroot {
        return match rustix::process::fchdir(root) {
            Ok(()) => Outcome::Inactive("off (--no-chroot)".into()),
            Err(e) => Outcome::Fails(format!("fchdir to the export: {e}")),
        };
    }
    match chroot_into(root) {
        Ok(()) => Outcome::Active("on".into()),
        Err(e) => Outcome::Fails(format!(
            "chroot into the export failed ({e}); where chroot is not permitted, \
             run with --no-chroot to rely on path resolution alone"
        )),
    }
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
