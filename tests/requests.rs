//! Every request type, success and error paths, checked against the host
//! filesystem. Each behaviour runs against our helper under both resolvers
//! and against QEMU's original helper (the oracle), so a difference in
//! outcome between them fails here unless docs/compatibility.md lists it.

mod common;

use common::*;
use rustix::io::Errno;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use virtfs_proxy_helper::protocol::Request;

const O_RDONLY: i32 = libc::O_RDONLY;

/// A populated export: `f` ("hello"), `d/g`, `l -> f`, `e` (empty dir).
fn populated() -> Scratch {
    let s = Scratch::new();
    fs::write(s.path("f"), "hello").unwrap();
    fs::create_dir(s.path("d")).unwrap();
    fs::write(s.path("d/g"), "g").unwrap();
    fs::create_dir(s.path("e")).unwrap();
    std::os::unix::fs::symlink("f", s.path("l")).unwrap();
    s
}

fn open(flavor: Flavor) {
    let s = populated();
    let h = spawn(flavor, &s.export);
    let mut text = String::new();
    h.open("//f", O_RDONLY)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "hello");
    text.clear();
    h.open("//l", O_RDONLY)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "hello", "a final symlink is followed");
    assert_eq!(
        h.open("//l", O_RDONLY | libc::O_NOFOLLOW).unwrap_err(),
        errno(Errno::LOOP)
    );
    let dir = h.open("//d", O_RDONLY | libc::O_DIRECTORY).unwrap();
    assert!(dir.metadata().unwrap().is_dir());
    assert_eq!(
        h.open("//f", O_RDONLY | libc::O_DIRECTORY).unwrap_err(),
        errno(Errno::NOTDIR)
    );
    assert_eq!(h.open("//nope", O_RDONLY).unwrap_err(), errno(Errno::NOENT));
    assert_eq!(h.open("//f/x", O_RDONLY).unwrap_err(), errno(Errno::NOTDIR));
    assert_eq!(
        h.open("//d", libc::O_WRONLY).unwrap_err(),
        errno(Errno::ISDIR)
    );
    let mut w = h.open("//d/g", libc::O_WRONLY | libc::O_TRUNC).unwrap();
    w.write_all(b"written").unwrap();
    assert_eq!(fs::read_to_string(s.path("d/g")).unwrap(), "written");
    // The root itself and `..` that stays inside.
    assert!(
        h.open("/", O_RDONLY | libc::O_DIRECTORY)
            .unwrap()
            .metadata()
            .unwrap()
            .is_dir()
    );
    text.clear();
    h.open("//d/../f", O_RDONLY)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "hello");
    assert!(h.finish().success());
}

fn create(flavor: Flavor) {
    let s = populated();
    let h = spawn(flavor, &s.export);
    let req = |path: &'static str, flags: i32| Request::Create {
        path: path.as_bytes(),
        flags,
        mode: 0o640,
        uid: 0,
        gid: 0,
    };
    let creat = libc::O_CREAT | libc::O_RDWR;
    let mut f = h.fd(&req("//d/new", creat | libc::O_EXCL)).unwrap();
    f.write_all(b"via fd").unwrap();
    let m = fs::metadata(s.path("d/new")).unwrap();
    assert_eq!(
        m.permissions().mode() & 0o7777,
        0o640,
        "umask 0 while serving"
    );
    assert_eq!(fs::read_to_string(s.path("d/new")).unwrap(), "via fd");
    assert_eq!(
        h.fd(&req("//d/new", creat | libc::O_EXCL)).unwrap_err(),
        errno(Errno::EXIST)
    );
    // Without O_EXCL an existing file is opened.
    let mut again = String::new();
    h.fd(&req("//d/new", creat))
        .unwrap()
        .read_to_string(&mut again)
        .unwrap();
    assert_eq!(again, "via fd");
    assert_eq!(
        h.fd(&req("//missing/x", creat)).unwrap_err(),
        errno(Errno::NOENT)
    );
    assert_eq!(
        h.fd(&req("//f/x", creat)).unwrap_err(),
        errno(Errno::NOTDIR)
    );
    assert!(h.finish().success());
}

