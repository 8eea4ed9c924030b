use clap::{CommandFactory, Parser, error::ErrorKind};
use std::process::ExitCode;
use virtfs_proxy_helper::{app, cli::Cli};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            // Every misuse: one line, then the usage (clap leaves it out of
            // some errors, such as an invalid value).
            let text = e.render().to_string();
            eprint!("{text}");
            if !text.contains("Usage:") {
                eprintln!("\n{}", Cli::command().render_usage());
            }
            return ExitCode::from(2);
        }
    };
    let checked = match app::validate(&cli) {
        Ok(checked) => checked,
        // Exit status 2, like every other misuse of the command line.
        Err(msg) => Cli::command().error(ErrorKind::ValueValidation, msg).exit(),
    };
    app::run(cli, checked)
}
