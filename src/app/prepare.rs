//! What is decided before confinement, in the serving process: procfs
//! (a private instance's `self/fd` under the namespace sandbox, a clone of
//! the host's under chroot), the resolver, the kernel's features, and
//! whether the server's `/proc/PID/exe` is in its reach.

use super::Checked;
use crate::cli::{Cli, ResolverChoice};
use crate::procfs::ProcSelfFd;
use crate::resolve::{ResolverKind, probe_openat2};
use crate::sandbox::{self, Isolation, Report};
use rustix::fd::BorrowedFd;
use rustix::fs::fstatfs;
use rustix::io::Errno;
use tracing::warn;

fn choose_resolver(
    choice: ResolverChoice,
    openat2: Result<(), Errno>,
) -> Result<ResolverKind, String> {
    match (choice, openat2) {
        (ResolverChoice::Walker, _) => Ok(ResolverKind::Walker),
        (_, Ok(())) => Ok(ResolverKind::Openat2),
        (ResolverChoice::Openat2, Err(e)) => Err(format!(
            "openat2 is not available here ({e}); use --resolver walker or auto"
        )),
        (ResolverChoice::Auto, Err(e)) => {
            warn!("openat2 is not available ({e}): resolving paths with the userspace walker");
            Ok(ResolverKind::Walker)
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

/// What is decided before confinement: procfs, the resolver, the kernel's
/// features (the report so far travels beside it, into confinement).
pub(super) struct Prepared {
    pub(super) proc: Option<ProcSelfFd>,
    pub(super) resolver: Option<ResolverKind>,
    pub(super) getversion: bool,
}

/// Opens procfs (in the serving process: `/proc/self` is bound at open
/// time) and probes the kernel. Under the namespace sandbox the procfs is
/// a private instance of the server's own pid namespace; where the kernel
/// refuses one, the default falls back to chroot (and the host's procfs),
/// an explicit `--sandbox namespace` fails. Failures are recorded in the
/// report, for [`sandbox::confine`] to stop at or to show.
pub(super) fn prepare(
    cli: &Cli,
    root: BorrowedFd<'_>,
    checked: &Checked,
    isolation: &mut Isolation,
) -> (Prepared, Report) {
    let features = crate::syscalls::Features::probe(root);
    // Under chroot, a clone of self/fd alone (`..` from the host's would
    // leave the chroot); under `none` the host's tree is in reach anyway.
    let host_procfs = |kind: &sandbox::Kind| match ProcSelfFd::open() {
        Err(e) => (
            None,
            sandbox::Outcome::Fails(format!(
                "opening /proc/self/fd ({e}): a mounted procfs is needed to reopen \
                 resolved files on this kernel; mount one (mount -t proc proc /proc)"
            )),
        ),
        Ok(proc) if *kind == sandbox::Kind::None => {
            (Some(proc), sandbox::Outcome::Active("/proc/self/fd".into()))
        }
        Ok(_) => match ProcSelfFd::open_confined() {
            Ok(proc) => (
                Some(proc),
                sandbox::Outcome::Active(
                    "/proc/self/fd alone (a detached bind mount: `..` leads nowhere)".into(),
                ),
            ),
            Err(why) => (None, sandbox::Outcome::Fails(why)),
        },
    };
    let (proc, procfs) = if features.procfs_free() {
        let why = "not needed: O_EMPTYPATH, fchmodat2 and the *xattrat calls serve every request";
        (None, sandbox::Outcome::Inactive(why.into()))
    } else if let sandbox::Kind::Namespace { explicit } = isolation.kind {
        match ProcSelfFd::open_private() {
            Ok(proc) => (
                Some(proc),
                sandbox::Outcome::Active(
                    "self/fd alone, of a private instance (subset=pid) of the server's own \
                     pid namespace"
                        .into(),
                ),
            ),
            Err(why) if explicit => (
                None,
                sandbox::Outcome::Fails(format!("--sandbox namespace: {why}")),
            ),
            Err(why) => {
                warn!("the namespace sandbox cannot have {why}: falling back to chroot");
                isolation.kind = sandbox::Kind::Chroot {
                    why: format!("the default, since the namespace sandbox cannot have {why}"),
                };
                host_procfs(&isolation.kind)
            }
        }
    } else {
        host_procfs(&isolation.kind)
    };
    // /proc/PID/exe is a magic link to the host's binary, which CAP_CHOWN
    // could chown: is any of the server's procfs in reach but self/fd?
    let executable = if proc.is_none() {
        sandbox::Outcome::Active(
            "/proc/PID/exe (the host's binary) out of reach: no procfs is held".into(),
        )
    } else if isolation.kind == sandbox::Kind::None {
        sandbox::Outcome::Active(
            "/proc/PID/exe (the host's binary) in reach, as every host path is under --sandbox none".into(),
        )
    } else {
        sandbox::Outcome::Active(
            "/proc/PID/exe (the host's binary) out of reach: of procfs the server holds self/fd alone".into(),
        )
    };
    let openat2 = probe_openat2(root);
    let resolver = choose_resolver(cli.resolver, openat2);
    let mut report = Report::before_confinement(
        resolver.clone(),
        openat2.err(),
        procfs,
        cli.readonly,
        features,
        checked.ids.describe(),
    );
    report.xattrmap = checked.xattrs.describe();
    report.executable = executable;
    isolation.fill(&mut report);
    let prepared = Prepared {
        proc,
        resolver: resolver.ok(),
        getversion: has_generation_numbers(root),
    };
    (prepared, report)
}
