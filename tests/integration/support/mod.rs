//! Helpers for the integration tests: the test bed, throwaway git repos,
//! running the berth binary, and looking at the hosts directly (through each
//! engine's own socket, not through berth) to check what berth did.
//!
//! [`Bed::take`] (in `session.rs`) is how a test gets the bed: brought up
//! once per run, held by one test at a time.

pub mod gpg;
mod session;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Why a test failed, as the message a person reads. A test that returns
/// `Result<(), Failed>` can use `check!` and `?` on any error that displays
/// (`io::Error`, a `String`, a `&str`); the harness prints the message as
/// is, newlines and all (that is what this `Debug` is for).
pub struct Failed(String);

impl<E: std::fmt::Display> From<E> for Failed {
    fn from(e: E) -> Failed {
        Failed(e.to_string())
    }
}

impl std::fmt::Debug for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `check!(condition, "format", args...)`: fails the test with that message
/// when the condition is false (an `assert!` that returns a [`Failed`], so
/// the test's guards still clean up in order).
macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+).into());
        }
    };
}

/// The three-host bed: what `tests/bed/testbed.sh up` wrote to `bed.env`.
#[derive(Debug, Clone)]
pub struct Bed {
    pub env: BTreeMap<String, String>,
    pub script: PathBuf,
}

pub const HOSTS: [&str; 3] = ["edge-1", "edge-2", "edge-3"];

