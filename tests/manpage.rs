//! The man page in docs/ is generated from the same clap definition the
//! binary parses, so it cannot drift; this test fails when the shipped copy
//! is stale. Regenerate with:
//!     VPH_UPDATE_MAN=1 cargo test --test manpage

use clap::CommandFactory;
use std::path::Path;
use virtfs_proxy_helper::cli::Cli;

/// Sections clap does not know about, in roff.
const EXTRA: &str = r#".SH EXAMPLES
QEMU connects to a socket file the helper creates for QEMU's uid and gid;
the helper removes it once QEMU has connected:
.PP
.RS 4
.nf
virtfs\-proxy\-helper \-p /srv/share \-s /run/vph.sock \-u 107 \-g 107
qemu\-system\-x86_64 ... \-fsdev proxy,id=fs0,socket=/run/vph.sock \e
    \-device virtio\-9p\-pci,fsdev=fs0,mount_tag=share
.fi
.RE
.PP
The caller made a socketpair and gives one end to the helper as fd 3 and
the other to QEMU as \fBsock_fd\fR (as LXD up to 6.6 did):
.PP
.RS 4
.nf
virtfs\-proxy\-helper \-\-nodaemon \-\-fd 3 \-\-path /srv/share
qemu\-system\-x86_64 ... \-fsdev proxy,id=fs0,sock_fd=4 ...
.fi
.RE
.PP
A read\-only export, and what protects it on this machine:
.PP
.RS 4
.nf
virtfs\-proxy\-helper \-\-readonly \-\-nodaemon \-\-fd 3 \-\-path /srv/share
virtfs\-proxy\-helper \-\-sandbox\-report \-\-path /srv/share
.fi
.RE
.PP
As an ordinary user, every guest write landing as that user (uid and gid
1000 here), shown to the guest as 1000 (no setuid helper; \fB\-\-no\-chroot\fR
since chroot needs privilege):
.PP
.RS 4
.nf
virtfs\-proxy\-helper \-\-no\-chroot \-\-nodaemon \-\-fd 3 \-\-path /srv/share \e
    \-\-translate\-uid squash\-guest:0:1000:4294967295 \-\-translate\-uid host:1000:1000:1 \e
    \-\-translate\-gid squash\-guest:0:1000:4294967295 \-\-translate\-gid host:1000:1000:1
