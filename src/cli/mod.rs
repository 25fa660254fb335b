//! cli: the command line, defined once with clap derive; doc comments become
//! `--help`. Each command turns its arguments into its `ops` options, calls
//! that one op, renders the outcome ([`render`]) and maps it to an exit code
//! ([`exit::code`]). Nothing outside `cli` knows clap; nothing in `cli`
//! decides anything about hosts or plans.

pub mod exit;
mod render;
mod secret;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::Error;
use crate::ops;
use crate::source::SourceOptions;
use render::Rendering;

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
#[command(after_long_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,

    /// More log output (-v: debug, -vv: trace). Logs go to stderr.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// Less log output: errors only.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,

    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
}

const EXIT_CODES: &str = "\
Exit codes:
  0  no changes / converged
  1  error (bad input, unreachable host, failed step; other hosts still converge)
  2  with --detailed-exitcode: changes planned (plan) or made (apply)
  3  apply: another berth run held a host's lock past --lock-timeout (nothing changed)";

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
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
}

/// Where the repo comes from.
#[derive(Debug, Args)]
struct SourceArgs {
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
}

/// How to reach the hosts.
#[derive(Debug, Args)]
struct HostArgs {
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
}

#[derive(Debug, Args)]
struct StatusArgs {
    #[command(flatten)]
    hosts: HostArgs,

    /// Also show each container's audit labels: origin, commit, author,
    /// date, spec hash, berth version, applied-at time and runner.
    #[arg(long)]
    labels: bool,
}

#[derive(Debug, Args)]
struct PlanArgs {
    #[command(flatten)]
    hosts: HostArgs,

    /// Exit 2 when there are changes (or drift), 0 when none, 1 on error.
    #[arg(long)]
    detailed_exitcode: bool,

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

/// Output format of `berth plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Human,
    Json,
    Markdown,
}

/// Files a run leaves for machines.
#[derive(Debug, Args)]
struct ReportArgs {
    /// Write a JSON run report (commit, times, per-host steps and errors) to FILE.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,

    /// Write a Prometheus textfile (for node_exporter's textfile collector) to FILE.
    #[arg(long, value_name = "FILE")]
    metrics: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ApplyArgs {
    #[command(flatten)]
    hosts: HostArgs,

    /// Exit 2 when changes were made, 0 when there was nothing to do, 1 on error.
    #[arg(long)]
    detailed_exitcode: bool,

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

    #[command(flatten)]
    outputs: ReportArgs,
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    // Before any thread or child process exists: the key must not be
    // inherited by ssh, `sh` or $EDITOR.
    take_key_env();
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

/// What a command did, for [`render`] and [`exit::code`].
#[derive(Debug)]
pub enum Outcome {
    Validated(ops::Validated),
    Planned(ops::Planned),
    Applied(ops::ApplyOutcome),
    Status(ops::Status),
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
            let result = ops::apply(&args.options(), render::show_plan).await;
            finish(result.map(Outcome::Applied), args.detailed_exitcode, &how)
        }
        Command::Status(args) => {
            let how = args.rendering();
            let result = ops::status(&args.options()).await;
            finish(result.map(Outcome::Status), false, &how)
        }
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

impl SourceArgs {
    fn load(&self, only_hosts: Vec<String>) -> ops::LoadOptions {
        ops::LoadOptions {
            source: SourceOptions {
                repo: self.repo.clone(),
                git_ref: self.git_ref.clone(),
                cache_dir: self.cache_dir.clone().unwrap_or_else(default_cache_dir),
            },
            trust: self.trust.clone(),
            only_hosts,
        }
    }

    fn options(&self) -> ops::ValidateOptions {
        ops::ValidateOptions {
            load: self.load(Vec::new()),
        }
    }
}

impl HostArgs {
    fn load(&self) -> ops::LoadOptions {
        self.source.load(self.hosts.clone())
    }

    fn hosts(&self) -> ops::HostOptions {
        ops::HostOptions {
            known_hosts: self.known_hosts.clone(),
            identity_file: self.identity.clone(),
            parallel: self.parallel,
            connect_timeout: self.connect_timeout.map(Duration::from_secs),
            ssh_config: self.ssh_config.clone(),
            runtime_dir: self.runtime_dir.clone(),
        }
    }
}

impl PlanArgs {
    fn options(&self) -> ops::PlanOptions {
        ops::PlanOptions {
            load: self.hosts.load(),
            hosts: self.hosts.hosts(),
            save: self.save.clone(),
        }
    }

    fn rendering(&self) -> Rendering {
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
    fn options(&self) -> ops::ApplyOptions {
        ops::ApplyOptions {
            load: self.hosts.load(),
            hosts: self.hosts.hosts(),
            health_timeout: Duration::from_secs(self.health_timeout),
            lock_timeout: Duration::from_secs(self.lock_timeout),
            key: key_options(self.key_file.clone()),
            allow_rewind: self.allow_rewind,
            saved_plan: self.saved_plan.clone(),
        }
    }

    fn rendering(&self) -> Rendering {
        Rendering {
            report: self.outputs.report.clone(),
            metrics: self.outputs.metrics.clone(),
            ..Rendering::new("apply")
        }
    }
}

impl StatusArgs {
    fn options(&self) -> ops::StatusOptions {
        ops::StatusOptions {
            load: self.hosts.load(),
            hosts: self.hosts.hosts(),
        }
    }

    fn rendering(&self) -> Rendering {
        Rendering {
            labels: self.labels,
            ..Rendering::new("status")
        }
    }
}

/// The runner's key: `--key-file`/BERTH_KEY_FILE, else the armoured key in
/// BERTH_KEY; BERTH_KEY_PASSPHRASE unlocks either. Environment values are
/// taken as secrets (never printed).
pub(crate) fn key_options(key_file: Option<PathBuf>) -> crate::secrets::KeyOptions {
    use crate::secrets::KeySource;
    let (key, passphrase) = KEY_ENV.get().cloned().unwrap_or_default();
    let source = match key_file {
        Some(path) => Some(KeySource::File(path)),
        None => key.map(|key| KeySource::Env {
            var: "BERTH_KEY".into(),
            key,
        }),
    };
    crate::secrets::KeyOptions { source, passphrase }
}

/// BERTH_KEY and BERTH_KEY_PASSPHRASE, taken out of the environment.
type KeyEnv = (
    Option<crate::openpgp::SecretBytes>,
    Option<crate::openpgp::SecretBytes>,
);
static KEY_ENV: std::sync::OnceLock<KeyEnv> = std::sync::OnceLock::new();

/// Moves the key variables from the environment into memory. Called first
/// thing in `main`, while the process has one thread.
fn take_key_env() {
    let take = |name: &str| {
        let value = std::env::var_os(name).filter(|v| !v.is_empty()).map(|v| {
            crate::openpgp::SecretBytes::new(std::os::unix::ffi::OsStringExt::into_vec(v))
        });
        std::env::remove_var(name);
        value
    };
    let _ = KEY_ENV.set((take("BERTH_KEY"), take("BERTH_KEY_PASSPHRASE")));
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
