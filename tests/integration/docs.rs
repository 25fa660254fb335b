//! `berth completions <shell>` and `berth man` come from the same clap
//! definitions as `--help`: a flag added there shows up in both.

use std::path::Path;

use crate::support::expect_code;

fn berth(args: &[&str]) -> String {
    let run = crate::support::berth(Path::new(env!("CARGO_MANIFEST_DIR")), args);
    expect_code(&run, 0);
    run.stdout
}

#[test]
fn completions_know_every_command_and_flag() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = berth(&["completions", shell]);
        for word in [
            "apply",
            "plan",
            "status",
            "validate",
            "secret",
            "ssh-config",
            "lock-timeout",
        ] {
            assert!(script.contains(word), "{shell} completions lack `{word}`");
        }
    }
}

#[test]
fn the_man_page_is_roff_with_the_commands_and_exit_codes() {
    let page = berth(&["man"]);
    assert!(
        page.starts_with(".ie") || page.contains(".TH berth"),
        "{page}"
    );
    for word in ["apply", "validate", "Exit codes", "BERTH_KEY_PASSPHRASE"] {
        assert!(page.contains(word), "the man page lacks `{word}`:\n{page}");
    }
}
