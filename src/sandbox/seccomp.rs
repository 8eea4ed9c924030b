//! The seccomp allow-lists, one per process of the helper: the server's
//! ([`ALLOWED`], the only syscalls the serving loop makes), the waiter's
//! ([`WAITER`]) and the socket-file janitor's ([`JANITOR`]).
//!
//! The server's is installed last in set-up, before the helper reports
//! ready and waits for QEMU, so start-up (binding the socket, daemonizing,
//! chroot) needs none of its own entries; accepting the connection does.
//! Anything not on a process's list kills it (or is logged, with
//! `--seccomp log`).

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// What happens to a syscall outside the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeccompMode {
    /// Kill the helper (SIGSYS).
    Kill,
    /// Allow it, and log it to the kernel's audit log.
    Log,
    /// No filter.
    Off,
}

/// `FS_IOC_GETVERSION`, the only ioctl the helper issues.
const FS_IOC_GETVERSION: u64 = 0x8008_7601;
/// The socket options rustix sets a receive timeout with: `SO_RCVTIMEO_NEW`
/// first, `SO_RCVTIMEO_OLD` where the kernel lacks it (asm-generic values,
/// as on x86_64 and arm64).
const SO_RCVTIMEO_NEW: u64 = 66;
const SO_RCVTIMEO_OLD: u64 = 20;
/// `SO_PEERCRED` (asm-generic value, as on x86_64 and arm64).
const SO_PEERCRED: u64 = 17;

/// Every syscall the serving loop may make, with the reason. Keep it sorted
/// by purpose; the integration suite runs with `kill`, so a missing entry
/// shows up as a killed helper in the tests.
pub const ALLOWED: &[(libc::c_long, &str)] = &[
    // The socket to QEMU, and logging to stderr or syslog.
    (libc::SYS_accept4, "accepting QEMU's connection (--socket)"),
    (
        libc::SYS_ppoll,
        "waiting for QEMU's connection while watching the janitor",
    ),
    (libc::SYS_poll, "the same where the C library uses poll"),
    (libc::SYS_recvfrom, "requests from the socket (recv)"),
    (libc::SYS_sendto, "replies (send) and syslog datagrams"),
    (libc::SYS_sendmsg, "fd replies with SCM_RIGHTS"),
    (libc::SYS_write, "log lines on stderr"),
    (libc::SYS_writev, "log lines on stderr"),
    // Path resolution.
    (libc::SYS_openat2, "the openat2 resolver"),
    (
        libc::SYS_openat,
        "the walker, reopening through /proc/self/fd",
    ),
    (
        libc::SYS_readlinkat,
        "the walker's symlink expansion, T_READLINK",
    ),
    (libc::SYS_close, "every fd the helper opens"),
    // File operations.
    (libc::SYS_fstat, "type checks"),
    (libc::SYS_newfstatat, "T_LSTAT, type checks"),
    (libc::SYS_statx, "stat where the C library prefers it"),
    (libc::SYS_fstatfs, "T_STATFS, the walker's procfs check"),
    (libc::SYS_mkdirat, "T_MKDIR"),
    (libc::SYS_mknodat, "T_MKNOD"),
    (libc::SYS_symlinkat, "T_SYMLINK"),
    (libc::SYS_linkat, "T_LINK"),
    (libc::SYS_renameat, "T_RENAME"),
    (libc::SYS_renameat2, "T_RENAME"),
    (libc::SYS_unlinkat, "T_REMOVE"),
    (libc::SYS_fchmodat, "T_CHMOD through /proc/self/fd"),
    (libc::SYS_fchownat, "T_CHOWN"),
    (libc::SYS_utimensat, "T_UTIME"),
    (libc::SYS_ftruncate, "T_TRUNCATE"),
    (libc::SYS_getxattr, "T_LGETXATTR on /proc/self/fd/N"),
    (libc::SYS_fgetxattr, "T_LGETXATTR on a directory fd"),
    (libc::SYS_flistxattr, "T_LLISTXATTR on a directory fd"),
    (libc::SYS_fsetxattr, "T_LSETXATTR on a directory fd"),
    (libc::SYS_fremovexattr, "T_LREMOVEXATTR on a directory fd"),
    (libc::SYS_listxattr, "T_LLISTXATTR on /proc/self/fd/N"),
    (libc::SYS_setxattr, "T_LSETXATTR on /proc/self/fd/N"),
    (libc::SYS_removexattr, "T_LREMOVEXATTR on /proc/self/fd/N"),
    // Creations under the guest's identity.
    (libc::SYS_setresuid, "switching the effective uid"),
    (libc::SYS_setresgid, "switching the effective gid"),
    (libc::SYS_geteuid, "saving the effective uid"),
    (libc::SYS_getegid, "saving the effective gid"),
    (libc::SYS_capget, "restoring capabilities"),
    (libc::SYS_capset, "restoring capabilities"),
    // The Rust runtime: memory, time, the pid in syslog lines, exit.
    (libc::SYS_brk, "memory"),
    (libc::SYS_mmap, "memory"),
    (libc::SYS_munmap, "memory"),
    (libc::SYS_mremap, "memory"),
    (libc::SYS_madvise, "memory"),
    (libc::SYS_futex, "std's locks (stderr)"),
    (libc::SYS_getrandom, "hash map keys"),
    (libc::SYS_clock_gettime, "log timestamps without the vDSO"),
    (libc::SYS_getpid, "syslog tag"),
    (libc::SYS_gettid, "abort on a bug"),
    (libc::SYS_tgkill, "abort on a bug"),
    (libc::SYS_rt_sigprocmask, "abort on a bug"),
    (libc::SYS_rt_sigreturn, "signal handlers"),
    (libc::SYS_sigaltstack, "stack overflow handler"),
    (libc::SYS_wait4, "waiting for the socket-file janitor"),
    (
        libc::SYS_read,
        "waiting for the socket-file janitor (its pipe's EOF)",
    ),
    (libc::SYS_exit, "exit"),
    (libc::SYS_exit_group, "exit"),
];

