//! Test harness: starts a helper (ours under a chosen resolver, or QEMU's
//! original) on a socketpair in a scratch export, and speaks the protocol to
//! it exactly as QEMU 7.2's client does.

#![allow(dead_code)]

use rustix::fd::{AsRawFd, OwnedFd};
use rustix::io::IoSliceMut;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SocketFlags, SocketType,
    recvmsg, socketpair,
};
use std::fs::File;
use std::io::Write;
use std::mem::MaybeUninit;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use virtfs_proxy_helper::protocol::{
    HEADER_SIZE, Header, Request, RequestType, T_ERROR, T_SUCCESS, WireStat, WireStatFs, client,
};

pub const ORIGINAL: &str = "/usr/lib/qemu/virtfs-proxy-helper";

/// Which helper a test talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Ours with `--resolver auto`.
    Auto,
    Openat2,
    Walker,
    Original,
    /// Ours with `--resolver auto` on an emulated older kernel: a seccomp
    /// filter makes openat2 (5.6), fchmodat2 (6.6) and the `*xattrat` calls
    /// (6.13) answer ENOSYS, so every fallback path runs.
    OldKernel,
}

/// Our binary: `VPH_BIN` when set (CI's unprivileged pass runs copies of the
/// test binaries elsewhere), else the one cargo built.
pub fn our_binary() -> PathBuf {
    std::env::var_os("VPH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_virtfs-proxy-helper")))
}

/// Says loudly, past libtest's capture, that a test did not run.
pub fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// Real root in the initial user namespace (not root of a user namespace).
pub fn is_real_root() -> bool {
    rustix::process::geteuid().is_root()
        && std::fs::read_to_string("/proc/self/uid_map")
            .map(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
            .unwrap_or(false)
}

/// Root of the namespace the tests run in (real root, or `unshare -Ur`):
/// what tests need to mount, drop bounding capabilities or run QEMU's
/// original helper (which chroots).
pub fn is_root_here() -> bool {
    rustix::process::geteuid().is_root()
}

/// The test process is an ordinary user: the helper it starts makes a
/// user namespace of its own, whose guest 0 is this user.
pub fn helper_has_own_namespace() -> bool {
    !is_root_here()
}

/// `-u UID -g GID` for a socket file this test process may own.
pub fn owner_args() -> [String; 4] {
    [
        "-u".into(),
        rustix::process::geteuid().as_raw().to_string(),
        "-g".into(),
        rustix::process::getegid().as_raw().to_string(),
    ]
}

/// The ids the guest sees for a file the host has as `(uid, gid)`: the
/// same, except that under a user namespace of the helper's own, this
/// user's ids are guest 0.
pub fn guest_view(uid: u32, gid: u32) -> (u32, u32) {
    if helper_has_own_namespace() {
        let me = (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        );
        return (
            if uid == me.0 { 0 } else { uid },
            if gid == me.1 { 0 } else { gid },
        );
    }
    (uid, gid)
}

/// Says a test skipped because it needs root of its namespace.
pub fn skip_unless_root_here(test: &str, why: &str) -> bool {
    if is_root_here() {
        return false;
    }
    skip(
        test,
        &format!("{why}: needs root of the namespace the tests run in"),
    );
    true
}

/// Why QEMU's original helper cannot serve a test here, if it cannot.
pub fn original_unusable() -> Option<&'static str> {
    if !original_available() {
        return Some(
            "QEMU's virtfs-proxy-helper is not installed (apt-get install qemu-system-x86)",
        );
    }
    if !is_root_here() {
        return Some(
            "QEMU's virtfs-proxy-helper chroots, which needs root of the namespace the tests run in",
        );
    }
    None
}

pub fn original_available() -> bool {
    Path::new(ORIGINAL).exists()
}

/// A reply as it came off the wire.
#[derive(Debug)]
pub enum Raw {
    Fd(Result<OwnedFd, i32>),
    Message { kind: u32, payload: Vec<u8> },
}

