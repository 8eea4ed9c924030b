//! The command line: the original's options with the same validation, one
//! clear line and the usage for every misuse.

mod common;

use common::*;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(our_binary())
        .args(args)
        .output()
        .expect("run helper")
}

fn assert_misuse(args: &[&str], needle: &str) {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(stderr.contains(needle), "{args:?}: {stderr}");
    assert!(
        stderr.contains("Usage:"),
        "{args:?} prints the usage: {stderr}"
    );
}

#[test]
fn misuse_exits_nonzero_with_one_line_and_usage() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert_misuse(&[], "--path");
    assert_misuse(&["-p", d], "--fd");
    assert_misuse(
        &["-p", d, "-f", "3", "-s", "/tmp/x", "-u", "1", "-g", "1"],
        "cannot be used with",
    );
    assert_misuse(&["-p", d, "-s", "/tmp/x"], "--uid");
    assert_misuse(&["-p", d, "-s", "/tmp/x", "-u", "1"], "--gid");
    assert_misuse(&["-p", d, "-f", "-1"], "-1");
    assert_misuse(&["-p", d, "-f", "abc"], "abc");
    assert_misuse(&["-p", "/nonexistent/dir", "-f", "3"], "invalid path");
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    assert_misuse(
        &["-p", file.to_str().unwrap(), "-f", "3"],
        "not a directory",
    );
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(d, &link).unwrap();
    assert_misuse(
        &["-p", link.to_str().unwrap(), "-f", "3"],
        "not a directory",
    );
    assert_misuse(&["-p", d, "-f", "3", "--resolver", "magic"], "magic");
}

#[test]
fn help_and_version() {
    let help = run(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for opt in [
        "--path",
        "--fd",
        "--socket",
        "--uid",
        "--gid",
        "--nodaemon",
        "--resolver",
        "--no-chroot",
    ] {
        assert!(text.contains(opt), "help mentions {opt}");
    }
    let short = run(&["-h"]);
    assert!(short.status.success());
    let version = run(&["--version"]);
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("virtfs-proxy-helper "));
}

#[test]
fn fd_that_is_not_a_socket_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = run(&["-n", "-p", d, "-f", "0"]);
    // stdin of a test is not a socket (/dev/null or a pipe).
    assert_eq!(out.status.code(), Some(2), "a bad --fd is a misuse");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--fd 0: not a socket"));
    let out = run(&["-n", "-p", d, "-f", "987"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--fd 987: not an open file descriptor"));
}

#[test]
fn socket_mode_serves_one_connection() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    let s = Scratch::new();
    std::fs::write(s.path("f"), "hi").unwrap();
    let sock = s.dir.path().join("vph.sock");
    let (uid, gid) = if is_real_root() {
        (4242, 4343)
    } else {
        (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        )
    };
    let mut child = Command::new(our_binary())
        .args(["-n", "-p"])
        .arg(&s.export)
        .arg("-s")
        .arg(&sock)
        .args(["-u", &uid.to_string(), "-g", &gid.to_string()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sock.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "socket never appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // The file appears at bind(2) and is chowned right after: wait for the
    // owner (the log's "waiting for QEMU" line comes after both).
    let mut m = std::fs::symlink_metadata(&sock).unwrap();
    while (m.uid(), m.gid()) != (uid, gid) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
        m = std::fs::symlink_metadata(&sock).unwrap();
    }
    assert!(m.file_type().is_socket());
    assert_eq!((m.uid(), m.gid()), (uid, gid));
    assert_eq!(m.permissions().mode() & 0o007, 0, "no access for others");
    // A second helper refuses the existing path.
    let again = run(&[
        "-n",
        "-p",
        s.export.to_str().unwrap(),
        "-s",
        sock.to_str().unwrap(),
        "-u",
        "0",
        "-g",
        "0",
    ]);
    assert_eq!(again.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&again.stderr);
    assert!(
        msg.contains("already exists and a process is listening on it"),
        "{msg}"
    );

    let stream = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let helper = Helper::adopt(child.id(), stream.into());
    assert_eq!(helper.lstat("//f").unwrap().size, 2);
    // Exactly one connection: the listener is gone.
    assert!(std::os::unix::net::UnixStream::connect(&sock).is_err());
    drop(helper);
    assert!(child.wait().unwrap().success());
}
