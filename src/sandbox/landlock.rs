//! Landlock: after set-up, the helper may only access files beneath the
//! export, whatever path reaches them.
//!
//! Even a path-based syscall that somehow escaped the resolver and the
//! chroot would be refused by the kernel (EACCES) outside the export tree.
//! Best effort: the newest ABI the kernel offers is used, and a kernel
//! without Landlock leaves this layer off (logged).

use landlock::{
    ABI, Access, AccessFs, PathBeneath, RestrictionStatus, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus,
};
use rustix::fd::BorrowedFd;

/// The newest ABI this build knows; older kernels get what they support.
const NEWEST: ABI = ABI::V6;

/// How the restriction went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforcement {
    Full,
    Partial,
    /// The kernel has no Landlock (or it is disabled).
    Unavailable,
}

/// The Landlock ABI version the running kernel offers (0: none).
pub fn kernel_abi() -> i64 {
    crate::syscalls::landlock_abi()
}

/// Restricts the calling thread (and so the single-threaded helper) to the
/// tree beneath `root`, and there to reading only when `readonly`. Sets
/// `PR_SET_NO_NEW_PRIVS`.
pub fn restrict_to(root: BorrowedFd<'_>, readonly: bool) -> Result<Enforcement, String> {
    let all = AccessFs::from_all(NEWEST);
    let allowed = if readonly {
        AccessFs::from_read(NEWEST)
    } else {
        all
    };
    let status: RestrictionStatus = Ruleset::default()
        .handle_access(all)
        .and_then(|r| r.create())
        .and_then(|r| r.add_rule(PathBeneath::new(root, allowed)))
        .and_then(|r| r.restrict_self())
        .map_err(|e| e.to_string())?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Enforcement::Full,
        RulesetStatus::PartiallyEnforced => Enforcement::Partial,
        RulesetStatus::NotEnforced => Enforcement::Unavailable,
    })
}
