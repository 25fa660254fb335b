//! `berth import`: writes a repo that reproduces what a host runs.
//!
//! Reads the host from `berth.yaml` (or writes a `berth.yaml` with it, from
//! `--ssh`, when the directory has none), connects as every command does,
//! inspects every container the repo's project does not manage, and writes
//! one `stacks/<name>/compose.yaml` per Compose project or standalone
//! container ([`crate::import::compose`] decides what goes in). Never
//! changes the host and never overwrites a file: a stack name the repo has
//! already gets the host's name appended.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::stages::HostOptions;
use crate::error::{Error, Reach};
use crate::hosts::fleet::{Fleet, FleetOptions};
use crate::import::compose::{self, ImportedStack};
use crate::import::registries;
use crate::spec;

/// What `berth import` does.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The repo written to (and whose `berth.yaml` names the host).
    pub out: PathBuf,
    /// Inventory name of the host.
    pub host: String,
    /// Only this Compose project; None: every container.
    pub project: Option<String>,
    /// `[user@]address[:port]` of the host, for a directory without
    /// `berth.yaml`: one is written with this host in it.
    pub ssh: Option<String>,
    pub hosts: HostOptions,
}

/// What an import wrote.
#[derive(Debug, Clone)]
pub struct ImportReport {
    pub host: String,
    /// The Compose project asked for (`--project`), if any.
    pub project: Option<String>,
    /// Set when `berth.yaml` was written (from `--ssh`).
    pub wrote_inventory: Option<PathBuf>,
    /// Each stack with the file written (relative to the repo).
    pub stacks: Vec<(PathBuf, ImportedStack)>,
    /// Containers not imported, and why.
    pub skipped: Vec<String>,
    /// Registries of the imported images that the host's engine pulls
    /// from over plain HTTP, added to `settings.insecure_registries` in
    /// `berth.yaml` (so the plan asks them for digests the same way).
    pub insecure_added: Vec<String>,
    /// Such registries that berth.yaml does not list and that the import
    /// could not add (a `settings` it does not edit): the report says to.
    pub insecure_missing: Vec<String>,
}

pub async fn import(opts: &ImportOptions) -> Result<ImportReport, Error> {
    let wrote_inventory = inventory(opts).map_err(Error::at(Reach::NotContacted))?;
    let (project, inventory) = spec::load_inventory_only(&opts.out)
        .map_err(|e| Error::from(anyhow::Error::from(e)).reached(Reach::NotContacted))?;
    let Some(host) = inventory.hosts.iter().find(|h| h.name == opts.host) else {
        let names: Vec<&str> = inventory.hosts.iter().map(|h| h.name.as_str()).collect();
        return Err(Error::new(format!(
            "host `{}` is not in `{}` (hosts: {})",
            opts.host,
            opts.out.join("berth.yaml").display(),
            names.join(", ")
        ))
        .with_help("add the host to berth.yaml, or import into a new directory with `--ssh [user@]address[:port]`")
        .reached(Reach::NotContacted));
    };
    let settings = &inventory.settings;
    let fleet_opts = FleetOptions {
        runtime_base: opts.hosts.runtime_dir.clone(),
        known_hosts: opts
            .hosts
            .known_hosts
            .clone()
            .or(settings.known_hosts.clone()),
        connect_timeout: opts
            .hosts
            .connect_timeout
            .unwrap_or(settings.connect_timeout),
        keepalive: settings.keepalive,
        docker_timeout: settings.docker_timeout,
        identity_file: opts.hosts.identity_file.clone(),
        ssh_config: opts
            .hosts
            .ssh_config
            .clone()
            .or(settings.ssh_config.clone()),
        ssh_kex: settings.ssh_kex.clone(),
        docker_config: None,
        parallel: 1,
        lock: None,
        aged_images: BTreeSet::new(),
        observe_configs: false,
        adopt: BTreeSet::new(),
    };
    let fleet = Fleet::open(&[host], &project, &fleet_opts)
        .await
        .map_err(Error::at(Reach::NotContacted))?;
    let result = read_and_write(opts, &fleet).await;
    fleet.close().await;
    let written = result.map_err(Error::at(Reach::NotChanged))?;
    let missing: Vec<String> = written
        .plain_http
        .difference(&settings.insecure_registries)
        .cloned()
        .collect();
    let added = add_insecure_registries(&opts.out, &missing, &opts.host)
        .map_err(Error::at(Reach::NotChanged))?;
    let (insecure_added, insecure_missing) = if added {
        (missing, Vec::new())
    } else {
        (Vec::new(), missing)
    };
    Ok(ImportReport {
        host: opts.host.clone(),
        project: opts.project.clone(),
        wrote_inventory,
        stacks: written.stacks,
        skipped: written.skipped,
        insecure_added,
        insecure_missing,
    })
}

