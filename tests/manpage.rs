//! The man page in docs/ is generated from the same clap definition the
//! binary parses, so it cannot drift; this test fails when the shipped copy
//! is stale. Regenerate with:
//!     VPH_UPDATE_MAN=1 cargo test --test manpage

use clap::CommandFactory;
use std::path::Path;
use virtfs_proxy_helper::cli::Cli;

/// Sections clap does not know about, in roff.
const EXTRA: &str = r#".SH EXAMPLES
QEMU connects to a socket file the helper creates for QEMU's uid and gid:
.PP
.RS 4
.nf
virtfs\-proxy\-helper \-p /srv/share \-s /run/vph.sock \-u 107 \-g 107
qemu\-system\-x86_64 ... \-fsdev proxy,id=fs0,socket=/run/vph.sock \e
    \-device virtio\-9p\-pci,fsdev=fs0,mount_tag=share
.fi
.RE
.PP
The caller made a socketpair and gives one end to each, as libvirt and LXD do:
.PP
.RS 4
.nf
virtfs\-proxy\-helper \-\-nodaemon \-\-fd 3 \-\-path /srv/share
qemu\-system\-x86_64 ... \-fsdev proxy,id=fs0,sock_fd=4 ...
.fi
.RE
.PP
A read\-only export, and what protects it on this kernel:
.PP
.RS 4
.nf
virtfs\-proxy\-helper \-\-readonly \-\-nodaemon \-\-fd 3 \-\-path /srv/share
virtfs\-proxy\-helper \-\-sandbox\-report \-\-path /srv/share
.fi
.RE
.PP
In the guest: \fBmount \-t 9p \-o trans=virtio,version=9p2000.L share /mnt\fR
.SH LOGGING
Without \fB\-\-nodaemon\fR the helper detaches and logs to syslog, facility
daemon, tagged \fBvirtfs\-proxy\-helper[PID]\fR (read them with
\fBjournalctl \-t virtfs\-proxy\-helper\fR). With it, logs go to standard error.
The start\-up lines \fBconfined\fR and \fBsandbox:\fR name the resolver, chroot,
Landlock, seccomp and the capabilities kept. Refused escape attempts are
warnings naming the request type and the path.
.SH EXIT STATUS
0 when QEMU disconnects cleanly or after \fB\-\-sandbox\-report\fR;
1 when set\-up fails or the connection breaks; 2 for a misused command line.
.SH SECURITY
Every path is resolved beneath a directory fd of the export held since
start\-up, with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) or a
userspace walker; the process also chroots into the export, restricts
itself with Landlock and a seccomp allow\-list, and keeps only
CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID, CAP_SETGID, CAP_MKNOD
and CAP_SETUID. FIFOs, sockets and device nodes are never opened (ENXIO).
A mounted procfs is needed at start\-up.
.SH SEE ALSO
\fBqemu\-system\-x86_64\fR(1), \fBmount\fR(8)
"#;

pub fn render() -> Vec<u8> {
    let man = clap_mangen::Man::new(Cli::command())
        .title("VIRTFS-PROXY-HELPER")
        .section("1")
        .manual("User Commands")
        .source(format!("virtfs-proxy-helper {}", env!("CARGO_PKG_VERSION")));
    let mut out = Vec::new();
    man.render_title(&mut out).unwrap();
    man.render_name_section(&mut out).unwrap();
    man.render_synopsis_section(&mut out).unwrap();
    man.render_description_section(&mut out).unwrap();
    man.render_options_section(&mut out).unwrap();
    out.extend_from_slice(EXTRA.as_bytes());
    man.render_version_section(&mut out).unwrap();
    out
}

#[test]
fn man_page_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/virtfs-proxy-helper.1");
    let fresh = render();
    if std::env::var_os("VPH_UPDATE_MAN").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let shipped = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED man_page_is_current: {} is not readable for this user (the root pass checks it)",
                path.display()
            );
            return;
        }
        Err(_) => Vec::new(),
    };
    assert!(
        shipped == fresh,
        "docs/virtfs-proxy-helper.1 is stale: run `VPH_UPDATE_MAN=1 cargo test --test manpage`"
    );
}