fn mknod(flavor: Flavor) {
    let s = populated();
    let h = spawn(flavor, &s.export);
    let req = |path: &'static str, mode: u32| Request::Mknod {
        uid: 0,
        gid: 0,
        path: path.as_bytes(),
        mode,
        rdev: 0,
    };
    assert_eq!(h.status(&req("//fifo", libc::S_IFIFO | 0o604)), 0);
    let m = fs::symlink_metadata(s.path("fifo")).unwrap();
    assert!(m.file_type().is_fifo());
    assert_eq!(m.mode() & 0o7777, 0o604);
    assert_eq!(
        h.status(&req("//plain", 0o600)),
        0,
        "type 0 makes a regular file"
    );
    assert!(fs::symlink_metadata(s.path("plain")).unwrap().is_file());
    assert_eq!(h.status(&req("//sock", libc::S_IFSOCK | 0o600)), 0);
    assert!(
        fs::symlink_metadata(s.path("sock"))
            .unwrap()
            .file_type()
            .is_socket()
    );
    assert_eq!(
        h.status(&req("//fifo", libc::S_IFIFO | 0o600)),
        errno(Errno::EXIST)
    );
    assert_eq!(
        h.status(&req("//dir", libc::S_IFDIR | 0o700)),
        errno(Errno::PERM)
    );
    assert_eq!(
        h.status(&req("//missing/x", libc::S_IFIFO | 0o600)),
        errno(Errno::NOENT)
    );
    assert!(h.finish().success());
}

fn mkdir(flavor: Flavor) {
    let s = populated();
    let h = spawn(flavor, &s.export);
    let req = |path: &'static str| Request::Mkdir {
        uid: 0,
        gid: 0,
        path: path.as_bytes(),
        mode: 0o751,
    };
    assert_eq!(h.status(&req("//d/sub")), 0);
    assert_eq!(
        fs::metadata(s.path("d/sub")).unwrap().mode() & 0o7777,
        0o751
    );
    assert_eq!(h.status(&req("//d/sub")), errno(Errno::EXIST));
    assert_eq!(h.status(&req("/")), errno(Errno::EXIST));
    assert_eq!(h.status(&req("//d/..")), errno(Errno::EXIST));
    assert_eq!(h.status(&req("//nope/x")), errno(Errno::NOENT));
    assert!(h.finish().success());
}

fn symlink_and_readlink(flavor: Flavor) {
    let s = populated();
    let h = spawn(flavor, &s.export);
    let sym = Request::Symlink {
        uid: 0,
        gid: 0,
        target: b"../anything/at/all",
        path: b"//d/sym",
    };
    assert_eq!(h.status(&sym), 0);
    assert_eq!(
        fs::read_link(s.path("d/sym")).unwrap().to_str().unwrap(),
        "../anything/at/all",
        "the target is stored verbatim"
    );
    assert_eq!(h.status(&sym), errno(Errno::EXIST));
    let readlink = |path: &'static str, bufsize| {
        h.response(&Request::Readlink {
            path: path.as_bytes(),
            bufsize,
        })
    };
    let payload = readlink("//d/sym", 4096).unwrap();
    assert_eq!(&payload[2..], b"../anything/at/all");
    assert_eq!(
        u16::from_ne_bytes([payload[0], payload[1]]) as usize,
        payload.len() - 2
    );
    assert_eq!(
        &readlink("//d/sym", 4).unwrap()[2..],
        b"../",
        "at most bufsize-1 bytes"
    );
    assert_eq!(readlink("//f", 4096).unwrap_err(), errno(Errno::INVAL));
    assert_eq!(readlink("//nope", 4096).unwrap_err(), errno(Errno::NOENT));
    assert!(h.finish().success());
}

