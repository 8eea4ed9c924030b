//! The command line, compatible with the original's options.

use clap::{ArgGroup, Parser, ValueEnum};
use std::path::PathBuf;

/// Which path resolver serves requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResolverChoice {
    /// openat2(RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS) where the kernel offers
    /// it, the userspace walker where it is missing (ENOSYS) or blocked (EPERM)
    Auto,
    /// Only openat2; refuse to start without it
    Openat2,
    /// Only the userspace component walker
    Walker,
}

/// What seccomp does outside the allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SeccompChoice {
    /// Kill the helper
    Kill,
    /// Log the syscall (kernel audit log) and allow it
    Log,
    /// No filter
    Off,
}

impl From<SeccompChoice> for crate::sandbox::SeccompMode {
    fn from(c: SeccompChoice) -> Self {
        match c {
            SeccompChoice::Kill => Self::Kill,
            SeccompChoice::Log => Self::Log,
            SeccompChoice::Off => Self::Off,
        }
    }
}

/// How much to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl From<LogLevel> for tracing::Level {
    fn from(l: LogLevel) -> Self {
        match l {
            LogLevel::Error => tracing::Level::ERROR,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Trace => tracing::Level::TRACE,
        }
    }
}

/// The privileged helper behind QEMU's 9p proxy filesystem driver.
///
/// It confines itself to one export directory and performs the file
/// operations QEMU asks for over a UNIX stream socket, passing opened files
/// back as file descriptors. A drop-in replacement for QEMU's own
/// virtfs-proxy-helper, with layered protection against symlink and race
/// escapes.
#[derive(Debug, Parser)]
#[command(name = "virtfs-proxy-helper", version, max_term_width = 100)]
#[command(group(ArgGroup::new("connection").multiple(false).args(["fd", "socket"])))]
#[command(after_help = "\
Examples:
  QEMU connects to a socket file (removed once QEMU has connected):
    virtfs-proxy-helper -p /srv/share -s /run/vph.sock -u 107 -g 107
    qemu-system-x86_64 ... -fsdev proxy,id=fs0,socket=/run/vph.sock \\
      -device virtio-9p-pci,fsdev=fs0,mount_tag=share
  The caller made a socketpair and gives one end to the helper as fd 3, the
  other to QEMU as sock_fd (as LXD up to 6.6 did):
    virtfs-proxy-helper --nodaemon --fd 3 --path /srv/share

Exit status: 0 clean disconnect, 1 set-up or runtime failure (reported before
the command returns, in daemon mode too), 2 misuse, 130 SIGINT, 143 SIGTERM.")]
pub struct Cli {
    /// Directory to export (must exist; a symlink is not accepted)
    #[arg(short = 'p', long = "path", value_name = "PATH")]
    pub path: PathBuf,

    /// Connected UNIX stream socket to serve, inherited as this fd
    #[arg(short = 'f', long = "fd", value_name = "FD",
          required_unless_present_any = ["socket", "sandbox_report"],
          value_parser = clap::value_parser!(i32).range(0..))]
    pub fd: Option<i32>,

    /// Socket file to create and accept one connection on (needs --uid and --gid)
    #[arg(short = 's', long = "socket", value_name = "SOCKET", requires_all = ["uid", "gid"],
          required_unless_present_any = ["fd", "sandbox_report"])]
    pub socket: Option<PathBuf>,

    /// Owner uid of the socket file (with --socket)
    #[arg(short = 'u', long = "uid", value_name = "UID")]
    pub uid: Option<u32>,

    /// Owner gid of the socket file (with --socket)
    #[arg(short = 'g', long = "gid", value_name = "GID")]
    pub gid: Option<u32>,

    /// Stay in the foreground and log to stderr instead of syslog
    #[arg(short = 'n', long = "nodaemon")]
    pub nodaemon: bool,

    /// Path resolver
    #[arg(long, value_enum, default_value_t = ResolverChoice::Auto, value_name = "RESOLVER")]
    pub resolver: ResolverChoice,

    /// Do not chroot into the export (for user namespaces where chroot is not
    /// permitted); the resolver alone then confines every path
    #[arg(long)]
    pub no_chroot: bool,

    /// Serve the export read-only: every request that would change it answers
    /// EROFS, whatever the host mount allows
    #[arg(long)]
    pub readonly: bool,

    /// What the seccomp allow-list does with a syscall outside it: kill the
    /// helper, log it (audit) and allow it, or install no filter
    #[arg(long, value_enum, default_value_t = SeccompChoice::Kill, value_name = "MODE")]
    pub seccomp: SeccompChoice,

    /// Try every protection layer in a throwaway process, print what happened
    /// and exit (1 if a real run would fail)
    #[arg(long)]
    pub sandbox_report: bool,

    /// Log level
    #[arg(long, value_enum, default_value_t = LogLevel::Info, value_name = "LEVEL")]
    pub log_level: LogLevel,

    /// Translate uids between guest and host, in credentials, stat replies
    /// and POSIX ACLs (repeatable; virtiofsd's rules: map:G:H:N, guest:G:H:N,
    /// host:H:G:N, squash-guest:G:H:N, squash-host:H:G:N, forbid-guest:G:N;
    /// N is a count)
    #[arg(long = "translate-uid", value_name = "RULE")]
    pub translate_uid: Vec<String>,

    /// Translate gids between guest and host, as --translate-uid does uids
    #[arg(long = "translate-gid", value_name = "RULE")]
    pub translate_gid: Vec<String>,
}

impl Cli {
    /// The id translation the command line asks for; the error names the
    /// option and the rule.
    pub fn translation(&self) -> Result<crate::idmap::Translation, String> {
        let mut t = crate::idmap::Translation::default();
        for (option, rules, map) in [
            ("--translate-uid", &self.translate_uid, &mut t.uids),
            ("--translate-gid", &self.translate_gid, &mut t.gids),
        ] {
            for rule in rules {
                map.add_rule(rule).map_err(|e| format!("{option} {e}"))?;
            }
        }
        Ok(t)
    }
}
