//! The processes forked beside the server, each confined on its own: the
//! waiter outside the pid namespace ([`super::namespace`]) and the
//! socket-file janitor (`crate::endpoint`).
//!
//! Neither serves a request, but each outlives set-up, so each would be a
//! stepping stone if left as it was forked (with every capability of the
//! launcher, no filter, the launcher's working directory). What each step
//! of [`confine`] stops:
//! - `chdir("/")`: no working directory inside the export, where a core
//!   dump would land, and none that the guest's files could be reached
//!   through;
//! - `RLIMIT_CORE` 0 and `PR_SET_DUMPABLE` 0: no core dump anywhere, and
//!   `/proc/PID/{root,cwd,fd}` of the process closed to every process
//!   without `CAP_SYS_PTRACE` (the server has none), so its root cannot
//!   serve as a way to the host's `/`;
//! - the capabilities cut to what the process uses (the waiter: none;
//!   the janitor: what removing the socket file needs), inheritable and
//!   ambient cleared;
//! - `no_new_privs` and a seccomp allow-list of its own
//!   ([`super::seccomp::WAITER`], [`super::seccomp::JANITOR`]).

use super::seccomp::{self, Process, SeccompMode};
use caps::{CapSet, Capability, CapsHashSet};
use rustix::process::{DumpableBehavior, Resource, Rlimit};

/// Confines the calling process, a freshly forked companion of the
/// server, keeping the capabilities in `keep` it has. Returns what holds,
/// in the words the report and the log use, or why a step failed.
pub fn confine(process: Process, keep: &[Capability], mode: SeccompMode) -> Result<String, String> {
    let step = |what: &str, e: &dyn std::fmt::Display| format!("{}: {what}: {e}", process.name());
    rustix::process::chdir("/").map_err(|e| step("chdir /", &e))?;
    let no_core = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    rustix::process::setrlimit(Resource::Core, no_core).map_err(|e| step("RLIMIT_CORE", &e))?;
    rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable)
        .map_err(|e| step("PR_SET_DUMPABLE", &e))?;
    let kept = limit_capabilities(keep).map_err(|e| step("capabilities", &e))?;
    rustix::thread::set_no_new_privs(true).map_err(|e| step("no_new_privs", &e))?;
    let filter = match seccomp::program_for(process, mode) {
        Ok(Some(program)) => {
            seccomp::install(&program).map_err(|e| step("seccomp", &e))?;
            let how = if mode == SeccompMode::Log {
                "log"
            } else {
                "kill"
            };
            format!("seccomp {how} ({} syscalls)", process.allowed_count())
        }
        Ok(None) => "seccomp off".to_owned(),
        Err(e) => return Err(step("building the seccomp filter", &e)),
    };
    Ok(format!(
        "caps {kept}; no_new_privs; {filter}; no core dump; cwd /"
    ))
}

/// Cuts the permitted and effective sets to `keep` (those of it this
/// process has), clears the inheritable and ambient sets; the names kept.
fn limit_capabilities(keep: &[Capability]) -> Result<String, caps::errors::CapsError> {
    let permitted = caps::read(None, CapSet::Permitted)?;
    let kept: CapsHashSet = keep
        .iter()
        .copied()
        .filter(|c| permitted.contains(c))
        .collect();
    caps::set(None, CapSet::Effective, &kept)?;
    caps::set(None, CapSet::Permitted, &kept)?;
    caps::clear(None, CapSet::Inheritable)?;
    // Absent on old kernels; nothing to clear there.
    let _ = caps::clear(None, CapSet::Ambient);
    let mut names: Vec<String> = kept
        .iter()
        .map(|c| c.to_string().trim_start_matches("CAP_").to_owned())
        .collect();
    names.sort();
    Ok(if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(",")
    })
}