fn link(flavor: Flavor) {
    let s = populated();
    let h = spawn(flavor, &s.export);
    let link = |old: &'static str, new: &'static str| {
        h.status(&Request::Link {
            old: old.as_bytes(),
            new: new.as_bytes(),
        })
    };
    assert_eq!(link("//f", "//d/hard"), 0);
    assert_eq!(fs::metadata(s.path("f")).unwrap().nlink(), 2);
    assert_eq!(link("//l", "//lhard"), 0);
    assert!(
        fs::symlink_metadata(s.path("lhard"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "not followed"
    );
    assert_eq!(link("//f", "//d/hard"), errno(Errno::EXIST));
    assert_eq!(link("//nope", "//x"), errno(Errno::NOENT));
    assert_eq!(link("//d", "//dirlink"), errno(Errno::PERM));
    assert!(h.finish().success());
}

fn lstat(flavor: Flavor) {
    let s = populated();
    let h = spawn(flavor, &s.export);
    let root = h.lstat("/").unwrap();
    let host = fs::metadata(&s.export).unwrap();
    assert_eq!(
        (root.ino, root.dev, root.mode),
        (host.ino(), host.dev(), host.mode())
    );
    let f = h.lstat("//f").unwrap();
    let host = fs::metadata(s.path("f")).unwrap();
    assert_eq!(
        (
            f.ino, f.size, f.nlink, f.mode, f.uid, f.gid, f.mtime, f.blksize
        ),
        (
            host.ino(),
            5,
            1,
            host.mode(),
            guest_view(host.uid(), host.gid()).0,
            guest_view(host.uid(), host.gid()).1,
            (host.mtime(), host.mtime_nsec()),
            host.blksize() as i64
        )
    );
    let l = h.lstat("//l").unwrap();
    assert_eq!(
        l.mode & libc::S_IFMT,
        libc::S_IFLNK,
        "a final symlink is not followed"
    );
    assert_eq!(h.lstat("//d/..").unwrap().ino, root.ino);
    assert_eq!(
        h.lstat("//d/.").unwrap().ino,
        fs::metadata(s.path("d")).unwrap().ino()
    );
    assert_eq!(h.lstat("//nope").unwrap_err(), errno(Errno::NOENT));
    assert_eq!(h.lstat("//f/x").unwrap_err(), errno(Errno::NOTDIR));
    assert!(h.finish().success());
}

fn statfs(flavor: Flavor) {
    let s = populated();
    let h = spawn(flavor, &s.export);
    let st = h.statfs("/").unwrap();
    let host = rustix::fs::statfs(&s.export).unwrap();
    assert_eq!(st.fs_type, host.f_type as u64);
    assert_eq!(st.bsize, host.f_bsize as u64);
    assert_eq!(st.blocks, host.f_blocks);
    assert_eq!(h.statfs("//l").unwrap().fs_type, st.fs_type);
    assert_eq!(h.statfs("//nope").unwrap_err(), errno(Errno::NOENT));
    assert!(h.finish().success());
}

fn chmod(flavor: Flavor) {
    let s = populated();
    let h = spawn(flavor, &s.export);
    let chmod = |path: &'static str, mode| {
        h.status(&Request::Chmod {
            path: path.as_bytes(),
            mode,
        })
    };
    assert_eq!(chmod("//f", 0o4711), 0);
    assert_eq!(fs::metadata(s.path("f")).unwrap().mode() & 0o7777, 0o4711);
    assert_eq!(chmod("//l", 0o600), 0, "follows the final symlink");
    assert_eq!(fs::metadata(s.path("f")).unwrap().mode() & 0o7777, 0o600);
    assert_eq!(chmod("//d", 0o700), 0);
    assert_eq!(fs::metadata(s.path("d")).unwrap().mode() & 0o7777, 0o700);
    assert_eq!(chmod("//nope", 0o700), errno(Errno::NOENT));
    assert!(h.finish().success());
}

fn chown(flavor: Flavor) {
    let s = populated();
    let h = spawn(flavor, &s.export);
    // Ids that exist in every namespace the suite runs in.
    let (uid, gid) = if is_real_root() { (1234, 4321) } else { (0, 0) };
    let chown = |path: &'static str, uid, gid| {
        h.status(&Request::Chown {
            path: path.as_bytes(),
            uid,
            gid,
        })
    };
    assert_eq!(chown("//l", uid, gid), 0);
    let l = fs::symlink_metadata(s.path("l")).unwrap();
    assert_eq!(guest_view(l.uid(), l.gid()), (uid, gid));
    assert_eq!(chown("//f", u32::MAX, gid), 0, "-1 keeps the uid");
    let f = fs::metadata(s.path("f")).unwrap();
    assert_eq!(guest_view(f.uid(), f.gid()).1, gid);
    assert_eq!(chown("//nope", 0, 0), errno(Errno::NOENT));
    assert!(h.finish().success());
}

fn truncate(flavor: Flavor) {
    let s = populated();
    let h = spawn(flavor, &s.export);
    let truncate = |path: &'static str, length| {
        h.status(&Request::Truncate {
            path: path.as_bytes(),
            length,
        })
    };
    assert_eq!(truncate("//f", 2), 0);
    assert_eq!(fs::read_to_string(s.path("f")).unwrap(), "he");
    assert_eq!(truncate("//l", 10), 0, "follows the final symlink");
    assert_eq!(fs::metadata(s.path("f")).unwrap().len(), 10);
    assert_eq!(truncate("//d", 0), errno(Errno::ISDIR));
    assert_eq!(truncate("//f", -1), errno(Errno::INVAL));
    assert_eq!(truncate("//nope", 0), errno(Errno::NOENT));
    assert!(h.finish().success());
}

