//! Request handling against a scratch export, under both resolvers and
//! without chroot, so the resolvers alone stand between the fuzzer and the
//! host. A canary beside the export must never change, and where the
//! kernel needs procfs (as the helper decides it at start-up), the working
//! directory must stay /proc/self/fd.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustix::fd::AsFd;
use rustix::fs::{Mode, OFlags};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use virtfs_proxy_helper::export::Export;
use virtfs_proxy_helper::privilege::Privileges;
use virtfs_proxy_helper::procfs::ProcSelfFd;
use virtfs_proxy_helper::protocol::{RequestType, decode_request};
use virtfs_proxy_helper::resolve::{Resolver, ResolverKind};

struct Scene {
    exports: [Export; 2],
    canary: PathBuf,
    canary_state: (u64, u64, i64, u32),
}

fn state(path: &PathBuf) -> (u64, u64, i64, u32) {
    let m = std::fs::symlink_metadata(path).expect("canary exists");
    (m.ino(), m.size(), m.mtime(), m.mode())
}

fn scene() -> &'static Scene {
    // Per thread: an Export is not Sync (its deferred fds sit in a RefCell);
    // libFuzzer runs the target on one thread.
    thread_local! {
        static SCENE: &'static Scene = Box::leak(Box::new(build()));
    }
    SCENE.with(|scene| *scene)
}

fn build() -> Scene {
    {
        let base = std::env::temp_dir().join(format!("vph-fuzz-{}", std::process::id()));
        let export = base.join("export");
        let outside = base.join("outside");
        std::fs::create_dir_all(export.join("d/e")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let canary = outside.join("canary");
        std::fs::write(&canary, "canary").unwrap();
        std::fs::write(export.join("f"), "file").unwrap();
        let _ = std::os::unix::fs::symlink("../outside", export.join("up"));
        let _ = std::os::unix::fs::symlink(&outside, export.join("abs"));
        let _ = std::os::unix::fs::symlink("f", export.join("l"));
        let open = || {
            rustix::fs::open(
                &export,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .unwrap()
        };
        let features = virtfs_proxy_helper::syscalls::Features::probe(open().as_fd());
        // As the helper decides it: no procfs where the kernel's newer
        // syscalls cover every request.
        let proc = || (!features.procfs_free()).then(|| ProcSelfFd::open().unwrap());
        let make = |kind| Export {
            root: open(),
            resolver: Resolver::new(kind),
            proc: proc(),
            privileges: Privileges::current(),
            getversion: true,
            readonly: false,
            features,
            deferred: virtfs_proxy_helper::deferred_close::DeferredClose::new(true),
            ids: Default::default(),
            xattrs: Default::default(),
        };
        let canary_state = state(&canary);
        let exports = [make(ResolverKind::Openat2), make(ResolverKind::Walker)];
        // As the helper does while serving (the xattr calls rely on it).
        if let Some(proc) = &exports[0].proc {
            proc.enter_as_cwd().unwrap();
        }
        Scene {
            exports,
            canary,
            canary_state,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let scene = scene();
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Some((&kind, payload)) = rest.split_first() else {
        return;
    };
    let Some(kind) = RequestType::from_wire(u32::from(kind % 24)) else {
        return;
    };
    let export = &scene.exports[usize::from(selector & 1)];
    if let Ok(req) = decode_request(kind, payload) {
        let mut out = Vec::new();
        let _ = virtfs_proxy_helper::ops::handle(export, &req, &mut out);
    }
    assert_eq!(
        state(&scene.canary),
        scene.canary_state,
        "the canary changed"
    );
    if let Some(proc) = &scene.exports[0].proc {
        let cwd = rustix::fs::statat(rustix::fs::CWD, ".", rustix::fs::AtFlags::empty()).unwrap();
        let proc = rustix::fs::fstat(proc.as_fd()).unwrap();
        assert_eq!(
            (cwd.st_dev, cwd.st_ino),
            (proc.st_dev, proc.st_ino),
            "cwd moved"
        );
    }
});
