//! The processes of the helper, as an attacker with their credentials would
//! find them: what the server's root, working directory and fds lead to;
//! how each process (server, waiter, janitor) is confined; that nothing
//! outlives a killed waiter; that host mounts propagate into the namespace
//! sandbox; that every signal the original dies of ends the helper.

mod common;

use common::*;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{Mode, OFlags, fstat, fstatfs, openat};
use std::collections::BTreeSet;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use virtfs_proxy_helper::protocol::{Request, client};

const PROC_SUPER_MAGIC: i64 = 0x9fa0;
/// The capabilities the server keeps (CHOWN, DAC_OVERRIDE, FOWNER, FSETID,
/// SETGID, SETUID, MKNOD), the janitor's (DAC_OVERRIDE, FOWNER).
const SERVER_CAPS: u64 = 0x0800_00db;
const JANITOR_CAPS: u64 = 0x0000_000a;

fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() > deadline {
            eprintln!("timed out waiting for {what}");
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// `pid` and every process below it.
fn tree(pid: i32) -> Vec<i32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let p = all[i];
        let children =
            std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
        all.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<i32>().ok()),
        );
        i += 1;
    }
    all
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn status_field(pid: i32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l[field.len()..].trim().to_owned())
        .unwrap_or_default()
}

fn alive(pid: i32) -> bool {
    // A zombie has ended; only its parent's wait is missing.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
        st.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

fn dev_ino(fd: impl AsFd) -> (u64, u64) {
    let st = fstat(fd).expect("fstat");
    (st.st_dev, st.st_ino)
}

fn open_dir_at(dir: impl AsFd, name: &str) -> Option<OwnedFd> {
    openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()
}

/// Follows `..` from `dir` to the top of what it leads to (where `..` is
/// the directory itself); every directory on the way is recorded.
/// `..` stops at the export too: it is the server's root (chroot or
/// `pivot_root`), where `..` is itself for the server, though not for this
/// test process, whose root is the host's.
fn top_of(dir: OwnedFd, seen: &mut BTreeSet<(u64, u64)>, root: (u64, u64)) -> OwnedFd {
    let mut dir = dir;
    for _ in 0..4096 {
        seen.insert(dev_ino(&dir));
        if dev_ino(&dir) == root {
            return dir;
        }
        let up = open_dir_at(&dir, "..").expect("..");
        if dev_ino(&up) == dev_ino(&dir) {
            return dir;
        }
        dir = up;
    }
    panic!("no top after 4096 levels of ..");
}

/// Checks what a directory the server holds leads to, as an attacker with
/// at least the server's rights would walk it: `..` up to the top, which
/// must be the export or a procfs that shows the server's pid namespace
/// alone; from such a procfs, every process's `root` and `cwd` in turn.
/// Returns the problems found.
fn leads_only_into_the_export(
    what: &str,
    dir: OwnedFd,
    export: (u64, u64),
    visited: &mut BTreeSet<(u64, u64)>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    let top = top_of(dir, &mut seen, export);
    let top_id = dev_ino(&top);
    if !visited.insert(top_id) {
        return problems;
    }
    let is_proc = fstatfs(&top).is_ok_and(|s| s.f_type == PROC_SUPER_MAGIC);
    if is_proc {
        // No executable in reach: a magic link to the host's binary, which
        // CAP_CHOWN could chown (a sealed memfd copy would be harmless).
        for exe in ["exe", "self/exe", "1/exe"] {
            if let Ok(fd) = openat(&top, exe, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()) {
                let link = rustix::fs::readlinkat(&top, exe, Vec::new()).unwrap_or_default();
                if !link.to_string_lossy().starts_with("/memfd:") {
                    problems.push(format!(
                        "{what}: {exe} reaches {:?} (dev {} ino {})",
                        link,
                        dev_ino(&fd).0,
                        dev_ino(&fd).1
                    ));
                }
            }
        }
    }
    if !is_proc {
        if top_id != export {
            problems.push(format!(
                "{what}: `..` leads to a directory that is not the export (dev {} ino {})",
                top_id.0, top_id.1
            ));
        }
        return problems;
    }
    let dup = open_dir_at(&top, ".").expect("reopen the procfs directory");
    let names: Vec<String> = rustix::fs::Dir::read_from(&dup)
        .expect("list the procfs directory")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "." && n != "..")
        .collect();
    if !names.iter().any(|n| n == "self") {
        // Not a procfs root: a `fd` directory, whose entries are magic
        // links to the fds the server holds; each directory among them
        // must lead into the export too.
        for n in &names {
            if let Some(next) = open_dir_at(&top, n) {
                problems.extend(leads_only_into_the_export(
                    &format!("{what} -> fd {n}"),
                    next,
                    export,
                    visited,
                ));
            }
        }
        return problems;
    }
    let pids: Vec<String> = names
        .into_iter()
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    if pids != ["1"] {
        problems.push(format!(
            "{what}: leads to a procfs that shows {} processes ({}...), not the server's own \
             pid namespace alone",
            pids.len(),
            pids.iter().take(5).cloned().collect::<Vec<_>>().join(",")
        ));
    }
    for pid in &pids {
        for link in ["root", "cwd"] {
            if let Some(next) = open_dir_at(&top, &format!("{pid}/{link}")) {
                problems.extend(leads_only_into_the_export(
                    &format!("{what} -> /proc/{pid}/{link}"),
                    next,
                    export,
                    visited,
                ));
            }
        }
    }
    problems
}