impl Bed {
    pub fn script_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bed/testbed.sh")
    }

    pub fn dir() -> PathBuf {
        std::env::var_os("BERTH_BED_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/tmp/berth-bed"))
    }

    pub fn is_up() -> bool {
        Command::new("bash")
            .arg(Self::script_path())
            .arg("status")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// Runs `testbed.sh up`; its progress goes to our stderr. Ok(true) when
    /// it built the bed from scratch, Ok(false) when it only completed a bed
    /// that was up (added its bastion): that one is not ours to tear down.
    pub fn bring_up() -> Result<bool, String> {
        let out = Command::new("bash")
            .arg(Self::script_path())
            .arg("up")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", Self::script_path().display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        session::say(stdout.trim_end());
        let status = out.status;
        if status.success() {
            Ok(stdout.contains("bed up in"))
        } else {
            Err(format!(
                "`{} up` exited with {status}",
                Self::script_path().display()
            ))
        }
    }

    pub fn tear_down() {
        let _ = Command::new("bash")
            .arg(Self::script_path())
            .arg("down")
            .stdin(std::process::Stdio::null())
            .status();
    }

    pub fn load() -> Result<Bed, String> {
        let path = Self::dir().join("bed.env");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let env = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
            .collect();
        Ok(Bed {
            env,
            script: Self::script_path(),
        })
    }

    pub fn get(&self, key: &str) -> String {
        self.env
            .get(key)
            .cloned()
            .unwrap_or_else(|| panic!("bed.env has no {key}"))
    }

    pub fn addr(&self, host: &str) -> String {
        self.get(&format!("BED_ADDR_{}", host.replace('-', "_")))
    }

    pub fn sock(&self, host: &str) -> String {
        self.get(&format!("BED_SOCK_{}", host.replace('-', "_")))
    }

    /// `testbed.sh sshd-stop edge-3` and friends.
    pub fn control(&self, verb: &str, host: &str) {
        let out = Command::new("bash")
            .arg(&self.script)
            .args([verb, host])
            .output()
            .expect("run testbed.sh");
        assert!(
            out.status.success(),
            "testbed.sh {verb} {host} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// berth.yaml for the bed's three hosts, with `project` as the scope.
    pub fn inventory(&self, project: &str) -> String {
        format!(
            "project: {project}\n\
             defaults:\n  user: root\n  identity_file: {key}\n\
             settings:\n  known_hosts: {kh}\n  connect_timeout: 5s\n{insecure}\
             hosts:\n\
             \x20 - name: edge-1\n    address: {a1}\n    secrets_dir: {s1}\n    labels: {{ role: web, zone: a }}\n\
             \x20 - name: edge-2\n    address: {a2}\n    secrets_dir: {s2}\n    labels: {{ role: web, zone: b }}\n\
             \x20 - name: edge-3\n    address: {a3}\n    secrets_dir: {s3}\n    labels: {{ role: worker, zone: b }}\n",
            key = self.get("BED_KEY"),
            kh = self.get("BED_KNOWN_HOSTS"),
            insecure = self.insecure_registries(),
            a1 = self.addr("edge-1"),
            a2 = self.addr("edge-2"),
            a3 = self.addr("edge-3"),
            s1 = self.secrets_dir("edge-1"),
            s2 = self.secrets_dir("edge-2"),
            s3 = self.secrets_dir("edge-3"),
        )
    }

    /// `settings.insecure_registries` naming the bed's registries (plain
    /// HTTP), as a berth.yaml line.
    pub fn insecure_registries(&self) -> String {
        let registries: Vec<String> = ["BED_REGISTRY", "BED_AUTH_REGISTRY"]
            .iter()
            .filter_map(|k| self.env.get(*k))
            .map(|r| format!("\"{r}\""))
            .collect();
        format!("  insecure_registries: [{}]\n", registries.join(", "))
    }

    /// A throwaway repo whose berth.yaml is [`Bed::inventory`] for `project`.
    pub fn repo(&self, project: &str) -> Repo {
        let repo = Repo::new();
        repo.write("berth.yaml", &self.inventory(project));
        repo
    }

    /// The host's `secrets_dir` (its own tmpfs; see testbed.sh).
    pub fn secrets_dir(&self, host: &str) -> String {
        self.get(&format!("BED_SECRETS_DIR_{}", host.replace('-', "_")))
    }

    /// Runs `command` on the host over SSH, as berth reaches it.
    pub fn ssh(&self, host: &str, command: &str) -> Output {
        self.ssh_command(host, command).output().expect("run ssh")
    }

    fn ssh_command(&self, host: &str, command: &str) -> Command {
        let mut ssh = Command::new("ssh");
        ssh.args(["-i", &self.get("BED_KEY")])
            .args([
                "-o",
                &format!("UserKnownHostsFile={}", self.get("BED_KNOWN_HOSTS")),
            ])
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
            .args(["-o", "ConnectTimeout=5"])
            .arg(format!("root@{}", self.addr(host)))
            .arg(command)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        ssh
    }

    /// The docker CLI against one host's engine socket (bypassing berth).
    pub fn docker(&self, host: &str, args: &[&str]) -> Output {
        Command::new(docker_cli())
            .arg("-H")
            .arg(format!("unix://{}", self.sock(host)))
            .args(args)
            .output()
            .expect("run docker CLI")
    }

    pub fn docker_ok(&self, host: &str, args: &[&str]) -> String {
        let out = self.docker(host, args);
        assert!(
            out.status.success(),
            "docker {args:?} on {host} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Containers of `project` on `host`: name -> (id, created, image, state).
    /// The image is as the repo names it: the `berth.image` label of a
    /// container created from its pinned digest, else what it was created from.
    pub fn containers(&self, host: &str, project: &str) -> BTreeMap<String, Container> {
        let out = self.docker_ok(
            host,
            &[
                "ps",
                "-a",
                "--no-trunc",
                "--filter",
                &format!("label=berth.project={project}"),
                "--format",
                "{{.Names}}\t{{.ID}}\t{{.Image}}\t{{.State}}\t{{.Label \"berth.image\"}}",
            ],
        );
        out.lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                let created = self
                    .docker_ok(host, &["inspect", "-f", "{{.Created}}", f[1]])
                    .trim()
                    .to_string();
                (
                    f[0].to_string(),
                    Container {
                        id: f[1].to_string(),
                        image: f
                            .get(4)
                            .filter(|tag| !tag.is_empty())
                            .unwrap_or(&f[2])
                            .to_string(),
                        state: f[3].to_string(),
                        created,
                    },
                )
            })
            .collect()
    }

    /// Removes everything `project` left on every host (containers only;
    /// volumes named `<project>...` too, so reruns start clean).
    pub fn clean(&self, project: &str) {
        self.clean_on(project, &HOSTS);
    }

    /// [`Bed::clean`] on `hosts` only (a test whose runs reach only those,
    /// while another test breaks a host of its own).
    pub fn clean_on(&self, project: &str, hosts: &[&str]) {
        // The commit the project's last apply recorded beside its run lock,
        // removed on the hosts at once (over SSH: it lives in sshd's /run).
        let forget: Vec<_> = hosts
            .iter()
            .filter_map(|host| {
                self.ssh_command(
                    host,
                    &format!(
                        "rm -f /run/lock/berth-{project}.lock.applied /tmp/berth-{project}.lock.applied"
                    ),
                )
                .spawn()
                .ok()
            })
            .collect();
        for &host in hosts {
            let ids = self.docker_ok(
                host,
                &[
                    "ps",
                    "-aq",
                    "--filter",
                    &format!("label=berth.project={project}"),
                ],
            );
            for id in ids.split_whitespace() {
                let _ = self.docker(host, &["rm", "-f", id]);
            }
            let vols = self.docker_ok(
                host,
                &[
                    "volume",
                    "ls",
                    "-q",
                    "--filter",
                    &format!("label=berth.project={project}"),
                ],
            );
            for v in vols.split_whitespace() {
                let _ = self.docker(host, &["volume", "rm", "-f", v]);
            }
        }
        for mut child in forget {
            let _ = child.wait();
        }
    }

    /// Cleans `project` off every host now and again when the scope ends,
    /// even when the test fails, so one test's leftovers never break another.
    pub fn scope(&self, project: &str) -> Scope<'_> {
        self.clean(project);
        Scope {
            bed: self,
            project: project.to_string(),
            hosts: HOSTS.to_vec(),
        }
    }

    /// [`Bed::scope`] on `hosts` only (see [`Bed::clean_on`]).
    pub fn scope_on(&self, project: &str, hosts: &[&'static str]) -> Scope<'_> {
        self.clean_on(project, hosts);
        Scope {
            bed: self,
            project: project.to_string(),
            hosts: hosts.to_vec(),
        }
    }

    /// GET http://<host address>:<port>/ from the runner, bounded to 5 s.
    pub fn http_get(&self, host: &str, port: u16) -> String {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "5"])
            .arg(format!("http://{}:{port}/", self.addr(host)))
            .output()
            .expect("run curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

pub struct Scope<'a> {
    bed: &'a Bed,
    project: String,
    hosts: Vec<&'static str>,
}

impl Drop for Scope<'_> {
    fn drop(&mut self) {
        self.bed.clean_on(&self.project, &self.hosts);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub image: String,
    pub state: String,
    pub created: String,
}

pub fn docker_cli() -> &'static str {
    if Path::new("/usr/bin/docker").exists() {
        "/usr/bin/docker"
    } else {
        "docker"
    }
}

/// A throwaway git repo holding a berth repo; commits with a fixed identity.
pub struct Repo {
    pub dir: tempfile::TempDir,
}

impl Repo {
    pub fn new() -> Repo {
        let dir = tempfile::Builder::new()
            .prefix("berth-repo-")
            .tempdir()
            .expect("tempdir");
        let repo = Repo { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.path().display())
    }

    pub fn write(&self, rel: &str, content: &str) -> &Self {
        write_file(self.path(), rel, content);
        self
    }

    pub fn write_bytes(&self, rel: &str, content: &[u8]) -> &Self {
        write_file(self.path(), rel, content);
        self
    }

    pub fn remove(&self, rel: &str) -> &Self {
        let p = self.path().join(rel);
        if p.is_dir() {
            std::fs::remove_dir_all(p).expect("rm -r");
        } else {
            std::fs::remove_file(p).expect("rm");
        }
        self
    }

    pub fn git(&self, args: &[&str]) -> String {
        self.git_env(args, &[])
    }

    /// `git` with extra environment (e.g. GNUPGHOME for `commit -S`).
    pub fn git_env(&self, args: &[&str], env: &[(&str, &Path)]) -> String {
        let out = Command::new("git")
            .current_dir(self.path())
            .env("GIT_AUTHOR_NAME", "Berth Test")
            .env("GIT_AUTHOR_EMAIL", "test@berth.invalid")
            .env("GIT_COMMITTER_NAME", "Berth Test")
            .env("GIT_COMMITTER_EMAIL", "test@berth.invalid")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .envs(env.iter().copied())
            .args(args)
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Commits everything, signed by `fpr` with GnuPG (`git commit -S`);
    /// returns the commit id.
    pub fn commit_signed(&self, message: &str, gpg: &gpg::Gpg, fpr: &str) -> String {
        self.git(&["add", "-A"]);
        let key = format!("user.signingkey={fpr}");
        self.git_env(
            &[
                "-c",
                "gpg.program=gpg",
                "-c",
                &key,
                "commit",
                "-q",
                "-S",
                "--allow-empty",
                "-m",
                message,
            ],
            &[("GNUPGHOME", gpg.home())],
        );
        self.git(&["rev-parse", "HEAD"]).trim().to_string()
    }

    /// Commits everything; returns the commit id.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"]).trim().to_string()
    }
}

/// What a berth run showed the user.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub command: String,
}

impl Run {
    fn new(out: Output, command: String) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            command,
        }
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$ {}\nexit code: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }
}