fn utime(flavor: Flavor) {
    let s = populated();
    let h = spawn(flavor, &s.export);
    let utime = |path: &'static str, atime, mtime| {
        h.status(&Request::Utime {
            path: path.as_bytes(),
            atime,
            mtime,
        })
    };
    assert_eq!(utime("//f", (1000, 5), (2000, 7)), 0);
    let m = fs::metadata(s.path("f")).unwrap();
    assert_eq!(
        (m.atime(), m.atime_nsec(), m.mtime(), m.mtime_nsec()),
        (1000, 5, 2000, 7)
    );
    assert_eq!(utime("//l", (3000, 0), (4000, 0)), 0);
    let l = fs::symlink_metadata(s.path("l")).unwrap();
    assert_eq!(l.mtime(), 4000, "the symlink itself");
    assert_eq!(
        fs::metadata(s.path("f")).unwrap().mtime(),
        2000,
        "not its target"
    );
    // UTIME_OMIT keeps, UTIME_NOW sets the clock.
    assert_eq!(utime("//f", (0, libc::UTIME_OMIT), (0, libc::UTIME_NOW)), 0);
    let m = fs::metadata(s.path("f")).unwrap();
    assert_eq!(m.atime(), 1000);
    assert!(m.mtime() > 2000);
    assert_eq!(utime("/", (10, 0), (20, 0)), 0);
    assert_eq!(fs::metadata(&s.export).unwrap().mtime(), 20);
    assert_eq!(utime("//nope", (0, 0), (0, 0)), errno(Errno::NOENT));
    assert!(h.finish().success());
}

fn rename(flavor: Flavor) {
    let s = populated();
    let h = spawn(flavor, &s.export);
    let rename = |old: &'static str, new: &'static str| {
        h.status(&Request::Rename {
            old: old.as_bytes(),
            new: new.as_bytes(),
        })
    };
    assert_eq!(rename("//f", "//d/moved"), 0);
    assert_eq!(fs::read_to_string(s.path("d/moved")).unwrap(), "hello");
    assert!(!s.path("f").exists());
    assert_eq!(rename("//d/moved", "//d/again"), 0);
    assert_eq!(rename("//nope", "//x"), errno(Errno::NOENT));
    assert_eq!(rename("//e", "//d"), errno(Errno::NOTEMPTY));
    assert_eq!(rename("/", "//x"), errno(Errno::BUSY));
    assert!(h.finish().success());
}

fn remove(flavor: Flavor) {
    let s = populated();
    let h = spawn(flavor, &s.export);
    let remove = |path: &'static str| {
        h.status(&Request::Remove {
            path: path.as_bytes(),
        })
    };
    assert_eq!(remove("//d"), errno(Errno::NOTEMPTY));
    assert_eq!(remove("//d/g"), 0);
    assert!(!s.path("d/g").exists());
    assert_eq!(remove("//d"), 0, "an empty directory");
    assert!(!s.path("d").exists());
    assert_eq!(remove("//l"), 0, "the symlink, not its target");
    assert!(s.path("f").exists());
    assert_eq!(remove("//nope"), errno(Errno::NOENT));
    assert_eq!(remove("/"), errno(Errno::BUSY));
    assert_eq!(remove("//e/."), errno(Errno::INVAL));
    assert!(h.finish().success());
}

