//! Full inspection of containers berth does not manage (for `berth import`
//! and for a take-over's plan): the engine's inspect of each container and
//! of its image, reduced to the plain [`InspectedContainer`].

use std::collections::{BTreeMap, BTreeSet};

use bollard::models::{ContainerInspectResponse, HealthConfig, ImageInspect};

use super::{status_code, DockerEngine};
use crate::import::{EngineHealthcheck, ImageDefaults, InspectedContainer, InspectedMount};
use crate::spec::{DeviceSpec, PortSpec};

impl DockerEngine {
    /// One inspect per container and one per distinct image, each batch
    /// at once on the same connection. A container gone since it was
    /// listed is left out; an image gone (removed after the container was
    /// created) gives no defaults.
    pub(super) async fn inspect_named(
        &self,
        names: &[String],
    ) -> anyhow::Result<Vec<InspectedContainer>> {
        let answers =
            futures::future::join_all(names.iter().map(|n| self.docker.inspect_container(n, None)))
                .await;
        let mut found = Vec::new();
        for (name, answer) in names.iter().zip(answers) {
            match answer {
                Ok(c) => found.push(c),
                Err(err) if status_code(&err) == Some(404) => {}
                Err(err) => {
                    return Err(self.fail(format_args!("cannot inspect container `{name}`"), err))
                }
            }
        }
        let image_ids: BTreeSet<String> = found.iter().filter_map(|c| c.image.clone()).collect();
        let images =
            futures::future::join_all(image_ids.iter().map(|id| self.docker.inspect_image(id)))
                .await;
        let mut by_id: BTreeMap<&str, ImageInspect> = BTreeMap::new();
        for (id, answer) in image_ids.iter().zip(images) {
            match answer {
                Ok(image) => {
                    by_id.insert(id.as_str(), image);
                }
                Err(err) if status_code(&err) == Some(404) => {}
                Err(err) => return Err(self.fail(format_args!("cannot inspect image `{id}`"), err)),
            }
        }
        Ok(found
            .into_iter()
            .map(|c| {
                let image = c.image.as_deref().and_then(|id| by_id.get(id));
                inspected(c, image)
            })
            .collect())
    }
}

fn healthcheck(h: &HealthConfig) -> EngineHealthcheck {
    EngineHealthcheck {
        test: h.test.clone().unwrap_or_default(),
        interval_ns: h.interval.unwrap_or_default(),
        timeout_ns: h.timeout.unwrap_or_default(),
        start_period_ns: h.start_period.unwrap_or_default(),
        retries: h.retries.unwrap_or_default(),
    }
}

/// The engine's answer as plain data.
fn inspected(c: ContainerInspectResponse, image: Option<&ImageInspect>) -> InspectedContainer {
    let config = c.config.unwrap_or_default();
    let host = c.host_config.unwrap_or_default();
    let image_config = image.and_then(|i| i.config.clone()).unwrap_or_default();
    let mut ports = Vec::new();
    for (key, bindings) in host.port_bindings.unwrap_or_default() {
        let (target, protocol) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let Ok(target) = target.parse::<u16>() else {
            continue;
        };
        for b in bindings.unwrap_or_default() {
            ports.push(PortSpec {
                host_ip: b.host_ip.filter(|ip| !ip.is_empty()),
                published: b.host_port.and_then(|p| p.parse().ok()).filter(|p| *p > 0),
                target,
                protocol: protocol.to_string(),
            });
        }
    }
    let restart = host.restart_policy.unwrap_or_default();
    InspectedContainer {
        id: c.id.unwrap_or_default(),
        name: c
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        image: config.image.clone().unwrap_or_default(),
        state: c
            .state
            .and_then(|s| s.status)
            .map(|s| s.to_string())
            .unwrap_or_default(),
        labels: config
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        cmd: config.cmd.clone().unwrap_or_default(),
        entrypoint: config.entrypoint.clone().unwrap_or_default(),
        env: config.env.clone().unwrap_or_default(),
        user: config.user.clone().unwrap_or_default(),
        working_dir: config.working_dir.clone().unwrap_or_default(),
        healthcheck: config.healthcheck.as_ref().map(healthcheck),
        restart: (
            restart.name.map(|n| n.to_string()).unwrap_or_default(),
            restart.maximum_retry_count.unwrap_or_default(),
        ),
        ports,
        mounts: c
            .mounts
            .unwrap_or_default()
            .into_iter()
            .map(|m| InspectedMount {
                kind: m.typ.map(|t| t.to_string()).unwrap_or_default(),
                name: m.name.unwrap_or_default(),
                source: m.source.unwrap_or_default(),
                destination: m.destination.unwrap_or_default(),
                read_write: m.rw.unwrap_or(true),
                propagation: m.propagation.unwrap_or_default(),
            })
            .collect(),
        network_mode: host.network_mode.clone().unwrap_or_default(),
        networks: c
            .network_settings
            .and_then(|n| n.networks)
            .unwrap_or_default()
            .into_keys()
            .collect(),
        privileged: host.privileged.unwrap_or_default(),
        read_only: host.readonly_rootfs.unwrap_or_default(),
        tty: config.tty.unwrap_or_default(),
        stdin_open: config.open_stdin.unwrap_or_default(),
        init: host.init,
        cap_add: host.cap_add.clone().unwrap_or_default(),
        cap_drop: host.cap_drop.clone().unwrap_or_default(),
        extra_hosts: host.extra_hosts.clone().unwrap_or_default(),
        dns: host.dns.clone().unwrap_or_default(),
        tmpfs: host.tmpfs.clone().unwrap_or_default().into_iter().collect(),
        devices: host
            .devices
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|d| DeviceSpec {
                host: d.path_on_host.unwrap_or_default(),
                container: d.path_in_container.unwrap_or_default(),
                permissions: d.cgroup_permissions.unwrap_or_default(),
            })
            .collect(),
        memory: host.memory.unwrap_or_default(),
        nano_cpus: host.nano_cpus.unwrap_or_default(),
        pids_limit: host.pids_limit.unwrap_or_default(),
        image_defaults: ImageDefaults {
            cmd: image_config.cmd.unwrap_or_default(),
            entrypoint: image_config.entrypoint.unwrap_or_default(),
            env: image_config.env.unwrap_or_default(),
            user: image_config.user.unwrap_or_default(),
            working_dir: image_config.working_dir.unwrap_or_default(),
            labels: image_config
                .labels
                .unwrap_or_default()
                .into_iter()
                .collect(),
            healthcheck: image_config.healthcheck.as_ref().map(healthcheck),
        },
    }
}