pub struct Helper {
    pub child: Child,
    pub sock: OwnedFd,
    pub flavor: Flavor,
    stderr_path: PathBuf,
    _stderr_dir: tempfile::TempDir,
}

/// How to start a helper.
pub struct Spawn<'a> {
    pub flavor: Flavor,
    pub export: &'a Path,
    pub extra: Vec<String>,
    /// Runs in the child before exec (after the socket is in place).
    pub pre_exec: Option<Box<dyn FnMut() -> std::io::Result<()> + Send + Sync>>,
    /// A program (and its arguments) to run the helper under, e.g. unshare.
    pub wrapper: Vec<String>,
}

impl<'a> Spawn<'a> {
    pub fn new(flavor: Flavor, export: &'a Path) -> Self {
        Spawn {
            flavor,
            export,
            extra: Vec::new(),
            pre_exec: None,
            wrapper: Vec::new(),
        }
    }

    pub fn arg(mut self, a: &str) -> Self {
        self.extra.push(a.to_string());
        self
    }

    pub fn start(self) -> Helper {
        let (ours, theirs) = socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .expect("socketpair");
        let mut cmd = match self.flavor {
            Flavor::Original => {
                let mut c = Command::new(ORIGINAL);
                c.args(["-n", "-f", "3", "-p"]).arg(self.export);
                c
            }
            flavor => {
                let mut c = Command::new(our_binary());
                let resolver = match flavor {
                    Flavor::Walker => "walker",
                    Flavor::Auto | Flavor::OldKernel => "auto",
                    _ => "openat2",
                };
                c.args(["--nodaemon", "--fd", "3", "--path"])
                    .arg(self.export)
                    .args(["--resolver", resolver, "--log-level", "debug"]);
                c
            }
        };
        cmd.args(&self.extra);
        if let Some((program, args)) = self.wrapper.split_first() {
            let mut wrapped = Command::new(program);
            wrapped
                .args(args)
                .arg(cmd.get_program())
                .args(cmd.get_args());
            cmd = wrapped;
        }
        let stderr_dir = tempfile::tempdir().expect("tempdir");
        let stderr_path = stderr_dir.path().join("stderr");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr_path).expect("stderr file"));
        let raw = theirs.as_raw_fd();
        let mut hook = self.pre_exec;
        if self.flavor == Flavor::OldKernel && hook.is_none() {
            hook = Some(old_kernel_filter());
        }
        // SAFETY: only async-signal-safe calls (dup2, and the test's hook,
        // which must be likewise) run between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                as_fd3(raw)?;
                if let Some(h) = hook.as_mut() {
                    h()?;
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawning the helper");
        drop(theirs);
        Helper {
            child,
            sock: ours,
            flavor: self.flavor,
            stderr_path,
            _stderr_dir: stderr_dir,
        }
    }
}

