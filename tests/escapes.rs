//! Escape attempts: `..`, absolute paths, absolute and relative symlinks as
//! intermediate and final components, for every request that takes a path,
//! and magic links through a procfs inside the export. A canary directory
//! beside the export must stay untouched and unread.
//!
//! Each case runs under both resolvers, with each sandbox kind (namespace,
//! chroot, none: with none, the resolver alone must hold) and with id
//! translation on.

mod common;

use common::*;
use std::ffi::CString;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use virtfs_proxy_helper::protocol::Request;

/// Builds the export's traps pointing at the canary directory `outside`.
fn traps(s: &Scratch) {
    let outside = s.outside.to_str().unwrap();
    fs::create_dir(s.path("deep")).unwrap();
    fs::create_dir(s.path("deep/er")).unwrap();
    std::os::unix::fs::symlink("../outside", s.path("up")).unwrap();
    std::os::unix::fs::symlink("../../../outside", s.path("deep/er/up3")).unwrap();
    std::os::unix::fs::symlink(outside, s.path("abs")).unwrap();
    std::os::unix::fs::symlink("../outside/canary", s.path("upfile")).unwrap();
    std::os::unix::fs::symlink(format!("{outside}/canary"), s.path("absfile")).unwrap();
    std::os::unix::fs::symlink("/", s.path("slash")).unwrap();
    fs::write(s.path("inside"), "inside").unwrap();
}

/// Paths that name the canary (or its directory) from inside the export.
fn evil_paths(s: &Scratch) -> Vec<String> {
    let abs = s.outside.to_str().unwrap().to_string();
    let mut v: Vec<String> = [
        "//../outside/canary",
        "/../../../../outside/canary",
        "//deep/../../outside/canary",
        "//deep/er/../../../outside/canary",
        "//up/canary",
        "//deep/er/up3/canary",
        "//abs/canary",
        "//upfile",
        "//absfile",
        "//up",
        "//abs",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    v.push(format!("//slash{abs}/canary"));
    v.push(format!("//..{abs}/canary"));
    v
}

/// One request of every type that takes a path, aimed at `path`.
fn every_request<'a>(path: &'a [u8]) -> Vec<Request<'a>> {
    vec![
        Request::Open {
            path,
            flags: libc::O_RDWR,
        },
        Request::Open {
            path,
            flags: libc::O_RDONLY | libc::O_DIRECTORY,
        },
        Request::Create {
            path,
            flags: libc::O_CREAT | libc::O_RDWR,
            mode: 0o666,
            uid: 0,
            gid: 0,
        },
        Request::Mknod {
            uid: 0,
            gid: 0,
            path,
            mode: libc::S_IFIFO | 0o666,
            rdev: 0,
        },
        Request::Mkdir {
            uid: 0,
            gid: 0,
            path,
            mode: 0o777,
        },
        Request::Symlink {
            uid: 0,
            gid: 0,
            target: b"x",
            path,
        },
        Request::Link {
            old: path,
            new: b"//stolen-link",
        },
        Request::Link {
            old: b"//inside",
            new: path,
        },
        Request::Lstat { path },
        Request::Readlink {
            path,
            bufsize: 4096,
        },
        Request::Statfs { path },
        Request::Chmod { path, mode: 0o777 },
        Request::Chown {
            path,
            uid: 0,
            gid: 0,
        },
        Request::Truncate { path, length: 0 },
        Request::Utime {
            path,
            atime: (1, 0),
            mtime: (1, 0),
        },
        Request::Rename {
            old: path,
            new: b"//stolen",
        },
        Request::Rename {
            old: b"//inside",
            new: path,
        },
        Request::Lsetxattr {
            path,
            name: b"user.evil",
            value: b"x",
            size: 1,
            flags: 0,
        },
        Request::Lgetxattr {
            size: 64,
            path,
            name: b"user.x",
        },
        Request::Llistxattr { size: 4096, path },
        Request::Lremovexattr {
            path,
            name: b"user.x",
        },
        Request::Getversion { path },
    ]
}

fn canary_ino(s: &Scratch) -> (u64, u64) {
    let m = fs::metadata(s.outside.join("canary")).unwrap();
    (m.dev(), m.ino())
}

