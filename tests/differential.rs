//! Differential test: one long scenario of requests (every type, with odd
//! but legitimate paths) runs through QEMU's original helper and through
//! ours under each resolver, each on an identical fresh export. Replies are
//! compared byte for byte after normalising what must differ between two
//! exports (inode numbers, device, times, free-block counts), and so are the
//! exports' trees afterwards.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use virtfs_proxy_helper::protocol::{Request, STAT_SIZE, WireStat, WireStatFs};

fn build(root: &Path) {
    fs::create_dir_all(root.join("d/sub")).unwrap();
    fs::create_dir(root.join("empty")).unwrap();
    fs::write(root.join("f"), "hello world").unwrap();
    fs::write(root.join("d/g"), "g").unwrap();
    std::os::unix::fs::symlink("f", root.join("l")).unwrap();
    std::os::unix::fs::symlink("d", root.join("ld")).unwrap();
    std::os::unix::fs::symlink("nowhere", root.join("dangling")).unwrap();
    std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
    std::os::unix::fs::symlink("sub/../g", root.join("d/rel")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
}

const PATHS: &[&str] = &[
    "/",
    "",
    "//f",
    "f",
    "//d",
    "//d/g",
    "//d/./g",
    "//d/sub/../g",
    "//./f",
    "//d//g",
    "//l",
    "//ld",
    "//ld/g",
    "//dangling",
    "//loop",
    "//loop/x",
    "//d/rel",
    "//nope",
    "//nope/x",
    "//f/x",
    "//d/..",
    "//d/.",
    "//empty",
    "//d/sub",
    "//ld/sub/..",
    "//d/",
    "//f/",
    "//l/",
    "//ld/",
    "//dangling/",
];

/// The requests tried on each path, in order; mutations come last so the
/// reads see the initial tree.
fn scenario() -> Vec<Request<'static>> {
    let mut v = Vec::new();
    for &p in PATHS {
        let path = p.as_bytes();
        v.push(Request::Lstat { path });
        v.push(Request::Statfs { path });
        v.push(Request::Readlink {
            path,
            bufsize: 4096,
        });
        v.push(Request::Readlink { path, bufsize: 3 });
        v.push(Request::Open {
            path,
            flags: libc::O_RDONLY,
        });
        v.push(Request::Open {
            path,
            flags: libc::O_RDONLY | libc::O_DIRECTORY,
        });
        v.push(Request::Open {
            path,
            flags: libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        });
        v.push(Request::Open {
            path,
            flags: libc::O_RDONLY | libc::O_NOFOLLOW,
        });
        v.push(Request::Open {
            path,
            flags: libc::O_WRONLY,
        });
        v.push(Request::Lgetxattr {
            size: 0,
            path,
            name: b"user.none",
        });
        v.push(Request::Llistxattr { size: 0, path });
        v.push(Request::Llistxattr { size: 1, path });
    }
    // A FIFO with no writer: only the opens the kernel refuses before
    // opening anything (the original opens first, and would block on the
    // others).
    for flags in [
        libc::O_RDONLY | libc::O_DIRECTORY,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
    ] {
        v.push(Request::Open {
            path: b"//fifo",
            flags,
        });
    }
    v.push(Request::Lstat { path: b"//fifo" });
    for &p in PATHS {
        let path = p.as_bytes();
        v.push(Request::Lsetxattr {
            path,
            name: b"user.k",
            value: b"v1",
            size: 2,
            flags: 0,
        });
        v.push(Request::Lgetxattr {
            size: 64,
            path,
            name: b"user.k",
        });
        v.push(Request::Lsetxattr {
            path,
            name: b"user.k",
            value: b"v2",
            size: 2,
            flags: libc::XATTR_CREATE,
        });
        v.push(Request::Lremovexattr {
            path,
            name: b"user.k",
        });
        v.push(Request::Chmod { path, mode: 0o751 });
        v.push(Request::Chown {
            path,
            uid: 0,
            gid: 0,
        });
        v.push(Request::Utime {
            path,
            atime: (111, 1),
            mtime: (222, 2),
        });
        v.push(Request::Truncate { path, length: 3 });
        v.push(Request::Create {
            path,
            flags: libc::O_CREAT | libc::O_RDWR | libc::O_EXCL,
            mode: 0o600,
            uid: 0,
            gid: 0,
        });
        v.push(Request::Mkdir {
            uid: 0,
            gid: 0,
            path,
            mode: 0o700,
        });
        v.push(Request::Mknod {
            uid: 0,
            gid: 0,
            path,
            mode: 0o640,
            rdev: 0,
        });
        v.push(Request::Symlink {
            uid: 0,
            gid: 0,
            target: b"t",
            path,
        });
        v.push(Request::Link {
            old: path,
            new: b"//hard",
        });
        v.push(Request::Remove { path: b"//hard" });
        v.push(Request::Link {
            old: b"//d/g",
            new: path,
        });
    }
    for (old, new) in [
        ("//f", "//d/f2"),
        ("//d/f2", "//f"),
        ("//empty", "//d/sub"),
        ("//d", "//d/sub/x"),
        ("/", "//x"),
        ("//x", "/"),
        ("//nope", "//y"),
        ("//l", "//l2"),
    ] {
        v.push(Request::Rename {
            old: old.as_bytes(),
            new: new.as_bytes(),
        });
    }
    for &p in PATHS.iter().rev() {
        v.push(Request::Remove { path: p.as_bytes() });
    }
    v
}

