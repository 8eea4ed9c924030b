//! Logging through `tracing`: to stderr in the foreground, to syslog
//! (facility daemon, tagged `virtfs-proxy-helper[pid]`) as a daemon.
//!
//! Where stderr is the journal's stream (a systemd service: `$JOURNAL_STREAM`
//! names stderr's device and inode), each stderr line starts with its
//! syslog priority, `<3>` to `<7>` (sd-daemon(3)), so the journal records
//! the level and `journalctl -p warning` can filter by it.
//!
//! The syslog socket is connected at start-up, before chroot hides
//! `/dev/log`, and written with one datagram per event.
//!
//! Log lines carry strings the guest chose (paths, xattr names). Two
//! defences keep them from forging entries or reaching a terminal:
//! [`Escaped`] renders each client string with every control character and
//! invalid byte as a visible escape, and every sink passes the finished line
//! through [`sanitize_line`], so a newline or escape sequence that reached a
//! message some other way is escaped there too.

use rustix::fd::OwnedFd;
use rustix::net::{AddressFamily, SendFlags, SocketAddrUnix, SocketFlags, SocketType};
use std::fmt::Write as _;
use std::io::{self, IoSlice, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

pub const PROGRAM: &str = "virtfs-proxy-helper";

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    Stderr,
    Syslog,
}

/// A client-supplied byte string, rendered for a log line.
///
/// Printable characters stay as they are; `\` becomes `\\`; `\n`, `\r` and
/// `\t` become those two-character escapes; other control characters, and
/// the Unicode ones that reorder or break lines (U+2028, U+2029, the bidi
/// controls), become `\xNN` or `\u{NNNN}`; bytes that are not UTF-8 become
/// `\xNN`. So one client string can never start a new log line, move a
/// terminal's cursor or hide text. QEMU's trailing NUL (V9fsPath lengths
/// count it) is dropped, as it is not part of the name.
pub struct Escaped<'a>(pub &'a [u8]);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes = self.0.strip_suffix(b"\0").unwrap_or(self.0);
        for chunk in bytes.utf8_chunks() {
            for c in chunk.valid().chars() {
                escape_char(f, c)?;
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Characters that must not reach a log line as they are.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
        )
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

fn escape_char(f: &mut impl std::fmt::Write, c: char) -> std::fmt::Result {
    match c {
        '\\' => f.write_str("\\\\"),
        '\n' => f.write_str("\\n"),
        '\r' => f.write_str("\\r"),
        '\t' => f.write_str("\\t"),
        c if needs_escape(c) && (c as u32) < 0x80 => write!(f, "\\x{:02x}", c as u32),
        c if needs_escape(c) => write!(f, "\\u{{{:04x}}}", c as u32),
        c => f.write_char(c),
    }
}

/// The last line of defence, in every sink: a formatted event becomes one
/// line of text without control characters (other than the tab), whatever
/// its fields held. Invalid UTF-8 is escaped rather than replaced.
pub fn sanitize_line(raw: &[u8]) -> String {
    let body = raw.strip_suffix(b"\n").unwrap_or(raw);
    let mut line = String::with_capacity(body.len());
    for chunk in body.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\t' || !needs_escape(c) {
                line.push(c);
            } else {
                let _ = escape_char(&mut line, c);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(line, "\\x{b:02x}");
        }
    }
    line
}

static SYSLOG: OnceLock<OwnedFd> = OnceLock::new();
/// The pid syslog lines carry, when it is not `getpid()`'s: the host's pid
/// of a server that is init of its own pid namespace.
static HOST_PID: AtomicU32 = AtomicU32::new(0);

/// Makes syslog lines carry `pid` (the host's view of this process).
pub fn set_pid(pid: u32) {
    HOST_PID.store(pid, Ordering::SeqCst);
}

fn log_pid() -> u32 {
    match HOST_PID.load(Ordering::SeqCst) {
        0 => rustix::process::getpid().as_raw_nonzero().get() as u32,
        pid => pid,
    }
}
static TARGET: OnceLock<LogTarget> = OnceLock::new();
/// Stderr is the journal's stream: lines carry a priority prefix.
static JOURNAL: AtomicBool = AtomicBool::new(false);