.fi
.RE
.PP
In the guest: \fBmount \-t 9p \-o trans=virtio,version=9p2000.L share /mnt\fR
.SH ID TRANSLATION
Rules for \fB\-\-translate\-uid\fR and \fB\-\-translate\-gid\fR, as virtiofsd
takes them; N is a count, not the end of a range, and ids no rule covers
map to themselves:
.TP
\fBmap:\fIG\fB:\fIH\fB:\fIN\fR
guest G+i is host H+i, both ways
.TP
\fBguest:\fIG\fB:\fIH\fB:\fIN\fR, \fBhost:\fIH\fB:\fIG\fB:\fIN\fR
one way only: guest to host, or host to guest
.TP
\fBsquash\-guest:\fIG\fB:\fIH\fB:\fIN\fR, \fBsquash\-host:\fIH\fB:\fIG\fB:\fIN\fR
every id of the range becomes the one id H (G)
.TP
\fBforbid\-guest:\fIG\fB:\fIN\fR
creations and chown to these guest ids answer EPERM
.PP
Translation applies to the ids of creations, T_CHOWN (\-1 stays \-1), stat
replies and the ACL_USER and ACL_GROUP entries of POSIX ACL xattrs, both
ways. Overlapping source ranges, malformed rules and a count that looks
like a range end exit with status 2, naming the rule.
.SH RUNNING UNPRIVILEGED
Started by an ordinary user with no \fB\-\-uid\-map\fR, the helper makes a
user namespace of its own and is root there: guest 0 is the user, and
guest 1..N the user's range in \fI/etc/subuid\fR and \fI/etc/subgid\fR
where there is one and \fBnewuidmap\fR(1) (package uidmap) can write it;
otherwise guest 0 alone, with a warning that other guest ids get EINVAL.
With \fB\-\-translate\-uid\fR/\fB\-\-translate\-gid\fR and no map, the
namespace maps the user alone, without a setuid helper. As root,
\fB\-\-uid\-map :0:1000000:65536:\fR (and \fB\-\-gid\-map\fR) gives a
shifted range. Root of an existing namespace that can set every id
creates none. The \fBsandbox:\fR log line and \fB\-\-sandbox\-report\fR
state the maps in force.
.SH XATTR MAPPING
\fB\-\-xattrmap\fR takes virtiofsd's rules, one after another, each
\fIsep\fBtype\fIsep\fBscope\fIsep\fBkey\fIsep\fBprepend\fIsep\fR with the
rule's first character as its separator: types \fBprefix\fR, \fBok\fR,
\fBbad\fR (EPERM, hidden in listings) and \fBunsupported\fR (ENOTSUP,
hidden); scopes \fBclient\fR (guest names, matched against key),
\fBserver\fR (host names in listings, matched against prepend) and
\fBall\fR. The first rule that matches wins; a name none matches is
refused. \fB:map:\fIkey\fB:\fIprepend\fB:\fR, last, stores guest names
starting with key as prepend+name and refuses guest names that already
carry prepend, so the prefix cannot be forged. Example:
\fB\-\-xattrmap ":map:security.:user.virtiofs.:"\fR.
.SH RUNNING AS A SERVICE
The package installs systemd units for one socket per export and one
helper per connection: \fBvirtfs\-proxy\-helper@\fINAME\fB.socket\fR
listens on \fI/run/virtfs\-proxy\-helper/NAME.sock\fR (mode 0660), and each
connection starts \fBvirtfs\-proxy\-helper@.service\fR (Accept=yes) with the
connected socket as fd 3, which runs \fBvirtfs\-proxy\-helper \-\-nodaemon
\-\-fd 3 \-\-path\fR \fIEXPORT\fR and the instance's OPTIONS. The export is configured in
\fI/etc/virtfs\-proxy\-helper/NAME.conf\fR (NAME: letters, digits, _, \- and
\&., not first), KEY=VALUE lines, \fB#\fR starting a comment line, a value
optionally quoted with ' or " (the file is parsed, never run as shell):
.TP
\fBEXPORT=\fIpath\fR
the directory to export (required; absolute, not a symlink)
.TP
\fBSOCKET_USER=\fIuser\fR, \fBSOCKET_GROUP=\fIgroup\fR
owner and group of the socket, QEMU's (names or numbers; root if unset)
.TP
\fBOPTIONS=\fIoptions\fR
more options, split at whitespace (\fB\-\-readonly\fR, \fB\-\-log\-level\fR,
\fB\-\-uid\-map\fR, ...); \fB\-\-nodaemon\fR, \fB\-\-fd\fR, \fB\-\-path\fR and the
socket\-file options are the unit's
.PP
Then \fBsystemctl enable \-\-now virtfs\-proxy\-helper@\fINAME\fB.socket\fR,
and QEMU connects with
\fB\-fsdev proxy,id=fs0,socket=/run/virtfs\-proxy\-helper/\fINAME\fB.sock\fR.
The socket unit checks the instance file before it listens and gives the
socket to SOCKET_USER and SOCKET_GROUP right after; a missing or bad file
fails the socket unit, or the connection, with one line naming the file
and what is wrong. An example is in
\fI/usr/share/doc/virtfs\-proxy\-helper/examples/\fR. The service's
sandboxing directives, and the ones left out, say why in the unit file;
with ProtectSystem=full an export under /usr, /boot, /efi or /etc is
served read\-only. Where AppArmor 4 is installed, the package also installs
and loads \fI/etc/apparmor.d/virtfs\-proxy\-helper\fR, which lets an
ordinary user's helper create its user namespace under
kernel.apparmor_restrict_unprivileged_userns=1
(\fBapparmor_parser \-r /etc/apparmor.d/virtfs\-proxy\-helper\fR loads it
again).
.SH LOGGING
Without \fB\-\-nodaemon\fR the helper detaches once set\-up has succeeded and
logs to syslog, facility daemon, tagged \fBvirtfs\-proxy\-helper[PID]\fR (read
them with \fBjournalctl \-t virtfs\-proxy\-helper\fR). With it, logs go to
standard error. In socket mode a line names the socket and says the helper
waits for QEMU; on connect a line gives QEMU's uid and gid, and its pid
where the helper can see it. The start\-up lines \fBconfined\fR and
\fBsandbox:\fR name the sandbox kind and why, the namespaces, the id maps,
the export's mount flags, the resolver, Landlock, seccomp and the
capabilities kept. Refused escape attempts are
warnings naming the request type and the path. Paths and names from the
guest are written with control characters and invalid bytes escaped.
Where standard error is the journal's stream (\fB$JOURNAL_STREAM\fR names
it, as for a systemd service), each line starts with its syslog priority,
\fB<3>\fR to \fB<7>\fR, so the journal keeps the levels.
.SH EXIT STATUS
Every set\-up failure is reported before the command returns, in daemon
mode too: the launching process waits for the detached helper to report.
.TP
0
QEMU disconnected cleanly; \fB\-\-sandbox\-report\fR found every required
layer working; \fB\-\-help\fR, \fB\-\-version\fR.
.TP
1
Set\-up failed (export, socket file, user namespace or its maps, an
explicit \fB\-\-sandbox namespace\fR, procfs, chroot, capabilities,
seccomp), the connection broke, or \fB\-\-sandbox\-report\fR found a layer
a real run would fail at.
.TP
2
The command line is misused, a bad \fB\-\-path\fR or \fB\-\-fd\fR value
included.
.TP
130
SIGINT was received (logged; the socket file is removed).
.TP
143
SIGTERM was received (logged; the socket file is removed).
.TP
129, 131, 138, 140
SIGHUP, SIGQUIT, SIGUSR1 or SIGUSR2 was received (logged; the socket file
is removed). Any of these six signals ends the helper whichever of its
processes receives it.
.SH SECURITY
Every path is resolved beneath a directory fd of the export held since
start\-up, with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) or a
userspace walker; the process also confines itself to the export (by
default new mount, pid, net, ipc and uts namespaces, the export mounted
nodev,nosuid and pivot_root into it; else chroot), restricts
itself with Landlock and a seccomp allow\-list, and keeps only
CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID, CAP_SETGID, CAP_MKNOD
and CAP_SETUID. FIFOs, sockets and device nodes are never opened (ENXIO).
The processes forked beside the server (the waiter outside its pid
namespace, the socket\-file janitor) keep no capability or only what
removing the socket file needs, with no_new_privs, a seccomp allow\-list of
their own and no core dump; a killed waiter ends the server. Under the
namespace sandbox the helper mounts a procfs of its own pid namespace;
otherwise a mounted procfs is needed at start\-up, except on kernels with
O_EMPTYPATH, fchmodat2 and the *xattrat calls (Linux 7.2 and later), where
none is used.
Kernels from 5.10 to 7.3 are tested.
.SH SEE ALSO
\fBqemu\-system\-x86_64\fR(1), \fBmount\fR(8)
"#;

