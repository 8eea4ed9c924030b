//! A drop-in Rust replacement for QEMU's `virtfs-proxy-helper`.
//!
//! Where to find things:
//! - [`protocol`]: the wire format, pure encode/decode (no I/O)
//! - [`transport`]: the socket: framed reads, replies, fd passing
//! - [`server`]: the request loop
//! - [`ops`]: one function per request type
//! - [`export`]: the export root and how requests reach their targets
//! - [`path`]: validation of client paths
//! - [`resolve`]: confined path resolution (openat2 and the walker)
//! - [`deferred_close`]: batched closing of resolved `O_PATH` fds
//! - [`procfs`]: reopening resolved inodes through `/proc/self/fd`
//! - [`idmap`]: guest/host id translation (`--translate-uid`/`-gid`),
//!   stat replies and POSIX ACL entries included
//! - [`xattrmap`]: xattr name mapping (`--xattrmap`), virtiofsd's rules
//! - [`privilege`]: capabilities and the guest-identity guard
//! - [`sandbox`]: the helper's own user namespace and its maps, the
//!   namespace sandbox (`pivot_root`, `nodev,nosuid`), chroot, Landlock,
//!   seccomp, resource limits, the report
//! - [`syscalls`]: newer syscalls rustix does not wrap yet (probed)
//! - [`endpoint`]: the connection: `--fd` checks, the socket file, its janitor
//! - [`daemon`]: detaching, with the daemon's set-up reported back
//! - [`process`]: fork, wait, `_exit`, signal masks and handlers,
//!   `unshare`: with
//!   [`syscalls`], the rooms for raw calls
//! - [`signals`]: SIGINT and SIGTERM
//! - [`app`], [`cli`], [`logging`]: start-up, command line, logs

pub mod app;
pub mod cli;
pub mod daemon;
pub mod deferred_close;
pub mod endpoint;
pub mod error;
pub mod export;
pub mod idmap;
pub mod logging;
pub mod ops;
pub mod path;
pub mod privilege;
pub mod process;
pub mod procfs;
pub mod protocol;
pub mod resolve;
pub mod sandbox;
pub mod server;
pub mod signals;
pub mod syscalls;
pub mod transport;
pub mod xattrmap;
