//! No fd the launcher left open reaches any of the helper's processes:
//! the server, the waiter outside its pid namespace (`vph-nswait`) and the
//! socket-file janitor (`vph-janitor`), whether the helper closes them with
//! `close_range` or, where a seccomp filter refuses that, one by one. Every
//! fd they hold from 3 up is close-on-exec (the `--fd` socket included:
//! the setuid `newuidmap`/`newgidmap` must not get it), none is a directory
//! outside the export, and a directory on a standard stream is replaced by
//! a dead pipe end.

mod common;

use common::*;
use rustix::fs::{Mode, OFlags};
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use virtfs_proxy_helper::process::{close_all_except_with, fd_bound, highest_listed_fd};

/// Where a shell's `10</ 251</` puts directories.
const LOW: [i32; 2] = [10, 251];
/// Past 65,536, where the one-by-one fallback used to stop.
const HIGH: i32 = 70_000;
/// The RLIMIT_NOFILE the helper starts with in these tests (the one it
/// sets itself when confined): lowered after the high fd was opened, as a
/// launcher may do, so that the fd lies above the limit.
const LOWERED: u64 = 4096;
/// `O_CLOEXEC` and `O_PATH` as `/proc/PID/fdinfo/N` shows them (octal).
const O_CLOEXEC: u32 = 0o2_000_000;
const O_PATH: u32 = 0o10_000_000;

type Hook = Box<dyn FnMut() -> std::io::Result<()> + Send + Sync>;

/// The sandboxes the fds are checked under: the default (namespaces where
/// the kernel allows them: a waiter, a server in its own pid namespace)
/// and the chroot (one process serving).
const SANDBOXES: [&[&str]; 2] = [&[], &["--sandbox", "chroot"]];

/// The high fd a child inherits, above the limit it starts with: [`HIGH`]
/// where RLIMIT_NOFILE allows it (raising the hard limit needs
/// CAP_SYS_RESOURCE in the initial user namespace), else the highest the
/// hard limit allows, if that is above [`LOWERED`].
fn high_fd() -> Option<i32> {
    const CAP_SYS_RESOURCE: u32 = 24;
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .unwrap_or(u64::MAX);
    let can_raise = is_real_root()
        && std::fs::read_to_string("/proc/self/status").is_ok_and(|st| {
            st.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|caps| u64::from_str_radix(caps.trim(), 16).ok())
                .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
        });
    if can_raise || hard > HIGH as u64 {
        Some(HIGH)
    } else {
        (hard > LOWERED + 1).then(|| (hard - 1) as i32)
    }
}

/// Says which high fd the test checks, when it cannot be [`HIGH`].
fn say_high_fd(test: &str) {
    match high_fd() {
        Some(HIGH) => {}
        Some(fd) => skip(
            test,
            &format!(
                "the case of fd {HIGH} (past 65,536): RLIMIT_NOFILE's hard limit is lower and \
                 raising it needs CAP_SYS_RESOURCE; fd {fd}, above the lowered limit, instead"
            ),
        ),
        None => skip(
            test,
            &format!(
                "the case of an fd above the limit: RLIMIT_NOFILE's hard limit is {LOWERED} or \
                 less; fds {LOW:?} only"
            ),
        ),
    }
}

