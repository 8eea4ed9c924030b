//! `--sandbox-report`: every layer applied for real in a throwaway child
//! process, which prints what happened; the same steps as a real start
//! ([`super::apply_layers`]), in record mode.

use super::{Checked, apply_layers, open_root};
use crate::cli::Cli;
use crate::error::SetupError;
use crate::logging;
use crate::process::{self, Forked};
use crate::sandbox::{OnFailure, Outcome, Report};
use rustix::fd::AsFd;
use std::io::Write;
use std::process::ExitCode;

/// `--sandbox-report`: applies every layer for real in a throwaway child
/// process, which prints what happened; exits 1 when a layer a real run
/// requires failed there.
pub(super) fn sandbox_report(cli: &Cli, mut checked: Checked) -> ExitCode {
    let root = match open_root(cli) {
        Ok(root) => root,
        Err(SetupError(msg)) => {
            eprintln!("{}: {msg}", logging::PROGRAM);
            return ExitCode::FAILURE;
        }
    };
    // The janitor only exists with --socket; its confinement is tried all
    // the same, in a throwaway process of its own.
    let janitor = match crate::endpoint::try_janitor_confinement(cli.seccomp.into()) {
        Ok(text) => Outcome::Active(format!("{text} (tried; it runs with --socket)")),
        Err(why) => Outcome::Fails(why),
    };
    let _ = std::io::stdout().flush();
    // The child ends in `exit_now` and never returns here.
    match process::fork() {
        Err(e) => {
            eprintln!("{}: forking the trial process: {e}", logging::PROGRAM);
            ExitCode::FAILURE
        }
        Ok(Forked::Child) => {
            let report = match apply_layers(cli, root.as_fd(), &mut checked, OnFailure::Record) {
                Ok((_, _, confined)) => Report {
                    janitor,
                    ..confined.report
                },
                // Record mode does not stop; keep the text if it ever did.
                Err(SetupError(msg)) => {
                    eprintln!("{}: {msg}", logging::PROGRAM);
                    process::exit_now(1)
                }
            };
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{report}");
            let _ = out.flush();
            let status = i32::from(!report.failures().is_empty());
            process::exit_now(status)
        }
        Ok(Forked::Parent(pid)) => wait_for_trial(pid),
    }
}

fn wait_for_trial(pid: libc::pid_t) -> ExitCode {
    let status = match process::wait(pid) {
        Ok(status) => status,
        Err(e) => {
            eprintln!("{}: waiting for the trial process: {e}", logging::PROGRAM);
            return ExitCode::FAILURE;
        }
    };
    if libc::WIFEXITED(status) {
        return ExitCode::from(libc::WEXITSTATUS(status) as u8);
    }
    eprintln!(
        "{}: the trial process was killed by signal {} while applying the layers",
        logging::PROGRAM,
        libc::WTERMSIG(status)
    );
    ExitCode::FAILURE
}
