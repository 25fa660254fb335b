//! import: containers started outside berth, as berth would describe them.
//!
//! Input: [`InspectedContainer`]s, plain data read from a host's engine
//! (the container's inspect and its image's defaults). Output: the
//! [`ContainerSpec`] each one runs ([`observed_spec`]), and a repo that
//! reproduces them ([`compose::import`]: `stacks/<name>/compose.yaml` files).
//! Pure: touches no host and no file; `ops::import` does the I/O.
//!
//! The same [`observed_spec`] serves the plan when berth takes over a
//! container (`x-berth.adopt`): the plan diffs it, through [`comparable`],
//! against the repo's spec, so the fields an import could not reproduce (or
//! that the repo changed since) are named there, and nothing else.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest as _, Sha256};

use crate::spec::{
    looks_secret, ContainerSpec, DeviceSpec, HealthcheckSpec, ImageRef, MountKind, MountSpec,
    PortSpec, Resources, RestartPolicy,
};

pub mod compose;
pub mod registries;

/// One container as the engine reports it, with its image's defaults:
/// what an import reproduces, and what a take-over is compared against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InspectedContainer {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    /// The reference the container was created from (`Config.Image`).
    pub image: String,
    /// The engine's word (`running`, `exited`, ...).
    pub state: String,
    pub labels: BTreeMap<String, String>,
    pub cmd: Vec<String>,
    pub entrypoint: Vec<String>,
    /// `KEY=value`, as the engine keeps them (the image's merged in).
    pub env: Vec<String>,
    pub user: String,
    pub working_dir: String,
    pub healthcheck: Option<EngineHealthcheck>,
    /// `HostConfig.RestartPolicy`: name (`""`, `no`, `always`, ...) and
    /// maximum retries.
    pub restart: (String, i64),
    /// `HostConfig.PortBindings`, as requested (not as bound).
    pub ports: Vec<PortSpec>,
    pub mounts: Vec<InspectedMount>,
    /// `HostConfig.NetworkMode`: `default`, `bridge`, `host`, `none`,
    /// `container:<id>` or a network's name.
    pub network_mode: String,
    /// Names of the networks the container is attached to.
    pub networks: BTreeSet<String>,
    pub privileged: bool,
    pub read_only: bool,
    pub tty: bool,
    pub stdin_open: bool,
    pub init: Option<bool>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub extra_hosts: Vec<String>,
    pub dns: Vec<String>,
    /// `HostConfig.Tmpfs`: mount point -> options.
    pub tmpfs: BTreeMap<String, String>,
    pub devices: Vec<DeviceSpec>,
    /// `HostConfig.Memory`, `NanoCpus`, `PidsLimit`; 0 = unset.
    pub memory: i64,
    pub nano_cpus: i64,
    pub pids_limit: i64,
    /// What the image sets; the container inherits each unless it overrides it.
    pub image_defaults: ImageDefaults,
}

/// The parts of an image's config a container inherits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDefaults {
    pub cmd: Vec<String>,
    pub entrypoint: Vec<String>,
    pub env: Vec<String>,
    pub user: String,
    pub working_dir: String,
    pub labels: BTreeMap<String, String>,
    pub healthcheck: Option<EngineHealthcheck>,
}

/// A healthcheck in the engine's units (nanoseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineHealthcheck {
    pub test: Vec<String>,
    pub interval_ns: i64,
    pub timeout_ns: i64,
    pub start_period_ns: i64,
    pub retries: i64,
}

/// One entry of the container's `Mounts`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InspectedMount {
    /// `volume`, `bind`, `tmpfs`, ...
    pub kind: String,
    /// The volume's name (volumes only).
    pub name: String,
    /// The host path (binds only).
    pub source: String,
    pub destination: String,
    pub read_write: bool,
    /// Bind propagation (`rprivate` is the engine's default).
    pub propagation: String,
}

/// Labels an import never carries over: Compose's bookkeeping (berth is
/// not Compose) and berth's own (berth writes them itself).
pub fn foreign_bookkeeping(key: &str) -> bool {
    key.starts_with("com.docker.compose.") || key.starts_with("berth.")
}