/// The waiter outside the pid namespace (`crate::sandbox::namespace`):
/// it waits for its children, forwards signals to the server and ends as
/// the server did. No file, socket or id call at all.
pub const WAITER: &[(libc::c_long, &str)] = &[
    (libc::SYS_wait4, "waiting for the server and the janitor"),
    (libc::SYS_kill, "forwarding signals to the server"),
    (libc::SYS_write, "its confinement's outcome, to the server"),
    (libc::SYS_close, "closing that pipe"),
    (libc::SYS_rt_sigreturn, "signal handlers"),
    (libc::SYS_rt_sigaction, "ending by the server's signal"),
    (libc::SYS_rt_sigprocmask, "ending by the server's signal"),
    (libc::SYS_getpid, "raise"),
    (libc::SYS_gettid, "raise"),
    (libc::SYS_tgkill, "raise"),
    (libc::SYS_restart_syscall, "a wait interrupted by a signal"),
    (libc::SYS_exit, "exit"),
    (libc::SYS_exit_group, "exit"),
];

/// The socket-file janitor (`crate::endpoint`): it waits on a pipe,
/// forwards the helper's signals to its parent, then removes one file in
/// the directory it holds.
pub const JANITOR: &[(libc::c_long, &str)] = &[
    (libc::SYS_read, "waiting for its pipe"),
    (libc::SYS_write, "its confinement's outcome, to the server"),
    (
        libc::SYS_newfstatat,
        "checking the socket file is still ours",
    ),
    (libc::SYS_statx, "the same where the C library prefers it"),
    (libc::SYS_unlinkat, "removing the socket file"),
    (libc::SYS_close, "closing its pipes"),
    (libc::SYS_getppid, "forwarding signals to its parent only"),
    (libc::SYS_kill, "forwarding signals to its parent"),
    (libc::SYS_rt_sigreturn, "signal handlers"),
    (libc::SYS_restart_syscall, "a read interrupted by a signal"),
    (libc::SYS_exit, "exit"),
    (libc::SYS_exit_group, "exit"),
];

/// `PR_SET_PDEATHSIG`: the server re-arms its parent-death signal after
/// each identity change, which clears it.
const PR_SET_PDEATHSIG: u64 = 1;

