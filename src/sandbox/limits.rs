//! Resource limits for the serving process.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Open files: the walker holds one fd per path component (a 4095-byte path
/// has at most 2048), plus the socket, the root, procfs and a reopened file.
pub const NOFILE: u64 = 4096;

/// Sets RLIMIT_NOFILE to [`NOFILE`] (lowering the hard limit to it, raising
/// the soft one as far as the hard one allows) and RLIMIT_CORE to 0, so a
/// crash cannot leave file contents in a core dump. Returns the fd limit.
pub fn apply() -> u64 {
    let current = getrlimit(Resource::Nofile);
    let hard = current.maximum.map_or(NOFILE, |h| h.min(NOFILE));
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        },
    );
    let _ = setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    );
    getrlimit(Resource::Nofile).current.unwrap_or(hard)
}
