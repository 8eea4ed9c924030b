//! Daemon mode (the default): the command returns once the helper is
//! detached, the helper logs to syslog with facility daemon, tagged with the
//! program name and its own pid, and exits after the client disconnects.
//!
//! The helper runs in a private mount namespace whose `/dev/log` is this
//! test's datagram socket, so nothing on the host is touched.

mod common;

use common::*;
use std::ffi::CString;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn daemon_logs_to_syslog_and_exits_on_disconnect() {
    if !is_real_root() {
        skip(
            "daemon_logs_to_syslog_and_exits_on_disconnect",
            "giving the helper its own /dev/log (tmpfs + mknod) needs real root",
        );
        return;
    }
    let s = Scratch::new();
    std::fs::write(s.path("f"), "x").unwrap();
    let log_path = s.dir.path().join("log");
    let syslog = UnixDatagram::bind(&log_path).unwrap();
    syslog
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let sock_path = s.dir.path().join("vph.sock");

    let log_c = CString::new(log_path.as_os_str().as_encoded_bytes()).unwrap();
    let mut cmd = Command::new(our_binary());
    cmd.arg("-p")
        .arg(&s.export)
        .arg("-s")
        .arg(&sock_path)
        .args(owner_args());
    // SAFETY: only syscalls on strings prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let ok = libc::unshare(libc::CLONE_NEWNS) == 0
                && libc::mount(
                    c"none".as_ptr(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) == 0
                && libc::mount(
                    c"tmpfs".as_ptr(),
                    c"/dev".as_ptr(),
                    c"tmpfs".as_ptr(),
                    0,
                    std::ptr::null(),
                ) == 0
                && libc::mknod(
                    c"/dev/null".as_ptr(),
                    libc::S_IFCHR | 0o666,
                    libc::makedev(1, 3),
                ) == 0
                && libc::mknod(c"/dev/log".as_ptr(), libc::S_IFREG | 0o666, 0) == 0
                && libc::mount(
                    log_c.as_ptr(),
                    c"/dev/log".as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ) == 0;
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let started = Instant::now();
    let status = cmd.status().unwrap();
    assert!(status.success(), "the launching process returns 0");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        sock_path.exists(),
        "the socket exists when the command returns"
    );

    let stream = std::os::unix::net::UnixStream::connect(&sock_path).unwrap();
    let helper = Helper::adopt(0, stream.into());
    assert_eq!(helper.lstat("//f").unwrap().size, 1);
    // A guest's path cannot forge a syslog entry either.
    assert!(helper.lstat("../x\nFAKE-LINE forged\x1b[31m").is_err());
    drop(helper);

    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && !lines
            .iter()
            .any(|l: &String| l.contains("client disconnected"))
    {
        let mut buf = [0u8; 2048];
        if let Ok(n) = syslog.recv(&mut buf) {
            lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    let all = lines.join("\n");
    for line in &lines {
        assert!(
            !line.bytes().any(|b| b < 0x20 || b == 0x7f),
            "one datagram, one line, no control bytes: {line:?}"
        );
    }
    assert!(
        all.contains(r"path=../x\nFAKE-LINE forged\x1b[31m"),
        "the escape attempt is logged, escaped: {all}"
    );
    assert!(
        all.contains("client disconnected"),
        "the daemon logged its exit: {all}"
    );
    // <30> = facility daemon (3) * 8 + severity info (6).
    let started = lines
        .iter()
        .find(|l| l.ends_with("started"))
        .unwrap_or_else(|| panic!("{all}"));
    assert!(started.starts_with("<30>virtfs-proxy-helper["), "{started}");
    let pid: u32 = started["<30>virtfs-proxy-helper[".len()..]
        .split(']')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(pid, std::process::id());
    let confined = lines
        .iter()
        .find(|l| l.contains("confined") && l.contains("resolver="))
        .unwrap_or_else(|| panic!("{all}"));
    // Logged by the server, which under the namespace sandbox is init of a
    // pid namespace of its own: still tagged with the host's pid.
    let server_pid: u32 = confined["<30>virtfs-proxy-helper[".len()..]
        .split(']')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(server_pid > 1, "{confined}");
}
