//! Capabilities and effective ids, in one place.
//!
//! The helper keeps exactly the capabilities the original keeps. Creations
//! run under the guest's uid/gid through [`AssumedIdentity`], a guard that
//! always switches back, even when the operation fails.
//!
//! The id switches use the raw per-thread syscalls (rustix's
//! `set_thread_res_*`): the helper is single-threaded, so the thread's ids are
//! the process's ids.

use crate::process::ParentWatch;
use caps::{CapSet, Capability, CapsHashSet};
use rustix::io::Errno;
use rustix::process::{Gid, Uid, getegid, geteuid};
use rustix::thread::{set_thread_res_gid, set_thread_res_uid};
use std::sync::Arc;

/// The capabilities the original helper keeps, and so do we.
pub const KEPT: [Capability; 7] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FOWNER,
    Capability::CAP_FSETID,
    Capability::CAP_SETGID,
    Capability::CAP_MKNOD,
    Capability::CAP_SETUID,
];

/// The capability set in force while serving.
#[derive(Debug, Clone)]
pub struct Privileges {
    kept: CapsHashSet,
    /// Under the namespace sandbox: the waiter, whose death must end the
    /// server after any number of identity changes.
    watch: Option<Arc<ParentWatch>>,
}

impl Privileges {
    /// Reduces the permitted and effective sets to [`KEPT`] (those of them
    /// this process has), and clears the inheritable and ambient sets.
    /// Returns what is kept; `missing` lists wanted capabilities the process
    /// never had (for the log: an unprivileged run lacks them all).
    /// `watch` is the waiter to re-arm the parent-death signal for after
    /// each identity change (namespace sandbox), if any.
    pub fn limit_to_kept(
        watch: Option<Arc<ParentWatch>>,
    ) -> Result<(Self, Vec<Capability>), caps::errors::CapsError> {
        let permitted = caps::read(None, CapSet::Permitted)?;
        let kept: CapsHashSet = KEPT
            .iter()
            .copied()
            .filter(|c| permitted.contains(c))
            .collect();
        let missing = KEPT
            .iter()
            .copied()
            .filter(|c| !permitted.contains(c))
            .collect();
        // Effective first: it must stay a subset of permitted at every step.
        caps::set(None, CapSet::Effective, &kept)?;
        caps::set(None, CapSet::Permitted, &kept)?;
        caps::clear(None, CapSet::Inheritable)?;
        // The ambient set is absent on old kernels; nothing to clear there.
        let _ = caps::clear(None, CapSet::Ambient);
        Ok((Privileges { kept, watch }, missing))
    }

    /// The set as it stands, without changing anything (tests, reports).
    pub fn current() -> Self {
        let kept = caps::read(None, CapSet::Effective).unwrap_or_default();
        Privileges { kept, watch: None }
    }

    pub fn kept(&self) -> &CapsHashSet {
        &self.kept
    }

    fn restore_effective(&self) -> Result<(), caps::errors::CapsError> {
        caps::set(None, CapSet::Effective, &self.kept)
    }
}

/// While alive, the effective uid/gid are the guest's; dropping it switches
/// back and restores the full kept capability set.
///
/// As in the original: only the effective ids change (the saved ids keep the
/// helper's, so it can switch back), supplementary groups stay, and unless
/// uid and gid are both 0 the effective capabilities shrink to
/// CAP_DAC_OVERRIDE, so the guest's identity decides ownership but the helper
/// can still reach the directory.
#[must_use = "the identity reverts when the guard is dropped"]
pub struct AssumedIdentity<'a> {
    privileges: &'a Privileges,
    saved_uid: Uid,
    saved_gid: Gid,
}

impl<'a> AssumedIdentity<'a> {
    pub fn assume(privileges: &'a Privileges, uid: u32, gid: u32) -> Result<Self, Errno> {
        // -1 is no identity: to setresuid it means "leave unchanged", so a
        // creation for guest uid -1 would run as the helper itself (root).
        if uid == u32::MAX || gid == u32::MAX {
            return Err(Errno::INVAL);
        }
        let saved_uid = geteuid();
        let saved_gid = getegid();
        set_thread_res_gid(None, Gid::from_raw(gid), saved_gid)?;
        // From here on, an early return drops `guard`, which switches back.
        let guard = AssumedIdentity {
            privileges,
            saved_uid,
            saved_gid,
        };
        set_thread_res_uid(None, Uid::from_raw(uid), saved_uid)?;
        if uid != 0 || gid != 0 {
            let mut only_dac = CapsHashSet::new();
            if privileges.kept.contains(&Capability::CAP_DAC_OVERRIDE) {
                only_dac.insert(Capability::CAP_DAC_OVERRIDE);
            }
            caps::set(None, CapSet::Effective, &only_dac).map_err(|_| Errno::PERM)?;
        }
        Ok(guard)
    }
}

impl Drop for AssumedIdentity<'_> {
    fn drop(&mut self) {
        let restored = set_thread_res_uid(None, self.saved_uid, self.saved_uid)
            .and_then(|()| set_thread_res_gid(None, self.saved_gid, self.saved_gid))
            .map_err(|e| e.to_string())
            .and_then(|()| {
                self.privileges
                    .restore_effective()
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = restored {
            // Serving on under the guest's identity would be wrong either way:
            // stop, as the original aborts here.
            tracing::error!("cannot switch back to the helper's own identity: {e}; exiting");
            std::process::exit(1);
        }
        // The id changes cleared the parent-death signal.
        if let Some(watch) = &self.privileges.watch
            && !watch.rearm()
        {
            tracing::error!("the waiter outside the pid namespace has ended; exiting");
            crate::process::exit_now(1);
        }
    }
}
