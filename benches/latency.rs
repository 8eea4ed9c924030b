//! Per-request latency of our helper (both resolvers) against QEMU's
//! original, and against two floors: the socket round trip alone, and the
//! round trip plus the bare syscall with no resolution at all.
//!
//! `cargo bench --bench latency` (as root: the helpers chroot). Everything
//! is pinned to one core (../shared/reference/benchmarking.md: unpinned
//! medians jump by up to 60%), targets are interleaved in blocks so drift
//! cancels, and ratios are what to read. Environment: `VPH_BENCH_ITERS`
//! (measured iterations per row and target, default 20000), `VPH_BENCH_ROWS`
//! (comma-separated row names to run), `VPH_BENCH_VARIANT_ARGS` (options
//! for one more target, ours openat2 with them, interleaved and compared
//! with plain ours), `VPH_BENCH_OURS_ARGS` (extra
//! arguments for our helpers).

use rustix::fd::{AsRawFd, OwnedFd};
use rustix::io::IoSliceMut;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SocketFlags, SocketType,
    recvmsg, socketpair,
};
use std::fs;
use std::mem::MaybeUninit;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use virtfs_proxy_helper::protocol::{
    self, HEADER_SIZE, Header, Request, RequestType, client, decode_request,
};

const ORIGINAL: &str = "/usr/lib/qemu/virtfs-proxy-helper";
const BLOCK: usize = 500;
const WARMUP_BLOCKS: usize = 4;
/// Spawns per helper for the start-up figure (20 moved the median by 10%
/// between runs).
const STARTUPS: usize = 100;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Row {
    RoundTrip,
    Lstat,
    Open,
    OpenDir,
    CreateRemove,
    MkdirRemove,
    Readlink,
    Lgetxattr,
    Llistxattr,
    Statfs,
    Chmod,
    Utime,
}

const ROWS: [Row; 12] = [
    Row::RoundTrip,
    Row::Lstat,
    Row::Open,
    Row::OpenDir,
    Row::CreateRemove,
    Row::MkdirRemove,
    Row::Readlink,
    Row::Lgetxattr,
    Row::Llistxattr,
    Row::Statfs,
    Row::Chmod,
    Row::Utime,
];

impl Row {
    fn name(self) -> &'static str {
        match self {
            Row::RoundTrip => "round trip",
            Row::Lstat => "T_LSTAT",
            Row::Open => "T_OPEN+close",
            Row::OpenDir => "T_OPEN dir+close",
            Row::CreateRemove => "T_CREATE+T_REMOVE",
            Row::MkdirRemove => "T_MKDIR+T_REMOVE",
            Row::Readlink => "T_READLINK",
            Row::Lgetxattr => "T_LGETXATTR",
            Row::Llistxattr => "T_LLISTXATTR",
            Row::Statfs => "T_STATFS",
            Row::Chmod => "T_CHMOD",
            Row::Utime => "T_UTIME",
        }
    }

    /// The requests one iteration sends (paths two levels deep, as QEMU
    /// sends them for a file in a subdirectory).
    fn requests(self) -> Vec<Request<'static>> {
        let f: &[u8] = b"//dir/file";
        match self {
            // For helpers the cheapest request there is; the floor answers
            // it without any syscall.
            Row::RoundTrip => vec![Request::Lstat { path: b"/" }],
            Row::Lstat => vec![Request::Lstat { path: f }],
            Row::Open => vec![Request::Open {
                path: f,
                flags: libc::O_RDONLY,
            }],
            // How QEMU opens every directory it lists.
            Row::OpenDir => vec![Request::Open {
                path: b"//dir",
                flags: libc::O_RDONLY | libc::O_DIRECTORY,
            }],
            Row::CreateRemove => vec![
                Request::Create {
                    path: b"//dir/new",
                    flags: libc::O_CREAT | libc::O_EXCL | libc::O_RDWR,
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                },
                Request::Remove { path: b"//dir/new" },
            ],
            Row::MkdirRemove => vec![
                Request::Mkdir {
                    uid: 0,
                    gid: 0,
                    path: b"//dir/newdir",
                    mode: 0o755,
                },
                Request::Remove {
                    path: b"//dir/newdir",
                },
            ],
            Row::Readlink => vec![Request::Readlink {
                path: b"//dir/link",
                bufsize: 4096,
            }],
            Row::Lgetxattr => vec![Request::Lgetxattr {
                size: 64,
                path: f,
                name: b"user.bench",
            }],
            Row::Llistxattr => vec![Request::Llistxattr { size: 256, path: f }],
            Row::Statfs => vec![Request::Statfs { path: f }],
            Row::Chmod => vec![Request::Chmod {
                path: f,
                mode: 0o644,
            }],
            Row::Utime => vec![Request::Utime {
                path: f,
                atime: (1000, 0),
                mtime: (2000, 0),
            }],
        }
    }
}

