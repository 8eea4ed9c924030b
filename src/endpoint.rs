//! How the helper gets its one connection to QEMU: a connected socket
//! inherited as `--fd`, or a socket file it creates with `--socket` and
//! accepts one connection on.
//!
//! The socket file lives outside the export, so once the helper is confined
//! (chroot, Landlock, seccomp) it can no longer remove it. A small janitor
//! process, forked before confinement, holds the file's directory and
//! removes the file (if it is still the one bound here) once the connection
//! is accepted or the helper ends, whichever comes first, even when the
//! helper is killed. So a second run of the same command finds the path
//! free.

use crate::error::SetupError;
use crate::process::{self, Forked, SignalMask};
use crate::sandbox::seccomp::{Process, SeccompMode};
use rustix::fd::{AsRawFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType, sockopt};
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

/// Checks that `fd` is a connected UNIX stream socket that is not
/// listening: what QEMU's peer of a socketpair is. Anything else would only
/// fail later, after confinement, with a less clear error.
pub fn check_inherited(fd: i32) -> Result<(), String> {
    let sock = process::inherited_fd(fd);
    let st = rustix::fs::fstat(sock)
        .map_err(|e| format!("--fd {fd}: not an open file descriptor ({e})"))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Socket {
        return Err(format!("--fd {fd}: not a socket"));
    }
    let hint = "pass one end of a connected socketpair (QEMU gets the other as sock_fd)";
    match sockopt::socket_domain(sock) {
        Ok(AddressFamily::UNIX) => {}
        Ok(_) => return Err(format!("--fd {fd}: not a UNIX socket; {hint}")),
        Err(e) => return Err(format!("--fd {fd}: {e}")),
    }
    match sockopt::socket_type(sock) {
        Ok(SocketType::STREAM) => {}
        Ok(_) => return Err(format!("--fd {fd}: not a stream socket; {hint}")),
        Err(e) => return Err(format!("--fd {fd}: {e}")),
    }
    if sockopt::socket_acceptconn(sock).unwrap_or(false) {
        return Err(format!(
            "--fd {fd}: a listening socket, not a connection; {hint}, or use --socket PATH"
        ));
    }
    match rustix::net::getpeername(sock) {
        Ok(_) => Ok(()),
        Err(Errno::NOTCONN) => Err(format!("--fd {fd}: not connected; {hint}")),
        Err(e) => Err(format!("--fd {fd}: {e}")),
    }
}

/// Takes over the inherited fd [`check_inherited`] accepted, close-on-exec
/// from now on: the helper runs the setuid `newuidmap` and `newgidmap`,
/// which must not get its end of QEMU's connection (a launcher passes it
/// inheritable, as it must).
pub fn take_inherited(fd: i32) -> Result<OwnedFd, SetupError> {
    let sock = process::own_inherited_fd(fd);
    rustix::io::fcntl_setfd(&sock, rustix::io::FdFlags::CLOEXEC)
        .map_err(|e| SetupError(format!("--fd {fd}: making it close-on-exec: {e}")))?;
    Ok(sock)
}

/// "pid 123, uid 107, gid 107" for the peer of a connected socket.
/// The pid is 0 for a peer outside the helper's pid namespace.
pub fn describe_peer(sock: BorrowedFd<'_>) -> String {
    match crate::syscalls::peer_credentials(sock) {
        Ok((0, uid, gid)) => {
            format!("uid {uid}, gid {gid}, its pid outside the helper's pid namespace")
        }
        Ok((pid, uid, gid)) => format!("pid {pid}, uid {uid}, gid {gid}"),
        Err(e) => format!("peer credentials unknown: {e}"),
    }
}

/// The socket file this helper bound: its directory, its name in it, and
/// the inode it got, so that only that very file is ever removed.
#[derive(Debug)]
pub struct SocketFile {
    dir: OwnedFd,
    name: CString,
    dev: u64,
    ino: u64,
    path: PathBuf,
}