/// A hook (between fork and exec) that leaves the root directory open,
/// without close-on-exec, as the fds in the returned list, as a shell does
/// with `10</`, the high one ([`high_fd`]) above the RLIMIT_NOFILE the
/// helper starts with; with `fallback`, a seccomp filter makes
/// `close_range` answer ENOSYS, as a container's profile may, so the
/// helper closes fds one by one.
fn inherit_root(fallback: bool) -> (Vec<i32>, Hook) {
    let root: OwnedFd = File::open("/").expect("opening /").into();
    let high = high_fd();
    let mut fds = LOW.to_vec();
    fds.extend(high);
    let mut filter = fallback.then(|| enosys_filter(&[libc::SYS_close_range as u32]));
    let hook: Hook = Box::new(move || {
        let raw = root.as_raw_fd();
        let set_limit = |n: libc::rlim_t| {
            let lim = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            // SAFETY: setrlimit reads a local struct; async-signal-safe.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        };
        for fd in LOW {
            // SAFETY: dup2 on fd numbers, async-signal-safe; the new fd
            // has no close-on-exec.
            if unsafe { libc::dup2(raw, fd) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        if let Some(fd) = high {
            // SAFETY: getrlimit into a local, zeroed struct (plain data);
            // async-signal-safe.
            let lim = unsafe {
                let mut lim: libc::rlimit = std::mem::zeroed();
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
                lim
            };
            set_limit(lim.rlim_max.max(fd as libc::rlim_t + 1))?;
            // SAFETY: as above.
            if unsafe { libc::dup2(raw, fd) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
            set_limit(LOWERED as libc::rlim_t)?;
        }
        if let Some(f) = filter.as_mut() {
            f()?;
        }
        Ok(())
    });
    (fds, hook)
}

/// What a helper process is, by the name it gave itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Waiter,
    Janitor,
    Server,
}

fn role(pid: i32) -> Role {
    match process_name(pid).as_str() {
        "vph-nswait" => Role::Waiter,
        "vph-janitor" => Role::Janitor,
        _ => Role::Server,
    }
}

/// The flags `/proc/PID/fdinfo/N` shows for an fd (octal), if it is still
/// open.
fn fd_flags(pid: i32, fd: i32) -> Option<u32> {
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
    let line = info.lines().find_map(|l| l.strip_prefix("flags:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}

/// Whether a process has ended or is ending: gone, a zombie, or exiting
/// (`PF_EXITING`, its fds being closed).
fn ended(pid: i32) -> bool {
    const PF_EXITING: u32 = 0x4;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // "PID (COMM) STATE PPID PGRP SESSION TTY TPGID FLAGS ...".
    let fields: Vec<&str> = stat
        .rfind(')')
        .map(|i| stat[i + 1..].split_whitespace().collect())
        .unwrap_or_default();
    let flags: Option<u32> = fields.get(6).and_then(|f| f.parse().ok());
    match (fields.first(), flags) {
        (Some(&state), Some(flags)) => state == "Z" || state == "X" || flags & PF_EXITING != 0,
        _ => true,
    }
}

fn same_file(meta: &std::fs::Metadata, path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino())
}

/// Waits until the helper's forks have named themselves (each does once
/// its fds are closed): the waiter, where the server runs in a pid
/// namespace of its own, and with `janitor` the socket-file janitor.
fn wait_for_names(started: i32, janitor: bool) {
    wait_until("the helper's processes to name themselves", || {
        let waiter = serving_pid(started) == started || role(started) == Role::Waiter;
        let janitor = !janitor
            || process_tree(started)
                .into_iter()
                .any(|p| role(p) == Role::Janitor);
        waiter && janitor
    });
}

/// Checks every process of the helper started as `started`; panics with
/// every problem found and each process's fds. What each may hold:
/// - no fd numbered as one of `inherited` that is still the host's root;
/// - from fd 3 up, only close-on-exec fds;
/// - on fds 0 to 2, no directory and no `O_PATH` fd;
/// - the server: no directory but the export and procfs (its held
///   `/proc/self/fd`, where the kernel needs it to reopen files);
/// - the janitor: the socket file's directory and pipes, nothing else;
/// - the waiter: pipes at most beside its standard streams.
///
/// Returns the roles found, or why the fds cannot be read here.
fn check_tree(
    started: i32,
    export: &Path,
    socket_dir: Option<&Path>,
    inherited: &[i32],
) -> Result<Vec<Role>, String> {
    let mut problems = Vec::new();
    let mut listing = String::new();
    let mut roles = Vec::new();
    for pid in process_tree(started) {
        let role = role(pid);
        let fds: Vec<i32> = match std::fs::read_dir(format!("/proc/{pid}/fd")) {
            Ok(dir) => dir
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect(),
            // A process that has ended (the janitor, once QEMU connected)
            // holds no fd; its fd directory is refused to other users.
            Err(_) if ended(pid) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(format!("reading /proc/{pid}/fd of the helper: {e}"));
            }
            // Gone meanwhile (a transient newuidmap, say).
            Err(_) => continue,
        };
        roles.push(role);
        for fd in fds {
            let link = format!("/proc/{pid}/fd/{fd}");
            let target = std::fs::read_link(&link).unwrap_or_else(|e| PathBuf::from(e.to_string()));
            listing.push_str(&format!("{pid} {role:?} fd {fd} -> {}\n", target.display()));
            // Following the magic link: what the fd refers to.
            let (Ok(meta), Some(flags)) = (std::fs::metadata(&link), fd_flags(pid, fd)) else {
                continue;
            };
            let what = format!("{role:?} (pid {pid}) fd {fd} -> {}", target.display());
            // The number alone proves nothing: the helper may open one of
            // its own there once the inherited fd is closed.
            if inherited.contains(&fd) && same_file(&meta, Path::new("/")) {
                problems.push(format!("{what}: an inherited fd is still open"));
            }
            if fd >= 3 && flags & O_CLOEXEC == 0 {
                problems.push(format!(
                    "{what}: not close-on-exec, it would reach an exec'd program"
                ));
            }
            if fd < 3 && (meta.is_dir() || flags & O_PATH != 0) {
                problems.push(format!(
                    "{what}: a directory or O_PATH fd on a standard stream"
                ));
                continue;
            }
            let is_pipe = meta.file_type().is_fifo();
            let allowed_dir = match role {
                Role::Server => {
                    same_file(&meta, export)
                        || rustix::fs::statfs(&link)
                            .is_ok_and(|st| st.f_type == rustix::fs::PROC_SUPER_MAGIC)
                }
                Role::Janitor => socket_dir.is_some_and(|d| same_file(&meta, d)),
                Role::Waiter => false,
            };
            if meta.is_dir() && !allowed_dir {
                problems.push(match role {
                    Role::Server => format!("{what}: a directory outside the export"),
                    _ => format!("{what}: a directory this process does not need"),
                });
            }
            if fd >= 3 && role != Role::Server && !meta.is_dir() && !is_pipe {
                problems.push(format!("{what}: not one of the fds this process needs"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\nevery fd of the helper's processes:\n{listing}",
        problems.join("\n")
    );
    Ok(roles)
}

/// A foreground helper listening on a socket file, its stderr in a file.
struct Listening {
    child: Child,
    log: PathBuf,
}

impl Listening {
    fn start(cmd: &mut Command, log: PathBuf) -> Self {
        let child = cmd
            .stderr(File::create(&log).expect("log file"))
            .spawn()
            .expect("spawning the helper");
        let mut me = Listening { child, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !me.log().contains("waiting for QEMU") {
            if let Some(status) = me.child.try_wait().unwrap() {
                panic!("the helper exited ({status}):\n{}", me.log());
            }
            assert!(Instant::now() < deadline, "no waiting line:\n{}", me.log());
            std::thread::sleep(Duration::from_millis(5));
        }
        me
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the helper did not exit:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `helper -n -p EXPORT -s SOCK -u UID -g GID`, standard streams on
/// /dev/null (stderr set by [`Listening::start`]).
fn socket_command(s: &Scratch, sock: &Path, sandbox: &[&str]) -> Command {
    let mut cmd = Command::new(our_binary());
    cmd.args(["-n", "--log-level", "debug", "-p"])
        .arg(&s.export)
        .arg("-s")
        .arg(sock)
        .args(owner_args())
        .args(sandbox)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether a check could not read the helper's fds: says so, once.
fn skipped(test: &str, checked: &Result<Vec<Role>, String>) -> bool {
    match checked {
        Ok(_) => false,
        Err(why) => {
            skip(test, why);
            true
        }
    }
}

#[test]
fn with_socket_no_inherited_fd_reaches_the_server_the_waiter_or_the_janitor() {
    const TEST: &str = "with_socket_no_inherited_fd_reaches_the_server_the_waiter_or_the_janitor";
    say_high_fd(TEST);
    for sandbox in SANDBOXES {
        for fallback in [false, true] {
            let s = Scratch::new();
            std::fs::write(s.path("f"), "abc").unwrap();
            let sock = s.dir.path().join("vph.sock");
            let (inherited, hook) = inherit_root(fallback);
            let mut cmd = socket_command(&s, &sock, sandbox);
            // SAFETY: the hook makes only async-signal-safe calls.
            unsafe {
                cmd.pre_exec(hook);
            }
            let case = format!("{sandbox:?}, close_range refused: {fallback}");
            let mut h = Listening::start(&mut cmd, s.dir.path().join("log"));
            // Waiting for QEMU: the janitor is there.
            wait_for_names(h.pid(), true);
            let roles = check_tree(h.pid(), &s.export, Some(s.dir.path()), &inherited);
            if skipped(TEST, &roles) {
                return;
            }
            let roles = roles.unwrap();
            assert!(roles.contains(&Role::Janitor), "{case}: {roles:?}");
            assert!(roles.contains(&Role::Server), "{case}: {roles:?}");
            // Serving (the janitor, its file removed, may not have gone).
            let stream = std::os::unix::net::UnixStream::connect(&sock).unwrap();
            let client = Helper::adopt(0, stream.into());
            assert_eq!(client.lstat("f").unwrap().size, 3, "{case}");
            wait_until("the socket file's removal", || !sock.exists());
            let roles = check_tree(h.pid(), &s.export, Some(s.dir.path()), &inherited).unwrap();
            assert!(roles.contains(&Role::Server), "{case}: {roles:?}");
            drop(client);
            assert_eq!(h.wait().code(), Some(0), "{case}: {}", h.log());
        }
    }
}

#[test]
fn with_fd_no_inherited_fd_reaches_the_helper_and_its_socket_is_close_on_exec() {
    const TEST: &str = "with_fd_no_inherited_fd_reaches_the_helper_and_its_socket_is_close_on_exec";
    say_high_fd(TEST);
    for sandbox in SANDBOXES {
        for fallback in [false, true] {
            let s = Scratch::new();
            std::fs::write(s.path("f"), "ab").unwrap();
            let (inherited, hook) = inherit_root(fallback);
            let mut spawn = Spawn::new(Flavor::Auto, &s.export);
            for a in sandbox {
                spawn = spawn.arg(a);
            }
            spawn.pre_exec = Some(hook);
            let h = spawn.start();
            let case = format!("{sandbox:?}, close_range refused: {fallback}");
            assert_eq!(h.lstat("f").unwrap().size, 2, "{case}: {}", h.stderr());
            wait_for_names(h.pid(), false);
            let roles = check_tree(h.pid(), &s.export, None, &inherited);
            if skipped(TEST, &roles) {
                return;
            }
            // The connection is the server's fd 3, checked close-on-exec
            // above; it is there.
            let server = h.serving_pid();
            assert!(
                std::fs::read_link(format!("/proc/{server}/fd/3"))
                    .is_ok_and(|l| l.to_string_lossy().starts_with("socket:")),
                "{case}: the server serves on fd 3"
            );
            assert_eq!(h.finish().code(), Some(0), "{case}");
        }
    }
}

#[test]
fn a_directory_on_a_standard_stream_is_replaced_by_a_dead_pipe() {
    const TEST: &str = "a_directory_on_a_standard_stream_is_replaced_by_dev_null";
    for sandbox in SANDBOXES {
        let s = Scratch::new();
        std::fs::write(s.path("f"), "a").unwrap();
        let sock = s.dir.path().join("vph.sock");
        let mut cmd = socket_command(&s, &sock, sandbox);
        // stdin: the host's root directory, opened for reading; stdout:
        // an O_PATH fd of it. Either would hand the server a host path.
        let path_fd: OwnedFd =
            rustix::fs::open("/", OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).expect("O_PATH /");
        cmd.stdin(File::open("/").expect("opening /"))
            .stdout(Stdio::from(path_fd));
        let mut h = Listening::start(&mut cmd, s.dir.path().join("log"));
        wait_for_names(h.pid(), true);
        let roles = check_tree(h.pid(), &s.export, Some(s.dir.path()), &[]);
        if skipped(TEST, &roles) {
            return;
        }
        for pid in process_tree(h.pid()) {
            for fd in [0, 1] {
                let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}"));
                assert!(
                    target
                        .as_deref()
                        .is_ok_and(|t| t.to_string_lossy().starts_with("pipe:")),
                    "{sandbox:?}: {:?} (pid {pid}) fd {fd} -> {target:?}",
                    role(pid)
                );
            }
        }
        let stream = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        let client = Helper::adopt(0, stream.into());
        assert_eq!(client.lstat("f").unwrap().size, 1, "{sandbox:?}");
        drop(client);
        assert_eq!(h.wait().code(), Some(0), "{sandbox:?}: {}", h.log());
    }
}

// The fallback's decision, apart from the closing (so nothing of this test
// process is closed): `close_all_except_with` with `close_range` refused
// must close exactly the fds from 3 below the bound that are not kept.

/// What [`close_all_except_with`] did: the spans offered to
/// `close_range` and the fds closed one at a time.
#[derive(Debug, Default)]
struct Calls {
    spans: Vec<(u32, u32)>,
    one_by_one: Vec<u32>,
    bound_asked: u32,
}

fn decide(keep: &[i32], bound: u32, close_range_works: bool) -> Calls {
    let mut calls = Calls::default();
    let mut asked = 0;
    close_all_except_with(
        keep,
        || {
            asked += 1;
            bound
        },
        |first, last| {
            calls.spans.push((first, last));
            close_range_works
        },
        |fd| calls.one_by_one.push(fd),
    );
    calls.bound_asked = asked;
    calls
}

/// Every fd from 3 up to `bound` but those of `keep`, ascending.
fn all_but(keep: &[i32], bound: u32) -> Vec<u32> {
    (3..bound)
        .filter(|&fd| !keep.contains(&(fd as i32)))
        .collect()
}

const BOUND: u32 = 64;

/// Keep lists and the bound they are closed up to.
fn cases() -> Vec<(Vec<i32>, u32)> {
    vec![
        (vec![], BOUND),
        (vec![3], BOUND),
        (vec![5, 9], BOUND),
        // The janitor's: consecutive, unsorted.
        (vec![9, 4, 6, 5], BOUND),
        (vec![9, 5, 5, 9, 9], BOUND),
        // At the limit, just below and above it.
        (vec![BOUND as i32 - 1], BOUND),
        (vec![BOUND as i32], BOUND),
        (vec![7, BOUND as i32 + 5], BOUND),
        // Standard streams and numbers that are no fd.
        (vec![0, 1, 2, 8], BOUND),
        (vec![-1, 6, i32::MAX], BOUND),
        // Past the 65,536 the fallback used to stop at.
        (vec![65_535, 65_537], 70_000),
        (vec![], 3),
    ]
}

#[test]
fn with_close_range_refused_exactly_the_unkept_fds_below_the_bound_close() {
    for (keep, bound) in cases() {
        let calls = decide(&keep, bound, false);
        assert_eq!(calls.one_by_one, all_but(&keep, bound), "keep {keep:?}");
        assert_eq!(calls.bound_asked, 1, "keep {keep:?}: the bound read once");
    }
}

#[test]
fn kept_fds_are_never_offered_to_close_range() {
    for (keep, bound) in cases() {
        // The fd numbers kept (a negative one names none).
        let kept: Vec<u32> = keep.iter().filter_map(|&k| u32::try_from(k).ok()).collect();
        for works in [true, false] {
            let calls = decide(&keep, bound, works);
            let mut next = 3u32;
            for &(first, last) in &calls.spans {
                assert!(first >= next && first <= last, "keep {keep:?}: {calls:?}");
                // Everything skipped between spans is kept.
                for fd in next..first {
                    assert!(kept.contains(&fd), "keep {keep:?}: {fd} skipped");
                }
                assert!(
                    !kept.iter().any(|k| (first..=last).contains(k)),
                    "keep {keep:?}: span {first}..={last}"
                );
                next = last.saturating_add(1);
            }
            assert_eq!(
                calls.spans.last().map(|s| s.1),
                Some(u32::MAX),
                "keep {keep:?}: up to the last fd number"
            );
        }
    }
}

#[test]
fn with_close_range_working_nothing_closes_one_by_one() {
    for (keep, bound) in cases() {
        let calls = decide(&keep, bound, true);
        assert!(calls.one_by_one.is_empty(), "keep {keep:?}: {calls:?}");
        assert_eq!(calls.bound_asked, 0, "keep {keep:?}: no bound needed");
    }
    assert_eq!(
        decide(&[5, 9], BOUND, true).spans,
        [(3, 4), (6, 8), (10, u32::MAX)]
    );
    assert_eq!(decide(&[3, 4], BOUND, true).spans, [(5, u32::MAX)]);
}

#[test]
fn a_refused_span_alone_closes_one_by_one() {
    let mut one_by_one = Vec::new();
    close_all_except_with(
        &[10, 20],
        || BOUND,
        |first, _| first != 11,
        |fd| one_by_one.push(fd),
    );
    assert_eq!(one_by_one, (11..20).collect::<Vec<_>>());
}

#[test]
fn the_bound_covers_the_limit_and_every_open_fd() {
    let bound = fd_bound();
    let limits = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let hard = limits.maximum.unwrap_or(u64::MAX).min(1 << 20);
    assert!(u64::from(bound) >= hard, "{bound} < {hard}");
    let open: Vec<u32> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    assert!(open.iter().all(|&fd| fd < bound), "{open:?} vs {bound}");
}

#[test]
fn procfs_lists_the_highest_open_fd() {
    let Some(soft) = rustix::process::getrlimit(rustix::process::Resource::Nofile).current else {
        return;
    };
    let null = std::fs::File::open("/dev/null").unwrap();
    let want = (soft - 1) as u32;
    let high = rustix::io::fcntl_dupfd_cloexec(&null, want as i32).unwrap();
    assert_eq!(rustix::fd::AsRawFd::as_raw_fd(&high) as u32, want);
    if std::path::Path::new("/proc/self/fd").exists() {
        assert_eq!(highest_listed_fd(), Some(want));
    }
}
