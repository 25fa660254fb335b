//! The command line, defined once with clap derive (doc comments become
//! `--help`, the man page and the completions), and how each command's
//! arguments become its `ops` options.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::key::key_options;
use super::render::{PlanFormat, Rendering};
use super::secret;
use crate::ops;
use crate::source::{GitSsh, SourceOptions};

/// Declarative GitOps for Docker hosts: plan and apply Compose stacks from a
/// git repo onto hosts over SSH.
///
/// berth reads `berth.yaml` (the hosts) and `stacks/<name>/compose.yaml` (what
/// runs), compares them with the containers on every host, prints a plan, and
/// with `apply` makes the hosts match: pulls, creates, replaces changed
/// containers (health-gated, rolled back on failure) and removes what left the
/// repo. Named volumes are never removed.
#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(after_long_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// More log output (-v: debug, -vv: trace). Logs go to stderr.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Less log output: errors only.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// Exit codes, and every environment variable berth reads that is not the
/// `env` of a flag above (those are shown with their flag).
const AFTER_HELP: &str = "\
Exit codes:
  0  no changes / converged
  1  error (bad input, unreachable host, failed step; other hosts still converge)
  2  with --detailed-exitcode: changes planned (plan) or made (apply)
  3  apply: another berth run held a host's lock past --lock-timeout (nothing changed)
  4  apply: stopped by SIGTERM or SIGINT: no new batch started, the one in flight
     finished or was rolled back, locks released, --report/--metrics written;
     a second signal ends berth at once (128 + the signal: 130, 143), slots
     still whole (the next run finishes)

A host that stops answering mid-apply is dropped from the run (its containers
are left as they are, never half-made) and the others go on: exit 1, and the
report names it `unreachable`. A release that fails its gates is `rolled back`
per `failure_action`.

Environment (besides each flag's own variable, shown with the flag):
  BERTH_KEY             the runner's armoured OpenPGP secret key itself (apply,
                        secret); taken out of the environment at start
  BERTH_KEY_PASSPHRASE  unlocks a passphrase-protected key
  BERTH_LOG             log filter, overriding -v/-q (e.g. `berth=debug`)
  NO_COLOR              no colours in logs
  XDG_CACHE_HOME, HOME  where git URLs are cloned by default (--cache-dir);
                        HOME also holds ~/.docker (--docker-config) and
                        ~/.ssh (keys and known_hosts for fetching the repo)
  GIT_SSH_KEY, SSH_AUTH_SOCK
                        more SSH keys for fetching the repo over ssh://, after
                        --git-ssh-key: that file, then ssh-agent
  BERTH_KNOWN_HOSTS     also the host keys checked when fetching the repo
                        (--known-hosts; read by `validate` too)
  VISUAL, EDITOR        the editor of `berth secret edit` (or --editor)
  XDG_RUNTIME_DIR, TMPDIR
                        tmpfs candidates for `berth secret edit`'s plaintext
  USER                  the user name offered to git servers";

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the repo (berth.yaml and every stack) without contacting any host.
    ///
    /// Reports every problem at once, each with file:line:col and what to do.
    Validate(SourceArgs),
    /// Show what apply would change, without changing anything.
    ///
    /// Connects to every host, reads the containers berth manages there and
    /// prints the diff: `+` create, `~` replace (with the fields that changed),
    /// `-` remove. Changes found on the hosts while the repo did not move are
    /// marked [drift].
    Plan(PlanArgs),
    /// Make the hosts match the repo.
    ///
    /// Computes the plan, prints it, then executes it: hosts in parallel; on
    /// each host removals first, then creates and replaces in depends_on order,
    /// each new container gated on running and healthy. A failed replace puts
    /// the old container back. Running it again with nothing changed makes no
    /// change on any host.
    Apply(ApplyArgs),
    /// Show, per host, the containers berth manages and whether each matches the repo.
    Status(StatusArgs),
    /// Work with the repo's OpenPGP-encrypted secrets: encrypt, decrypt,
    /// edit, list recipients, re-encrypt to berth.yaml's recipients.
    ///
    /// A stack's Compose `secrets:` point at encrypted files
    /// (`file: ./secrets/db.pgp`); `berth apply` decrypts them with the
    /// runner's key and delivers them as read-only files on the host's tmpfs,
    /// mounted at `/run/secrets/<name>`. Files from `gpg --encrypt` and `sq
    /// encrypt` work as they are.
    Secret(secret::SecretArgs),
    /// Print a shell completion script for berth.
    ///
    /// For example: `berth completions bash > /etc/bash_completion.d/berth`,
    /// or `berth completions zsh > "${fpath[1]}/_berth"`.
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print berth's man page (roff), from the same definitions as --help.
    ///
    /// For example: `berth man > /usr/local/share/man/man1/berth.1`.
    Man,
    /// Print the resolved Compose model of a stack, as berth understood it.
    ///
    /// Variables interpolated, `extends` and `include` merged, profiles
    /// applied and every default filled in, like `docker compose config`.
    /// Reads a local checkout only and contacts no host.
    Config(ConfigArgs),
    /// Write a repo that reproduces the containers running on a host, so
    /// berth can take them over.
    ///
    /// Reads every running container on the host that berth does not manage
    /// (over the same SSH connection as `plan`) and writes one
    /// `stacks/<name>/compose.yaml` per Compose project (grouped by its
    /// `com.docker.compose.*` labels) and per other container: image,
    /// command and entrypoint, user and working_dir, environment, ports,
    /// volumes (named volumes as `external`, so their data is kept), networks,
    /// restart policy, healthcheck and labels (only what differs from the
    /// image's defaults), each service pinned to the host and marked
    /// `x-berth.adopt` (a service scaled to several containers with as many
    /// replicas, each taking over one). Environment variables whose names
    /// look like credentials are left out, with a comment. Registries the
    /// host's engine pulls from over plain HTTP are added to
    /// `settings.insecure_registries` in berth.yaml. The host is not changed
    /// and no file is overwritten.
    ///
    /// Then `berth plan` shows a replace per container that "takes over" it,
    /// naming any field the repo does not reproduce, and `berth apply`
    /// replaces each container once with berth's.
    Import(ImportArgs),
}

