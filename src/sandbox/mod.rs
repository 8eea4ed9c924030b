//! Confinement of the helper process, in one place: chroot, Landlock, the
//! seccomp allow-list, resource limits, and the report of what is active.
//!
//! Each layer holds on its own (docs/security.md); together with the
//! confined resolver (`crate::resolve`) and the capability set
//! (`crate::privilege`) they are what stands between a hostile guest and
//! the host.

pub mod landlock;
pub mod limits;
pub mod seccomp;

pub use self::seccomp::SeccompMode;

use crate::privilege::KEPT;
use crate::resolve::ResolverKind;
use rustix::fd::BorrowedFd;
use rustix::io::Errno;

/// chroot into the directory `root` refers to, and stay in it: `fchdir`
/// then `chroot(".")`, so the new root is the very directory held open,
/// not whatever its path names by now.
pub fn chroot_into(root: BorrowedFd<'_>) -> Result<(), Errno> {
    rustix::process::fchdir(root)?;
    rustix::process::chroot(".")
}

/// Which layers are active, for `--sandbox-report` and the start-up log.
#[derive(Debug, Clone)]
pub struct Report {
    pub chroot: bool,
    pub resolver: ResolverKind,
    /// Why openat2 cannot be used, if it cannot.
    pub openat2_unavailable: Option<Errno>,
    /// The kernel's Landlock ABI (0: none).
    pub landlock_abi: i64,
    pub landlock: Option<landlock::Enforcement>,
    pub seccomp: SeccompMode,
    pub capabilities: Vec<String>,
    pub missing_capabilities: Vec<String>,
    pub nofile: u64,
    pub readonly: bool,
}

impl Report {
    /// The capabilities of [`KEPT`] this process has (kept) and lacks.
    pub fn capability_names(permitted: &caps::CapsHashSet) -> (Vec<String>, Vec<String>) {
        let (kept, missing): (Vec<_>, Vec<_>) = KEPT.iter().partition(|c| permitted.contains(c));
        let names = |v: Vec<&caps::Capability>| {
            let mut names: Vec<String> = v.iter().map(|c| c.to_string()).collect();
            names.sort();
            names
        };
        (names(kept), names(missing))
    }

    fn landlock_text(&self) -> String {
        match (self.landlock_abi, self.landlock) {
            (0, _) => "unavailable (kernel without Landlock)".into(),
            (abi, Some(landlock::Enforcement::Full)) => format!("ABI {abi}, fully enforced"),
            (abi, Some(landlock::Enforcement::Partial)) => format!("ABI {abi}, partially enforced"),
            (abi, Some(landlock::Enforcement::Unavailable)) => format!("ABI {abi}, not enforced"),
            (abi, None) => format!("ABI {abi}, restricts to the export tree"),
        }
    }

    fn seccomp_text(&self) -> String {
        let mut with_arg: Vec<_> = seccomp::ALLOWED_WITH_ARG.iter().map(|e| e.0).collect();
        with_arg.dedup();
        let n = seccomp::ALLOWED.len() + with_arg.len() + crate::syscalls::NUMBERS.len();
        match self.seccomp {
            SeccompMode::Kill => format!("kill ({n} syscalls allowed)"),
            SeccompMode::Log => format!("log ({n} syscalls allowed, others logged)"),
            SeccompMode::Off => "off".into(),
        }
    }

    /// One line for the log.
    pub fn summary(&self) -> String {
        format!(
            "chroot={} resolver={} readonly={} landlock=\"{}\" seccomp=\"{}\" capabilities={} nofile={}",
            if self.chroot { "on" } else { "off" },
            self.resolver.name(),
            if self.readonly { "on" } else { "off" },
            self.landlock_text(),
            self.seccomp_text(),
            self.capabilities.join(","),
            self.nofile
        )
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let on_off = |b: bool| if b { "on" } else { "off (--no-chroot)" };
        writeln!(f, "chroot:        {}", on_off(self.chroot))?;
        writeln!(f, "resolver:      {}", self.resolver.name())?;
        writeln!(
            f,
            "readonly:      {}",
            if self.readonly { "on" } else { "off" }
        )?;
        match self.openat2_unavailable {
            None => writeln!(f, "openat2:       available")?,
            Some(e) => writeln!(f, "openat2:       unavailable ({e})")?,
        }
        writeln!(f, "landlock:      {}", self.landlock_text())?;
        writeln!(f, "seccomp:       {}", self.seccomp_text())?;
        writeln!(f, "capabilities:  {}", self.capabilities.join(","))?;
        if !self.missing_capabilities.is_empty() {
            writeln!(f, "missing:       {}", self.missing_capabilities.join(","))?;
        }
        writeln!(f, "nofile limit:  {}", self.nofile)
    }
}