/// Writes `root/rel`, creating the directories on the way.
pub fn write_file(root: &Path, rel: &str, content: impl AsRef<[u8]>) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, content).expect("write");
}

/// Variables of the runner's environment that would change what berth does.
const BERTH_VARS: &[&str] = &[
    "BERTH_REPO",
    "BERTH_KEY",
    "BERTH_KEY_FILE",
    "BERTH_KEY_PASSPHRASE",
    "BERTH_TRUST",
    "BERTH_LOG",
    "EDITOR",
    "VISUAL",
    // Read by the error tests as an unset Compose variable.
    "TAG",
];

/// The berth binary in `cwd`, with a private cache dir, no colour, and none
/// of [`BERTH_VARS`] from the runner's environment.
fn berth_command(cwd: &Path) -> Command {
    let cache = std::env::temp_dir().join("berth-test-cache");
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .current_dir(cwd)
        .env("BERTH_CACHE_DIR", &cache)
        .env("NO_COLOR", "1");
    for var in BERTH_VARS {
        command.env_remove(var);
    }
    command
}

/// Runs the berth binary with `args`, in `cwd`, with a private cache dir.
pub fn berth(cwd: &Path, args: &[&str]) -> Run {
    berth_env(cwd, args, &[])
}

/// [`berth`] with extra environment variables (keys, editors).
pub fn berth_env(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = berth_command(cwd)
        .envs(env.iter().copied())
        .args(args)
        .output()
        .expect("run berth");
    Run::new(out, format!("berth {}", args.join(" ")))
}

/// Starts berth without waiting for it (for concurrent runs and kill -9).
pub fn berth_spawn(cwd: &Path, args: &[&str]) -> std::process::Child {
    berth_command(cwd)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start berth")
}

/// Waits for a spawned berth and collects what it showed.
pub fn finish(child: std::process::Child, command: &str) -> Run {
    let out = child.wait_with_output().expect("wait for berth");
    Run::new(out, command.to_string())
}

/// Asserts the exit code, printing the whole run when it differs.
#[track_caller]
pub fn expect_code(run: &Run, code: i32) {
    assert_eq!(run.code, code, "unexpected exit code\n{run}");
}