/// Arguments of `berth import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The host to import, by its name in the repo's berth.yaml (or the
    /// name to give it in a new berth.yaml, with --ssh).
    #[arg(long, value_name = "NAME")]
    host: String,
    /// Only the containers of this Compose project. Default: every running
    /// container berth does not manage.
    #[arg(long, value_name = "P")]
    project: Option<String>,
    /// The repo to write into: its berth.yaml names the host, and
    /// `stacks/<name>/` is written there (a stack name taken gets the host's
    /// name appended).
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
    /// For a directory without berth.yaml: the host's SSH address,
    /// `[user@]address[:port]`; a berth.yaml with this one host is written
    /// first. Host keys are checked against --known-hosts (default
    /// ~/.ssh/known_hosts), strictly.
    #[arg(long, value_name = "TARGET")]
    ssh: Option<String>,
    /// known_hosts file for host key checks (always strict). Overrides `settings.known_hosts`.
    #[arg(long, env = "BERTH_KNOWN_HOSTS")]
    known_hosts: Option<PathBuf>,
    /// SSH private key for the host. Overrides `identity_file` in berth.yaml.
    #[arg(long, short = 'i', env = "BERTH_IDENTITY")]
    identity: Option<PathBuf>,
    /// SSH connect timeout in seconds. Overrides `settings.connect_timeout`.
    #[arg(long, value_name = "SECONDS")]
    connect_timeout: Option<u64>,
    /// An ssh_config file for the connection (e.g. for `ProxyJump`).
    #[arg(long, env = "BERTH_SSH_CONFIG", value_name = "FILE")]
    ssh_config: Option<PathBuf>,
    /// Where the run's private socket directory is made.
    #[arg(
        long,
        env = "BERTH_RUNTIME_DIR",
        value_name = "DIR",
        default_value = "/tmp"
    )]
    runtime_dir: PathBuf,
}