/// An anonymous volume's name: 64 hex digits the engine chose.
pub fn is_anonymous_volume(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The container as a berth spec: only what differs from its image's
/// defaults (so a container that overrides nothing has no `command`,
/// `environment` or `healthcheck`), and without Compose's and berth's
/// labels. Secret-looking values are kept here (the caller decides what
/// to write or show).
pub fn observed_spec(c: &InspectedContainer) -> ContainerSpec {
    let image = &c.image_defaults;
    let mut spec = ContainerSpec {
        image: c.image.clone(),
        restart: restart_policy(&c.restart.0, c.restart.1),
        ..ContainerSpec::default()
    };
    // The engine inherits the image's `Cmd` only when the container sets no
    // entrypoint of its own: with one, an empty `Cmd` is what it runs.
    if c.entrypoint != image.entrypoint {
        spec.entrypoint = Some(c.entrypoint.clone());
        spec.command = (!c.cmd.is_empty()).then(|| c.cmd.clone());
    } else if c.cmd != image.cmd {
        spec.command = Some(c.cmd.clone());
    }
    let image_env = env_map(&image.env);
    spec.environment = env_map(&c.env)
        .into_iter()
        .filter(|(k, v)| image_env.get(k) != Some(v))
        .collect();
    spec.ports = c.ports.clone();
    spec.ports.sort();
    for m in &c.mounts {
        match m.kind.as_str() {
            "volume" => spec.mounts.push(MountSpec {
                kind: MountKind::Volume,
                source: m.name.clone(),
                target: m.destination.clone(),
                read_only: !m.read_write,
                propagation: None,
                selinux: None,
            }),
            "bind" => spec.mounts.push(MountSpec {
                kind: MountKind::Bind,
                source: m.source.clone(),
                target: m.destination.clone(),
                read_only: !m.read_write,
                propagation: Some(m.propagation.clone())
                    .filter(|p| !p.is_empty() && p != "rprivate"),
                selinux: None,
            }),
            // `--mount type=tmpfs`: named as a tmpfs, which an import does
            // not reproduce (so the plan names it).
            _ => {
                spec.tmpfs.insert(m.destination.clone(), String::new());
            }
        }
    }
    spec.mounts.sort();
    match c.network_mode.as_str() {
        "host" | "none" => spec.network_mode = Some(c.network_mode.clone()),
        mode if mode.starts_with("container:") => spec.network_mode = Some(mode.to_string()),
        "default" | "bridge" | "" if c.networks.iter().all(|n| n == "bridge") => {
            spec.network_mode = Some("bridge".into())
        }
        _ => spec.networks = c.networks.iter().map(|n| (n.clone(), Vec::new())).collect(),
    }
    spec.labels = c
        .labels
        .iter()
        .filter(|(k, v)| !foreign_bookkeeping(k) && image.labels.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if c.healthcheck != image.healthcheck {
        spec.healthcheck = c.healthcheck.as_ref().map(|h| HealthcheckSpec {
            test: h.test.clone(),
            interval_ms: millis(h.interval_ns),
            timeout_ms: millis(h.timeout_ns),
            retries: u32::try_from(h.retries).unwrap_or(0),
            start_period_ms: millis(h.start_period_ns),
            start_interval_ms: 0,
        });
    }
    spec.user = Some(c.user.clone()).filter(|u| !u.is_empty() && *u != image.user);
    spec.working_dir =
        Some(c.working_dir.clone()).filter(|w| !w.is_empty() && *w != image.working_dir);
    spec.privileged = c.privileged;
    spec.read_only = c.read_only;
    spec.tty = c.tty;
    spec.stdin_open = c.stdin_open;
    spec.init = c.init.filter(|i| *i);
    spec.cap_add = c.cap_add.clone();
    spec.cap_drop = c.cap_drop.clone();
    spec.extra_hosts = c.extra_hosts.clone();
    spec.dns = c.dns.clone();
    spec.tmpfs.extend(c.tmpfs.clone());
    spec.devices = c.devices.clone();
    spec.devices.sort();
    spec.resources = Resources {
        memory: Some(c.memory).filter(|m| *m > 0),
        nano_cpus: Some(c.nano_cpus).filter(|n| *n > 0),
        pids_limit: Some(c.pids_limit).filter(|n| *n > 0),
        ..Resources::default()
    };
    spec
}

/// A spec reduced to what a take-over compares: the image in the engine's
/// form of its name, without network aliases (berth
/// adds the service's name), the variables a value was written with, the
/// specs a service follows and exposed-only ports are not the container's
/// settings an operator set; lists are sorted; the values of
/// secret-looking environment variables become a short digest, so a plan
/// can say one differs without showing it.
pub fn comparable(spec: &ContainerSpec) -> ContainerSpec {
    let mut spec = spec.clone();
    // `nginx` runs what `docker.io/library/nginx:latest` names.
    spec.image = ImageRef::split(&spec.image).engine_form();
    for aliases in spec.networks.values_mut() {
        aliases.clear();
    }
    spec.variables.clear();
    spec.follows.clear();
    spec.expose.clear();
    spec.ports.sort();
    spec.mounts.sort();
    for (name, value) in spec.environment.iter_mut() {
        if looks_secret(name) {
            *value = digest(value);
        }
    }
    spec
}

/// `sha256:` and the first 8 bytes of the value's digest, as plans show
/// secret-looking values.
fn digest(value: &str) -> String {
    let hash = Sha256::digest(value.as_bytes());
    let hex: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn env_map(env: &[String]) -> BTreeMap<String, String> {
    env.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.clone(), String::new()),
        })
        .collect()
}

fn millis(ns: i64) -> u64 {
    u64::try_from(ns / 1_000_000).unwrap_or(0)
}

/// The engine's restart policy as berth's. The engine reports no policy as
/// `""` or `no`: both are `no`, which the import writes out (berth's own
/// default would be `unless-stopped`).
fn restart_policy(name: &str, max: i64) -> RestartPolicy {
    match name {
        "always" => RestartPolicy::Always,
        "unless-stopped" => RestartPolicy::UnlessStopped,
        "on-failure" => RestartPolicy::OnFailure(u32::try_from(max).ok().filter(|n| *n > 0)),
        _ => RestartPolicy::No,
    }
}

#[cfg(test)]
pub(crate) mod tests;
