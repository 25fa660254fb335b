//! cli: the command line, defined once with clap derive; doc comments become
//! `--help`. Each command turns its arguments into a [`RunOptions`] and calls
//! the `run` module; nothing outside `cli` knows clap.

mod output;
mod secret;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::run::RunOptions;
use crate::source::SourceOptions;

/// Exit codes, as documented in `--help` and the README.
pub mod exit {
    /// Converged, or no changes.
    pub const OK: u8 = 0;
    /// An error: bad input, an unreachable host, a failed step.
    pub const ERROR: u8 = 1;
    /// With `--detailed-exitcode`: changes planned (plan) or made (apply).
    pub const CHANGES: u8 = 2;
    /// Another berth run held a host's run lock past --lock-timeout; nothing was changed.
    pub const LOCK_HELD: u8 = 3;
}

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
    /// Print the resolved Compose model of a stack, as berth understood it.
    ///
    /// Variables interpolated, `extends` and `include` merged, profiles
    /// applied and every default filled in, like `docker compose config`.
    /// Reads a local checkout only and contacts no host.
    Config(ConfigArgs),
}

/// Arguments of `berth config`.
#[derive(Debug, Args)]
struct ConfigArgs {
    /// The stack to show (a directory under `stacks/`). Default: every stack.
    stack: Option<String>,
    /// The repo: a local directory.
    #[arg(long, env = "BERTH_REPO", default_value = ".")]
    repo: PathBuf,
    /// Enable a Compose profile (repeatable), besides `stacks.<name>.profiles` in berth.yaml.
    #[arg(long = "profile", value_name = "NAME")]
    profiles: Vec<String>,
}

/// `berth config`: load with the process environment, print warnings and the model.
fn config_command(args: ConfigArgs) -> anyhow::Result<u8> {
    let options = crate::spec::LoadOptions {
        profiles: args.profiles,
        environment: None,
    };
    let loaded = crate::spec::load_with(&args.repo, &options)?;
    for w in &loaded.warnings {
        eprintln!("warning: {}: {}", w.location, w.message);
        if let Some(help) = &w.help {
            eprintln!("  help: {help}");
        }
    }
    let text = crate::spec::config::render(&loaded.project, args.stack.as_deref())
        .map_err(anyhow::Error::msg)?;
    print!("{text}");
    Ok(exit::OK)
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
            output::print_error(&anyhow::Error::new(e).context("cannot start the async runtime"));
            return ExitCode::from(exit::ERROR);
        }
    };
    let code = runtime.block_on(dispatch(cli.command));
    ExitCode::from(code)
}

async fn dispatch(command: Command) -> u8 {
    let result = match command {
        Command::Validate(args) => output::validate(&run_options(HostArgs::from(args), 120)).await,
        Command::Plan(args) => {
            let out = output::PlanOutput {
                format: args.format,
                out: args.out,
                save: args.save,
                saved_plan: None,
                report: args.outputs.report,
                metrics: args.outputs.metrics,
                detailed_exitcode: args.detailed_exitcode,
            };
            output::plan(&run_options(args.hosts, 120), &out).await
        }
        Command::Apply(args) => {
            let out = output::PlanOutput {
                format: PlanFormat::Human,
                out: None,
                save: None,
                saved_plan: args.saved_plan,
                report: args.outputs.report,
                metrics: args.outputs.metrics,
                detailed_exitcode: args.detailed_exitcode,
            };
            let mut opts = run_options(args.hosts, args.health_timeout);
            opts.lock_timeout = Some(Duration::from_secs(args.lock_timeout));
            opts.key = key_options(args.key_file);
            opts.allow_rewind = args.allow_rewind;
            output::apply(&opts, &out).await
        }
        Command::Status(args) => output::status(&run_options(args.hosts, 120), args.labels).await,
        Command::Secret(args) => secret::run(args),
        Command::Config(args) => config_command(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            output::print_error(&e);
            exit::ERROR
        }
    }
}

impl From<SourceArgs> for HostArgs {
    fn from(source: SourceArgs) -> Self {
        HostArgs {
            source,
            known_hosts: None,
            identity: None,
            parallel: None,
            connect_timeout: None,
            hosts: Vec::new(),
        }
    }
}

fn run_options(args: HostArgs, health_timeout: u64) -> RunOptions {
    let cache_dir = args.source.cache_dir.unwrap_or_else(default_cache_dir);
    RunOptions {
        source: SourceOptions {
            repo: args.source.repo,
            git_ref: args.source.git_ref,
            cache_dir,
        },
        known_hosts: args.known_hosts,
        identity_file: args.identity,
        parallel: args.parallel,
        connect_timeout: args.connect_timeout.map(Duration::from_secs),
        only_hosts: args.hosts,
        health_timeout: Duration::from_secs(health_timeout),
        lock_timeout: None,
        key: crate::secrets::KeyOptions::default(),
        trust: args.source.trust,
        allow_rewind: false,
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
