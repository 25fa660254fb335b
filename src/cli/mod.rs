//! cli: the command line, defined once with clap derive; doc comments become
//! `--help`. Each command turns its arguments into its `ops` options, calls
//! that one op, renders the outcome ([`render`]) and maps it to an exit code
//! ([`exit::code`]). Nothing outside `cli` knows clap; nothing in `cli`
//! decides anything about hosts or plans.

mod args;
mod docs;
pub mod exit;
mod import;
mod key;
mod outcome;
mod render;
mod secret;
mod signals;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser as _;

use crate::error::Error;
use crate::ops;
use args::{Cli, Command, LogFormat};
use outcome::Outcome;
use render::Rendering;

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    // Before any thread or child process exists: the key must not be
    // inherited by ssh, `sh` or $EDITOR.
    key::take_key_env();
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            render::error(&Error::from(
                anyhow::Error::new(e).context("cannot start the async runtime"),
            ));
            return ExitCode::from(exit::ERROR);
        }
    };
    let code = runtime.block_on(dispatch(cli.command));
    ExitCode::from(code)
}

async fn dispatch(command: Command) -> u8 {
    match command {
        Command::Validate(args) => {
            let how = Rendering::new("validate");
            let result = ops::validate(&args.options()).await;
            finish(result.map(Outcome::Validated), false, &how)
        }
        Command::Plan(args) => {
            let how = args.rendering();
            let result = ops::plan(&args.options()).await;
            finish(result.map(Outcome::Planned), args.detailed_exitcode, &how)
        }
        Command::Apply(args) => {
            let how = args.rendering();
            let options = args.options();
            let signals = tokio::spawn(signals::watch(options.stop.clone()));
            let result = ops::apply(&options, render::show_plan).await;
            let code = finish(result.map(Outcome::Applied), args.detailed_exitcode, &how);
            // A signal from here on ends berth as it would without a watcher.
            signals.abort();
            code
        }
        Command::Status(args) => {
            let how = args.rendering();
            let result = ops::status(&args.options()).await;
            finish(result.map(Outcome::Status), false, &how)
        }
        Command::Completions { shell } => docs::completions(shell),
        Command::Man => docs::man(),
        Command::Config(args) => match ops::config(&args.options()) {
            Ok(resolved) => {
                print!("{}", resolved.yaml);
                exit::OK
            }
            Err(e) => {
                render::error(&e);
                exit::ERROR
            }
        },
        Command::Import(args) => match ops::import(&args.options()).await {
            Ok(report) => {
                print!("{}", import::report(&report));
                exit::OK
            }
            Err(e) => {
                render::error(&e);
                exit::ERROR
            }
        },
        Command::Secret(args) => secret::run(args).unwrap_or_else(|e| {
            render::error(&Error::from(e));
            exit::ERROR
        }),
    }
}

/// Renders a command's result and returns its exit code.
fn finish(result: Result<Outcome, Error>, detailed: bool, how: &Rendering) -> u8 {
    let code = exit::code(&result, detailed);
    let shown =
        result.and_then(|outcome| render::outcome(&outcome, code, how).map_err(Error::from));
    match shown {
        Ok(()) => code,
        Err(e) => {
            render::error(&e);
            exit::ERROR
        }
    }
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let level = if cli.quiet {
        "error"
    } else {
        match cli.verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        }
    };
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("berth={level},warn")))
    };
    let tty = std::io::stderr().is_terminal();
    let color = tty && std::env::var_os("NO_COLOR").is_none();
    match cli.log_format {
        LogFormat::Json => tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .with_target(false)
            .json()
            .init(),
        // Spinners for pulls and rollouts only on a terminal, never in a log
        // file or a CI job's output.
        LogFormat::Text if tty && !cli.quiet => {
            let progress = tracing_indicatif::IndicatifLayer::new();
            tracing_subscriber::registry()
                .with(filter())
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(progress.get_stderr_writer())
                        .with_target(false)
                        .with_ansi(color)
                        .without_time(),
                )
                .with(progress)
                .init();
        }
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_ansi(color)
            .without_time()
            .init(),
    }
}