impl SocketFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the file if it is still the socket bound here (QEMU itself
    /// unlinks it after connecting, and another may have taken the name).
    pub fn remove(&self) {
        let ours = rustix::fs::statat(&self.dir, &*self.name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| st.st_dev == self.dev && st.st_ino == self.ino);
        if ours {
            let _ = rustix::fs::unlinkat(&self.dir, &*self.name, AtFlags::empty());
        }
    }

    /// Forks the janitor that removes the file when the returned handle is
    /// finished or this process ends, and waits until it has confined
    /// itself ([`Janitor::confinement`]). Call it before confinement, in
    /// the process that serves.
    pub fn hand_to_janitor(self, seccomp: SeccompMode) -> Result<Janitor, SetupError> {
        let pipe = || {
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .map_err(|e| SetupError::from(("creating the janitor's pipe", e)))
        };
        let (read_end, write_end) = pipe()?;
        // The janitor holds the only write end of `done`: its EOF says the
        // file is gone. A read works where waitpid cannot: from a server
        // in a pid namespace of its own, whose parent the janitor is not.
        let (done_read, done_write) = pipe()?;
        // The signals that end the helper are held until the janitor
        // forwards them: none may end it (or run a handler of the
        // helper's in it) before it can remove the file.
        let blocked = SignalMask::block(&crate::signals::HANDLED.map(|h| h.0));
        let parent = rustix::process::getpid().as_raw_nonzero().get();
        let forked = process::fork();
        if !matches!(forked, Ok(Forked::Child)) {
            blocked.restore();
        }
        match forked {
            Err(e) => {
                self.remove();
                Err(SetupError::from(("forking the socket-file janitor", e)))
            }
            // It never returns from `janitor_main`.
            Ok(Forked::Child) => {
                drop(write_end);
                drop(done_read);
                janitor_main(&self, read_end, done_write, &blocked, parent, seccomp)
            }
            Ok(Forked::Parent(pid)) => {
                drop(read_end);
                drop(done_write);
                crate::signals::watch_janitor(write_end.as_raw_fd(), done_read.as_raw_fd(), pid);
                // Its first line says how it confined itself; EOF that it
                // died (the file is then gone: it removes it first).
                let confinement = match process::read_line(&done_read) {
                    Some(line) => match line.strip_prefix("FAILS: ") {
                        Some(why) => Err(why.to_owned()),
                        None => Ok(line),
                    },
                    None => Err("the socket-file janitor ended during start-up".into()),
                };
                Ok(Janitor {
                    pipe: Some(write_end),
                    done: Some(done_read),
                    pid,
                    confinement,
                })
            }
        }
    }
}

/// The parent's side of the janitor: finishing it (or dropping it) has the
/// socket file removed and waits until it is.
#[derive(Debug)]
pub struct Janitor {
    pipe: Option<OwnedFd>,
    done: Option<OwnedFd>,
    pid: libc::pid_t,
    /// How the janitor confined itself, as it said, or why it failed.
    pub confinement: Result<String, String>,
}

impl Janitor {
    /// Has the socket file removed, and waits for that.
    pub fn finish(mut self) {
        self.finish_now();
    }

    fn finish_now(&mut self) {
        if let Some(pipe) = self.pipe.take() {
            crate::signals::forget_janitor();
            drop(pipe);
            if let Some(done) = self.done.take() {
                wait_for_eof(&done);
            }
            // Reaps it where it is our child; ECHILD otherwise.
            let _ = process::wait(self.pid);
        }
    }
}

impl Drop for Janitor {
    fn drop(&mut self) {
        self.finish_now();
    }
}

/// Reads until EOF (async-signal-safe: the signal handler calls it).
pub fn wait_for_eof(fd: &impl rustix::fd::AsFd) {
    let mut byte = [0u8; 1];
    loop {
        match rustix::io::read(fd, &mut byte) {
            Err(Errno::INTR) | Ok(1..) => {}
            _ => return,
        }
    }
}

/// The janitor's parent (the process that forked it: the server, or the
/// waiter under the namespace sandbox), for its signal handler.
static JANITOR_PARENT: AtomicI32 = AtomicI32::new(-1);

/// A signal that ends the helper, sent to the janitor's pid: passed on to
/// its parent (the helper decides when the file goes), unless the parent
/// is gone and the pid may be another process's by now.
extern "C" fn forward_to_parent(sig: libc::c_int) {
    let parent = JANITOR_PARENT.load(Ordering::SeqCst);
    let current = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get());
    if parent > 0 && current == parent {
        process::kill(parent, sig);
    }
}

