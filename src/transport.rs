//! The UNIX stream socket to QEMU: framed reads, replies, fd passing.
//!
//! Reads are buffered: one `read` usually brings a whole request (QEMU sends
//! one at a time), where the original needs two. No byte is interpreted
//! here beyond the frame header.

use crate::protocol::{HEADER_SIZE, Header, MAX_PAYLOAD};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::{Errno, IoSlice};
use rustix::net::{RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, send, sendmsg};
use std::mem::MaybeUninit;
use std::ops::Range;

/// Why no further request can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// The peer closed the connection between requests: a clean end.
    Closed,
    /// The peer closed the connection inside a frame.
    Truncated {
        have: usize,
        want: usize,
    },
    /// The header announces more than [`MAX_PAYLOAD`] bytes (fatal, as in
    /// the original: the stream cannot be resynchronised).
    Oversize {
        kind: u32,
        size: u32,
    },
    /// No byte arrived within the read timeout ([`Connection::set_read_timeout`]).
    Idle,
    Io(Errno),
}

impl std::fmt::Display for RecvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecvError::Closed => write!(f, "connection closed"),
            RecvError::Truncated { have, want } => {
                write!(
                    f,
                    "connection closed inside a frame ({have} of {want} bytes)"
                )
            }
            RecvError::Oversize { kind, size } => write!(
                f,
                "request type {kind} announces {size} payload bytes, more than {MAX_PAYLOAD}"
            ),
            RecvError::Idle => write!(f, "no request within the read timeout"),
            RecvError::Io(e) => write!(f, "reading the socket: {e}"),
        }
    }
}

/// One request frame inside the connection's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: u32,
    payload: Range<usize>,
}

/// The connection to QEMU.
pub struct Connection {
    sock: OwnedFd,
    buf: Box<[u8]>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
}

impl Connection {
    pub fn new(sock: OwnedFd) -> Self {
        Connection {
            sock,
            buf: vec![0; HEADER_SIZE + MAX_PAYLOAD].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    pub fn socket(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// Reads the next complete frame. Its payload stays valid until the next
    /// call ([`Connection::payload`]).
    pub fn read_frame(&mut self) -> Result<Frame, RecvError> {
        loop {
            let avail = self.end - self.start;
            let mut want = HEADER_SIZE;
            if avail >= HEADER_SIZE {
                let header_bytes = self.buf[self.start..self.start + HEADER_SIZE]
                    .try_into()
                    .expect("header-sized slice");
                let header = Header::decode(header_bytes);
                if header.size as usize > MAX_PAYLOAD {
                    return Err(RecvError::Oversize {
                        kind: header.kind,
                        size: header.size,
                    });
                }
                want = HEADER_SIZE + header.size as usize;
                if avail >= want {
                    let payload = self.start + HEADER_SIZE..self.start + want;
                    self.start += want;
                    if self.start == self.end {
                        // All consumed: the next read lands at the front
                        // (the payload's bytes stay in place until then),
                        // so requests reuse the same few cache lines.
                        self.start = 0;
                        self.end = 0;
                    }
                    return Ok(Frame {
                        kind: header.kind,
                        payload,
                    });
                }
            }
            if self.start + want > self.buf.len() {
                // Make room: a whole frame always fits in an empty buffer.
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            // recv, not read: a socket call skips the VFS layer (about 75 ns
            // a request here).
            let received =
                rustix::net::recv(&self.sock, &mut self.buf[self.end..], RecvFlags::empty());
            match received.map(|(n, _)| n) {
                Ok(0) if avail == 0 => return Err(RecvError::Closed),
                Ok(0) => return Err(RecvError::Truncated { have: avail, want }),
                Ok(n) => self.end += n,
                Err(Errno::INTR) => {}
                // A partial frame stays buffered for the next call.
                Err(Errno::AGAIN) => return Err(RecvError::Idle),
                Err(e) => return Err(RecvError::Io(e)),
            }
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
            }
        }
    }

    /// Makes [`Connection::read_frame`] give up with [`RecvError::Idle`]
    /// when nothing arrives for `timeout` (`None`: wait for ever).
    pub fn set_read_timeout(&self, timeout: Option<std::time::Duration>) -> Result<(), Errno> {
        rustix::net::sockopt::set_socket_timeout(
            &self.sock,
            rustix::net::sockopt::Timeout::Recv,
            timeout,
        )
    }

    pub fn payload(&self, frame: &Frame) -> &[u8] {
        &self.buf[frame.payload.clone()]
    }

    /// Writes a whole status or response message.
    pub fn send_message(&self, mut bytes: &[u8]) -> Result<(), Errno> {
        while !bytes.is_empty() {
            match send(&self.sock, bytes, SendFlags::NOSIGNAL) {
                Ok(n) => bytes = &bytes[n..],
                Err(Errno::INTR) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The fd reply: the int `FD_VALID` with the fd attached, or `-errno`
    /// alone. The helper's copy of the fd is closed when `fd` drops here.
    pub fn send_fd(&self, result: Result<OwnedFd, i32>) -> Result<(), Errno> {
        let (data, fd) = match result {
            Ok(fd) => (crate::protocol::FD_VALID, Some(fd)),
            Err(neg_errno) => (neg_errno, None),
        };
        let bytes = data.to_ne_bytes();
        let iov = [IoSlice::new(&bytes)];
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        let fds;
        if let Some(fd) = &fd {
            fds = [fd.as_fd()];
            control.push(SendAncillaryMessage::ScmRights(&fds));
        }
        loop {
            match sendmsg(&self.sock, &iov, &mut control, SendFlags::NOSIGNAL) {
                Ok(_) => return Ok(()),
                Err(Errno::INTR) => {}
                Err(e) => return Err(e),
            }
        }
    }
}
