//! Containers -> stacks: groups a host's containers (Compose projects by
//! their `com.docker.compose.project` / `.service` labels, every other
//! container a stack of its own) and writes each group as a Compose file
//! berth's loader accepts, every service pinned to the host and marked
//! `x-berth.adopt` so the first apply takes the container over.
//!
//! Pure: the caller reads the containers and writes the files. Every
//! string is written as a double-quoted scalar with `$` doubled, so no
//! value is ever interpolated or misread as another YAML type.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::{is_anonymous_volume, observed_spec, InspectedContainer};
use crate::spec::{looks_secret, ContainerSpec, MountKind, PortSpec};

const PROJECT_LABEL: &str = "com.docker.compose.project";
const SERVICE_LABEL: &str = "com.docker.compose.service";
const NUMBER_LABEL: &str = "com.docker.compose.container-number";
const ONEOFF_LABEL: &str = "com.docker.compose.oneoff";

/// What to import from one host.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Inventory name of the host: every service is pinned to it.
    pub host: String,
    /// Only this Compose project (`--project`); None: every container.
    pub project: Option<String>,
    /// Stack names the repo has already: a new stack never overwrites one.
    pub taken: BTreeSet<String>,
}

/// The stacks an import writes, and what it left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    /// Sorted by name.
    pub stacks: Vec<ImportedStack>,
    /// Containers not imported, each with why (`` `x` is stopped``).
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportedStack {
    /// `stacks/<name>/compose.yaml`.
    pub name: String,
    /// The Compose file's text.
    pub compose: String,
    /// The containers the stack takes over, by name.
    pub containers: Vec<String>,
    /// What the file does not reproduce, per container: secret-looking
    /// environment variables left out, settings berth's import does not
    /// write (`container: key, key`).
    pub left_out: Vec<String>,
}

/// One stack to be: its Compose project (None: a standalone container),
/// and its containers by service.
type Group<'a> = (
    Option<String>,
    BTreeMap<String, Vec<&'a InspectedContainer>>,
);

/// Groups `containers` into stacks and writes each as Compose. Containers
/// that are not running, `docker compose run` leftovers and containers
/// berth manages already are skipped (and said so).
pub fn import(containers: &[InspectedContainer], opts: &ImportOptions) -> Imported {
    let mut imported = Imported::default();
    // Stack name (as found) -> service name -> containers.
    let mut groups: BTreeMap<String, Group<'_>> = BTreeMap::new();
    let mut sorted: Vec<&InspectedContainer> = containers.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for c in sorted {
        let project = c.labels.get(PROJECT_LABEL);
        if let Some(owner) = c.labels.get(crate::labels::PROJECT) {
            imported.skipped.push(format!(
                "`{}` is managed by berth project `{owner}` already",
                c.name
            ));
            continue;
        }
        if opts.project.is_some() && project != opts.project.as_ref() {
            continue;
        }
        if c.state != "running" {
            imported.skipped.push(format!(
                "`{}` is {} (only running containers are imported)",
                c.name, c.state
            ));
            continue;
        }
        if c.labels.get(ONEOFF_LABEL).map(String::as_str) == Some("True") {
            imported.skipped.push(format!(
                "`{}` is a one-off `docker compose run` container",
                c.name
            ));
            continue;
        }
        let (group, service) = match (project, c.labels.get(SERVICE_LABEL)) {
            (Some(p), Some(s)) => (p.clone(), s.clone()),
            _ => (c.name.clone(), c.name.clone()),
        };
        let entry = groups
            .entry(format!(
                "{}{group}",
                if project.is_some() { "p:" } else { "c:" }
            ))
            .or_insert_with(|| (project.cloned(), BTreeMap::new()));
        entry.1.entry(service).or_default().push(c);
    }

    let mut used = opts.taken.clone();
    for (key, (project, services)) in groups {
        let found = key.get(2..).unwrap_or_default();
        let name = unique_stack_name(found, &opts.host, &mut used);
        let mut stack = StackWriter::new(&name, &opts.host, project.as_deref());
        for (service, mut cs) in services {
            cs.sort_by_key(|c| {
                c.labels
                    .get(NUMBER_LABEL)
                    .and_then(|n| n.parse::<u32>().ok())
                    .unwrap_or(1)
            });
            stack.service(&service_name(&service), &cs);
        }
        imported.stacks.push(stack.finish());
    }
    imported.stacks.sort_by(|a, b| a.name.cmp(&b.name));
    imported
}