struct Target {
    name: String,
    child: Child,
    sock: OwnedFd,
    _export: tempfile::TempDir,
}

fn scratch_export() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("vph-bench")
        .tempdir()
        .unwrap();
    let d = dir.path().join("dir");
    fs::create_dir(&d).unwrap();
    fs::write(d.join("file"), vec![b'x'; 4096]).unwrap();
    std::os::unix::fs::symlink("file", d.join("link")).unwrap();
    // `user.bench`, and the same name as `--xattrmap ":map::user.virtiofs.:"`
    // stores it, so a variant with that map reads a value too.
    for name in ["user.bench", "user.virtiofs.user.bench"] {
        rustix::fs::setxattr(
            d.join("file"),
            name,
            b"value",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
    }
    dir
}

fn spawn(name: &str, mut cmd: Command, export: tempfile::TempDir) -> Target {
    let (ours, theirs) = socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    let raw = theirs.as_raw_fd();
    // SAFETY: dup2 only, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(theirs);
    Target {
        name: name.into(),
        child,
        sock: ours,
        _export: export,
    }
}

fn helper_command(bin: &Path, export: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(bin);
    if bin == Path::new(ORIGINAL) {
        c.args(["-n", "-f", "3", "-p"]).arg(export);
    } else {
        c.args(["--nodaemon", "--fd", "3", "--path"])
            .arg(export)
            .args(extra);
    }
    c
}

fn floor_command(mode: &str, export: &Path) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.env("VPH_BENCH_FLOOR", mode)
        .env("VPH_BENCH_EXPORT", export);
    c
}

fn read_exact(sock: &OwnedFd, buf: &mut [u8]) {
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::read(sock, &mut buf[got..]) {
            Ok(0) => panic!("helper closed the connection"),
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn write_all(sock: &OwnedFd, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let n = rustix::net::send(sock, bytes, rustix::net::SendFlags::NOSIGNAL).unwrap();
        bytes = &bytes[n..];
    }
}

/// Sends one frame and consumes its reply; the fd of an fd reply is closed.
fn roundtrip(sock: &OwnedFd, frame: &[u8], kind: RequestType, scratch: &mut Vec<u8>) -> bool {
    write_all(sock, frame);
    if matches!(kind, RequestType::Open | RequestType::Create) {
        let mut data = [0u8; 4];
        let mut iov = [IoSliceMut::new(&mut data)];
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        recvmsg(sock, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC).unwrap();
        let mut got_fd = false;
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(fds) = m {
                got_fd = fds.count() > 0; // the fds drop (close) here
            }
        }
        return got_fd;
    }
    let mut header = [0u8; HEADER_SIZE];
    read_exact(sock, &mut header);
    let h = Header::decode(&header);
    scratch.resize(h.size as usize, 0);
    read_exact(sock, scratch);
    h.kind == protocol::T_SUCCESS
}

struct Prepared {
    frames: Vec<(Vec<u8>, RequestType)>,
}

fn prepare(row: Row) -> Prepared {
    let frames = row
        .requests()
        .iter()
        .map(|r| {
            let frame = client::encode(r);
            let kind =
                RequestType::from_wire(u32::from_ne_bytes(frame[..4].try_into().unwrap())).unwrap();
            (frame, kind)
        })
        .collect();
    Prepared { frames }
}

fn iterate(t: &Target, p: &Prepared, scratch: &mut Vec<u8>) -> Duration {
    let start = Instant::now();
    for (frame, kind) in &p.frames {
        let ok = roundtrip(&t.sock, frame, *kind, scratch);
        // The round-trip floor answers without doing the work, by design.
        debug_assert!(
            ok || t.name == "floor: round trip",
            "{}: request failed",
            t.name
        );
    }
    start.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_nanos() as f64 / 1000.0
}

fn pin_to_one_core() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = if cpus > 1 { 1 } else { 0 };
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).unwrap();
    cpu
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Spawn to first reply, median of `n`.
fn startup(bin: &Path, extra: &[&str], n: usize) -> f64 {
    let mut times = Vec::new();
    let mut scratch = Vec::new();
    let frame = client::encode(&Request::Lstat { path: b"/" });
    for _ in 0..n {
        let export = scratch_export();
        let path = export.path().to_path_buf();
        let start = Instant::now();
        let mut t = spawn("startup", helper_command(bin, &path, extra), export);
        roundtrip(&t.sock, &frame, RequestType::Lstat, &mut scratch);
        times.push(start.elapsed());
        drop(std::mem::replace(
            &mut t.sock,
            fs::File::open("/dev/null").unwrap().into(),
        ));
        let _ = t.child.wait();
    }
    times.sort();
    percentile(&times, 0.5)
}

