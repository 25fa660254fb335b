//! The services the repo wants on each Swarm target: a stack's Compose
//! services mapped to normalised [`ServiceShape`]s, named as `docker stack
//! deploy` names them (`<stack>_<service>`, networks `<stack>_<key>`).
//!
//! Keys berth does not yet deploy to a Swarm are refused here, each at its
//! service, never dropped: an ignored `volumes:` or `secrets:` would run a
//! service without its data or credentials.

use std::collections::BTreeMap;

use super::shape::{ServiceShape, ShapeHealth, ShapePort, ShapeUpdate, SwarmNetwork};
use crate::spec::{
    ContainerSpec, DeployMode, Diagnostic, FailureAction, ImageRef, Project, RestartPolicy,
    UpdateConfig, UpdateOrder,
};

/// One service the repo wants on a Swarm target.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredService {
    /// The Swarm target's name.
    pub target: String,
    pub stack: String,
    pub service: String,
    /// `<stack>_<service>`.
    pub name: String,
    pub shape: ServiceShape,
    /// The stack's overlay networks this service joins (external ones are
    /// the Swarm's own business).
    pub networks: Vec<SwarmNetwork>,
}

/// The container settings a Swarm service takes from a service today;
/// any other set key is refused (see the module doc).
const SUPPORTED: &[&str] = &[
    "image",
    "command",
    "entrypoint",
    "environment",
    "ports",
    "networks",
    "labels",
    "healthcheck",
    "restart",
    "user",
    "working_dir",
    "stop_grace_period",
    // Where the values came from: not sent to the engine.
    "variables",
];