/// Whether `$JOURNAL_STREAM` (`DEVICE:INODE`, in decimal, as systemd sets
/// it) names the file with this device and inode.
pub fn journal_stream_is(value: &str, dev: u64, ino: u64) -> bool {
    value
        .split_once(':')
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
        == Some((dev, ino))
}

/// Whether stderr is the journal's stream: only then is a `<N>` prefix
/// read as a priority (on a terminal or in a file it would be noise).
fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = rustix::fs::fstat(rustix::stdio::stderr()) else {
        return false;
    };
    journal_stream_is(&value.to_string_lossy(), stat.st_dev, stat.st_ino)
}

/// The `<N>` prefix of a stderr line at `severity`, or nothing where stderr
/// is not the journal.
fn journal_prefix(severity: u8) -> String {
    if JOURNAL.load(Ordering::Relaxed) {
        format!("<{severity}>")
    } else {
        String::new()
    }
}

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

const LOG_DAEMON: u8 = 3 << 3;

fn syslog_severity(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// One syslog datagram for an already sanitized line.
fn syslog_datagram(severity: u8, line: &str) -> String {
    format!(
        "<{}>{}[{}]: {}",
        LOG_DAEMON | severity,
        PROGRAM,
        log_pid(),
        line.trim_end()
    )
}

/// Buffers one formatted event and emits it, sanitized, when dropped: one
/// `write` to stderr, or one datagram to syslog.
pub struct LogLine {
    target: LogTarget,
    severity: u8,
    buf: Vec<u8>,
}

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let line = sanitize_line(&self.buf);
        // A lost log line must never stop the helper: errors are ignored.
        match self.target {
            LogTarget::Stderr => {
                let mut out = journal_prefix(self.severity).into_bytes();
                out.extend_from_slice(line.as_bytes());
                out.push(b'\n');
                let _ = io::stderr().lock().write_all(&out);
            }
            LogTarget::Syslog => {
                if let Some(sock) = SYSLOG.get() {
                    let datagram = syslog_datagram(self.severity, &line);
                    let _ = rustix::net::send(sock, datagram.as_bytes(), SendFlags::NOSIGNAL);
                }
            }
        }
    }
}

struct Sink(LogTarget);

impl<'a> MakeWriter<'a> for Sink {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine {
            target: self.0,
            severity: syslog_severity(Level::INFO),
            buf: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> LogLine {
        LogLine {
            target: self.0,
            severity: syslog_severity(*meta.level()),
            buf: Vec::new(),
        }
    }
}

/// Installs the global subscriber. For syslog, connects to `/dev/log` first;
/// the error says why that failed (the caller decides what to do).
pub fn init(target: LogTarget, level: Level) -> io::Result<()> {
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .with_ansi(false);
    let _ = TARGET.set(target);
    match target {
        LogTarget::Stderr => {
            JOURNAL.store(stderr_is_journal(), Ordering::Relaxed);
            builder.with_writer(Sink(target)).init();
            Ok(())
        }
        LogTarget::Syslog => {
            let sock = connect_syslog();
            builder
                .with_writer(Sink(target))
                .without_time()
                .with_level(false)
                .init();
            let _ = SYSLOG.set(sock?);
            Ok(())
        }
    }
}

/// A line prepared now, to be written later from a signal handler, where
/// formatting and locks are not allowed. On stderr the handler stamps it
/// with the time as the other lines are (see [`utc_timestamp`]).
#[derive(Debug)]
pub struct Prerendered {
    target: LogTarget,
    /// The journal's priority prefix, before the time stamp (stderr only).
    prefix: Vec<u8>,
    bytes: Vec<u8>,
}

impl Prerendered {
    /// Renders `message` at `level` for the sink in use (stderr when logging
    /// was never set up). Call it in the process that will write it: syslog
    /// lines carry the pid.
    pub fn new(level: Level, message: &str) -> Self {
        let target = TARGET.get().copied().unwrap_or(LogTarget::Stderr);
        let line = sanitize_line(message.as_bytes());
        let (prefix, bytes) = match target {
            LogTarget::Stderr => (
                journal_prefix(syslog_severity(level)).into_bytes(),
                format!(" {level:>5} {line}\n").into_bytes(),
            ),
            LogTarget::Syslog => (
                Vec::new(),
                syslog_datagram(syslog_severity(level), &line).into_bytes(),
            ),
        };
        Prerendered {
            target,
            prefix,
            bytes,
        }
    }