/// Between fork and exec: makes `raw` the child's fd 3, inheritable (dup2
/// onto itself would keep FD_CLOEXEC, so an fd that already is 3 has the
/// flag cleared instead). Async-signal-safe.
pub fn as_fd3(raw: i32) -> std::io::Result<()> {
    // SAFETY: fcntl and dup2 on plain fd numbers; no memory is touched.
    let rc = unsafe {
        if raw == 3 {
            libc::fcntl(3, libc::F_SETFD, 0)
        } else {
            libc::dup2(raw, 3)
        }
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Which layers surround the resolver in a run of the escape and race
/// tests: each sandbox kind, and id translation on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confinement {
    /// `--sandbox namespace`: namespaces, the nodev,nosuid mount, pivot_root.
    Namespace,
    /// `--sandbox chroot`: the original's chroot.
    Chroot,
    /// `--sandbox none`: the resolver alone must hold.
    ResolverAlone,
    /// The default sandbox with id translation rules in force.
    Translated,
    /// Each sandbox kind again without Landlock (its syscalls answer
    /// ENOSYS, as on Debian 11's 5.10) and with `--seccomp off`: what the
    /// kind promises must hold on its own.
    NamespaceBare,
    ChrootBare,
    ResolverAloneBare,
}

/// landlock_create_ruleset, landlock_add_rule, landlock_restrict_self.
pub const LANDLOCK_SYSCALLS: [u32; 3] = [444, 445, 446];

/// No Landlock (its syscalls ENOSYS) and no seccomp filter of the helper's.
fn bare(spawn: Spawn) -> Spawn {
    let mut spawn = spawn.arg("--seccomp").arg("off");
    spawn.pre_exec = Some(enosys_filter(&LANDLOCK_SYSCALLS));
    spawn
}

impl Confinement {
    pub const ALL: [Confinement; 7] = [
        Confinement::Namespace,
        Confinement::Chroot,
        Confinement::ResolverAlone,
        Confinement::Translated,
        Confinement::NamespaceBare,
        Confinement::ChrootBare,
        Confinement::ResolverAloneBare,
    ];

    pub fn apply(self, spawn: Spawn) -> Spawn {
        match self {
            Confinement::Namespace => spawn.arg("--sandbox").arg("namespace"),
            Confinement::Chroot => spawn.arg("--sandbox").arg("chroot"),
            Confinement::ResolverAlone => spawn.arg("--sandbox").arg("none"),
            Confinement::Translated => spawn
                .arg("--translate-uid")
                .arg("map:100:200:10")
                .arg("--translate-gid")
                .arg("map:100:200:10"),
            Confinement::NamespaceBare => bare(spawn.arg("--sandbox").arg("namespace")),
            Confinement::ChrootBare => bare(spawn.arg("--sandbox").arg("chroot")),
            Confinement::ResolverAloneBare => bare(spawn.arg("--sandbox").arg("none")),
        }
    }
}

pub fn spawn(flavor: Flavor, export: &Path) -> Helper {
    Spawn::new(flavor, export).start()
}

fn read_exact(sock: &OwnedFd, buf: &mut [u8]) -> Result<(), String> {
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::read(sock, &mut buf[got..]) {
            Ok(0) => return Err(format!("EOF after {got} of {} bytes", buf.len())),
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

/// The process that serves, given the pid the caller started: itself, or
/// under the namespace sandbox its child that is init of a pid namespace
/// of its own (the started one waits outside).
pub fn serving_pid(pid: i32) -> i32 {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    children
        .split_whitespace()
        .filter_map(|c| c.parse::<i32>().ok())
        .find(|c| {
            std::fs::read_to_string(format!("/proc/{c}/status")).is_ok_and(|st| {
                st.lines()
                    .find(|l| l.starts_with("NSpid:"))
                    .is_some_and(|l| l.split_whitespace().count() > 2)
            })
        })
        .unwrap_or(pid)
}

impl Helper {
    /// The pid the test started (under the namespace sandbox, the process
    /// that waits outside the pid namespace and forwards signals).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The process that serves (see [`serving_pid`]).
    pub fn serving_pid(&self) -> i32 {
        serving_pid(self.pid())
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Sends raw bytes.
    pub fn send_raw(&self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = rustix::net::send(&self.sock, rest, rustix::net::SendFlags::NOSIGNAL)
                .expect("send to helper");
            rest = &rest[n..];
        }
    }

    /// Receives the reply of the given kind.
    pub fn recv(&self, kind: RequestType) -> Result<Raw, String> {
        if matches!(kind, RequestType::Open | RequestType::Create) {
            let mut data = [0u8; 4];
            let mut iov = [IoSliceMut::new(&mut data)];
            let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let msg = recvmsg(&self.sock, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)
                .map_err(|e| e.to_string())?;
            if msg.bytes == 0 {
                return Err("EOF".into());
            }
            let mut fd = None;
            for m in control.drain() {
                if let RecvAncillaryMessage::ScmRights(fds) = m {
                    fd = fds.into_iter().next();
                }
            }
            let value = i32::from_ne_bytes(data);
            return Ok(Raw::Fd(match fd {
                Some(fd) if value == i32::MAX => Ok(fd),
                Some(_) => Err(-9999),
                None => Err(value),
            }));
        }
        let mut header = [0u8; HEADER_SIZE];
        read_exact(&self.sock, &mut header)?;
        let h = Header::decode(&header);
        let mut payload = vec![0u8; h.size as usize];
        read_exact(&self.sock, &mut payload)?;
        Ok(Raw::Message {
            kind: h.kind,
            payload,
        })
    }

    pub fn call(&self, req: &Request<'_>) -> Raw {
        let frame = client::encode(req);
        let kind =
            RequestType::from_wire(u32::from_ne_bytes(frame[..4].try_into().unwrap())).unwrap();
        self.send_raw(&frame);
        self.recv(kind).unwrap_or_else(|e| {
            panic!(
                "{:?}: no reply to {req:?}: {e}\n{}",
                self.flavor,
                self.stderr()
            )
        })
    }

    /// A status request: 0 or -errno.
    pub fn status(&self, req: &Request<'_>) -> i32 {
        match self.call(req) {
            Raw::Message { kind, payload } => {
                assert_eq!(payload.len(), 4, "status payload");
                let v = i32::from_ne_bytes(payload[..4].try_into().unwrap());
                assert_eq!(kind, if v < 0 { T_ERROR } else { T_SUCCESS });
                v
            }
            other => panic!("expected a status, got {other:?}"),
        }
    }

    /// A response: the payload, or -errno.
    pub fn response(&self, req: &Request<'_>) -> Result<Vec<u8>, i32> {
        match self.call(req) {
            Raw::Message {
                kind: T_SUCCESS,
                payload,
            } => Ok(payload),
            Raw::Message {
                kind: T_ERROR,
                payload,
            } => {
                assert_eq!(payload.len(), 4);
                Err(i32::from_ne_bytes(payload[..4].try_into().unwrap()))
            }
            other => panic!("unexpected reply {other:?}"),
        }
    }

    pub fn fd(&self, req: &Request<'_>) -> Result<File, i32> {
        match self.call(req) {
            Raw::Fd(r) => r.map(File::from),
            other => panic!("expected an fd reply, got {other:?}"),
        }
    }

    pub fn open(&self, path: &str, flags: i32) -> Result<File, i32> {
        self.fd(&Request::Open {
            path: path.as_bytes(),
            flags,
        })
    }

    pub fn lstat(&self, path: &str) -> Result<WireStat, i32> {
        self.response(&Request::Lstat {
            path: path.as_bytes(),
        })
        .map(|p| WireStat::decode(&p).expect("stat payload"))
    }

    /// T_LSTAT of a path that need not be UTF-8.
    pub fn lstat_bytes(&self, path: &[u8]) -> Result<WireStat, i32> {
        self.response(&Request::Lstat { path })
            .map(|p| WireStat::decode(&p).expect("stat payload"))
    }

    /// Where the helper's stderr goes.
    pub fn stderr_path(&self) -> &Path {
        &self.stderr_path
    }

    pub fn statfs(&self, path: &str) -> Result<WireStatFs, i32> {
        self.response(&Request::Statfs {
            path: path.as_bytes(),
        })
        .map(|p| WireStatFs::decode(&p).expect("statfs payload"))
    }

    /// Closes our end and waits (bounded) for the helper to exit.
    pub fn finish(mut self) -> ExitStatus {
        drop(std::mem::replace(&mut self.sock, dev_null()));
        self.wait(Duration::from_secs(10))
            .expect("helper did not exit after disconnect")
    }

    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Number of open fds in the helper.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.serving_pid()))
            .expect("helper's fd dir")
            .count()
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dev_null() -> OwnedFd {
    File::open("/dev/null").unwrap().into()
}

pub fn errno(e: rustix::io::Errno) -> i32 {
    -e.raw_os_error()
}

/// A scratch export with a canary directory beside it (outside the export).
pub struct Scratch {
    pub dir: tempfile::TempDir,
    pub export: PathBuf,
    pub outside: PathBuf,
}

pub const CANARY_TEXT: &str = "canary: must stay untouched\n";

impl Scratch {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("vph-test")
            .tempdir()
            .expect("tempdir");
        let export = dir.path().join("export");
        let outside = dir.path().join("outside");
        std::fs::create_dir(&export).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("canary"), CANARY_TEXT).unwrap();
        Scratch {
            dir,
            export,
            outside,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.export.join(rel)
    }

    /// The canary's content, mode, owner and times, to compare before/after.
    pub fn canary_state(&self) -> String {
        use std::os::unix::fs::MetadataExt;
        let mut s = String::new();
        for entry in walk(&self.outside) {
            let m = std::fs::symlink_metadata(&entry).unwrap();
            let content = if m.is_file() {
                std::fs::read(&entry).unwrap()
            } else {
                Vec::new()
            };
            s.push_str(&format!(
                "{} {:o} {}:{} {} {} {:?}\n",
                entry.display(),
                m.mode(),
                m.uid(),
                m.gid(),
                m.size(),
                m.mtime_nsec(),
                content
            ));
            let _ = m.atime();
        }
        s
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for e in entries {
        if e.is_dir() && !e.is_symlink() {
            out.extend(walk(&e));
        } else {
            out.push(e);
        }
    }
    out
}

/// Flavors to run a behaviour test against: both of ours, always.
pub const OURS: [Flavor; 2] = [Flavor::Openat2, Flavor::Walker];

impl PartialEq for Raw {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Raw::Fd(a), Raw::Fd(b)) => {
                a.as_ref().err() == b.as_ref().err() && a.is_ok() == b.is_ok()
            }
            (
                Raw::Message {
                    kind: k1,
                    payload: p1,
                },
                Raw::Message {
                    kind: k2,
                    payload: p2,
                },
            ) => k1 == k2 && p1 == p2,
            _ => false,
        }
    }
}

