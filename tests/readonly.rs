//! `--readonly`: every request that would change the export answers EROFS
//! and leaves it byte for byte unchanged; every reading request answers
//! exactly as without the flag.

mod common;

use common::*;
use rustix::io::Errno;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use virtfs_proxy_helper::protocol::Request;

fn build(root: &Path) {
    fs::create_dir_all(root.join("d/sub")).unwrap();
    fs::write(root.join("f"), "content").unwrap();
    fs::write(root.join("d/g"), "g").unwrap();
    std::os::unix::fs::symlink("f", root.join("l")).unwrap();
    rustix::fs::setxattr(
        root.join("f"),
        "user.k",
        b"v",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
}

/// Everything about the tree a write could change (atime aside: reads may
/// update it).
fn tree(root: &Path) -> Vec<String> {
    snapshot(root, |e| {
        let m = &e.meta;
        format!(
            "{} {:o} {}:{} {} {}.{} {}.{} {:?} {:?}",
            e.rel,
            m.mode(),
            m.uid(),
            m.gid(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
            e.data,
            e.xattrs
        )
    })
}

fn mutating() -> Vec<Request<'static>> {
    vec![
        Request::Create {
            path: b"//new",
            flags: libc::O_CREAT | libc::O_RDWR,
            mode: 0o644,
            uid: 0,
            gid: 0,
        },
        Request::Create {
            path: b"//f",
            flags: libc::O_CREAT | libc::O_RDWR,
            mode: 0o644,
            uid: 0,
            gid: 0,
        },
        Request::Mknod {
            uid: 0,
            gid: 0,
            path: b"//fifo",
            mode: libc::S_IFIFO | 0o644,
            rdev: 0,
        },
        Request::Mkdir {
            uid: 0,
            gid: 0,
            path: b"//newdir",
            mode: 0o755,
        },
        Request::Symlink {
            uid: 0,
            gid: 0,
            target: b"f",
            path: b"//newlink",
        },
        Request::Link {
            old: b"//f",
            new: b"//hard",
        },
        Request::Chmod {
            path: b"//f",
            mode: 0o600,
        },
        Request::Chown {
            path: b"//f",
            uid: 1,
            gid: 1,
        },
        Request::Truncate {
            path: b"//f",
            length: 0,
        },
        Request::Utime {
            path: b"//f",
            atime: (1, 0),
            mtime: (1, 0),
        },
        Request::Rename {
            old: b"//f",
            new: b"//moved",
        },
        Request::Remove { path: b"//d/g" },
        Request::Remove { path: b"//nope" },
        Request::Lsetxattr {
            path: b"//f",
            name: b"user.k",
            value: b"x",
            size: 1,
            flags: 0,
        },
        Request::Lremovexattr {
            path: b"//f",
            name: b"user.k",
        },
    ]
}

fn reading() -> Vec<Request<'static>> {
    let mut v = Vec::new();
    for path in [&b"/"[..], b"//f", b"//l", b"//d", b"//d/g", b"//nope"] {
        v.push(Request::Lstat { path });
        v.push(Request::Readlink { path, bufsize: 100 });
        v.push(Request::Statfs { path });
        v.push(Request::Lgetxattr {
            size: 0,
            path,
            name: b"user.k",
        });
        v.push(Request::Lgetxattr {
            size: 64,
            path,
            name: b"user.k",
        });
        v.push(Request::Llistxattr { size: 0, path });
        v.push(Request::Llistxattr { size: 256, path });
        v.push(Request::Getversion { path });
        v.push(Request::Open {
            path,
            flags: libc::O_RDONLY,
        });
        v.push(Request::Open {
            path,
            flags: libc::O_RDONLY | libc::O_DIRECTORY,
        });
    }
    v
}

/// A reply, with what other processes on the filesystem change between two
/// calls (statfs's free counts) left out.
fn describe(req: &Request<'_>, raw: Raw) -> String {
    if let (Request::Statfs { .. }, Raw::Message { kind: 0, payload }) = (req, &raw) {
        let st = virtfs_proxy_helper::protocol::WireStatFs::decode(payload).unwrap();
        return format!(
            "statfs {:x} {} {} {:?} {}",
            st.fs_type, st.bsize, st.blocks, st.fsid, st.namelen
        );
    }
    match raw {
        Raw::Fd(Ok(fd)) => {
            let mut f = fs::File::from(fd);
            let m = f.metadata().unwrap();
            let mut content = Vec::new();
            if m.is_file() {
                std::io::Read::read_to_end(&mut f, &mut content).unwrap();
            }
            format!("fd {} {:?}", m.ino(), content)
        }
        Raw::Fd(Err(e)) => format!("fd error {e}"),
        Raw::Message { kind, payload } => format!("{kind} {payload:?}"),
    }
}

fn readonly(flavor: Flavor) {
    let s = Scratch::new();
    build(&s.export);
    let before = tree(&s.export);
    let h = Spawn::new(flavor, &s.export).arg("--readonly").start();
    for req in mutating() {
        let erofs = errno(Errno::ROFS);
        match h.call(&req) {
            Raw::Fd(r) => assert_eq!(r.err(), Some(erofs), "{req:?}"),
            Raw::Message { kind, payload } => {
                assert_eq!(
                    (kind, payload),
                    (1, erofs.to_ne_bytes().to_vec()),
                    "{req:?}"
                )
            }
        }
    }
    for flags in [
        libc::O_WRONLY,
        libc::O_RDWR,
        libc::O_RDONLY | libc::O_TRUNC,
        libc::O_WRONLY | libc::O_APPEND,
    ] {
        assert_eq!(
            h.open("//f", flags).unwrap_err(),
            errno(Errno::ROFS),
            "flags {flags:o}"
        );
    }
    // Reads answer exactly as a helper without the flag answers them.
    let plain = spawn(flavor, &s.export);
    for req in reading() {
        assert_eq!(
            describe(&req, h.call(&req)),
            describe(&req, plain.call(&req)),
            "{req:?}"
        );
    }
    assert!(h.stderr().contains("readonly=on"), "{}", h.stderr());
    // Under the namespace sandbox the export's mount is read-only too: a
    // layer of its own, refusing a write even through the helper's root.
    if h.stderr().contains("export_mount=\"ro,nodev,nosuid") {
        let through_mount = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/{}/root/f", h.serving_pid()));
        assert_eq!(through_mount.unwrap_err().raw_os_error(), Some(libc::EROFS));
    } else {
        skip(
            "readonly (the read-only mount)",
            "the namespace sandbox is not in force here",
        );
    }
    assert!(h.finish().success());
    assert!(plain.finish().success());
    assert_eq!(tree(&s.export), before, "the export changed");
}

#[test]
fn readonly_openat2() {
    readonly(Flavor::Openat2)
}

#[test]
fn readonly_walker() {
    readonly(Flavor::Walker)
}