/// The janitor: confined to removing one file ([`crate::sandbox::companions`]:
/// only CAP_FOWNER and CAP_DAC_OVERRIDE, its own seccomp list, no core,
/// cwd `/`), passing the helper's signals on to its parent, waiting for
/// its pipe to close.
fn janitor_main(
    file: &SocketFile,
    pipe: OwnedFd,
    done: OwnedFd,
    mask: &SignalMask,
    parent: libc::pid_t,
    seccomp: SeccompMode,
) -> ! {
    process::close_all_except(&[file.dir.as_raw_fd(), pipe.as_raw_fd(), done.as_raw_fd()]);
    JANITOR_PARENT.store(parent, Ordering::SeqCst);
    let ends = crate::signals::HANDLED.map(|h| h.0);
    for sig in ends {
        let _ = process::on_signal(sig, forward_to_parent, &ends);
    }
    process::set_name(c"vph-janitor");
    mask.restore();
    // Held since before the bind (`signals::hold`): its handlers are in place.
    process::unblock(&ends);
    let line = match confine_janitor(seccomp) {
        Ok(text) => format!("{text}\n"),
        Err(why) => {
            // Unconfined, it must not wait around: the file goes now.
            file.remove();
            let _ = rustix::io::write(&done, format!("FAILS: {why}\n").as_bytes());
            process::exit_now(1)
        }
    };
    let _ = rustix::io::write(&done, line.as_bytes());
    // A byte (accepted) or EOF (the helper ended): either way, done.
    let mut byte = [0u8; 1];
    while let Err(Errno::INTR) = rustix::io::read(&pipe, &mut byte) {}
    file.remove();
    drop(done);
    process::exit_now(0)
}

/// The janitor's confinement. Removing a file in a sticky directory
/// (/tmp) that now belongs to QEMU's uid needs CAP_FOWNER; one in a
/// directory root does not own needs CAP_DAC_OVERRIDE. Nothing else.
fn confine_janitor(seccomp: SeccompMode) -> Result<String, String> {
    let keep = [
        caps::Capability::CAP_FOWNER,
        caps::Capability::CAP_DAC_OVERRIDE,
    ];
    crate::sandbox::companions::confine(Process::Janitor, &keep, seccomp)
}

/// For `--sandbox-report`: the janitor's confinement, tried for real in a
/// throwaway process (which then exits), and how it went.
pub fn try_janitor_confinement(seccomp: SeccompMode) -> Result<String, String> {
    let (read_end, write_end) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| format!("a pipe for the janitor's trial: {e}"))?;
    match process::fork() {
        Err(e) => Err(format!("forking the janitor's trial: {e}")),
        Ok(Forked::Child) => {
            drop(read_end);
            process::close_all_except(&[write_end.as_raw_fd()]);
            let line = match confine_janitor(seccomp) {
                Ok(text) => format!("{text}\n"),
                Err(why) => format!("FAILS: {why}\n"),
            };
            let _ = rustix::io::write(&write_end, line.as_bytes());
            process::exit_now(0)
        }
        Ok(Forked::Parent(pid)) => {
            drop(write_end);
            let line = process::read_line(&read_end);
            let _ = process::wait(pid);
            match line {
                Some(line) => match line.strip_prefix("FAILS: ") {
                    Some(why) => Err(why.to_owned()),
                    None => Ok(line),
                },
                None => Err("the janitor's trial process ended without a word".into()),
            }
        }
    }
}

/// Binds and listens on a new socket file at `path`, owned by uid:gid, mode
/// 0770 (umask 007, as the original). An existing path is refused with a
/// message that says whether anything listens on it.
pub fn listen_on(path: &Path, uid: u32, gid: u32) -> Result<(OwnedFd, SocketFile), SetupError> {
    let shown = path.display();
    let name = path
        .file_name()
        .ok_or_else(|| SetupError(format!("socket path {shown} does not name a file")))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = rustix::fs::open(
        parent,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SetupError(format!("socket {shown}: its directory: {e}")))?;
    let name = CString::new(name.as_bytes())
        .map_err(|_| SetupError(format!("socket path {shown} contains a NUL byte")))?;
    if rustix::fs::statat(&dir, &*name, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
        return Err(existing_path_error(path));
    }
    let addr = SocketAddrUnix::new(path).map_err(|_| {
        SetupError(format!(
            "socket path {shown} is too long (at most 107 bytes)"
        ))
    })?;
    let sock = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| SetupError(format!("socket {shown}: creating it: {e}")))?;
    // Mask the other-bits, as the original does: QEMU's uid/gid get access.
    let old = rustix::process::umask(Mode::from_raw_mode(0o007));
    let bound = rustix::net::bind(&sock, &addr);
    rustix::process::umask(old);
    match bound {
        Err(Errno::ADDRINUSE) => return Err(existing_path_error(path)),
        Err(e) => return Err(SetupError(format!("binding socket {shown}: {e}"))),
        Ok(()) => {}
    }
    let st = rustix::fs::statat(&dir, &*name, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| SetupError(format!("socket {shown}: stat after bind: {e}")))?;
    let file = SocketFile {
        dir,
        name,
        dev: st.st_dev,
        ino: st.st_ino,
        path: path.to_path_buf(),
    };
    let finish = || -> Result<(), SetupError> {
        rustix::fs::chownat(
            &file.dir,
            &*file.name,
            Some(rustix::process::Uid::from_raw(uid)),
            Some(rustix::process::Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| SetupError(format!("socket {shown}: chown to {uid}:{gid}: {e}")))?;
        rustix::net::listen(&sock, 1)
            .map_err(|e| SetupError(format!("socket {shown}: listen: {e}")))
    };
    if let Err(e) = finish() {
        file.remove();
        return Err(e);
    }
    Ok((sock, file))
}