    /// Writes the line with raw syscalls only (no lock, no allocation):
    /// async-signal-safe. Errors are ignored on purpose: there is nowhere
    /// left to report them.
    pub fn emit(&self) {
        match self.target {
            LogTarget::Stderr => {
                // std's clock is libc's clock_gettime (the vDSO), which
                // needs no set-up here; rustix's would find its vDSO lazily,
                // with a prctl seccomp does not allow.
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                let stamp = utc_timestamp(now.as_secs() as i64, i64::from(now.subsec_micros()));
                let parts = [
                    IoSlice::new(&self.prefix),
                    IoSlice::new(&stamp),
                    IoSlice::new(&self.bytes),
                ];
                let _ = rustix::io::writev(rustix::stdio::stderr(), &parts);
            }
            LogTarget::Syslog => {
                if let Some(sock) = SYSLOG.get() {
                    let _ = rustix::net::send(sock, &self.bytes, SendFlags::NOSIGNAL);
                }
            }
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.uuuuuuZ` for a Unix time, as the stderr lines
/// start, computed without allocation or locks (days to civil date after
/// H. Hinnant's algorithm), so a signal handler can use it.
pub fn utc_timestamp(secs: i64, micros: i64) -> [u8; 27] {
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut v: i64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (v.rem_euclid(10)) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, of_day / 3600);
    put(14, 2, of_day % 3600 / 60);
    put(17, 2, of_day % 60);
    put(20, 6, micros);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_client_strings_cannot_break_lines() {
        let shown = Escaped(b"../etc\nFAKE-LINE forged\x1b[31m\r\t\\ok\xff\xfe\0").to_string();
        assert_eq!(
            shown,
            "../etc\\nFAKE-LINE forged\\x1b[31m\\r\\t\\\\ok\\xff\\xfe"
        );
        assert_eq!(
            Escaped("é\u{202e}x\u{85}".as_bytes()).to_string(),
            "é\\u{202e}x\\u{0085}"
        );
        assert_eq!(Escaped(b"a\0b\0").to_string(), "a\\x00b");
    }

    #[test]
    fn timestamps_match_rfc3339() {
        assert_eq!(&utc_timestamp(0, 0), b"1970-01-01T00:00:00.000000Z");
        assert_eq!(
            &utc_timestamp(951_782_400, 7),
            b"2000-02-29T00:00:00.000007Z"
        );
        assert_eq!(
            &utc_timestamp(1_795_830_405, 123_456),
            b"2026-11-28T01:46:45.123456Z"
        );
    }

    #[test]
    fn journal_stream_names_one_device_and_inode() {
        assert!(journal_stream_is("64769:1234567", 64769, 1_234_567));
        assert!(!journal_stream_is("64769:1234567", 64769, 1_234_568));
        assert!(!journal_stream_is("64770:1234567", 64769, 1_234_567));
        for bad in ["", "64769", "64769:", ":1234567", "x:1", "1:2:3", " 1:2"] {
            assert!(!journal_stream_is(bad, 1, 2), "{bad:?}");
        }
        assert!(journal_stream_is("1:2", 1, 2));
    }

    #[test]
    fn sanitized_lines_hold_no_control_characters() {
        let line = sanitize_line(b"WARN x=\"a\nb\x1b\x07\"\tend\xc3\n");
        assert_eq!(line, "WARN x=\"a\\nb\\x1b\\x07\"\tend\\xc3");
        assert!(!line.bytes().any(|b| b < 0x20 && b != b'\t'));
    }
}