fn main() {
    if let Ok(mode) = std::env::var("VPH_BENCH_FLOOR") {
        floor::serve(&mode);
        return;
    }
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this
    // binary without it, and a measurement has no place in the test suite.
    if !std::env::args().any(|a| a == "--bench") {
        println!("latency benchmark: run it with `cargo bench --bench latency`");
        return;
    }
    let cpu = pin_to_one_core();
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_virtfs-proxy-helper"));
    let iters: usize = std::env::var("VPH_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let wanted: Option<Vec<String>> = std::env::var("VPH_BENCH_ROWS")
        .ok()
        .map(|v| v.split(',').map(String::from).collect());
    let blocks = iters.div_ceil(BLOCK);
    let have_original = Path::new(ORIGINAL).exists();

    let mut targets = Vec::new();
    if have_original {
        let e = scratch_export();
        let p = e.path().to_path_buf();
        targets.push(spawn(
            "original",
            helper_command(Path::new(ORIGINAL), &p, &[]),
            e,
        ));
        // A second original, measured the same way: its ratio to the first
        // (the A/A column) is how far two identical helpers drift apart in
        // this run, the noise to read every other ratio against.
        let e = scratch_export();
        let p = e.path().to_path_buf();
        targets.push(spawn(
            "original A/A",
            helper_command(Path::new(ORIGINAL), &p, &[]),
            e,
        ));
    }
    let extra = std::env::var("VPH_BENCH_OURS_ARGS").unwrap_or_default();
    let ours_args = |resolver: &'static str| -> Vec<String> {
        let mut args: Vec<String> = ["--resolver", resolver, "--log-level", "error"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra.split_whitespace().map(String::from));
        args
    };
    for (name, resolver) in [("ours openat2", "openat2"), ("ours walker", "walker")] {
        let e = scratch_export();
        let p = e.path().to_path_buf();
        let args = ours_args(resolver);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        targets.push(spawn(name, helper_command(&ours, &p, &args), e));
    }
    // A variant of ours (extra options, e.g. id translation), interleaved
    // with the plain one in the same run, so its cost reads against this
    // run's A/A noise rather than against another run.
    let variant = std::env::var("VPH_BENCH_VARIANT_ARGS").ok();
    if let Some(variant) = &variant {
        let e = scratch_export();
        let p = e.path().to_path_buf();
        let mut args = ours_args("openat2");
        args.extend(variant.split_whitespace().map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        targets.push(spawn("ours variant", helper_command(&ours, &p, &args), e));
    }
    for (name, mode) in [("floor: round trip", "rt"), ("floor: + syscall", "syscall")] {
        let e = scratch_export();
        let p = e.path().to_path_buf();
        targets.push(spawn(name, floor_command(mode, &p), e));
    }

    println!(
        "Pinned to CPU {cpu}; {iters} measured iterations per row and target after {} warm-up, blocks of {BLOCK} interleaved.",
        WARMUP_BLOCKS * BLOCK
    );
    println!(
        "Latency in microseconds (median / p99); ratios are ours / original; A/A is a second original / the first.\n"
    );
    println!(
        "| request | original | A/A | ours openat2 | ratio | ours walker | ratio | floor rt | floor rt+syscall | openat2 / floor |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut scratch = Vec::new();
    let mut variant_rows = Vec::new();
    for row in ROWS {
        if let Some(w) = &wanted {
            if !w.iter().any(|n| n == row.name()) {
                continue;
            }
        }
        let prepared = prepare(row);
        let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(iters); targets.len()];
        for block in 0..WARMUP_BLOCKS + blocks {
            for (i, t) in targets.iter().enumerate() {
                for _ in 0..BLOCK {
                    let d = iterate(t, &prepared, &mut scratch);
                    if block >= WARMUP_BLOCKS {
                        samples[i].push(d);
                    }
                }
            }
        }
        let stats: Vec<(f64, f64)> = samples
            .iter_mut()
            .map(|s| {
                s.sort();
                (percentile(s, 0.5), percentile(s, 0.99))
            })
            .collect();
        let by = |name: &str| {
            targets
                .iter()
                .position(|t| t.name == name)
                .map(|i| stats[i])
        };
        let fmt = |s: Option<(f64, f64)>| s.map_or("-".into(), |(m, p)| format!("{m:.2} / {p:.2}"));
        let ratio = |a: Option<(f64, f64)>, b: Option<(f64, f64)>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.2} / {:.2}", a.0 / b.0, a.1 / b.1),
            _ => "-".into(),
        };
        let original = by("original");
        let o2 = by("ours openat2");
        let walker = by("ours walker");
        let floor_syscall = by("floor: + syscall");
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.name(),
            fmt(original),
            ratio(by("original A/A"), original),
            fmt(o2),
            ratio(o2, original),
            fmt(walker),
            ratio(walker, original),
            fmt(by("floor: round trip")),
            fmt(floor_syscall),
            match (o2, floor_syscall) {
                (Some(a), Some(b)) => format!("{:.2}", a.0 / b.0),
                _ => "-".into(),
            }
        );
        if variant.is_some() {
            variant_rows.push(format!(
                "| {} | {} | {} | {} | {} |",
                row.name(),
                fmt(o2),
                fmt(by("ours variant")),
                ratio(by("ours variant"), o2),
                ratio(by("original A/A"), original),
            ));
        }
    }
    if let Some(variant) = &variant {
        println!("\nThe variant is ours openat2 with `{variant}`, interleaved with the rest:\n");
        println!("| request | ours openat2 | variant | variant / ours | A/A |");
        println!("|---|---|---|---|---|");
        for line in variant_rows {
            println!("{line}");
        }
    }

    println!("\n| helper | peak RSS (KiB) | start to first reply (ms, median of {STARTUPS}) |");
    println!("|---|---|---|");
    for t in &targets {
        if t.name.starts_with("floor") || t.name == "original A/A" || t.name == "ours variant" {
            continue;
        }
        let st = if t.name == "original" {
            startup(Path::new(ORIGINAL), &[], STARTUPS)
        } else {
            let resolver = if t.name.ends_with("walker") {
                "walker"
            } else {
                "openat2"
            };
            let args = ours_args(resolver);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            startup(&ours, &args, STARTUPS)
        };
        println!(
            "| {} | {} | {:.2} |",
            t.name,
            peak_rss_kib(t.child.id()),
            st / 1000.0
        );
    }
    for mut t in targets {
        drop(std::mem::replace(
            &mut t.sock,
            fs::File::open("/dev/null").unwrap().into(),
        ));
        let _ = t.child.wait();
    }
}