/// Why an existing socket path is refused, and what to do about it. Whether
/// a process listens there is read from `/proc/net/unix`, never by
/// connecting: a helper listening there accepts exactly one connection, and
/// a probe would use it up.
fn existing_path_error(path: &Path) -> SetupError {
    let shown = path.display();
    let is_socket = rustix::fs::lstat(path)
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Socket);
    if !is_socket {
        return SetupError(format!(
            "socket path {shown} already exists and is not a socket; choose another --socket path"
        ));
    }
    match listening_on(path) {
        Some(true) => SetupError(format!(
            "socket {shown} already exists and a process is listening on it (another helper \
             waiting for QEMU?); stop that process or choose another --socket path"
        )),
        Some(false) => SetupError(format!(
            "socket {shown} already exists and nothing is listening on it: a stale socket from \
             an earlier run; remove it (rm {shown}) and start again"
        )),
        None => SetupError(format!(
            "socket {shown} already exists (whether anything listens on it is unknown: \
             /proc/net/unix is unreadable); remove it if it is stale"
        )),
    }
}

/// Whether a listening UNIX socket in this network namespace is bound to
/// `path` (compared as given and with its directory canonicalized).
fn listening_on(path: &Path) -> Option<bool> {
    const SO_ACCEPTCON: u32 = 1 << 16;
    let table = std::fs::read("/proc/net/unix").ok()?;
    let canonical = path
        .parent()
        .and_then(|p| {
            std::fs::canonicalize(if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            })
            .ok()
        })
        .zip(path.file_name())
        .map(|(dir, name)| dir.join(name));
    let wanted: Vec<&OsStr> = [
        Some(path.as_os_str()),
        canonical.as_deref().map(Path::as_os_str),
    ]
    .into_iter()
    .flatten()
    .collect();
    // Num RefCount Protocol Flags Type St Inode Path
    Some(table.split(|&b| b == b'\n').skip(1).any(|line| {
        let fields: Vec<&[u8]> = line
            .split(|&b| b == b' ')
            .filter(|f| !f.is_empty())
            .collect();
        let listening = fields
            .get(3)
            .and_then(|f| u32::from_str_radix(std::str::from_utf8(f).ok()?, 16).ok())
            .is_some_and(|flags| flags & SO_ACCEPTCON != 0);
        listening
            && fields
                .get(7)
                .is_some_and(|p| wanted.iter().any(|w| w.as_bytes() == *p))
    }))
}

/// Accepts the one connection; the listener closes when this returns.
/// While it waits, it watches the janitor: one that ends before (killed:
/// it never ends by itself while its pipe is open) leaves nothing to
/// remove the socket file, and the log says so, once.
pub fn accept_one(
    listener: OwnedFd,
    janitor: &Janitor,
    path: &Path,
) -> Result<OwnedFd, SetupError> {
    use rustix::event::{PollFd, PollFlags, poll};
    if let Some(done) = &janitor.done {
        loop {
            let mut fds = [
                PollFd::new(&listener, PollFlags::IN),
                PollFd::new(done, PollFlags::IN),
            ];
            match poll(&mut fds, None) {
                Err(Errno::INTR) => continue,
                Err(e) => return Err(SetupError::from(("waiting for QEMU's connection", e))),
                Ok(_) => {}
            }
            if fds[0].revents().contains(PollFlags::IN) {
                break;
            }
            if !fds[1].revents().is_empty() {
                tracing::error!(
                    "the socket-file janitor has ended before QEMU connected (killed?): \
                     {} will not be removed when the helper ends; remove it by hand",
                    path.display()
                );
                break;
            }
        }
    }
    loop {
        match rustix::net::accept_with(&listener, SocketFlags::CLOEXEC) {
            Err(Errno::INTR) => continue,
            other => {
                return other.map_err(|e| SetupError::from(("accepting QEMU's connection", e)));
            }
        }
    }
}