/// A reply with what legitimately differs between two exports blanked.
fn normalise(req: &Request<'_>, raw: Raw) -> String {
    match raw {
        Raw::Fd(Ok(fd)) => {
            let m = fs::File::from(fd).metadata().unwrap();
            format!("fd ok {:o} size {}", m.mode(), m.size())
        }
        Raw::Fd(Err(e)) => format!("fd err {e}"),
        Raw::Message { kind, payload } => match req {
            Request::Lstat { .. } if kind == 0 && payload.len() == STAT_SIZE => {
                let st = WireStat::decode(&payload).unwrap();
                let times_set = st.mtime.0 == 222;
                format!(
                    "stat {:o} nlink {} {}:{} size {} rdev {} blksize {} times-set {times_set}",
                    st.mode, st.nlink, st.uid, st.gid, st.size, st.rdev, st.blksize
                )
            }
            Request::Statfs { .. } if kind == 0 => {
                let st = WireStatFs::decode(&payload).unwrap();
                format!(
                    "statfs type {:x} bsize {} namelen {}",
                    st.fs_type, st.bsize, st.namelen
                )
            }
            _ => format!("{kind} {payload:?}"),
        },
    }
}

/// Names, types, modes, sizes, contents, link targets and xattrs of a tree.
fn tree(root: &Path) -> Vec<String> {
    snapshot(root, |e| {
        format!(
            "{} {:o} nlink {} size {} {:?} xattrs {:?} mtime-set {}",
            e.rel,
            e.meta.mode(),
            e.meta.nlink(),
            if e.meta.is_dir() { 0 } else { e.meta.size() },
            String::from_utf8_lossy(&e.data),
            e.xattrs,
            e.meta.mtime() == 222
        )
    })
}

fn run(flavor: Flavor) -> (Vec<String>, Vec<String>) {
    let s = Scratch::new();
    build(&s.export);
    let h = spawn(flavor, &s.export);
    let replies = scenario()
        .iter()
        .map(|req| format!("{req:?} -> {}", normalise(req, h.call(req))))
        .collect();
    assert!(h.finish().success());
    (replies, tree(&s.export))
}

fn compare(ours: Flavor) {
    if let Some(why) = original_unusable() {
        skip("differential", why);
        return;
    }
    let (want_replies, want_tree) = run(Flavor::Original);
    let (got_replies, got_tree) = run(ours);
    let diffs: Vec<String> = want_replies
        .iter()
        .zip(&got_replies)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("original: {a}\n    ours: {b}"))
        .collect();
    assert!(
        diffs.is_empty(),
        "{} of {} replies differ:\n{}",
        diffs.len(),
        want_replies.len(),
        diffs.join("\n")
    );
    assert_eq!(got_tree, want_tree, "the exports differ afterwards");
}

#[test]
fn openat2_matches_the_original() {
    compare(Flavor::Openat2);
}

#[test]
fn walker_matches_the_original() {
    compare(Flavor::Walker);
}

#[test]
fn old_kernel_fallbacks_match_the_original() {
    compare(Flavor::OldKernel);
}