/// Sends every request at every evil path; no reply may hand out or
/// describe the canary, and nothing outside may change.
fn attack(flavor: Flavor, layers: Confinement, paths: &[String], s: &Scratch) {
    let spawn = layers.apply(Spawn::new(flavor, &s.export));
    let h = spawn.start();
    if matches!(
        layers,
        Confinement::NamespaceBare | Confinement::ChrootBare | Confinement::ResolverAloneBare
    ) {
        assert!(h.lstat("/").is_ok(), "{}", h.stderr());
        let log = h.stderr();
        assert!(
            log.contains("landlock=\"unavailable") && log.contains("seccomp=\"off"),
            "{log}"
        );
    }
    attack_with(h, paths, s);
}

fn attack_with(h: Helper, paths: &[String], s: &Scratch) {
    let (flavor, chroot) = (h.flavor, ());
    let before = s.canary_state();
    let canary = canary_ino(s);
    let outside_dir = {
        let m = fs::metadata(&s.outside).unwrap();
        (m.dev(), m.ino())
    };
    let mut tried = 0;
    for path in paths {
        for req in every_request(path.as_bytes()) {
            tried += 1;
            match h.call(&req) {
                Raw::Fd(Ok(fd)) => {
                    let m = fs::File::from(fd).metadata().unwrap();
                    assert_ne!((m.dev(), m.ino()), canary, "{req:?} opened the canary");
                    assert_ne!(
                        (m.dev(), m.ino()),
                        outside_dir,
                        "{req:?} opened the outside dir"
                    );
                }
                Raw::Message { kind: 0, payload } if matches!(req, Request::Lstat { .. }) => {
                    let st = virtfs_proxy_helper::protocol::WireStat::decode(&payload).unwrap();
                    assert_ne!((st.dev, st.ino), canary, "{req:?} stat'ed the canary");
                    assert_ne!((st.dev, st.ino), outside_dir, "{req:?} stat'ed outside");
                }
                _ => {}
            }
            // Undo what a legitimate in-export success may have done, so
            // the next request meets the same traps.
            if !s.path("inside").exists() {
                let _ = fs::rename(s.path("stolen"), s.path("inside"));
            }
        }
    }
    assert_eq!(
        s.canary_state(),
        before,
        "{flavor:?} {chroot:?}: something outside changed"
    );
    assert!(h.finish().success());
    assert!(tried > 200);
}

fn escapes(flavor: Flavor, layers: Confinement) {
    let s = Scratch::new();
    traps(&s);
    let paths = evil_paths(&s);
    attack(flavor, layers, &paths, &s);
}