impl ImportArgs {
    pub fn options(&self) -> ops::ImportOptions {
        ops::ImportOptions {
            out: self.out.clone(),
            host: self.host.clone(),
            project: self.project.clone(),
            ssh: self.ssh.clone(),
            hosts: ops::HostOptions {
                known_hosts: self.known_hosts.clone(),
                identity_file: self.identity.clone(),
                parallel: Some(1),
                connect_timeout: self.connect_timeout.map(Duration::from_secs),
                ssh_config: self.ssh_config.clone(),
                runtime_dir: self.runtime_dir.clone(),
                docker_config: None,
            },
        }
    }
}

/// Arguments of `berth config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The stack to show (a directory under `stacks/`). Default: every stack.
    stack: Option<String>,
    /// The repo: a local directory.
    #[arg(long, env = "BERTH_REPO", default_value = ".")]
    repo: PathBuf,
    /// Enable a Compose profile (repeatable), besides `stacks.<name>.profiles` in berth.yaml.
    #[arg(long = "profile", value_name = "NAME")]
    profiles: Vec<String>,
}

impl ConfigArgs {
    pub fn options(&self) -> ops::ConfigOptions {
        ops::ConfigOptions {
            repo: self.repo.clone(),
            stack: self.stack.clone(),
            profiles: self.profiles.clone(),
        }
    }
}

/// Where the repo comes from.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// The repo: a local directory (e.g. a PR checkout) or a git URL
    /// (ssh://, https://, file://, user@host:path) cloned into the cache.
    #[arg(long, env = "BERTH_REPO", default_value = ".")]
    repo: String,

    /// Branch, tag or commit to deploy (git URLs only). Default: the remote's default branch.
    #[arg(long = "ref", env = "BERTH_REF")]
    git_ref: Option<String>,

    /// Where git URLs are cloned. Default: $XDG_CACHE_HOME/berth or ~/.cache/berth.
    #[arg(long, env = "BERTH_CACHE_DIR")]
    cache_dir: Option<PathBuf>,

    /// Only deploy commits signed by one of the OpenPGP certificates in FILE
    /// (a keyring on the runner, never in the repo): an unsigned commit, or
    /// one signed by an unknown, expired or revoked key, is refused before
    /// any host is contacted.
    #[arg(long, env = "BERTH_TRUST", value_name = "FILE")]
    trust: Option<PathBuf>,

    /// Enable a Compose profile (repeatable), besides each stack's
    /// `profiles` in berth.yaml. Services without `profiles:` always run.
    #[arg(long = "profile", value_name = "NAME")]
    profiles: Vec<String>,

    /// SSH private key for fetching the repo over ssh://, offered before
    /// GIT_SSH_KEY, ssh-agent, ~/.ssh/id_ed25519 and ~/.ssh/id_rsa.
    #[arg(long, env = "BERTH_GIT_SSH_KEY", value_name = "FILE")]
    git_ssh_key: Option<PathBuf>,
}

/// How to reach the hosts.
#[derive(Debug, Args)]
pub struct HostArgs {
    #[command(flatten)]
    source: SourceArgs,

    /// known_hosts file for host key checks (always strict). Overrides `settings.known_hosts`.
    #[arg(long, env = "BERTH_KNOWN_HOSTS")]
    known_hosts: Option<PathBuf>,

    /// SSH private key for every host. Overrides `identity_file` in berth.yaml.
    #[arg(long, short = 'i', env = "BERTH_IDENTITY")]
    identity: Option<PathBuf>,

    /// How many hosts to contact at once. Overrides `settings.parallel`.
    #[arg(long)]
    parallel: Option<usize>,

    /// SSH connect timeout in seconds. Overrides `settings.connect_timeout`.
    #[arg(long, value_name = "SECONDS")]
    connect_timeout: Option<u64>,

    /// Only these hosts (repeatable). Default: every host in berth.yaml.
    #[arg(long = "host", value_name = "NAME")]
    hosts: Vec<String>,

    /// An ssh_config file for the host connections (e.g. for `ProxyJump`).
    /// Default: none — `~/.ssh/config` is ignored, so every runner behaves
    /// the same; berth's own settings take precedence over the file's.
    #[arg(long, env = "BERTH_SSH_CONFIG", value_name = "FILE")]
    ssh_config: Option<PathBuf>,

