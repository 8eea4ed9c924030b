//! Every shell and Python example in README.md runs as written.
//!
//! Each ```sh or ```python block carries a marker comment saying how it is
//! checked (a block without one fails this test):
//! - `<!-- example: run -->`: run to completion, exit status 0;
//! - `<!-- example: serve -->`: it waits for QEMU; a client connects, makes
//!   a request and disconnects, and the helper must exit 0; run twice in a
//!   row, so the second run proves the socket file is gone;
//! - `<!-- example: qemu -->`: it starts the real QEMU, which must connect
//!   to the helper; QEMU is then stopped with SIGTERM, as an operator ends
//!   a VM, and the example must exit 0;
//! - `<!-- example: ci -->`: CI runs each of its commands, in `.ci/run` or
//!   a script under `ci/`: checked here by finding every line there.
//!
//! Examples run in a private mount namespace with an empty tmpfs as /tmp
//! (they use /tmp/share and /tmp/vph.sock), with this build of the helper
//! first on PATH as `virtfs-proxy-helper`. The one stand-in: `cargo run
//! --release --` (the README's first command) runs this build directly
//! instead of compiling a release build inside the test.

mod common;

use common::*;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

#[derive(Debug)]
struct Example {
    kind: String,
    lang: String,
    code: String,
    line: usize,
}

fn examples() -> Option<Vec<Example>> {
    let readme = std::fs::read_to_string(Path::new(MANIFEST).join("README.md")).ok()?;
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    let mut lines = readme.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        if let Some(kind) = line
            .strip_prefix("<!-- example: ")
            .and_then(|r| r.strip_suffix(" -->"))
        {
            marker = Some(kind.to_string());
            continue;
        }
        let lang = match line.trim_end() {
            "```sh" => "sh",
            "```python" => "python",
            l if l.starts_with("```") => {
                // Not an example (text, tables): skip the block.
                if l != "```" || marker.is_none() {
                    for (_, l) in lines.by_ref() {
                        if l.starts_with("```") {
                            break;
                        }
                    }
                }
                continue;
            }
            l if l.trim().is_empty() => continue,
            _ => {
                marker = None;
                continue;
            }
        };
        let mut code = String::new();
        for (_, l) in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            code.push_str(l);
            code.push('\n');
        }
        let kind = marker.take().unwrap_or_else(|| {
            panic!(
                "README.md line {}: a {lang} example without an <!-- example: KIND --> marker",
                n + 1
            )
        });
        out.push(Example {
            kind,
            lang: lang.into(),
            code,
            line: n + 1,
        });
    }
    Some(out)
}

/// The commands of a block: comments dropped, continuation lines joined.
fn commands(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in code.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

/// What CI runs: .ci/run and every script under ci/.
fn ci_scripts() -> String {
    let mut all = std::fs::read_to_string(Path::new(MANIFEST).join(".ci/run")).unwrap_or_default();
    for entry in std::fs::read_dir(Path::new(MANIFEST).join("ci")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sh") {
            all.push_str(&std::fs::read_to_string(path).unwrap());
        }
    }
    all
}

const WRAPPER: &str = r#"set -e
stage=$1 lang=$2 runs=$3
mount --make-rprivate /
# The stage and the binary may live under /tmp: keep them open across the
# mount that hides it.
exec 8<"$stage" 9<"$VPH_BIN"
mount -t tmpfs tmpfs /tmp
mkdir /tmp/bin
cp /proc/self/fd/9 /tmp/bin/virtfs-proxy-helper
cp /proc/self/fd/8/example /tmp/example
exec 8<&- 9<&-
cd /tmp
export PATH="/tmp/bin:$PATH"
cargo() {
  if [ "$1 $2 $3" = "run --release --" ]; then
    shift 3
    virtfs-proxy-helper "$@"
  else
    echo "README test: only 'cargo run --release --' has a stand-in" >&2
    return 1
  fi
}
set +e
for run in $(seq "$runs"); do
  case "$lang" in
    sh) (. /tmp/example) ;;
    python) python3 /tmp/example ;;
  esac
  status=$?
  echo "README-EXAMPLE-EXIT $status"
done
exit $status
"#;

struct Running {
    child: Child,
    log: PathBuf,
    _stage: tempfile::TempDir,
}