/// The command with its generated arguments (help, version) in place.
fn built() -> clap::Command {
    let mut cmd = Cli::command();
    cmd.build();
    cmd
}

/// roff for `-s`/`--long` with its value, e.g. `\fB\-f\fR \fIFD\fR`.
fn option(arg: &clap::Arg) -> String {
    let esc = |s: &str| s.replace('-', "\\-");
    let name = match (arg.get_short(), arg.get_long()) {
        (Some(s), _) => format!("\\fB\\-{s}\\fR"),
        (None, Some(l)) => format!("\\fB\\-\\-{}\\fR", esc(l)),
        (None, None) => String::new(),
    };
    match arg.get_value_names() {
        Some(values) if arg.get_action().takes_values() => {
            format!("{name} \\fI{}\\fR", values[0])
        }
        _ => name,
    }
}

/// The synopsis, with every option's argument (clap_mangen leaves them
/// out): the two ways to connect, and the report.
fn synopsis(cmd: &clap::Command) -> String {
    let arg = |id: &str| option(cmd.get_arguments().find(|a| a.get_id() == id).unwrap());
    let fixed = [
        "path",
        "fd",
        "socket",
        "uid",
        "gid",
        "sandbox_report",
        "help",
        "version",
    ];
    let rest: Vec<String> = cmd
        .get_arguments()
        .filter(|a| !fixed.contains(&a.get_id().as_str()))
        .map(|a| format!("[{}]", option(a)))
        .collect();
    let program = "\\fBvirtfs\\-proxy\\-helper\\fR";
    format!(
        ".SH SYNOPSIS\n{program} {} ({} | {} {} {}) {}\n.br\n{program} {} {} {}\n.br\n{program} {} | {}\n",
        arg("path"),
        arg("fd"),
        arg("socket"),
        arg("uid"),
        arg("gid"),
        rest.join(" "),
        arg("sandbox_report"),
        arg("path"),
        rest.join(" "),
        arg("help"),
        arg("version"),
    )
}

pub fn render() -> Vec<u8> {
    let man = clap_mangen::Man::new(Cli::command())
        .title("VIRTFS-PROXY-HELPER")
        .section("1")
        .manual("User Commands")
        .source(format!("virtfs-proxy-helper {}", env!("CARGO_PKG_VERSION")));
    let mut out = Vec::new();
    man.render_title(&mut out).unwrap();
    man.render_name_section(&mut out).unwrap();
    out.extend_from_slice(synopsis(&built()).as_bytes());
    man.render_description_section(&mut out).unwrap();
    man.render_options_section(&mut out).unwrap();
    out.extend_from_slice(EXTRA.as_bytes());
    man.render_version_section(&mut out).unwrap();
    out
}

#[test]
fn the_synopsis_names_every_option_with_its_argument() {
    let cmd = built();
    let text = synopsis(&cmd);
    for a in cmd.get_arguments() {
        assert!(text.contains(&option(a)), "{:?} in {text}", a.get_id());
    }
    for value in [
        "\\fIPATH\\fR",
        "\\fIFD\\fR",
        "\\fISOCKET\\fR",
        "\\fIUID\\fR",
        "\\fIGID\\fR",
    ] {
        assert!(text.contains(value), "{value} in {text}");
    }
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