    /// Where the run's private directory of SSH control and forwarded Docker
    /// sockets is made (as `berth-<pid>`, removed at the end). Unix socket
    /// paths are short: keep it under 55 bytes.
    #[arg(
        long,
        env = "BERTH_RUNTIME_DIR",
        value_name = "DIR",
        default_value = "/tmp"
    )]
    runtime_dir: PathBuf,

    /// The runner's Docker client config directory, as `docker login`
    /// writes it: the registry credentials of DIR/config.json (from the
    /// credential helper it names, `credHelpers` or `credsStore`, else its
    /// `auths`) resolve image tags to digests at plan time, and pulls send
    /// them to the hosts' engines.
    /// Registries are asked over HTTPS, plain HTTP only for those listed in
    /// `settings.insecure_registries` of berth.yaml (`settings.resolve_from`
    /// says who asks). Default: ~/.docker.
    #[arg(long, env = "DOCKER_CONFIG", value_name = "DIR")]
    docker_config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    hosts: HostArgs,

    /// Also show each container's audit labels: origin, commit, author,
    /// date, spec hash, berth version, applied-at time and runner.
    #[arg(long)]
    labels: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    hosts: HostArgs,

    /// Exit 2 when there are changes (or drift), 0 when none, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,

    /// Output format of the plan: human (terraform-like), json (stable,
    /// schema in schemas/plan.schema.json) or markdown (a pull-request comment).
    #[arg(long, value_enum, default_value_t = PlanFormat::Human)]
    format: PlanFormat,

    /// Write the plan in --format to FILE; the human plan still goes to stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,

    /// Save the plan, bound to the commit and to what each host runs now, for
    /// `berth apply --plan FILE`: what was reviewed is exactly what runs.
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,

    #[command(flatten)]
    outputs: ReportArgs,
}

/// Files a run leaves for machines.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Write a JSON run report (commit, times, per-host steps and errors) to FILE.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,

    /// Write a Prometheus textfile (for node_exporter's textfile collector) to FILE.
    #[arg(long, value_name = "FILE")]
    metrics: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    hosts: HostArgs,

    /// Exit 2 when changes were made, 0 when there was nothing to do, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,

    /// Longest wait, in seconds, for a new container to run and report healthy.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    health_timeout: u64,

    /// Longest wait, in seconds, for another berth run's lock on a host.
    /// The lock dies with its run (even kill -9); when the wait runs out,
    /// berth changes nothing and exits 3 naming the holder.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    lock_timeout: u64,

    /// Apply a plan saved by `berth plan --save FILE` instead of planning
    /// anew. Refused, with nothing changed, when the commit or any container
    /// on the hosts moved since it was saved.
    #[arg(long = "plan", value_name = "FILE")]
    saved_plan: Option<PathBuf>,

    /// The runner's OpenPGP secret key, to decrypt the secrets new containers
    /// read. Or put the armoured key itself in BERTH_KEY (CI secret stores);
    /// a passphrase-protected key takes BERTH_KEY_PASSPHRASE.
    #[arg(long, env = "BERTH_KEY_FILE", value_name = "FILE")]
    key_file: Option<PathBuf>,

    /// Deploy even if the commit is not a descendant of the one the hosts
    /// run (their `berth.commit` labels, and the commit each host's last
    /// apply recorded): an old commit or a rewritten history. Without it,
    /// apply refuses and changes nothing.
    #[arg(long)]
    allow_rewind: bool,

    /// Move replicas to another host even when they mount named volumes:
    /// the volumes and their data stay on the old host (berth never removes
    /// a volume) and the moved replica starts with empty ones. Without it,
    /// apply refuses such a plan and changes nothing.
    #[arg(long)]
    allow_volume_move: bool,

    #[command(flatten)]
    outputs: ReportArgs,
}

impl SourceArgs {
    /// `known_hosts`: the `--known-hosts` of a command that has it.
    fn load(&self, only_hosts: Vec<String>, known_hosts: Option<PathBuf>) -> ops::LoadOptions {
        ops::LoadOptions {
            source: SourceOptions {
                repo: self.repo.clone(),
                git_ref: self.git_ref.clone(),
                cache_dir: self.cache_dir.clone().unwrap_or_else(default_cache_dir),
                ssh: self.git_ssh(known_hosts),
            },
            trust: self.trust.clone(),
            only_hosts,
            profiles: self.profiles.clone(),
        }
    }