/// Binds the host's procfs into the export inside a private mount
/// namespace of the helper's own (set up between fork and exec).
fn with_proc_inside<'a>(spawn: Spawn<'a>, mountpoint: &Path) -> Spawn<'a> {
    let target = CString::new(mountpoint.as_os_str().as_encoded_bytes()).unwrap();
    let mut spawn = spawn;
    spawn.pre_exec = Some(Box::new(move || {
        // SAFETY: plain syscalls with NUL-terminated strings prepared before
        // the fork; nothing here allocates.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNS) != 0
                || libc::mount(
                    c"none".as_ptr(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) != 0
                || libc::mount(
                    c"/proc".as_ptr(),
                    target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }));
    spawn
}

fn magic_links(flavor: Flavor, layers: Confinement) {
    if skip_unless_root_here("magic_links", "binding procfs into the export") {
        return;
    }
    let s = Scratch::new();
    fs::create_dir(s.path("proc")).unwrap();
    fs::write(s.path("inside"), "inside").unwrap();
    let abs = s.outside.to_str().unwrap().to_string();
    let paths: Vec<String> = vec![
        "//proc/self/exe".into(),
        "//proc/self/cwd".into(),
        "//proc/self/fd/0".into(),
        format!("//proc/self/root{abs}/canary"),
        format!("//proc/1/root{abs}/canary"),
        format!("//proc/self/cwd/../outside/canary"),
        "//proc/thread-self/root".into(),
    ];
    let spawn = layers.apply(Spawn::new(flavor, &s.export));
    let h = with_proc_inside(spawn, &s.path("proc")).start();
    // The procfs really is there: a plain file in it opens.
    if h.lstat("//proc/self").is_err() {
        skip("magic_links", "could not bind procfs into the export here");
        return;
    }
    let exe = fs::metadata(our_binary()).unwrap();
    let before = s.canary_state();
    let canary = canary_ino(&s);
    for path in &paths {
        for req in every_request(path.as_bytes()) {
            if let Raw::Fd(Ok(fd)) = h.call(&req) {
                let m = fs::File::from(fd).metadata().unwrap();
                assert_ne!((m.dev(), m.ino()), canary, "{req:?} opened the canary");
                assert_ne!(
                    (m.dev(), m.ino()),
                    (exe.dev(), exe.ino()),
                    "{req:?} opened the helper binary"
                );
                assert!(
                    !m.is_dir() || m.ino() != fs::metadata("/").unwrap().ino(),
                    "{req:?} opened /"
                );
            }
        }
    }
    for p in ["//proc/self/exe", "//proc/self/root"] {
        assert_eq!(
            h.open(p, libc::O_RDONLY).unwrap_err(),
            errno(rustix::io::Errno::LOOP),
            "{p}"
        );
    }
    assert_eq!(s.canary_state(), before);
    let log = h.stderr();
    assert!(
        log.contains("WARN") && log.contains("//proc/self/exe") && log.contains("refused"),
        "{log}"
    );
    assert!(h.finish().success());
}

macro_rules! matrix {
    ($($name:ident),*) => {
        $( mod $name {
            use super::*;
            #[test] fn openat2_namespace() { $name(Flavor::Openat2, Confinement::Namespace) }
            #[test] fn openat2_chroot() { $name(Flavor::Openat2, Confinement::Chroot) }
            #[test] fn openat2_resolver_alone() { $name(Flavor::Openat2, Confinement::ResolverAlone) }
            #[test] fn openat2_translated() { $name(Flavor::Openat2, Confinement::Translated) }
            #[test] fn walker_namespace() { $name(Flavor::Walker, Confinement::Namespace) }
            #[test] fn walker_chroot() { $name(Flavor::Walker, Confinement::Chroot) }
            #[test] fn walker_resolver_alone() { $name(Flavor::Walker, Confinement::ResolverAlone) }
            #[test] fn walker_translated() { $name(Flavor::Walker, Confinement::Translated) }
            #[test] fn openat2_namespace_bare() { $name(Flavor::Openat2, Confinement::NamespaceBare) }
            #[test] fn openat2_chroot_bare() { $name(Flavor::Openat2, Confinement::ChrootBare) }
            #[test] fn openat2_resolver_alone_bare() { $name(Flavor::Openat2, Confinement::ResolverAloneBare) }
            #[test] fn walker_namespace_bare() { $name(Flavor::Walker, Confinement::NamespaceBare) }
            #[test] fn walker_chroot_bare() { $name(Flavor::Walker, Confinement::ChrootBare) }
            #[test] fn walker_resolver_alone_bare() { $name(Flavor::Walker, Confinement::ResolverAloneBare) }
            #[test] fn old_kernel_namespace() { $name(Flavor::OldKernel, Confinement::Namespace) }
            #[test] fn old_kernel_resolver_alone() { $name(Flavor::OldKernel, Confinement::ResolverAlone) }
        } )*
    };
}

matrix!(escapes, magic_links);

/// openat2 made to fail with ENOSYS: `--resolver auto` falls back to the
/// walker, says so, serves, and every escape is still refused, with and
/// without chroot.
#[test]
fn automatic_fallback_to_the_walker_when_openat2_is_missing() {
    for chroot in [true, false] {
        let s = Scratch::new();
        traps(&s);
        fs::write(s.path("hello"), "hi").unwrap();
        let mut spawn = Spawn::new(Flavor::Auto, &s.export);
        if !chroot {
            spawn = spawn.arg("--no-chroot");
        }
        spawn.pre_exec = Some(enosys_filter(&[437]));
        let h = spawn.start();
        assert_eq!(h.lstat("//hello").unwrap().size, 2);
        let log = h.stderr();
        assert!(log.contains("openat2 is not available"), "{log}");
        assert!(
            log.contains("resolver=\"walker\"") || log.contains("resolver=walker"),
            "{log}"
        );
        attack_with(h, &evil_paths(&s), &s);
    }
}

/// Without the filter, auto picks openat2 on this kernel.
#[test]
fn auto_picks_openat2_where_available() {
    let s = Scratch::new();
    let h = Spawn::new(Flavor::Auto, &s.export).start();
    assert!(h.lstat("/").is_ok());
    let log = h.stderr();
    assert!(
        log.contains("resolver=\"openat2\"") || log.contains("resolver=openat2"),
        "{log}"
    );
}