/// A stack name berth accepts (`[a-z0-9][a-z0-9_-]*`) made from `found`,
/// not among `used`: `<name>`, then `<name>-<host>`, then numbered.
fn unique_stack_name(found: &str, host: &str, used: &mut BTreeSet<String>) -> String {
    let base = sanitize(found, "imported");
    let with_host = format!("{base}-{}", sanitize(host, "host"));
    let mut candidates = vec![base, with_host.clone()];
    candidates.extend((2..).take(1000).map(|n| format!("{with_host}-{n}")));
    let name = candidates
        .into_iter()
        .find(|c| !used.contains(c))
        .unwrap_or(with_host);
    used.insert(name.clone());
    name
}

/// Lowercase, `[a-z0-9_-]`, starting with a letter or digit.
fn sanitize(text: &str, fallback: &str) -> String {
    let mapped: String = text
        .to_ascii_lowercase()
        .chars()
        .map(|ch| match ch {
            'a'..='z' | '0'..='9' | '_' | '-' => ch,
            _ => '-',
        })
        .collect();
    let trimmed = mapped.trim_start_matches(['_', '-']);
    if trimmed.is_empty() {
        fallback.to_string()
    } else {
        trimmed.to_string()
    }
}

fn service_name(found: &str) -> String {
    sanitize(found, "service")
}

/// A double-quoted YAML scalar that Compose interpolation leaves as is.
fn q(text: &str) -> String {
    quote(&text.replace('$', "$$"))
}

/// A double-quoted YAML scalar (JSON's escapes are YAML's).
fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

fn list(items: &[String]) -> String {
    format!(
        "[{}]",
        items.iter().map(|i| q(i)).collect::<Vec<_>>().join(", ")
    )
}

/// `[ip:][published:]target/protocol`, as Compose's short syntax.
fn port(p: &PortSpec) -> String {
    let target = format!("{}/{}", p.target, p.protocol);
    match (&p.host_ip, p.published) {
        (None, None) => target,
        (None, Some(published)) => format!("{published}:{target}"),
        (Some(ip), published) => {
            let ip = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip.clone()
            };
            let published = published.map(|n| n.to_string()).unwrap_or_default();
            format!("{ip}:{published}:{target}")
        }
    }
}