fn xattrs(flavor: Flavor) {
    let s = populated();
    let h = spawn(flavor, &s.export);
    let set = |path: &'static str, name: &'static str, value: &'static [u8], flags| {
        h.status(&Request::Lsetxattr {
            path: path.as_bytes(),
            name: name.as_bytes(),
            value,
            size: value.len() as i32,
            flags,
        })
    };
    let get = |path: &'static str, name: &'static str, size| {
        h.call(&Request::Lgetxattr {
            size,
            path: path.as_bytes(),
            name: name.as_bytes(),
        })
    };
    assert_eq!(set("//f", "user.vph", b"value\0bin", 0), 0);
    assert_eq!(
        rustix::fs::getxattr(s.path("f"), "user.vph", &mut [0u8; 64][..]).unwrap(),
        9
    );
    // Size 0: the length as a status-shaped reply.
    assert_eq!(
        get("//f", "user.vph", 0),
        Raw::Message {
            kind: 0,
            payload: 9i32.to_ne_bytes().to_vec()
        }
    );
    let Raw::Message { kind: 0, payload } = get("//f", "user.vph", 64) else {
        panic!()
    };
    assert_eq!(&payload[2..], b"value\0bin");
    let Raw::Message { kind: 1, payload } = get("//f", "user.vph", 2) else {
        panic!()
    };
    assert_eq!(
        i32::from_ne_bytes(payload[..4].try_into().unwrap()),
        errno(Errno::RANGE)
    );
    let Raw::Message { kind: 1, payload } = get("//f", "user.none", 64) else {
        panic!()
    };
    assert_eq!(
        i32::from_ne_bytes(payload[..4].try_into().unwrap()),
        errno(Errno::NODATA)
    );
    assert_eq!(
        set("//f", "user.vph", b"x", libc::XATTR_CREATE),
        errno(Errno::EXIST)
    );
    assert_eq!(set("//d", "user.dir", b"d", 0), 0);
    assert_eq!(set("/", "user.root", b"r", 0), 0);
    assert_eq!(
        set("//l", "user.link", b"l", 0),
        errno(Errno::PERM),
        "user xattrs on the link itself"
    );

    let list = |size| h.call(&Request::Llistxattr { size, path: b"//f" });
    let Raw::Message { kind: 0, payload } = list(0) else {
        panic!()
    };
    let len = i32::from_ne_bytes(payload[..4].try_into().unwrap());
    let Raw::Message { kind: 0, payload } = list(4096) else {
        panic!()
    };
    assert_eq!(payload.len() - 2, len as usize);
    assert!(payload.windows(9).any(|w| w == b"user.vph\0"));

    let remove = |path: &'static str, name: &'static str| {
        h.status(&Request::Lremovexattr {
            path: path.as_bytes(),
            name: name.as_bytes(),
        })
    };
    assert_eq!(remove("//f", "user.vph"), 0);
    assert_eq!(remove("//f", "user.vph"), errno(Errno::NODATA));
    assert_eq!(remove("/", "user.root"), 0);
    assert_eq!(remove("//nope", "user.x"), errno(Errno::NOENT));
    assert!(h.finish().success());
}

fn getversion(flavor: Flavor) {
    let s = populated();
    let h = spawn(flavor, &s.export);
    let reply = h.response(&Request::Getversion { path: b"//f" }).unwrap();
    let version = u64::from_ne_bytes(reply[..8].try_into().unwrap());
    let fstype = rustix::fs::statfs(&s.export).unwrap().f_type;
    if fstype == 0xEF53 {
        let file = fs::File::open(s.path("f")).unwrap();
        let mut host: libc::c_long = 0;
        // SAFETY: FS_IOC_GETVERSION writes one long through the pointer.
        assert_eq!(
            unsafe {
                libc::ioctl(
                    std::os::fd::AsRawFd::as_raw_fd(&file),
                    0x80087601,
                    &mut host,
                )
            },
            0
        );
        if flavor == Flavor::Original {
            // The original leaves the upper half uninitialised (stack bytes
            // leak to QEMU; docs/compatibility.md): compare the generation.
            assert_eq!(version as u32, host as u32);
        } else {
            assert_eq!(version, host as u32 as u64);
        }
        assert_eq!(
            h.response(&Request::Getversion { path: b"//nope" })
                .unwrap_err(),
            errno(Errno::NOENT)
        );
    } else {
        assert_eq!(version, 0, "no generation numbers on this filesystem");
    }
    assert!(h.finish().success());
}

macro_rules! per_flavor {
    ($($name:ident),* $(,)?) => {
        mod openat2 { $( #[test] fn $name() { super::$name(super::Flavor::Openat2) } )* }
        mod walker { $( #[test] fn $name() { super::$name(super::Flavor::Walker) } )* }
        /// Ours on an emulated older kernel: every fallback path.
        mod old_kernel { $( #[test] fn $name() { super::$name(super::Flavor::OldKernel) } )* }
        /// The same expectations against QEMU's own helper: the oracle.
        mod original {
            $( #[test] fn $name() {
                if let Some(why) = super::original_unusable() {
                    super::skip(concat!("original::", stringify!($name)), why);
                    return;
                }
                super::$name(super::Flavor::Original)
            } )*
        }
    };
}

per_flavor!(
    open,
    create,
    mknod,
    mkdir,
    symlink_and_readlink,
    link,
    lstat,
    statfs,
    chmod,
    chown,
    truncate,
    utime,
    rename,
    remove,
    xattrs,
    getversion,
);
