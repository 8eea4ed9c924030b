//! Closing the `O_PATH` fds that path resolution leaves behind, in batches.
//!
//! Almost every request resolves its path to an `O_PATH` fd and is done with
//! it once the reply is built. A `close` per request is a syscall of its own
//! (about 0.15 µs of a 12 µs request here, see docs/performance.md); these
//! fds are instead collected and closed together with one `close_range` per
//! contiguous run: by the server loop once a reply is sent and
//! [`DeferredClose::BATCH`] are pending (so the batch costs QEMU no wait),
//! or when the connection has been idle for [`DeferredClose::IDLE`] (the
//! server loop arms a read timeout while anything is pending).
//!
//! Only `O_PATH` fds come here, and why that is safe:
//! - they grant no access: nothing reads, writes or changes anything
//!   through them after the request that opened them;
//! - closing one has no side effect to delay: no fsnotify close event, no
//!   lock to release, no writeback (fds handed to QEMU and fds opened for
//!   I/O are closed at once, as before);
//! - what a held one does is pin its dentry: a deleted file's blocks stay
//!   allocated and a mount beneath it stays busy until the batch is closed,
//!   at most [`DeferredClose::BATCH`] requests or [`DeferredClose::IDLE`]
//!   later;
//! - the count is bounded, far below the helper's RLIMIT_NOFILE.
//!
//! Without `close_range` (Linux before 5.9, or a container's seccomp
//! profile) every fd is closed at once, one `close` each.

use rustix::fd::{AsRawFd, OwnedFd};
use std::cell::RefCell;
use std::time::Duration;

/// The pending fds of one connection.
#[derive(Debug)]
pub struct DeferredClose {
    /// `None` where `close_range` is unavailable: nothing is deferred.
    pending: Option<RefCell<Vec<OwnedFd>>>,
}

impl DeferredClose {
    /// How many pending fds make a batch worth closing.
    pub const BATCH: usize = 32;
    /// Most fds held at once: one request that leaves more (a walk through
    /// many directories) closes them on the spot.
    pub const LIMIT: usize = 4 * Self::BATCH;
    /// How long an idle connection keeps pending fds.
    pub const IDLE: Duration = Duration::from_millis(10);

    /// `close_range`: whether the kernel has it (probed at start-up).
    pub fn new(close_range: bool) -> Self {
        DeferredClose {
            pending: close_range.then(|| RefCell::new(Vec::with_capacity(Self::LIMIT))),
        }
    }

    /// Takes an `O_PATH` fd the caller is done with. Never give it an fd
    /// whose close must happen now (see the module documentation).
    pub fn defer(&self, fd: OwnedFd) {
        let Some(pending) = &self.pending else {
            return drop(fd);
        };
        let mut pending = pending.borrow_mut();
        pending.push(fd);
        if pending.len() >= Self::LIMIT {
            close_all(&mut pending);
        }
    }

    /// Closes the pending fds if they make a batch. For the server loop,
    /// after a reply has gone out.
    pub fn flush_if_full(&self) {
        if self.len() >= Self::BATCH {
            self.flush();
        }
    }

    /// Closes everything pending now.
    pub fn flush(&self) {
        if let Some(pending) = &self.pending {
            close_all(&mut pending.borrow_mut());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn len(&self) -> usize {
        self.pending
            .as_ref()
            .map_or(0, |pending| pending.borrow().len())
    }
}

impl Drop for DeferredClose {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Closes every fd in `fds`: one `close_range` per run of consecutive fd
/// numbers (fds are allocated lowest-first, so a batch is usually one run),
/// a plain `close` for a run of one.
fn close_all(fds: &mut Vec<OwnedFd>) {
    fds.sort_unstable_by_key(|fd| fd.as_raw_fd());
    while !fds.is_empty() {
        crate::syscalls::close_leading_run(fds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    /// An `O_PATH` fd on a file only this test knows, so that fd numbers
    /// other tests reuse concurrently cannot be mistaken for ours.
    fn opath(marker: &Path) -> OwnedFd {
        rustix::fs::open(
            marker,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .unwrap()
    }

    fn is_ours(raw: i32, marker: &Path) -> bool {
        std::fs::read_link(format!("/proc/self/fd/{raw}")).ok() == Some(marker.to_path_buf())
    }

    fn marker(dir: &tempfile::TempDir, name: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, b"").unwrap();
        path
    }

    /// Hands `n` fds on `marker` to `deferred`; their numbers.
    fn defer_n(deferred: &DeferredClose, marker: &Path, n: usize) -> Vec<i32> {
        (0..n)
            .map(|_| {
                let fd = opath(marker);
                let raw = fd.as_raw_fd();
                deferred.defer(fd);
                raw
            })
            .collect()
    }

    #[test]
    fn fds_stay_open_until_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let m = marker(&dir, "deferred");
        let deferred = DeferredClose::new(true);
        let raws = defer_n(&deferred, &m, DeferredClose::BATCH - 1);
        assert!(raws.iter().all(|&r| is_ours(r, &m)));
        assert!(!deferred.is_empty());
        deferred.flush();
        assert!(deferred.is_empty());
        assert!(
            raws.iter().all(|&r| !is_ours(r, &m)),
            "flush closed them all"
        );
    }

    #[test]
    fn a_full_batch_waits_for_flush_if_full() {
        let dir = tempfile::tempdir().unwrap();
        let m = marker(&dir, "deferred");
        let deferred = DeferredClose::new(true);
        let mut raws = defer_n(&deferred, &m, DeferredClose::BATCH - 1);
        deferred.flush_if_full();
        assert!(raws.iter().all(|&r| is_ours(r, &m)), "not a batch yet");
        raws.extend(defer_n(&deferred, &m, 1));
        assert!(
            raws.iter().all(|&r| is_ours(r, &m)),
            "defer alone closes nothing"
        );
        deferred.flush_if_full();
        assert!(deferred.is_empty());
        assert!(raws.iter().all(|&r| !is_ours(r, &m)));
    }

    #[test]
    fn past_the_limit_fds_are_closed_on_the_spot() {
        let dir = tempfile::tempdir().unwrap();
        let m = marker(&dir, "deferred");
        let k = marker(&dir, "kept");
        let deferred = DeferredClose::new(true);
        let mut raws = Vec::new();
        let mut kept = Vec::new();
        for i in 0..DeferredClose::LIMIT * 3 {
            let fd = opath(&m);
            raws.push(fd.as_raw_fd());
            deferred.defer(fd);
            if i % 7 == 3 {
                // Holes in the runs: fds not handed over sit among them.
                kept.push(opath(&k));
            }
        }
        assert!(deferred.is_empty(), "three times the limit, all closed");
        assert!(raws.iter().all(|&r| !is_ours(r, &m)));
        assert!(kept.iter().all(|fd| is_ours(fd.as_raw_fd(), &k)));
    }

    #[test]
    fn without_close_range_nothing_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let m = marker(&dir, "deferred");
        let deferred = DeferredClose::new(false);
        let fd = opath(&m);
        let raw = fd.as_raw_fd();
        deferred.defer(fd);
        assert!(deferred.is_empty());
        assert!(!is_ours(raw, &m));
    }
}