impl Helper {
    /// Talks to an already running helper over `sock`; the caller owns and
    /// reaps the process.
    pub fn adopt(_pid: u32, sock: OwnedFd) -> AdoptedHelper {
        AdoptedHelper { sock }
    }
}

pub struct AdoptedHelper {
    sock: OwnedFd,
}

impl AdoptedHelper {
    pub fn lstat(&self, path: &str) -> Result<WireStat, i32> {
        let frame = client::encode(&Request::Lstat {
            path: path.as_bytes(),
        });
        let mut rest = &frame[..];
        while !rest.is_empty() {
            let n = rustix::net::send(&self.sock, rest, rustix::net::SendFlags::NOSIGNAL).unwrap();
            rest = &rest[n..];
        }
        let mut header = [0u8; HEADER_SIZE];
        read_exact(&self.sock, &mut header).unwrap();
        let h = Header::decode(&header);
        let mut payload = vec![0u8; h.size as usize];
        read_exact(&self.sock, &mut payload).unwrap();
        if h.kind == T_SUCCESS {
            Ok(WireStat::decode(&payload).unwrap())
        } else {
            Err(i32::from_ne_bytes(payload[..4].try_into().unwrap()))
        }
    }
}

/// Syscalls an older kernel lacks: close_range, openat2, fchmodat2,
/// set/get/list/removexattrat.
pub const OLD_KERNEL_MISSING: [u32; 7] = [436, 437, 452, 463, 464, 465, 466];

