use clap::{CommandFactory, Parser, error::ErrorKind};
use std::process::ExitCode;
use virtfs_proxy_helper::{app, cli::Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(msg) = app::validate(&cli) {
        Cli::command().error(ErrorKind::ValueValidation, msg).exit();
    }
    app::run(cli)
}
