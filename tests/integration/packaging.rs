//! The Debian package, as an operator gets it: built by
//! `packaging/deb/build.sh` (cargo-deb) from the berth binary these tests
//! run, installed on this machine with `apt-get install ./berth_*.deb`, then
//! looked at: `berth --version`, `man -w berth`, completions, the systemd
//! units verified with `systemd-analyze verify` and left disabled,
//! /etc/berth/berth.env a conffile readable by the `berth` group only.
//! The package is purged at the end, also when the test fails.
//!
//! Needs root, apt and cargo-deb (ci/install-deps.sh installs it); fails,
//! saying so, without them.

use std::path::Path;
use std::process::{Command, Output};

fn text(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn run_ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {}:\n{}",
        args.join(" "),
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Purges the package when the test ends, passed or failed.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = run("apt-get", &["purge", "-y", "-qq", "berth"]);
    }
}

#[test]
fn debian_package_installs_with_apt_and_ships_man_page_units_and_conffile() {
    // The effective uid, from /proc.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        == Some("0");
    assert!(
        root,
        "installing the package needs root (the project's tests and CI run as root)"
    );
    let cargo_deb = Command::new("cargo")
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        cargo_deb,
        "cargo-deb is not installed: run ci/install-deps.sh (cargo install cargo-deb --locked)"
    );

    // The binary cargo test built, packaged as it is (no second build).
    let binary = env!("CARGO_BIN_EXE_berth");
    let out_dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/deb/build.sh");
    let built = Command::new("bash")
        .arg(&script)
        .args(["--binary", binary, "--output"])
        .arg(out_dir.path())
        .output()
        .expect("run packaging/deb/build.sh");
    assert!(built.status.success(), "build.sh:\n{}", text(&built));
    // cargo-deb warns of what will become errors (packaging the `dev`
    // profile did): the packaging must give it nothing to warn about.
    let said = String::from_utf8_lossy(&built.stderr).to_lowercase();
    assert!(!said.contains("warning"), "build.sh:\n{}", text(&built));
    let deb = std::fs::read_dir(out_dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .unwrap_or_else(|| panic!("build.sh made no .deb:\n{}", text(&built)));
    let name = deb.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!("berth_{}-", env!("CARGO_PKG_VERSION"))),
        "package file {name}"
    );

    // What the package says about itself.
    let deb_path = deb.display().to_string();
    let depends = run_ok("dpkg-deb", &["--field", &deb_path, "Depends"]);
    for want in ["openssh-client", "git", "adduser", "libc6"] {
        assert!(
            depends.split(',').any(|d| d.trim().starts_with(want)),
            "Depends: {depends}"
        );
    }
    let contents = run_ok("dpkg-deb", &["--contents", &deb_path]);
    for want in [
        "./usr/bin/berth",
        "./usr/share/man/man1/berth.1.gz",
        "./usr/share/bash-completion/completions/berth",
        "./usr/share/zsh/vendor-completions/_berth",
        "./usr/share/fish/vendor_completions.d/berth.fish",
        "./lib/systemd/system/berth-apply.service",
        "./lib/systemd/system/berth-apply.timer",
        "./etc/berth/berth.env",
    ] {
        assert!(
            contents.lines().any(|l| l.ends_with(want)),
            "{name} lacks {want}:\n{contents}"
        );
    }

    // apt-get install ./file.deb, as the README says; purged at the end.
    let _purge = Purge;
    let local = format!("./{name}");
    let out = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends", &local])
        .current_dir(out_dir.path())
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run apt-get");
    assert!(
        out.status.success(),
        "apt-get install {local}:\n{}",
        text(&out)
    );

    let version = run_ok("/usr/bin/berth", &["--version"]);
    assert_eq!(
        version.trim(),
        concat!("berth ", env!("CARGO_PKG_VERSION")),
        "berth --version from the package"
    );
    let man = run_ok("man", &["-w", "berth"]);
    assert_eq!(man.trim(), "/usr/share/man/man1/berth.1.gz", "man -w berth");
    let page = run_ok("zcat", &["/usr/share/man/man1/berth.1.gz"]);
    assert!(
        page.contains(".TH berth"),
        "the man page is roff: {page:.200}"
    );
    // `man berth` as a reader runs it (its pager: cat), rendered cleanly.
    let shown = Command::new("man")
        .args(["-P", "cat", "berth"])
        .env("MANWIDTH", "80")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run man");
    let rendered = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.status.success()
            && shown.stderr.is_empty()
            && rendered.contains("NAME")
            && rendered.contains("Declarative GitOps")
            && rendered.contains("import"),
        "man berth:\n{}",
        text(&shown)
    );

    // The units: valid, running the packaged binary, not enabled.
    let service = std::fs::read_to_string("/lib/systemd/system/berth-apply.service").unwrap();
    assert!(
        service.contains("\nExecStart=/usr/bin/berth apply "),
        "the packaged unit should run /usr/bin/berth:\n{service}"
    );
    let out = Command::new("systemd-analyze")
        .args([
            "verify",
            "--man=no",
            "/lib/systemd/system/berth-apply.service",
            "/lib/systemd/system/berth-apply.timer",
        ])
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("run systemd-analyze");
    let complaints: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .chain(String::from_utf8_lossy(&out.stdout).lines())
        .filter(|l| l.contains("berth-apply"))
        .map(str::to_string)
        .collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "systemd-analyze verify of the installed units:\n{}",
        text(&out)
    );
    for wants in [
        "/etc/systemd/system/timers.target.wants/berth-apply.timer",
        "/etc/systemd/system/multi-user.target.wants/berth-apply.service",
    ] {
        assert!(
            !Path::new(wants).exists(),
            "{wants}: the package must not enable the units"
        );
    }

    // The settings: a conffile (kept on upgrade), root:berth 0640.
    let conffiles = run_ok("dpkg-query", &["-W", "-f=${Conffiles}", "berth"]);
    assert!(
        conffiles.contains("/etc/berth/berth.env"),
        "conffiles: {conffiles}"
    );
    let stat = run_ok(
        "stat",
        &["-c", "%U:%G %a", "/etc/berth/berth.env", "/etc/berth"],
    );
    assert_eq!(
        stat.lines().collect::<Vec<_>>(),
        ["root:berth 640", "root:berth 750"],
        "/etc/berth/berth.env and /etc/berth"
    );
    let user = run_ok("getent", &["passwd", "berth"]);
    assert!(
        user.contains(":/var/lib/berth:/usr/sbin/nologin"),
        "the berth system user: {user}"
    );
}