/// A duration as Compose reads it, in whole milliseconds.
fn duration(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Builds one stack's Compose file.
struct StackWriter {
    name: String,
    host: String,
    project: Option<String>,
    services: String,
    /// Engine-side volume name -> key in the file.
    volumes: BTreeMap<String, String>,
    /// Engine-side network name -> key in the file.
    networks: BTreeMap<String, String>,
    containers: Vec<String>,
    left_out: Vec<String>,
}

impl StackWriter {
    fn new(name: &str, host: &str, project: Option<&str>) -> StackWriter {
        StackWriter {
            name: name.to_string(),
            host: host.to_string(),
            project: project.map(str::to_string),
            services: String::new(),
            volumes: BTreeMap::new(),
            networks: BTreeMap::new(),
            containers: Vec::new(),
            left_out: Vec::new(),
        }
    }

    /// The key a volume or network gets in this file: its engine-side name
    /// without the Compose project's prefix, made unique.
    fn key(taken: &BTreeMap<String, String>, project: Option<&str>, engine_name: &str) -> String {
        let short = project
            .and_then(|p| engine_name.strip_prefix(&format!("{p}_")))
            .unwrap_or(engine_name);
        let short = if is_anonymous_volume(short) {
            format!("anonymous-{}", &short[..12])
        } else {
            short.to_string()
        };
        let base: String = short
            .chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.') {
                    ch
                } else {
                    '-'
                }
            })
            .collect();
        let base = if base.starts_with(|ch: char| ch.is_ascii_alphanumeric()) {
            base
        } else {
            format!("v{base}")
        };
        let mut key = base.clone();
        let mut n = 2;
        while taken.values().any(|k| *k == key) {
            key = format!("{base}-{n}");
            n += 1;
        }
        key
    }

    fn volume_key(&mut self, engine_name: &str) -> String {
        if let Some(key) = self.volumes.get(engine_name) {
            return key.clone();
        }
        let key = Self::key(&self.volumes, self.project.as_deref(), engine_name);
        self.volumes.insert(engine_name.to_string(), key.clone());
        key
    }

    fn network_key(&mut self, engine_name: &str) -> String {
        if let Some(key) = self.networks.get(engine_name) {
            return key.clone();
        }
        // Never the key `default`: that one means the stack's own network.
        let key = match Self::key(&self.networks, self.project.as_deref(), engine_name) {
            k if k == "default" => engine_name.to_string(),
            k => k,
        };
        self.networks.insert(engine_name.to_string(), key.clone());
        key
    }

    /// Writes one service from its containers (`replicas`, in the order of
    /// their Compose container numbers): the first one's settings (the
    /// plan names what any other replica runs differently), as many
    /// replicas, each taking over its container.
    fn service(&mut self, service: &str, replicas: &[&InspectedContainer]) {
        let Some(c) = replicas.first().copied() else {
            return;
        };
        let spec = observed_spec(c);
        let mut out = String::new();
        let mut left_out: Vec<String> = Vec::new();
        let _ = writeln!(out, "  {service}:");
        let _ = writeln!(out, "    image: {}", q(&spec.image));
        // Several replicas are named by `x-berth.adopt`'s list instead.
        if replicas.len() == 1 && c.name != format!("{}-{service}-1", self.name) {
            let _ = writeln!(out, "    container_name: {}", q(&c.name));
        }
        if let Some(entrypoint) = &spec.entrypoint {
            let _ = writeln!(out, "    entrypoint: {}", list(entrypoint));
        }
        if let Some(command) = &spec.command {
            let _ = writeln!(out, "    command: {}", list(command));
        }
        if let Some(user) = &spec.user {
            let _ = writeln!(out, "    user: {}", q(user));
        }
        if let Some(dir) = &spec.working_dir {
            let _ = writeln!(out, "    working_dir: {}", q(dir));
        }
        if !spec.environment.is_empty() {
            let _ = writeln!(out, "    environment:");
            for (k, v) in &spec.environment {
                if looks_secret(k) {
                    let _ = writeln!(
                        out,
                        "      # {k}: left out (the name looks like a credential). Encrypt it with\n      \
                         # `berth secret encrypt` and give it as a `secrets:` file, or write it here if not secret."
                    );
                    left_out.push(format!("environment.{k}"));
                } else {
                    let _ = writeln!(out, "      {}: {}", quote(k), q(v));
                }
            }
        }
        if !spec.ports.is_empty() {
            let _ = writeln!(out, "    ports:");
            for p in &spec.ports {
                let _ = writeln!(out, "      - {}", quote(&port(p)));
            }
        }
        if !spec.mounts.is_empty() {
            let _ = writeln!(out, "    volumes:");
            for m in &spec.mounts {
                let source = match m.kind {
                    MountKind::Volume => self.volume_key(&m.source),
                    MountKind::Bind => m.source.clone(),
                };
                match &m.propagation {
                    None => {
                        let ro = if m.read_only { ":ro" } else { "" };
                        let _ =
                            writeln!(out, "      - {}", q(&format!("{source}:{}{ro}", m.target)));
                    }
                    Some(propagation) => {
                        let _ = writeln!(
                            out,
                            "      - {{type: bind, source: {}, target: {}, read_only: {}, bind: {{propagation: {}}}}}",
                            q(&source),
                            q(&m.target),
                            m.read_only,
                            q(propagation)
                        );
                    }
                }
            }
        }
        match spec.network_mode.as_deref() {
            Some(mode) if !mode.starts_with("container:") => {
                let _ = writeln!(out, "    network_mode: {}", q(mode));
            }
            Some(_) => left_out.push("network_mode".into()),
            None => {
                let keys: Vec<String> = spec.networks.keys().map(|n| self.network_key(n)).collect();
                let _ = writeln!(out, "    networks: {}", list(&keys));
            }
        }
        let _ = writeln!(out, "    restart: {}", q(&spec.restart.to_string()));
        if let Some(h) = &spec.healthcheck {
            let _ = writeln!(out, "    healthcheck:");
            let _ = writeln!(out, "      test: {}", list(&h.test));
            for (key, ms) in [
                ("interval", h.interval_ms),
                ("timeout", h.timeout_ms),
                ("start_period", h.start_period_ms),
            ] {
                if ms > 0 {
                    let _ = writeln!(out, "      {key}: {}", duration(ms));
                }
            }
            if h.retries > 0 {
                let _ = writeln!(out, "      retries: {}", h.retries);
            }
        }
        if !spec.labels.is_empty() {
            let _ = writeln!(out, "    labels:");
            for (k, v) in &spec.labels {
                let _ = writeln!(out, "      {}: {}", quote(k), q(v));
            }
        }
        for (key, on) in [
            ("privileged", spec.privileged),
            ("read_only", spec.read_only),
            ("tty", spec.tty),
            ("stdin_open", spec.stdin_open),
            ("init", spec.init == Some(true)),
        ] {
            if on {
                let _ = writeln!(out, "    {key}: true");
            }
        }
        for (key, items) in [
            ("cap_add", &spec.cap_add),
            ("cap_drop", &spec.cap_drop),
            ("extra_hosts", &spec.extra_hosts),
            ("dns", &spec.dns),
        ] {
            if !items.is_empty() {
                let _ = writeln!(out, "    {key}: {}", list(items));
            }
        }
        left_out.extend(not_written(&spec));
        let _ = writeln!(out, "    deploy:");
        if replicas.len() > 1 {
            let _ = writeln!(out, "      replicas: {}", replicas.len());
        }
        let _ = writeln!(out, "      placement:");
        let _ = writeln!(
            out,
            "        constraints: [{}]",
            q(&format!("node.hostname == {}", self.host))
        );
        let _ = writeln!(out, "    x-berth:");
        let names: Vec<String> = replicas.iter().map(|r| r.name.clone()).collect();
        if let [name] = names.as_slice() {
            let _ = writeln!(
                out,
                "      # Taken over (replaced once, keeping its named volumes) by the next apply."
            );
            let _ = writeln!(out, "      adopt: {}", q(name));
        } else {
            let _ = writeln!(
                out,
                "      # Taken over (each replaced once, keeping its named volumes) by the next\n      \
                 # apply: replica 1 the first, and so on; each replica keeps its container's name."
            );
            let _ = writeln!(out, "      adopt: {}", list(&names));
        }
        if !left_out.is_empty() {
            let _ = writeln!(
                out,
                "    # Not reproduced (`berth plan` names them): {}",
                left_out.join(", ")
            );
            self.left_out
                .push(format!("`{}`: {}", c.name, left_out.join(", ")));
        }
        self.services.push_str(&out);
        self.containers.extend(names);
    }

    fn finish(self) -> ImportedStack {
        let mut out = String::new();
        let from = match &self.project {
            Some(p) => format!("Compose project `{p}`"),
            None => format!("container `{}`", self.containers.join("`, `")),
        };
        let _ = writeln!(
            out,
            "# Imported by `berth import` from {from} on host `{}`.",
            self.host
        );
        let _ = writeln!(out, "services:");
        out.push_str(&self.services);
        if !self.volumes.is_empty() {
            let _ = writeln!(
                out,
                "volumes:\n  # External: the volumes exist on the host and keep their data."
            );
            for (name, key) in &self.volumes {
                let _ = writeln!(out, "  {key}:\n    name: {}\n    external: true", q(name));
            }
        }
        if !self.networks.is_empty() {
            let _ = writeln!(out, "networks:");
            for (name, key) in &self.networks {
                let _ = writeln!(out, "  {key}:\n    name: {}\n    external: true", q(name));
            }
        }
        ImportedStack {
            name: self.name,
            compose: out,
            containers: self.containers,
            left_out: self.left_out,
        }
    }
}

/// Settings of the container the writer has no key for.
fn not_written(spec: &ContainerSpec) -> Vec<String> {
    let mut out = Vec::new();
    if !spec.tmpfs.is_empty() {
        out.push("tmpfs".to_string());
    }
    if !spec.devices.is_empty() {
        out.push("devices".to_string());
    }
    if !spec.resources.is_empty() {
        out.push("resources".to_string());
    }
    out
}
