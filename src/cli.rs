//! The command line, compatible with the original's options.

use crate::sandbox::{Choice, SandboxRequest, SeccompMode};
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

impl From<SeccompChoice> for SeccompMode {
    fn from(c: SeccompChoice) -> Self {
        match c {
            SeccompChoice::Kill => Self::Kill,
            SeccompChoice::Log => Self::Log,
            SeccompChoice::Off => Self::Off,
        }
    }
}

/// How the helper confines itself to the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SandboxChoice {
    /// New mount, pid, net, ipc and uts namespaces; the export bind-mounted
    /// nodev,nosuid; pivot_root into it (the default where the kernel
    /// allows it, else chroot)
    Namespace,
    /// chroot into the export, as the original does
    Chroot,
    /// No isolation but the resolver (what --no-chroot did)
    None,
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
the command returns, in daemon mode too), 2 misuse, 130 SIGINT, 143 SIGTERM,
129 SIGHUP, 131 SIGQUIT, 138 SIGUSR1, 140 SIGUSR2.")]
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

    /// How to confine the helper: namespace, chroot or none [default:
    /// namespace where the kernel allows it, else chroot]
    #[arg(long, value_enum, value_name = "KIND")]
    pub sandbox: Option<SandboxChoice>,

    /// The same as --sandbox none: the resolver alone then confines every
    /// path
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

    /// Run in a user namespace of the helper's own, with this uid map entry
    /// (repeatable; :NS:HOST:COUNT:, COUNT a count). As root the helper
    /// writes the map; as an ordinary user newuidmap does, within
    /// /etc/subuid. An ordinary user who gives none gets an automatic map
    #[arg(long = "uid-map", value_name = ":NS:HOST:COUNT:")]
    pub uid_map: Vec<String>,

    /// The gid map of the helper's own user namespace, as --uid-map
    #[arg(long = "gid-map", value_name = ":NS:HOST:COUNT:")]
    pub gid_map: Vec<String>,

    /// Map xattr names between guest and host (virtiofsd's rules:
    /// :TYPE:SCOPE:KEY:PREPEND: with types prefix, ok, bad, unsupported,
    /// and :map:KEY:PREPEND: last; e.g. ":map:security.:user.virtiofs.:")
    #[arg(long, value_name = "RULES")]
    pub xattrmap: Option<String>,
}

impl From<SandboxChoice> for Choice {
    fn from(c: SandboxChoice) -> Self {
        match c {
            SandboxChoice::Namespace => Choice::Namespace,
            SandboxChoice::Chroot => Choice::Chroot,
            SandboxChoice::None => Choice::None,
        }
    }
}

impl Cli {
    /// The sandbox asked for; contradictory options are a misuse.
    pub fn sandbox_request(&self) -> Result<SandboxRequest, String> {
        match (self.no_chroot, self.sandbox) {
            (true, Some(SandboxChoice::None)) | (true, None) => {
                Ok(SandboxRequest::Explicit(Choice::None))
            }
            (true, Some(other)) => Err(format!(
                "--no-chroot means --sandbox none; it contradicts --sandbox {}",
                other
                    .to_possible_value()
                    .map(|v| v.get_name().to_owned())
                    .unwrap_or_default()
            )),
            (false, Some(choice)) => Ok(SandboxRequest::Explicit(choice.into())),
            (false, None) => Ok(SandboxRequest::Default),
        }
    }

    /// The user namespace maps asked for, checked as the kernel would.
    pub fn id_maps(
        &self,
    ) -> Result<
        (
            Vec<crate::sandbox::userns::MapEntry>,
            Vec<crate::sandbox::userns::MapEntry>,
        ),
        String,
    > {
        use crate::sandbox::userns::{check_map, parse_entry};
        let parse = |option: &str, entries: &[String]| {
            let map = entries
                .iter()
                .map(|e| parse_entry(e).map_err(|why| format!("{option} {why}")))
                .collect::<Result<Vec<_>, _>>()?;
            check_map(option, &map)?;
            Ok::<_, String>(map)
        };
        let uids = parse("--uid-map", &self.uid_map)?;
        let gids = parse("--gid-map", &self.gid_map)?;
        if uids.is_empty() != gids.is_empty() {
            return Err("--uid-map and --gid-map go together: give both".into());
        }
        Ok((uids, gids))
    }

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