/// Every directory the serving process holds (root, cwd, fds), walked as
/// [`leads_only_into_the_export`] does.
fn server_escapes(server: i32, export: &Path) -> Vec<String> {
    let export_id =
        dev_ino(rustix::fs::open(export, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap());
    let mut held = vec!["root".to_owned(), "cwd".to_owned()];
    for entry in std::fs::read_dir(format!("/proc/{server}/fd")).unwrap() {
        held.push(format!(
            "fd/{}",
            entry.unwrap().file_name().to_string_lossy()
        ));
    }
    let mut problems = Vec::new();
    let mut visited = BTreeSet::new();
    for name in held {
        let path = format!("/proc/{server}/{name}");
        if let Ok(dir) = rustix::fs::open(
            path.as_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            problems.extend(leads_only_into_the_export(
                &format!("the server's {name}"),
                dir,
                export_id,
                &mut visited,
            ));
        }
    }
    problems
}

/// Starts a server under `--sandbox KIND` with `--seccomp kill` and
/// `off`, and walks what it holds ([`server_escapes`]).
fn no_host_path_under(test: &str, sandbox: &str) {
    if !is_root_here() {
        skip(
            test,
            "reading another process's /proc/PID/{root,cwd,fd} needs root (of this namespace)",
        );
        return;
    }
    for seccomp in ["kill", "off"] {
        let s = Scratch::new();
        std::fs::create_dir(s.path("d")).unwrap();
        let h = Spawn::new(Flavor::Auto, &s.export)
            .arg("--sandbox")
            .arg(sandbox)
            .arg("--seccomp")
            .arg(seccomp)
            .start();
        assert!(h.lstat("//d").is_ok(), "serving: {}", h.stderr());
        if !h.stderr().contains(&format!("sandbox=\"{sandbox}")) {
            skip(
                test,
                &format!("the {sandbox} sandbox is not available here"),
            );
            return;
        }
        let problems = server_escapes(h.serving_pid(), &s.export);
        assert!(
            problems.is_empty(),
            "--sandbox {sandbox} --seccomp {seccomp}: {}\n{}",
            problems.join("\n"),
            h.stderr()
        );
        assert!(h.finish().success());
    }
}

#[test]
fn no_host_path_from_the_serving_process() {
    no_host_path_under("no_host_path_from_the_serving_process", "namespace");
}

/// Under `--sandbox chroot` the server's procfs is the host's: it keeps a
/// detached bind mount of `/proc/self/fd` alone, since `..` from the
/// directory itself would lead out of the chroot to the host's `/`.
#[test]
fn under_chroot_no_host_path_from_the_serving_process_either() {
    no_host_path_under(
        "under_chroot_no_host_path_from_the_serving_process_either",
        "chroot",
    );
}

/// The helper's processes below `pid`, by role.
struct Processes {
    server: i32,
    waiter: Option<i32>,
    janitor: Option<i32>,
}

fn processes(pid: i32) -> Processes {
    let all = tree(pid);
    let named = |n: &str| all.iter().copied().find(|&p| comm(p) == n);
    Processes {
        server: serving_pid(pid),
        waiter: named("vph-nswait"),
        janitor: named("vph-janitor"),
    }
}

/// What must hold of one process of the helper; the problems found.
fn confined(role: &str, pid: i32, allowed_caps: u64, export: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    if status_field(pid, "NoNewPrivs:") != "1" {
        problems.push(format!("{role}: no no_new_privs"));
    }
    if status_field(pid, "Seccomp:") != "2" {
        problems.push(format!("{role}: no seccomp filter"));
    }
    for cap_set in ["CapPrm:", "CapEff:", "CapInh:", "CapAmb:"] {
        let set = u64::from_str_radix(&status_field(pid, cap_set), 16).unwrap_or(u64::MAX);
        if set & !allowed_caps != 0 {
            problems.push(format!(
                "{role}: {cap_set} {set:016x} beyond {allowed_caps:016x}"
            ));
        }
    }
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .map(|l| l.split_whitespace().skip(4).take(2).collect::<Vec<_>>())
        .unwrap_or_default();
    if core != ["0", "0"] {
        problems.push(format!("{role}: core dumps allowed ({core:?})"));
    }
    // Its working directory: not the export, nor anything in it (the
    // server's root is the export: its cwd may be there).
    if role == "server" {
        return problems;
    }
    let export_id =
        dev_ino(rustix::fs::open(export, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap());
    if let Ok(cwd) = rustix::fs::open(
        format!("/proc/{pid}/cwd").as_str(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        let mut seen = BTreeSet::new();
        let _ = top_of(cwd, &mut seen, export_id);
        if seen.contains(&export_id) {
            problems.push(format!(
                "{role}: its working directory is inside the export"
            ));
        }
    }
    problems
}

/// The helper in the foreground on socket file `sock`, stdin closed.
fn on_socket(export: &Path, sock: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(our_binary());
    cmd.args(["-n", "-p"])
        .arg(export)
        .arg("-s")
        .arg(sock)
        .args(owner_args())
        .args(extra)
        .stdin(Stdio::null());
    cmd
}

fn listening(export: &Path, sock: &Path, extra: &[&str], log: &Path) -> Child {
    let child = on_socket(export, sock, extra)
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let logged = wait_until("the waiting line", Duration::from_secs(10), || {
        std::fs::read_to_string(log).is_ok_and(|l| l.contains("waiting for QEMU"))
    });
    assert!(
        logged,
        "{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    child
}

#[test]
fn every_process_of_the_helper_is_confined() {
    if !is_root_here() {
        skip(
            "every_process_of_the_helper_is_confined",
            "reading another process's /proc/PID/cwd needs root (of this namespace)",
        );
        return;
    }
    let s = Scratch::new();
    for sandbox in ["namespace", "chroot", "none"] {
        // Socket mode, waiting for QEMU: server, janitor (and waiter).
        let sock = s.dir.path().join(format!("{sandbox}.sock"));
        let log = s.dir.path().join(format!("{sandbox}.log"));
        let mut child = listening(&s.export, &sock, &["--sandbox", sandbox], &log);
        let p = processes(child.id() as i32);
        let text = std::fs::read_to_string(&log).unwrap();
        let mut problems = confined("server", p.server, SERVER_CAPS, &s.export);
        match p.janitor {
            Some(j) => problems.extend(confined("janitor", j, JANITOR_CAPS, &s.export)),
            None => problems.push("no janitor process found".into()),
        }
        let namespace = text.contains("sandbox=\"namespace");
        match (p.waiter, namespace) {
            (Some(w), true) => problems.extend(confined("waiter", w, 0, &s.export)),
            (None, true) => problems.push("no waiter process found".into()),
            _ => {}
        }
        if namespace {
            assert!(
                text.contains("waiter=\"caps none; no_new_privs; seccomp kill"),
                "{text}"
            );
        }
        assert!(
            text.contains("janitor=\"caps DAC_OVERRIDE,FOWNER; no_new_privs; seccomp kill")
                || text.contains("janitor=\"caps none; no_new_privs; seccomp kill"),
            "{text}"
        );
        assert!(
            problems.is_empty(),
            "--sandbox {sandbox}, --socket: {problems:?}\n{text}"
        );
        let _ = UnixStream::connect(&sock).unwrap();
        let _ = child.wait();

        // Fd mode, serving.
        let h = Spawn::new(Flavor::Auto, &s.export)
            .arg("--sandbox")
            .arg(sandbox)
            .start();
        assert!(h.lstat("/").is_ok(), "{}", h.stderr());
        let p = processes(h.pid());
        let mut problems = confined("server", p.server, SERVER_CAPS, &s.export);
        if h.stderr().contains("sandbox=\"namespace") {
            match p.waiter {
                Some(w) => problems.extend(confined("waiter", w, 0, &s.export)),
                None => problems.push("no waiter process found".into()),
            }
        }
        assert!(
            problems.is_empty(),
            "--sandbox {sandbox}, --fd: {problems:?}\n{}",
            h.stderr()
        );
        assert!(h.finish().success());
    }
}

#[test]
fn the_report_lists_each_process_with_its_capabilities_and_filter() {
    let s = Scratch::new();
    let out = Command::new(our_binary())
        .args(["--sandbox-report", "-p"])
        .arg(&s.export)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "process server:  caps ",
        "process waiter:  ",
        "process janitor: caps ",
    ] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
    assert!(
        text.contains("seccomp kill (13 syscalls)") || !text.contains("sandbox:       namespace"),
        "{text}"
    );
    assert!(text.contains("seccomp kill (12 syscalls)"), "{text}");
}

fn send(sock: &OwnedFd, req: &Request<'_>) {
    let frame = client::encode(req);
    let mut rest = &frame[..];
    while !rest.is_empty() {
        let n = rustix::net::send(sock, rest, rustix::net::SendFlags::NOSIGNAL).unwrap();
        rest = &rest[n..];
    }
    // Header (type, size) then the payload: read the header, then the rest.
    let mut header = [0u8; 8];
    let mut got = 0;
    while got < header.len() {
        got += rustix::io::read(sock, &mut header[got..]).unwrap();
    }
    let size = u32::from_le_bytes(header[4..8].try_into().unwrap()) as usize;
    let mut payload = vec![0u8; size];
    let mut got = 0;
    while got < size {
        got += rustix::io::read(sock, &mut payload[got..]).unwrap();
    }
}

#[test]
fn nothing_outlives_a_killed_waiter() {
    let s = Scratch::new();
    // Serving, after creations under another guest identity (each clears
    // the server's parent-death signal in the kernel).
    let h = Spawn::new(Flavor::Auto, &s.export)
        .arg("--sandbox")
        .arg("namespace")
        .start();
    assert!(h.lstat("/").is_ok(), "{}", h.stderr());
    if !h.stderr().contains("sandbox=\"namespace") {
        skip(
            "nothing_outlives_a_killed_waiter",
            "the namespace sandbox is not available here",
        );
        return;
    }
    let (uid, gid) = if helper_has_own_namespace() {
        (0, 0)
    } else {
        (1000, 1000)
    };
    for (i, name) in ["//a", "//b", "//c"].iter().enumerate() {
        let (u, g) = if i == 1 { (0, 0) } else { (uid, gid) };
        send(
            &h.sock,
            &Request::Mkdir {
                uid: u,
                gid: g,
                path: name.as_bytes(),
                mode: 0o755,
            },
        );
    }
    let server = h.serving_pid();
    assert_ne!(server, h.pid());
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(h.pid()).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    assert!(
        wait_until("the server to end", Duration::from_secs(1), || !alive(
            server
        )),
        "the server outlived its killed waiter by a second"
    );
    drop(h);

    // Waiting for QEMU: the server and the janitor end, the socket file goes.
    let sock = s.dir.path().join("killed.sock");
    let log = s.dir.path().join("killed.log");
    let mut child = listening(&s.export, &sock, &["--sandbox", "namespace"], &log);
    let p = processes(child.id() as i32);
    let janitor = p.janitor.expect("a janitor");
    child.kill().unwrap();
    let _ = child.wait();
    assert!(
        wait_until(
            "the server and the janitor to end",
            Duration::from_secs(1),
            || { !alive(p.server) && !alive(janitor) }
        ),
        "a process outlived the killed waiter"
    );
    assert!(
        wait_until("the socket file to go", Duration::from_secs(1), || !sock
            .exists()),
        "the socket file was left behind"
    );
}

#[test]
fn every_signal_the_original_dies_of_ends_the_helper_from_any_of_its_pids() {
    let s = Scratch::new();
    for (sig, name) in [
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGUSR2, "SIGUSR2"),
    ] {
        for target in ["waiter", "server", "janitor"] {
            let sock = s.dir.path().join(format!("{name}-{target}.sock"));
            let log = s.dir.path().join(format!("{name}-{target}.log"));
            let mut child = listening(&s.export, &sock, &[], &log);
            let p = processes(child.id() as i32);
            let pid = match target {
                "waiter" => child.id() as i32,
                "server" => p.server,
                _ => p.janitor.expect("a janitor"),
            };
            rustix::process::kill_process(
                rustix::process::Pid::from_raw(pid).unwrap(),
                rustix::process::Signal::from_named_raw(sig).unwrap(),
            )
            .unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("{name} to the {target} did not end the helper");
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            let text = std::fs::read_to_string(&log).unwrap();
            let code = 128 + sig;
            assert_eq!(
                status.code(),
                Some(code),
                "{name} to the {target}: {status:?}\n{text}"
            );
            assert!(status.signal().is_none());
            assert!(
                text.contains(&format!("received {name}; exiting with status {code}")),
                "{name} to the {target}:\n{text}"
            );
            assert!(
                !sock.exists(),
                "{name} to the {target}: the socket file is left"
            );
        }
    }
}

/// Unmounts (detached) when dropped, so that a failing test leaves nothing
/// mounted on the host.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

fn mount_tmpfs(at: &Path) -> Mounted {
    rustix::mount::mount(
        "tmpfs",
        at,
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        None,
    )
    .expect("mounting a tmpfs");
    Mounted(at.to_path_buf())
}

#[test]
fn host_mounts_under_the_export_reach_the_namespace_sandbox() {
    if !is_real_root() {
        skip(
            "host_mounts_under_the_export_reach_the_namespace_sandbox",
            "mounting on the host needs real root",
        );
        return;
    }
    let s = Scratch::new();
    // The export inside a shared mount, as on a systemd host, where `/`
    // is shared: only shared host mounts propagate.
    let base = s.dir.path().join("shared");
    std::fs::create_dir(&base).unwrap();
    let base_mount = mount_tmpfs(&base);
    rustix::mount::mount_change(&base, rustix::mount::MountPropagationFlags::SHARED).unwrap();
    let export = base.join("export");
    std::fs::create_dir_all(export.join("sub")).unwrap();
    let h = Spawn::new(Flavor::Auto, &export)
        .arg("--sandbox")
        .arg("namespace")
        .start();
    assert!(h.lstat("//sub").is_ok(), "{}", h.stderr());

    // A new host mount under the export is seen, and one that arrived after
    // start-up, without nodev, still has its device nodes refused.
    let sub = mount_tmpfs(&export.join("sub"));
    std::fs::write(export.join("sub/marker"), "x").unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        export.join("sub/null").as_path(),
        rustix::fs::FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    assert!(
        h.lstat("//sub/marker").is_ok(),
        "a new host mount is not seen"
    );
    assert_eq!(
        h.open("//sub/null", libc::O_RDONLY).err(),
        Some(-libc::ENXIO)
    );

    // A host umount succeeds once the server's resolved O_PATH fds are
    // closed (src/deferred_close.rs: within 10 ms of idle), and is seen:
    // the mount point is empty again.
    let mut umounted = Err(rustix::io::Errno::BUSY);
    let deadline = Instant::now() + Duration::from_secs(1);
    while umounted == Err(rustix::io::Errno::BUSY) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        umounted = rustix::mount::unmount(export.join("sub"), rustix::mount::UnmountFlags::empty());
    }
    umounted.expect("the host umount under the export");
    std::mem::forget(sub);
    assert_eq!(
        h.lstat("//sub/marker").err(),
        Some(-libc::ENOENT),
        "the umount is not seen"
    );
    assert!(h.finish().success());
    drop(base_mount);
}

/// Processes whose command line names `needle`.
fn running_with(needle: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| {
            alive(p)
                && std::fs::read(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .collect()
}

#[test]
fn a_waiter_killed_at_any_stage_of_start_up_leaves_nothing_behind() {
    let s = Scratch::new();
    for delay_ms in [0u64, 1, 2, 3, 5, 8, 13, 21] {
        let sock = s.dir.path().join(format!("early-{delay_ms}.sock"));
        let mut child = on_socket(&s.export, &sock, &[])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        let _ = child.wait();
        let needle = sock.to_string_lossy().into_owned();
        assert!(
            wait_until(
                "the helper's processes to end",
                Duration::from_secs(1),
                || { running_with(&needle).is_empty() }
            ),
            "killed after {delay_ms} ms: still running: {:?}",
            running_with(&needle)
                .iter()
                .map(|&p| format!(
                    "{p} {} state {} wchan {}",
                    comm(p),
                    status_field(p, "State:"),
                    std::fs::read_to_string(format!("/proc/{p}/wchan")).unwrap_or_default()
                ))
                .collect::<Vec<_>>()
        );
        // The file is bound before the janitor that removes it exists: a
        // SIGKILL in between leaves it, with nothing left to clean up
        // (the next run names it a stale socket: tests/startup.rs).
        let _ = std::fs::remove_file(&sock);
    }
}

#[test]
fn a_file_on_stdin_or_stdout_does_not_reach_the_server() {
    if !is_root_here() {
        skip(
            "a_file_on_stdin_or_stdout_does_not_reach_the_server",
            "reading another process's /proc/PID/fd needs root (of this namespace)",
        );
        return;
    }
    let s = Scratch::new();
    let secret = s.dir.path().join("secret");
    std::fs::write(&secret, "host file").unwrap();
    let sock = s.dir.path().join("stdin.sock");
    let log = s.dir.path().join("stdin.log");
    let mut child = on_socket(&s.export, &sock, &[])
        .stdin(std::fs::File::open(&secret).unwrap())
        .stdout(std::fs::File::create(s.dir.path().join("out")).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    assert!(wait_until(
        "the waiting line",
        Duration::from_secs(10),
        || { std::fs::read_to_string(&log).is_ok_and(|l| l.contains("waiting for QEMU")) }
    ));
    for pid in tree(child.id() as i32) {
        for fd in [0, 1] {
            let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap();
            // A dead pipe end: not even the host's /dev/null, which the
            // server could chmod for the whole host.
            assert!(
                target.to_string_lossy().starts_with("pipe:"),
                "{} fd {fd} -> {target:?}",
                comm(pid)
            );
        }
    }
    let _ = UnixStream::connect(&sock).unwrap();
    let _ = child.wait();
}

#[test]
fn a_signal_right_after_the_bind_still_removes_the_socket_file() {
    let s = Scratch::new();
    for (sig, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGHUP, "SIGHUP")] {
        for round in 0..10 {
            let sock = s.dir.path().join(format!("bind-{name}-{round}.sock"));
            let mut child = on_socket(&s.export, &sock, &[])
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            // As soon as the file exists: before the janitor, in most rounds.
            let seen = wait_until("the socket file", Duration::from_secs(10), || sock.exists());
            assert!(seen);
            rustix::process::kill_process(
                rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
                rustix::process::Signal::from_named_raw(sig).unwrap(),
            )
            .unwrap();
            let status = child.wait().unwrap();
            assert_eq!(
                status.code(),
                Some(128 + sig),
                "{name}, round {round}: {status:?}"
            );
            assert!(
                !sock.exists(),
                "{name}, round {round}: the socket file is left"
            );
        }
    }
}

#[test]
fn a_killed_janitor_is_reported() {
    let s = Scratch::new();
    let sock = s.dir.path().join("janitor.sock");
    let log = s.dir.path().join("janitor.log");
    let mut child = listening(&s.export, &sock, &[], &log);
    let janitor = processes(child.id() as i32).janitor.expect("a janitor");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(janitor).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    assert!(
        wait_until("the log line", Duration::from_secs(5), || {
            std::fs::read_to_string(&log).is_ok_and(|l| {
                l.contains("the socket-file janitor has ended before QEMU connected")
            })
        }),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    // It still serves: QEMU can connect.
    let _ = UnixStream::connect(&sock).unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_file(&sock);
}