/// The old kernel [`Flavor::OldKernel`] emulates: the syscalls of
/// [`OLD_KERNEL_MISSING`] fail with ENOSYS, `utimensat` refuses
/// `AT_EMPTY_PATH` with EINVAL (before Linux 5.8), and `openat` with
/// `O_EMPTYPATH` answers ENOENT, as a kernel that drops the unknown flag does
/// for the empty path.
pub fn old_kernel_filter() -> Box<dyn FnMut() -> std::io::Result<()> + Send + Sync> {
    const AT_EMPTY_PATH: u32 = 0x1000;
    const O_EMPTYPATH: u32 = 1 << 26;
    seccomp_hook(
        &OLD_KERNEL_MISSING,
        &[
            (libc::SYS_utimensat as u32, 3, AT_EMPTY_PATH, libc::EINVAL),
            (libc::SYS_openat as u32, 2, O_EMPTYPATH, libc::ENOENT),
        ],
    )
}

/// A seccomp filter, installed between fork and exec, under which the given
/// syscalls fail with ENOSYS as on a kernel without them.
pub fn enosys_filter(missing: &[u32]) -> Box<dyn FnMut() -> std::io::Result<()> + Send + Sync> {
    seccomp_hook(missing, &[])
}

/// `missing` syscalls fail with ENOSYS; each `(nr, arg, mask, errno)` in
/// `refused_flags` fails syscall `nr` with `errno` when argument `arg` has
/// any bit of `mask`.
fn seccomp_hook(
    missing: &[u32],
    refused_flags: &[(u32, u32, u32, i32)],
) -> Box<dyn FnMut() -> std::io::Result<()> + Send + Sync> {
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    // seccomp_data: nr at 0, arch at 4, args[i] at 16 + 8 * i (low half
    // first on little-endian x86_64).
    let arg_offset = |i: u32| 16 + 8 * i;
    let stmt = |code: u16, k: u32| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code: u16, k: u32, jt: u8, jf: u8| libc::sock_filter { code, jt, jf, k };
    let ld = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    let jeq = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    let jset = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
    let ret = (libc::BPF_RET | libc::BPF_K) as u16;
    let n = missing.len();
    // Layout: 0 ld arch, 1 jeq arch, 2 ld nr, 3.. one jeq per missing
    // syscall, then 4 instructions per refused flag (ld nr, jeq nr, ld arg,
    // jset mask), then the returns: ALLOW, ENOSYS, one errno per flag.
    let allow = 3 + n + 4 * refused_flags.len();
    let enosys = allow + 1;
    let to = |target: usize, pc: usize| (target - pc - 1) as u8;
    let mut program = vec![
        stmt(ld, 4), // seccomp_data.arch
        jump(jeq, AUDIT_ARCH_X86_64, 0, to(allow, 1)),
        stmt(ld, 0), // seccomp_data.nr
    ];
    for (i, &nr) in missing.iter().enumerate() {
        let pc = 3 + i;
        program.push(jump(jeq, nr, to(enosys, pc), 0));
    }
    for (i, &(nr, arg, mask, _)) in refused_flags.iter().enumerate() {
        let pc = 3 + n + 4 * i;
        let next = pc + 4;
        let refuse = enosys + 1 + i;
        program.push(stmt(ld, 0)); // seccomp_data.nr
        program.push(jump(jeq, nr, 0, to(next, pc + 1)));
        program.push(stmt(ld, arg_offset(arg)));
        program.push(jump(jset, mask, to(refuse, pc + 3), to(next, pc + 3)));
    }
    program.push(stmt(ret, libc::SECCOMP_RET_ALLOW));
    program.push(stmt(ret, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32));
    for &(_, _, _, errno) in refused_flags {
        program.push(stmt(ret, libc::SECCOMP_RET_ERRNO | errno as u32));
    }
    let program: &'static [libc::sock_filter] = Box::leak(program.into_boxed_slice());
    Box::new(move || {
        let fprog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_ptr() as *mut _,
        };
        // SAFETY: prctl with valid arguments; `fprog` points at a filter that
        // lives for the rest of the process.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &fprog as *const _ as libc::c_ulong,
                    0,
                    0,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    })
}