/// The floors: a server on fd 3 that answers with no work at all (`rt`), or
/// with the bare syscall on the path relative to the export, no resolution
/// and no checks (`syscall`).
mod floor {
    use super::*;
    use rustix::fd::{AsFd, FromRawFd};
    use rustix::fs::{AtFlags, CWD, Mode, OFlags};

    pub fn serve(mode: &str) {
        let export = std::env::var("VPH_BENCH_EXPORT").unwrap();
        std::env::set_current_dir(&export).unwrap();
        // SAFETY: fd 3 is the socket the benchmark handed over.
        let sock = unsafe { OwnedFd::from_raw_fd(3) };
        let mut conn = virtfs_proxy_helper::transport::Connection::new(sock);
        let mut out = Vec::new();
        let bare = mode == "syscall";
        while let Ok(frame) = conn.read_frame() {
            let kind = RequestType::from_wire(frame.kind).unwrap();
            let req = decode_request(kind, conn.payload(&frame)).unwrap();
            out.clear();
            let rel = |p: &[u8]| -> Vec<u8> {
                let p = virtfs_proxy_helper::path::trim_terminator(p);
                let t = p.iter().position(|&b| b != b'/').unwrap_or(p.len());
                if t == p.len() {
                    b".".to_vec()
                } else {
                    p[t..].to_vec()
                }
            };
            let status = |out: &mut Vec<u8>, r: rustix::io::Result<()>| {
                protocol::encode_status(out, r.map_or_else(|e| -e.raw_os_error(), |()| 0));
            };
            if !bare {
                // The round trip alone: a reply of the right kind, no work.
                match kind.reply_kind() {
                    protocol::ReplyKind::Fd => conn.send_fd(Err(-libc::ENOENT)).unwrap(),
                    protocol::ReplyKind::Status => {
                        protocol::encode_status(&mut out, 0);
                        conn.send_message(&out).unwrap();
                    }
                    protocol::ReplyKind::Response => {
                        out.resize(HEADER_SIZE + protocol::STAT_SIZE, 0);
                        protocol::finish_response(&mut out, libc::ENOBUFS);
                        conn.send_message(&out).unwrap();
                    }
                }
                continue;
            }
            match req {
                Request::Open { path, flags } => {
                    let r = rustix::fs::openat(
                        CWD,
                        rel(path).as_slice(),
                        OFlags::from_bits_retain(flags as u32),
                        Mode::empty(),
                    )
                    .map_err(|e| -e.raw_os_error());
                    conn.send_fd(r).unwrap();
                    continue;
                }
                Request::Create {
                    path, flags, mode, ..
                } => {
                    let r = rustix::fs::openat(
                        CWD,
                        rel(path).as_slice(),
                        OFlags::from_bits_retain(flags as u32),
                        Mode::from_raw_mode(mode),
                    )
                    .map_err(|e| -e.raw_os_error());
                    conn.send_fd(r).unwrap();
                    continue;
                }
                Request::Lstat { path } => {
                    out.resize(HEADER_SIZE, 0);
                    let st =
                        rustix::fs::statat(CWD, rel(path).as_slice(), AtFlags::SYMLINK_NOFOLLOW)
                            .unwrap();
                    let w = protocol::WireStat {
                        ino: st.st_ino,
                        ..Default::default()
                    };
                    w.encode(&mut out);
                    protocol::finish_response(&mut out, libc::ENOBUFS);
                }
                Request::Mkdir { path, mode, .. } => status(
                    &mut out,
                    rustix::fs::mkdirat(CWD, rel(path).as_slice(), Mode::from_raw_mode(mode)),
                ),
                Request::Remove { path } => {
                    let p = rel(path);
                    let r = match rustix::fs::unlinkat(CWD, p.as_slice(), AtFlags::empty()) {
                        Err(rustix::io::Errno::ISDIR) => {
                            rustix::fs::unlinkat(CWD, p.as_slice(), AtFlags::REMOVEDIR)
                        }
                        r => r,
                    };
                    status(&mut out, r)
                }
                Request::Readlink { path, .. } => {
                    out.resize(HEADER_SIZE, 0);
                    let t = rustix::fs::readlinkat(CWD, rel(path).as_slice(), Vec::new()).unwrap();
                    protocol::encode_string(&mut out, t.as_bytes());
                    protocol::finish_response(&mut out, libc::ENOBUFS);
                }
                Request::Lgetxattr { size, path, name } => {
                    out.resize(HEADER_SIZE, 0);
                    let mut buf = vec![0u8; size as usize];
                    let n =
                        rustix::fs::lgetxattr(rel(path).as_slice(), name, &mut buf[..]).unwrap();
                    protocol::encode_string(&mut out, &buf[..n]);
                    protocol::finish_response(&mut out, libc::ENOBUFS);
                }
                Request::Llistxattr { size, path } => {
                    out.resize(HEADER_SIZE, 0);
                    let mut buf = vec![0u8; size as usize];
                    let n = rustix::fs::llistxattr(rel(path).as_slice(), &mut buf[..]).unwrap();
                    protocol::encode_string(&mut out, &buf[..n]);
                    protocol::finish_response(&mut out, libc::ENOBUFS);
                }
                Request::Statfs { path } => {
                    out.resize(HEADER_SIZE, 0);
                    let st = rustix::fs::statfs(rel(path).as_slice()).unwrap();
                    protocol::WireStatFs {
                        fs_type: st.f_type as u64,
                        ..Default::default()
                    }
                    .encode(&mut out);
                    protocol::finish_response(&mut out, libc::ENOBUFS);
                }
                Request::Chmod { path, mode } => status(
                    &mut out,
                    rustix::fs::chmodat(
                        CWD,
                        rel(path).as_slice(),
                        Mode::from_raw_mode(mode),
                        AtFlags::empty(),
                    ),
                ),
                Request::Utime { path, atime, mtime } => {
                    let ts = |t: (i64, i64)| rustix::fs::Timespec {
                        tv_sec: t.0,
                        tv_nsec: t.1 as _,
                    };
                    let times = rustix::fs::Timestamps {
                        last_access: ts(atime),
                        last_modification: ts(mtime),
                    };
                    status(
                        &mut out,
                        rustix::fs::utimensat(
                            CWD,
                            rel(path).as_slice(),
                            &times,
                            AtFlags::SYMLINK_NOFOLLOW,
                        ),
                    )
                }
                _ => protocol::encode_status(&mut out, -libc::ENOSYS),
            }
            conn.send_message(&out).unwrap();
            let _ = conn.socket().as_fd();
        }
    }
}