/// Every service of the project's Swarm stacks, with its image pinned to
/// `digests` (image as written -> `sha256:…`) when there is one. Errors
/// name each key berth cannot deploy to a Swarm yet, at its service.
pub fn desired(
    project: &Project,
    digests: &BTreeMap<String, String>,
) -> Result<Vec<DesiredService>, Vec<Diagnostic>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for stack in &project.swarm_stacks {
        let Some(target) = project.inventory.swarm_of(&stack.name) else {
            continue;
        };
        for s in &stack.services {
            let what = format!("service `{}` of stack `{}`", s.name, stack.name);
            let mut refuse = |key: &str, help: &str| {
                problems.push(Diagnostic {
                    location: s.location.clone(),
                    message: format!(
                        "{what} sets `{key}`, which berth does not deploy to a Swarm yet (stack `{}` goes to Swarm target `{}`)",
                        stack.name, target.manager.name
                    ),
                    help: Some(help.to_string()),
                });
            };
            if let Ok(serde_json::Value::Object(keys)) = serde_json::to_value(&s.container) {
                for key in keys.keys().filter(|k| !SUPPORTED.contains(&k.as_str())) {
                    refuse(
                        key,
                        "remove it from the service, or deploy the stack to hosts (drop it from the target's `stacks`)",
                    );
                }
            }
            if !s.validate.is_empty() {
                refuse(
                    "x-berth.validate",
                    "remove it: on a Swarm, the healthcheck gates the rollout",
                );
            }
            if !s.depends_on.is_empty() {
                refuse(
                    "depends_on",
                    "remove it: a Swarm starts a stack's services in any order (make the service retry until what it needs answers)",
                );
            }
            if s.container.ports.iter().any(|p| p.host_ip.is_some()) {
                refuse(
                    "ports[].host_ip",
                    "a Swarm publishes on every address of the node: drop the address",
                );
            }
            if s.container.ports.iter().any(|p| p.published.is_none()) {
                refuse(
                    "ports (without a published port)",
                    "write the port to publish, e.g. `8080:80`",
                );
            }
            let image = match digests.get(&s.container.image) {
                Some(digest) if ImageRef::split(&s.container.image).digest.is_none() => {
                    pinned(&s.container.image, digest)
                }
                _ => s.container.image.clone(),
            };
            let networks = s
                .container
                .networks
                .keys()
                .filter_map(|name| {
                    let (_, spec) = stack.networks.iter().find(|(_, n)| &n.name == name)?;
                    (!spec.external).then(|| SwarmNetwork {
                        name: name.clone(),
                        stack: stack.name.clone(),
                        internal: spec.internal,
                    })
                })
                .collect();
            out.push(DesiredService {
                target: target.manager.name.clone(),
                stack: stack.name.clone(),
                service: s.name.clone(),
                name: format!("{}_{}", stack.name, s.name),
                shape: shape(&s.container, &s.deploy, image),
                networks,
            });
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// `reg/app:2.1@sha256:…`: the tag kept for people, the digest for the nodes.
fn pinned(image: &str, digest: &str) -> String {
    let r = ImageRef::split(image);
    ImageRef {
        name: r.name,
        tag: Some(r.tag.unwrap_or_else(|| "latest".into())),
        digest: Some(digest.to_string()),
    }
    .to_string()
}

const MS: i64 = 1_000_000;

/// The normalised shape of a service (see [`ServiceShape`]).
pub fn shape(c: &ContainerSpec, deploy: &crate::spec::Deploy, image: String) -> ServiceShape {
    let global = deploy.mode == DeployMode::Global;
    let mut ports: Vec<ShapePort> = c
        .ports
        .iter()
        .filter_map(|p| {
            Some(ShapePort {
                published: p.published?,
                target: p.target,
                protocol: p.protocol.clone(),
                mode: "host".to_string(),
            })
        })
        .collect();
    ports.sort();
    let mut constraints: Vec<String> = deploy.constraints.iter().map(|c| c.text.clone()).collect();
    constraints.sort();
    ServiceShape {
        image,
        mode: if global { "global" } else { "replicated" }.to_string(),
        replicas: (!global).then_some(u64::from(deploy.replicas)),
        entrypoint: c.entrypoint.clone(),
        command: c.command.clone(),
        environment: c.environment.clone(),
        labels: c.labels.clone(),
        ports,
        networks: c
            .networks
            .iter()
            .map(|(name, aliases)| {
                let mut aliases = aliases.clone();
                aliases.sort();
                aliases.dedup();
                (name.clone(), aliases)
            })
            .collect(),
        healthcheck: c.healthcheck.as_ref().map(|h| ShapeHealth {
            test: h.test.clone(),
            interval_ns: h.interval_ms as i64 * MS,
            timeout_ns: h.timeout_ms as i64 * MS,
            retries: i64::from(h.retries),
            start_period_ns: h.start_period_ms as i64 * MS,
        }),
        constraints,
        max_replicas_per_node: u64::from(deploy.max_replicas_per_node),
        update_config: update(&deploy.update, true),
        rollback_config: update(&deploy.rollback, false),
        restart: match c.restart {
            RestartPolicy::No => "none",
            RestartPolicy::OnFailure(_) => "on-failure",
            _ => "any",
        }
        .to_string(),
        user: c.user.clone(),
        working_dir: c.working_dir.clone(),
        stop_grace_period_ns: c.stop_grace_period.map_or(0, |s| s as i64 * 1_000 * MS),
    }
}

/// berth's update settings as Swarm's. A rollback cannot itself roll
/// back: Swarm takes `pause` or `continue` there, so `rollback` pauses.
fn update(u: &UpdateConfig, is_update: bool) -> ShapeUpdate {
    ShapeUpdate {
        parallelism: u64::from(u.parallelism),
        delay_ns: u.delay.as_nanos() as i64,
        failure_action: match u.failure_action {
            FailureAction::Rollback if is_update => "rollback",
            FailureAction::Rollback | FailureAction::Pause => "pause",
            FailureAction::Continue => "continue",
        }
        .to_string(),
        monitor_ns: u.monitor.as_nanos() as i64,
        max_failure_ratio: u.max_failure_ratio,
        order: match u.order {
            UpdateOrder::StopFirst => "stop-first",
            UpdateOrder::StartFirst => "start-first",
        }
        .to_string(),
    }
}