/// What [`read_and_write`] wrote and found.
struct Written {
    stacks: Vec<(PathBuf, ImportedStack)>,
    skipped: Vec<String>,
    /// Registries of the imported containers' images that the engine
    /// pulls from over plain HTTP.
    plain_http: BTreeSet<String>,
}

async fn read_and_write(opts: &ImportOptions, fleet: &Fleet) -> anyhow::Result<Written> {
    if let Some(down) = fleet.unreachable.first() {
        anyhow::bail!("host `{}` is unreachable: {}", down.host, down.error);
    }
    let (Some(engine), Some(obs)) = (
        fleet.engines.get(&opts.host),
        fleet.observed.get(&opts.host),
    ) else {
        anyhow::bail!("host `{}` was not observed", opts.host);
    };
    // Every container the repo's project does not manage (containers of
    // other berth projects are skipped by the import itself).
    let names: Vec<String> = obs.foreign_names.iter().cloned().collect();
    let containers = engine.inspect_containers(&names).await?;
    let stacks_dir = opts.out.join("stacks");
    let imported = compose::import(
        &containers,
        &compose::ImportOptions {
            host: opts.host.clone(),
            project: opts.project.clone(),
            taken: existing_stacks(&stacks_dir)?,
        },
    );
    let taken_over: BTreeSet<&str> = imported
        .stacks
        .iter()
        .flat_map(|s| s.containers.iter().map(String::as_str))
        .collect();
    let plain_http = match engine.registry_config().await? {
        Some(config) => registries::plain_http(
            containers
                .iter()
                .filter(|c| taken_over.contains(c.name.as_str()))
                .map(|c| c.image.as_str()),
            &config,
        ),
        None => BTreeSet::new(),
    };
    let mut written = Vec::new();
    for stack in imported.stacks {
        let rel = PathBuf::from("stacks")
            .join(&stack.name)
            .join("compose.yaml");
        write_new(&opts.out.join(&rel), &stack.compose)?;
        written.push((rel, stack));
    }
    Ok(Written {
        stacks: written,
        skipped: imported.skipped,
        plain_http,
    })
}

/// Adds `missing` to `settings.insecure_registries` of the repo's
/// berth.yaml ([`registries::with_insecure_registries`]). The file is
/// put back as it was, and false returned, when the edit is not one this
/// is sure of: a file in another shape, or an edit that would not load or
/// not list them.
fn add_insecure_registries(out: &Path, missing: &[String], host: &str) -> anyhow::Result<bool> {
    if missing.is_empty() {
        return Ok(true);
    }
    let path = out.join("berth.yaml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    let Some(edited) = registries::with_insecure_registries(&text, missing, host) else {
        return Ok(false);
    };
    std::fs::write(&path, &edited).with_context(|| format!("cannot write `{}`", path.display()))?;
    let lists = spec::load_inventory_only(out).is_ok_and(|(_, inventory)| {
        missing
            .iter()
            .all(|r| inventory.settings.insecure_registries.contains(r))
    });
    if !lists {
        std::fs::write(&path, &text)
            .with_context(|| format!("cannot put back `{}`", path.display()))?;
    }
    Ok(lists)
}

/// The stack directories the repo has.
fn existing_stacks(dir: &Path) -> anyhow::Result<BTreeSet<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read `{}`", dir.display())),
    };
    let mut names = BTreeSet::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read `{}`", dir.display()))?;
        names.insert(entry.file_name().to_string_lossy().into_owned());
    }
    Ok(names)
}

/// Writes `text` to a file that must not exist yet.
fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create `{}`", parent.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create `{}`", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write `{}`", path.display()))
}

/// With `--ssh`: writes `berth.yaml` naming the host, when the directory
/// has none (and refuses one that has, so no inventory is edited behind
/// its author's back). Returns the file written.
fn inventory(opts: &ImportOptions) -> anyhow::Result<Option<PathBuf>> {
    let path = opts.out.join("berth.yaml");
    let Some(target) = &opts.ssh else {
        if !path.is_file() {
            return Err(crate::error::hinted(
                format!("`{}` not found", path.display()),
                Some(format!(
                    "name the host's SSH address with `--ssh [user@]address[:port]` to write one, or pass `--out` a repo whose berth.yaml lists host `{}`",
                    opts.host
                )),
            ));
        }
        return Ok(None);
    };
    if path.exists() {
        return Err(crate::error::hinted(
            format!(
                "`--ssh` writes a new berth.yaml, and `{}` exists",
                path.display()
            ),
            Some(format!(
                "add host `{}` to berth.yaml and run without `--ssh`, or import into another `--out` directory",
                opts.host
            )),
        ));
    }
    let (user, address, port) = ssh_target(target)?;
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create `{}`", opts.out.display()))?;
    let project = opts
        .out
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .map(|n| sanitize_project(&n))
        .unwrap_or_else(|| "default".into());
    let mut text = format!(
        "# Written by `berth import`: the hosts berth manages, reached over SSH.\nproject: {project}\nhosts:\n  - name: {}\n    address: {}\n",
        quote(&opts.host),
        quote(&address)
    );
    if let Some(user) = user {
        text.push_str(&format!("    user: {}\n", quote(&user)));
    }
    if let Some(port) = port {
        text.push_str(&format!("    port: {port}\n"));
    }
    write_new(&path, &text)?;
    Ok(Some(path))
}