/// One entry of a tree, as the snapshot helpers see it.
pub struct Entry {
    /// The path relative to the snapshot's root.
    pub rel: String,
    pub meta: std::fs::Metadata,
    /// A file's content, or a symlink's target; empty otherwise.
    pub data: Vec<u8>,
    /// The raw `llistxattr` list.
    pub xattrs: Vec<u8>,
}

/// Walks `root` in a stable order and describes each entry with `describe`.
pub fn snapshot(root: &Path, describe: impl Fn(&Entry) -> String) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let data = if meta.is_symlink() {
                std::fs::read_link(&path)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else if meta.is_file() {
                std::fs::read(&path).unwrap()
            } else {
                Vec::new()
            };
            let mut xattrs = vec![0u8; 4096];
            let n = rustix::fs::llistxattr(&path, &mut xattrs[..]).unwrap_or(0);
            xattrs.truncate(n);
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let is_dir = meta.is_dir();
            out.push(describe(&Entry {
                rel,
                meta,
                data,
                xattrs,
            }));
            if is_dir {
                stack.push(path);
            }
        }
    }
    out
}

// POSIX ACL xattr values, as the kernel and the wire carry them.

pub const ACL_ACCESS: &[u8] = b"system.posix_acl_access";
pub const ACL_USER: u16 = 0x02;
pub const ACL_GROUP: u16 = 0x08;

