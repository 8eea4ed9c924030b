//! The serving loop: read a request, run it, send the reply, until QEMU
//! disconnects.

use crate::deferred_close::DeferredClose;
use crate::error::OpError;
use crate::export::Export;
use crate::logging::Escaped;
use crate::ops::{self, Reply};
use crate::protocol::{self, HEADER_SIZE, RequestType, decode_request};
use crate::transport::{Connection, RecvError};
use rustix::io::Errno;
use std::collections::HashSet;

/// Why serving stopped other than by a clean disconnect.
#[derive(Debug)]
pub enum ServeError {
    Recv(RecvError),
    /// A request type outside the protocol: its reply shape is unknown, so
    /// the only safe answer is to close, as the original does.
    UnknownType(u32),
    Send(Errno),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Recv(e) => write!(f, "{e}"),
            ServeError::UnknownType(t) => write!(f, "unknown request type {t}"),
            ServeError::Send(e) => write!(f, "sending a reply: {e}"),
        }
    }
}

/// Escape attempts already reported on this connection, so a guest that
/// repeats one cannot flood the log. Bounded: past the cap, no new entries.
struct EscapeLog {
    seen: HashSet<(RequestType, Vec<u8>)>,
}

impl EscapeLog {
    const CAP: usize = 1024;

    fn report(&mut self, kind: RequestType, path: &[u8], err: OpError) {
        if self.seen.len() >= Self::CAP || !self.seen.insert((kind, path.to_vec())) {
            return;
        }
        tracing::warn!(
            request = kind.name(),
            path = %Escaped(path),
            "refused a request that could leave the export or reach a special file: {err}"
        );
    }
}

/// The first path of a request, for the log.
fn first_path<'a>(req: &protocol::Request<'a>) -> &'a [u8] {
    use protocol::Request::*;
    match *req {
        Open { path, .. } | Create { path, .. } | Mknod { path, .. } | Mkdir { path, .. } => path,
        Symlink { path, .. } | Lstat { path } | Readlink { path, .. } | Statfs { path } => path,
        Chmod { path, .. } | Chown { path, .. } | Truncate { path, .. } | Utime { path, .. } => {
            path
        }
        Remove { path } | Lgetxattr { path, .. } | Llistxattr { path, .. } => path,
        Lsetxattr { path, .. } | Lremovexattr { path, .. } | Getversion { path } => path,
        Link { old, .. } | Rename { old, .. } => old,
    }
}

/// A request's numeric arguments (flags, modes, sizes; never a path or a
/// name) for the trace log, comma-separated so the field stays one word:
/// what tells one client's use of the wire from another's (QEMU 5.2's
/// against 7.2's, say).
struct WireArgs<'r, 'a>(&'r protocol::Request<'a>);

impl std::fmt::Display for WireArgs<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use protocol::Request::*;
        match *self.0 {
            Open { flags, .. } => write!(f, "flags={flags:#o}"),
            Create { flags, mode, .. } => write!(f, "flags={flags:#o},mode={mode:#o}"),
            Mknod { mode, .. } | Mkdir { mode, .. } | Chmod { mode, .. } => {
                write!(f, "mode={mode:#o}")
            }
            Readlink { bufsize, .. } => write!(f, "bufsize={bufsize}"),
            Lgetxattr { size, .. } | Llistxattr { size, .. } => write!(f, "size={size}"),
            Lsetxattr { size, flags, .. } => write!(f, "size={size},flags={flags}"),
            Chown { uid, gid, .. } => write!(f, "uid={},gid={}", uid as i32, gid as i32),
            Utime { atime, mtime, .. } => {
                write!(f, "atime_nsec={},mtime_nsec={}", atime.1, mtime.1)
            }
            _ => Ok(()),
        }
    }
}

/// Serves requests until the peer disconnects (`Ok`) or the stream breaks.
pub fn serve(conn: &mut Connection, ex: &Export) -> Result<u64, ServeError> {
    let mut out = Vec::with_capacity(HEADER_SIZE + protocol::MAX_PAYLOAD);
    let mut escapes = EscapeLog {
        seen: HashSet::new(),
    };
    let mut served = 0u64;
    // Armed while resolved fds wait in `ex.deferred`, so an idle connection
    // closes them after `DeferredClose::IDLE` instead of holding them.
    let mut idle_timer = false;
    loop {
        let frame = match conn.read_frame() {
            Ok(frame) => frame,
            Err(RecvError::Closed) => return Ok(served),
            Err(RecvError::Idle) if idle_timer => {
                ex.deferred.flush();
                match conn.set_read_timeout(None) {
                    Ok(()) => idle_timer = false,
                    Err(e) => tracing::debug!("clearing the idle timer: {e}"),
                }
                continue;
            }
            Err(e) => return Err(ServeError::Recv(e)),
        };
        let kind = RequestType::from_wire(frame.kind).ok_or(ServeError::UnknownType(frame.kind))?;
        let payload = conn.payload(&frame);
        out.clear();
        let reply = match decode_request(kind, payload) {
            Ok(req) => {
                let reply = ops::handle(ex, &req, &mut out);
                tracing::trace!(
                    request = kind.name(),
                    ok = reply.error().is_none(),
                    len = payload.len(),
                    args = %WireArgs(&req),
                    "served"
                );
                if let Some(err) = reply.error() {
                    let path = first_path(&req);
                    if err.is_escape_attempt() {
                        escapes.report(kind, path, err);
                    } else {
                        tracing::debug!(
                            request = kind.name(),
                            path = %Escaped(path),
                            "{err}"
                        );
                    }
                }
                reply
            }
            Err(e) => {
                tracing::warn!(request = kind.name(), "malformed request: {e}");
                let err = OpError::new(Errno::INVAL, "malformed request");
                Reply::failure(kind.reply_kind(), err)
            }
        };
        send_reply(conn, reply, &mut out).map_err(ServeError::Send)?;
        served += 1;
        // After the reply: QEMU need not wait for the batch.
        ex.deferred.flush_if_full();
        if !idle_timer && !ex.deferred.is_empty() {
            match conn.set_read_timeout(Some(DeferredClose::IDLE)) {
                Ok(()) => idle_timer = true,
                Err(e) => {
                    tracing::debug!("arming the idle timer: {e}");
                    ex.deferred.flush();
                }
            }
        }
    }
}

fn send_reply(conn: &Connection, reply: Reply, out: &mut Vec<u8>) -> Result<(), Errno> {
    match reply {
        Reply::Fd(result) => conn.send_fd(result.map_err(OpError::wire)),
        Reply::Status(result) => {
            out.clear();
            protocol::encode_status(out, result.unwrap_or_else(OpError::wire));
            conn.send_message(out)
        }
        Reply::Response(Ok(())) => {
            protocol::finish_response(out, Errno::NOBUFS.raw_os_error());
            conn.send_message(out)
        }
        Reply::Response(Err(err)) => {
            out.clear();
            protocol::encode_status(out, err.wire());
            conn.send_message(out)
        }
    }
}
