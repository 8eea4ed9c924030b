//! Logging through `tracing`: to stderr in the foreground, to syslog
//! (facility daemon, tagged `virtfs-proxy-helper[pid]`) as a daemon.
//!
//! The syslog socket is connected at start-up, before chroot hides
//! `/dev/log`, and written with one datagram per event.

use rustix::fd::OwnedFd;
use rustix::net::{AddressFamily, SendFlags, SocketAddrUnix, SocketFlags, SocketType};
use std::io::{self, Write};
use std::sync::OnceLock;
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

pub const PROGRAM: &str = "virtfs-proxy-helper";

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    Stderr,
    Syslog,
}

static SYSLOG: OnceLock<OwnedFd> = OnceLock::new();

fn connect_syslog() -> io::Result<OwnedFd> {
    let sock = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::connect(&sock, &SocketAddrUnix::new("/dev/log")?)?;
    Ok(sock)
}

/// Builds one syslog datagram per event and sends it when dropped.
pub struct SyslogLine {
    severity: u8,
    line: Vec<u8>,
}

impl Write for SyslogLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for SyslogLine {
    fn drop(&mut self) {
        let Some(sock) = SYSLOG.get() else { return };
        const LOG_DAEMON: u8 = 3 << 3;
        let text = String::from_utf8_lossy(&self.line);
        let datagram = format!(
            "<{}>{}[{}]: {}",
            LOG_DAEMON | self.severity,
            PROGRAM,
            rustix::process::getpid().as_raw_nonzero(),
            text.trim_end()
        );
        // A lost log line must never stop the helper.
        let _ = rustix::net::send(sock, datagram.as_bytes(), SendFlags::NOSIGNAL);
    }
}

struct SyslogWriter;

impl<'a> MakeWriter<'a> for SyslogWriter {
    type Writer = SyslogLine;

    fn make_writer(&'a self) -> SyslogLine {
        SyslogLine {
            severity: 6,
            line: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> SyslogLine {
        let severity = match *meta.level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        SyslogLine {
            severity,
            line: Vec::new(),
        }
    }
}

/// Installs the global subscriber. For syslog, connects to `/dev/log` first;
/// the error says why that failed (the caller decides what to do).
pub fn init(target: LogTarget, level: Level) -> io::Result<()> {
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false);
    match target {
        LogTarget::Stderr => {
            builder.with_writer(io::stderr).with_ansi(false).init();
            Ok(())
        }
        LogTarget::Syslog => {
            let sock = connect_syslog();
            builder
                .with_writer(SyslogWriter)
                .with_ansi(false)
                .without_time()
                .with_level(false)
                .init();
            let _ = SYSLOG.set(sock?);
            Ok(())
        }
    }
}