/// A version-2 POSIX ACL xattr value: (tag, perm, id) entries.
pub fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

/// user::rw-, user:UID:r--, group::r--, group:GID:r--, mask::r--, other::---
pub fn named_acl(uid: u32, gid: u32) -> Vec<u8> {
    acl(&[
        (0x01, 6, u32::MAX),
        (ACL_USER, 4, uid),
        (0x04, 4, u32::MAX),
        (ACL_GROUP, 4, gid),
        (0x10, 4, u32::MAX),
        (0x20, 0, u32::MAX),
    ])
}

/// T_LSETXATTR of `system.posix_acl_access` on `//f`.
pub fn set_acl(value: &[u8]) -> Request<'_> {
    Request::Lsetxattr {
        path: b"//f",
        name: ACL_ACCESS,
        value,
        size: value.len() as i32,
        flags: 0,
    }
}

/// The ACL of `//f` as the guest reads it (T_LGETXATTR).
pub fn guest_acl(h: &Helper) -> Result<Vec<u8>, i32> {
    h.response(&Request::Lgetxattr {
        size: 256,
        path: b"//f",
        name: ACL_ACCESS,
    })
    .map(|p| p[2..].to_vec())
}

/// The ACL xattr value as the host has it.
pub fn host_acl(path: &std::path::Path) -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    let n = rustix::fs::lgetxattr(path, "system.posix_acl_access", &mut buf[..])
        .expect("the host reads the ACL back");
    buf.truncate(n);
    buf
}

/// `pid` and every process descending from it, found by the parent links
/// in `/proc/*/stat`: the helper's forks (under the namespace sandbox the
/// waiter outside the pid namespace and the server it forks; with
/// `--socket` the socket-file janitor) whatever their own pid namespaces.
pub fn process_tree(pid: i32) -> Vec<i32> {
    let parents: Vec<(i32, i32)> = std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            // "PID (COMM) STATE PPID ...": COMM may hold spaces and ')'.
            let rest = &stat[stat.rfind(')')? + 1..];
            Some((p, rest.split_whitespace().nth(1)?.parse().ok()?))
        })
        .collect();
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|&&(_, pp)| pp == parent)
                .map(|&(p, _)| p),
        );
        i += 1;
    }
    tree
}

/// A process's name (`/proc/PID/comm`), as `prctl(PR_SET_NAME)` set it.
pub fn process_name(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim_end()
        .to_string()
}