    pub fn options(&self) -> ops::ValidateOptions {
        ops::ValidateOptions {
            // `validate` has no `--known-hosts`, but fetches over ssh too.
            load: self.load(Vec::new(), env_path("BERTH_KNOWN_HOSTS")),
        }
    }

    /// What fetching over SSH may use: the flags, then the environment
    /// variables listed under "Environment" in `--help`.
    fn git_ssh(&self, known_hosts: Option<PathBuf>) -> GitSsh {
        GitSsh {
            key_files: self
                .git_ssh_key
                .clone()
                .filter(|p| !p.as_os_str().is_empty())
                .into_iter()
                .chain(env_path("GIT_SSH_KEY"))
                .collect(),
            agent: env_path("SSH_AUTH_SOCK").is_some(),
            home: env_path("HOME"),
            user: std::env::var("USER").ok().filter(|u| !u.is_empty()),
            known_hosts: known_hosts.filter(|p| !p.as_os_str().is_empty()),
        }
    }
}

/// A non-empty environment variable, as a path.
fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl HostArgs {
    fn load(&self) -> ops::LoadOptions {
        self.source
            .load(self.hosts.clone(), self.known_hosts.clone())
    }

    fn hosts(&self) -> ops::HostOptions {
        ops::HostOptions {
            known_hosts: self.known_hosts.clone(),
            identity_file: self.identity.clone(),
            parallel: self.parallel,
            connect_timeout: self.connect_timeout.map(Duration::from_secs),
            ssh_config: self.ssh_config.clone(),
            runtime_dir: self.runtime_dir.clone(),
            docker_config: docker_config_file(self.docker_config.as_deref()),
        }
    }
}

/// `<dir>/config.json` of `--docker-config` (`DOCKER_CONFIG`), else of
/// `~/.docker`, as the docker CLI finds it; None without either.
fn docker_config_file(dir: Option<&std::path::Path>) -> Option<PathBuf> {
    let dir = match dir.filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => dir.to_path_buf(),
        None => env_path("HOME")?.join(".docker"),
    };
    Some(dir.join("config.json"))
}

impl PlanArgs {
    pub fn options(&self) -> ops::PlanOptions {
        ops::PlanOptions {
            load: self.hosts.load(),
            hosts: self.hosts.hosts(),
            save: self.save.clone(),
        }
    }

    pub fn rendering(&self) -> Rendering {
        Rendering {
            format: self.format,
            out: self.out.clone(),
            report: self.outputs.report.clone(),
            metrics: self.outputs.metrics.clone(),
            ..Rendering::new("plan")
        }
    }
}

impl ApplyArgs {
    pub fn options(&self) -> ops::ApplyOptions {
        ops::ApplyOptions {
            load: self.hosts.load(),
            hosts: self.hosts.hosts(),
            health_timeout: Duration::from_secs(self.health_timeout),
            lock_timeout: Duration::from_secs(self.lock_timeout),
            key: key_options(self.key_file.clone()),
            allow_rewind: self.allow_rewind,
            saved_plan: self.saved_plan.clone(),
            stop: Default::default(),
            allow_volume_move: self.allow_volume_move,
        }
    }

    pub fn rendering(&self) -> Rendering {
        Rendering {
            report: self.outputs.report.clone(),
            metrics: self.outputs.metrics.clone(),
            ..Rendering::new("apply")
        }
    }
}

impl StatusArgs {
    pub fn options(&self) -> ops::StatusOptions {
        ops::StatusOptions {
            load: self.hosts.load(),
            hosts: self.hosts.hosts(),
        }
    }

    pub fn rendering(&self) -> Rendering {
        Rendering {
            labels: self.labels,
            ..Rendering::new("status")
        }
    }
}

fn default_cache_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(xdg).join("berth");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache").join("berth"),
        None => std::env::temp_dir().join("berth-cache"),
    }
}