/// Syscalls allowed only with argument `arg` equal to `value` (several
/// entries for one syscall allow any of their values).
pub const ALLOWED_WITH_ARG: &[PinnedArg] = &[
    (
        libc::SYS_setsockopt,
        2,
        SO_RCVTIMEO_NEW,
        "the idle timer that closes deferred fds",
    ),
    (
        libc::SYS_setsockopt,
        2,
        SO_RCVTIMEO_OLD,
        "the idle timer, kernels before 5.1",
    ),
    (
        libc::SYS_getsockopt,
        2,
        SO_PEERCRED,
        "logging who connected (--socket)",
    ),
    (libc::SYS_ioctl, 1, FS_IOC_GETVERSION, "T_GETVERSION"),
    (
        libc::SYS_prctl,
        0,
        PR_SET_PDEATHSIG,
        "re-arming the parent-death signal after an identity change",
    ),
    (
        libc::SYS_fcntl,
        1,
        libc::F_GETFD as u64,
        "std checks an fd is open before closing it (debug builds)",
    ),
];

/// Which process a filter is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    Server,
    Waiter,
    Janitor,
}

impl Process {
    pub fn name(self) -> &'static str {
        match self {
            Process::Server => "server",
            Process::Waiter => "waiter",
            Process::Janitor => "janitor",
        }
    }

    /// Its list: (syscall, why) allowed with any arguments, and those
    /// allowed with one argument pinned.
    fn lists(self) -> (Vec<(libc::c_long, &'static str)>, &'static [PinnedArg]) {
        match self {
            Process::Server => (
                ALLOWED
                    .iter()
                    .chain(crate::syscalls::NUMBERS.iter())
                    .copied()
                    .collect(),
                ALLOWED_WITH_ARG,
            ),
            Process::Waiter => (WAITER.to_vec(), &[]),
            Process::Janitor => (JANITOR.to_vec(), &[]),
        }
    }

    /// How many syscalls its filter lets through (some only with one
    /// argument).
    pub fn allowed_count(self) -> usize {
        let (any, pinned) = self.lists();
        let mut nrs: Vec<_> = any
            .iter()
            .map(|e| e.0)
            .chain(pinned.iter().map(|e| e.0))
            .collect();
        nrs.sort_unstable();
        nrs.dedup();
        nrs.len()
    }
}

/// (syscall, argument index, value, why).
type PinnedArg = (libc::c_long, u8, u64, &'static str);

/// How many syscalls the server's filter lets through (some only with one
/// argument).
pub fn allowed_count() -> usize {
    Process::Server.allowed_count()
}

/// Compiles the server's allow-list into a BPF program for this
/// architecture.
pub fn program(mode: SeccompMode) -> Result<Option<BpfProgram>, String> {
    program_for(Process::Server, mode)
}

/// Compiles `process`'s allow-list into a BPF program for this
/// architecture.
// `c_long` is `i64` here but `i32` on 32-bit targets: the conversion is not
// useless everywhere.
#[allow(clippy::useless_conversion)]
pub fn program_for(process: Process, mode: SeccompMode) -> Result<Option<BpfProgram>, String> {
    let mismatch = match mode {
        SeccompMode::Off => return Ok(None),
        SeccompMode::Kill => SeccompAction::KillProcess,
        SeccompMode::Log => SeccompAction::Log,
    };
    let (any, pinned) = process.lists();
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = any
        .iter()
        .map(|&(nr, _)| (i64::from(nr), Vec::new()))
        .collect();
    // Syscalls allowed with one argument pinned to a single value.
    for &(nr, arg, value, _why) in pinned {
        let rule = SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value)
            .and_then(|c| SeccompRule::new(vec![c]))
            .map_err(|e| e.to_string())?;
        rules.entry(i64::from(nr)).or_default().push(rule);
    }
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| e.to_string())?;
    let filter = SeccompFilter::new(rules, mismatch, SeccompAction::Allow, arch)
        .map_err(|e| e.to_string())?;
    BpfProgram::try_from(filter)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Installs the filter on the calling thread (the helper has no other).
/// Sets `PR_SET_NO_NEW_PRIVS` first, which a filter requires.
pub fn install(program: &BpfProgram) -> Result<(), String> {
    seccompiler::apply_filter(program).map_err(|e| e.to_string())
}