/// `[user@]address[:port]` (an IPv6 address in brackets when it has a port).
fn ssh_target(target: &str) -> anyhow::Result<(Option<String>, String, Option<u16>)> {
    let (user, rest) = match target.rsplit_once('@') {
        Some((user, rest)) => (Some(user.to_string()), rest),
        None => (None, target),
    };
    let (address, port) = if let Some(v6) = rest.strip_prefix('[') {
        match v6.split_once(']') {
            Some((address, "")) => (address.to_string(), None),
            Some((address, port)) => (
                address.to_string(),
                port.strip_prefix(':').map(str::to_string),
            ),
            None => (rest.to_string(), None),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((address, port)) if !address.contains(':') => {
                (address.to_string(), Some(port.to_string()))
            }
            _ => (rest.to_string(), None),
        }
    };
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .map_err(|_| anyhow::anyhow!("`--ssh {target}`: `{p}` is not a port number"))
        })
        .transpose()?;
    if address.is_empty() {
        anyhow::bail!("`--ssh {target}` names no address");
    }
    Ok((user, address, port))
}

fn sanitize_project(name: &str) -> String {
    let mapped: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_start_matches(['-', '_']);
    if trimmed.is_empty() {
        "default".into()
    } else {
        trimmed.to_string()
    }
}

fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(out: &Path, ssh: Option<&str>) -> ImportOptions {
        ImportOptions {
            out: out.to_path_buf(),
            host: "web1".into(),
            project: None,
            ssh: ssh.map(str::to_string),
            hosts: HostOptions {
                known_hosts: None,
                identity_file: None,
                parallel: None,
                connect_timeout: None,
                ssh_config: None,
                runtime_dir: PathBuf::from("/tmp"),
                docker_config: None,
            },
        }
    }

    /// `--ssh` writes a berth.yaml that loads, naming the host; without a
    /// berth.yaml and without `--ssh` there is nothing to connect to, and
    /// an existing berth.yaml is never rewritten.
    #[test]
    fn ssh_writes_a_new_inventory_and_only_a_new_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("My Repo");
        let err = inventory(&options(&out, None)).expect_err("no berth.yaml");
        let shown = Error::from(err).render();
        assert!(shown.contains("berth.yaml` not found"), "{shown}");
        assert!(
            shown.contains("help: name the host's SSH address with `--ssh"),
            "{shown}"
        );

        let written = inventory(&options(&out, Some("admin@10.0.0.5:2222")))
            .expect("written")
            .expect("a path");
        assert_eq!(written, out.join("berth.yaml"));
        let (project, inv) = spec::load_inventory_only(&out).expect("loads");
        assert_eq!(project, "my-repo");
        let host = &inv.hosts[0];
        assert_eq!(
            (
                host.name.as_str(),
                host.address.as_str(),
                host.user.as_deref(),
                host.port
            ),
            ("web1", "10.0.0.5", Some("admin"), Some(2222))
        );

        let err = inventory(&options(&out, Some("10.0.0.6"))).expect_err("exists");
        let shown = Error::from(err).render();
        assert!(shown.contains("`--ssh` writes a new berth.yaml"), "{shown}");
        assert!(inventory(&options(&out, None)).expect("exists").is_none());
    }

    #[test]
    fn ssh_targets_read_as_operators_write_them() {
        let t = |s: &str| ssh_target(s).expect(s);
        assert_eq!(t("10.0.0.5"), (None, "10.0.0.5".into(), None));
        assert_eq!(
            t("root@web1.example:2222"),
            (Some("root".into()), "web1.example".into(), Some(2222))
        );
        assert_eq!(t("[fd00::5]:22"), (None, "fd00::5".into(), Some(22)));
        assert_eq!(t("fd00::5"), (None, "fd00::5".into(), None));
        assert!(ssh_target("root@web1:ssh").is_err());
    }
}
