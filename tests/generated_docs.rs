//! `berth completions <shell>` and `berth man` come from the same clap
//! definitions as `--help`: a flag added there shows up in both.

use std::process::Command;

fn berth(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .output()
        .expect("run berth");
    assert!(
        out.status.success(),
        "berth {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
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
