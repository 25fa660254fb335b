//! Shell completions and the man page, generated from the one clap
//! definition of the command line, so they never disagree with `--help`.

use std::io::Write as _;

use clap::CommandFactory as _;

use super::args::Cli;
use super::exit;
use crate::error::Error;

/// `berth completions <shell>`: the script on stdout.
pub fn completions(shell: clap_complete::Shell) -> u8 {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "berth", &mut out);
    print(&out)
}

/// `berth man`: the man page (roff) on stdout.
pub fn man() -> u8 {
    let mut out = Vec::new();
    match clap_mangen::Man::new(Cli::command()).render(&mut out) {
        Ok(()) => print(&out),
        Err(e) => {
            super::render::error(&Error::from(
                anyhow::Error::new(e).context("cannot render the man page"),
            ));
            exit::ERROR
        }
    }
}

fn print(bytes: &[u8]) -> u8 {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => exit::OK,
        // A closed pipe (`| head`) is not worth an error message.
        Err(_) => exit::ERROR,
    }
}