impl Running {
    fn start(ex: &Example, runs: u32) -> Self {
        let stage = tempfile::tempdir().unwrap();
        std::fs::write(stage.path().join("example"), &ex.code).unwrap();
        std::fs::write(stage.path().join("wrapper.sh"), WRAPPER).unwrap();
        let log = stage.path().join("log");
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "bash"])
            .arg(stage.path().join("wrapper.sh"))
            .arg(stage.path())
            .arg(&ex.lang)
            .arg(runs.to_string())
            .env("VPH_BIN", our_binary())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(&log).unwrap());
        // SAFETY: setsid only, between fork and exec: the example's
        // processes (QEMU among them) share this session and can be found.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        Running {
            child,
            log,
            _stage: stage,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A path inside the example's private /tmp.
    fn tmp(&self, rel: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root/tmp/{rel}", self.child.id()))
    }

    fn wait_for(&mut self, what: &str, limit: Duration, mut cond: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + limit;
        while !cond(self) {
            if Instant::now() > deadline || self.child.try_wait().unwrap().is_some() {
                let _ = self.child.kill();
                panic!("README example: no {what}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn finish(mut self, limit: Duration) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.log());
            }
            if Instant::now() > deadline {
                self.signal_session(libc::SIGKILL, |_| true);
                let _ = self.child.kill();
                panic!("README example did not finish:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `sig` to the processes of the example's session whose command
    /// name passes `pick`; returns how many there were.
    fn signal_session(&self, sig: i32, pick: impl Fn(&str) -> bool) -> usize {
        let sid = self.child.id() as i32;
        let mut n = 0;
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // pid (comm) state ppid pgrp session ...
            let Some((comm, rest)) = stat.split_once(" (").and_then(|(_, r)| r.rsplit_once(") "))
            else {
                continue;
            };
            let session: Option<i32> = rest.split(' ').nth(3).and_then(|s| s.parse().ok());
            if session == Some(sid) && pid != sid && pick(comm) {
                // SAFETY: a plain kill of a process of our own session.
                unsafe { libc::kill(pid, sig) };
                n += 1;
            }
        }
        n
    }
}

fn private_tmp_possible() -> bool {
    Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mount --make-rprivate / && mount -t tmpfs tmpfs /mnt",
        ])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn qemu_available() -> bool {
    Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn every_readme_example_runs_as_written() {
    let Some(examples) = examples() else {
        skip(
            "every_readme_example_runs_as_written",
            "README.md is not readable here",
        );
        return;
    };
    assert!(examples.len() >= 6, "{examples:?}");
    let ci = ci_scripts();
    let private_tmp = private_tmp_possible();
    let qemu = qemu_available();
    let mut ran = 0;
    for ex in &examples {
        let name = format!("README.md line {} ({})", ex.line, ex.kind);
        match ex.kind.as_str() {
            "ci" => {
                for command in commands(&ex.code) {
                    assert!(
                        ci.contains(&command),
                        "{name}: `{command}` is not run by .ci/run or ci/*.sh"
                    );
                }
                continue;
            }
            "run" | "serve" | "qemu" => {}
            other => panic!("{name}: unknown example kind {other:?}"),
        }
        if !private_tmp {
            skip(
                &name,
                "this process may not mount a private /tmp (unshare -m, tmpfs)",
            );
            continue;
        }
        if ex.kind == "qemu" && !qemu {
            skip(&name, "qemu-system-x86_64 is not installed");
            continue;
        }
        eprintln!("running {name}");
        match ex.kind.as_str() {
            "run" => {
                let (status, log) = Running::start(ex, 1).finish(Duration::from_secs(60));
                assert!(status.success(), "{name}:\n{log}");
            }
            "serve" => serve(ex, &name),
            _ => qemu_example(ex, &name),
        }
        ran += 1;
    }
    eprintln!("{ran} README examples ran");
}

/// The example waits for QEMU on /tmp/vph.sock; a client stands in for it,
/// twice, since the example runs twice in a row.
fn serve(ex: &Example, name: &str) {
    let mut run = Running::start(ex, 2);
    for round in 1..=2 {
        run.wait_for("'waiting for QEMU' line", Duration::from_secs(30), |r| {
            r.log().matches("waiting for QEMU").count() >= round
        });
        std::fs::write(run.tmp("share/f"), "abc").unwrap();
        let stream = std::os::unix::net::UnixStream::connect(run.tmp("vph.sock")).unwrap();
        let client = Helper::adopt(0, stream.into());
        assert_eq!(client.lstat("f").unwrap().size, 3, "{name}");
        drop(client);
        run.wait_for("exit line", Duration::from_secs(10), |r| {
            r.log().matches("README-EXAMPLE-EXIT").count() >= round
        });
    }
    let (status, log) = run.finish(Duration::from_secs(10));
    assert_eq!(
        log.matches("README-EXAMPLE-EXIT 0").count(),
        2,
        "{name}: both runs exit 0:\n{log}"
    );
    assert!(status.success(), "{name}:\n{log}");
}

/// The example starts QEMU; once QEMU is up and the helper serves it, QEMU
/// is stopped as an operator would, and everything must end cleanly.
fn qemu_example(ex: &Example, name: &str) {
    let mut run = Running::start(ex, 1);
    run.wait_for("QEMU process", Duration::from_secs(30), |r| {
        r.signal_session(0, |comm| comm.starts_with("qemu-system")) > 0
    });
    if ex.lang == "sh" {
        // The helper removes its socket file once QEMU has connected.
        run.wait_for(
            "connection (socket file still there)",
            Duration::from_secs(30),
            |r| !r.tmp("vph.sock").exists(),
        );
    } else {
        run.wait_for("helper start-up", Duration::from_secs(30), |r| {
            r.log().contains("serving the connection inherited as fd 3")
        });
    }
    // Let QEMU finish initialising its devices before it is stopped.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        run.signal_session(libc::SIGTERM, |comm| comm.starts_with("qemu-system")),
        1,
        "{name}"
    );
    let (status, log) = run.finish(Duration::from_secs(30));
    assert!(status.success(), "{name}:\n{log}");
    if ex.lang == "python" {
        assert!(log.contains("client disconnected; done"), "{name}:\n{log}");
    }
}
