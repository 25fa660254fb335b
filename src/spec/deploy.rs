//! `deploy:` (replicas, placement, rolling updates, resources, and, as
//! Compose does outside Swarm, `restart_policy` as the container's restart
//! policy and `labels` as container labels) and berth's `x-berth` service
//! extension (post-deploy validation checks).
//!
//! Placement constraints use Swarm's syntax over the inventory: only
//! `node.hostname` and `node.labels.<key>` exist without Swarm, and a
//! constraint no host can satisfy is reported here, where both the stack and
//! `berth.yaml` are known, rather than as an empty plan later.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;

use super::model::{
    Adopt, Constraint, ConstraintAttribute, Deploy, DeployMode, DeviceRequestSpec, FailureAction,
    HostConfig, Inventory, Location, Resources, UpdateConfig, UpdateOrder, ValidateCheck,
};
use super::read::{Cx, Fields};
use super::restart::RestartPolicy;
use super::values::{self, GoDuration};
use super::yaml::{Kind, Node};

const DEPLOY_KEYS: &[&str] = &[
    "mode",
    "replicas",
    "placement",
    "update_config",
    "rollback_config",
    "resources",
    "restart_policy",
    "labels",
];
const RESTART_POLICY_KEYS: &[&str] = &["condition", "max_attempts", "delay", "window"];
const PLACEMENT_KEYS: &[&str] = &["constraints", "max_replicas_per_node"];
const UPDATE_KEYS: &[&str] = &[
    "parallelism",
    "delay",
    "failure_action",
    "monitor",
    "max_failure_ratio",
    "order",
];
const LIMIT_KEYS: &[&str] = &["cpus", "memory", "pids"];

/// Time allowed for an `x-berth.validate` check without `timeout`.
const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn default_deploy() -> Deploy {
    Deploy {
        mode: DeployMode::Replicated,
        replicas: 1,
        constraints: Vec::new(),
        max_replicas_per_node: 0,
        update: UpdateConfig::default(),
        rollback: UpdateConfig::default(),
    }
}

/// Limits from `deploy.resources`, with where each was written so a clash
/// with the service-level `mem_limit`/`cpus`/... can be pointed at.
#[derive(Default)]
pub(crate) struct DeployResources {
    memory: Option<(i64, Location)>,
    memory_reservation: Option<(i64, Location)>,
    nano_cpus: Option<(i64, Location)>,
    pids_limit: Option<(i64, Location)>,
    device_requests: Vec<DeviceRequestSpec>,
}

pub(crate) struct ReadDeploy {
    pub deploy: Deploy,
    pub resources: DeployResources,
    /// `restart_policy` in the service `restart` form, and where it is written.
    pub restart: Option<(RestartPolicy, Location)>,
    /// `deploy.labels`, each with where it is written.
    pub labels: BTreeMap<String, (String, Location)>,
}

pub(crate) fn read_deploy(
    cx: &mut Cx,
    node: &Node,
    what: &str,
    inventory: Option<&Inventory>,
) -> Option<ReadDeploy> {
    let here = format!("`deploy` of {what}");
    let fields = cx.map(node, &here)?;
    for field in &fields.entries {
        if DEPLOY_KEYS.contains(&field.name) {
            continue;
        }
        let hint = match field.name {
            "endpoint_mode" => Some("berth does not run Swarm's service load balancer: remove it"),
            _ => None,
        };
        match hint {
            Some(hint) => cx.error_help(
                field.key,
                format!("unsupported key `{}` in {here}", field.name),
                hint,
            ),
            None => cx.unknown_key(field, &here, DEPLOY_KEYS),
        }
    }
    let mut deploy = default_deploy();
    if let Some(v) = fields.value("mode") {
        match v.scalar() {
            Some("replicated") => {}
            Some("global") => {
                deploy.mode = DeployMode::Global;
                if let Some(f) = fields.get("replicas") {
                    cx.error_help(
                        f.key,
                        format!("{here} sets `replicas` with `mode: global`"),
                        "a global service runs one replica on every eligible host: remove `replicas`",
                    );
                }
            }
            _ => cx.error_help(
                v,
                format!(
                    "`mode` of {here} must be `replicated` or `global`, found {}",
                    v.describe()
                ),
                "jobs (`replicated-job`, `global-job`) need Swarm",
            ),
        }
    }
    if let Some(v) = fields.value("replicas") {
        deploy.replicas = cx
            .int(v, &format!("`replicas` of {here}"), 0, 10_000)
            .unwrap_or(1) as u32;
    }
    let mut constraints_node = None;
    if let Some(v) = fields.value("placement") {
        let placement = format!("`placement` of {here}");
        if let Some(p) = cx.map(v, &placement) {
            for field in &p.entries {
                if field.name == "preferences" {
                    cx.error_help(
                        field.key,
                        format!("unsupported key `preferences` in {placement}"),
                        "berth spreads replicas over eligible hosts itself; use `constraints` to choose hosts",
                    );
                } else if !PLACEMENT_KEYS.contains(&field.name) {
                    cx.unknown_key(field, &placement, PLACEMENT_KEYS);
                }
            }
            if let Some(c) = p.value("constraints") {
                constraints_node = Some(c);
                deploy.constraints = constraints(cx, c, what);
            }
            if let Some(m) = p.value("max_replicas_per_node") {
                deploy.max_replicas_per_node = cx
                    .int(
                        m,
                        &format!("`max_replicas_per_node` of {placement}"),
                        0,
                        10_000,
                    )
                    .unwrap_or(0) as u32;
            }
        }
    }
    if let Some(v) = fields.value("update_config") {
        deploy.update = update_config(cx, v, &format!("`deploy.update_config` of {what}"));
    }
    if let Some(v) = fields.value("rollback_config") {
        deploy.rollback = update_config(cx, v, &format!("`deploy.rollback_config` of {what}"));
    }
    let resources = match fields.value("resources") {
        Some(v) => read_resources(cx, v, what),
        None => DeployResources::default(),
    };
    if let (Some(inventory), Some(at)) = (inventory, constraints_node) {
        check_placement(cx, &deploy, inventory, at, what);
    }
    if let Some(inventory) = inventory {
        check_capacity(cx, &deploy, inventory, &fields, what);
    }
    let restart = fields
        .value("restart_policy")
        .and_then(|v| restart_policy(cx, v, what).map(|r| (r, cx.at(v))));
    // Compose leaves `deploy.labels` to Swarm services and drops them for
    // plain containers; berth has no service object to carry them, and
    // does not drop what a user wrote: they become container labels.
    let mut labels = BTreeMap::new();
    if let Some(v) = fields.value("labels") {
        let label_fields = super::read::Fields {
            entries: vec![super::read::Field {
                name: "labels",
                key: v,
                value: v,
            }],
        };
        for (key, value) in super::read::read_labels(cx, &label_fields, &here) {
            labels.insert(key, (value, cx.at(v)));
        }
    }
    Some(ReadDeploy {
        deploy,
        resources,
        restart,
        labels,
    })
}

/// `deploy.restart_policy` as the engine's restart policy, the way Compose
/// maps it outside Swarm: `condition` `none` -> `no`, `on-failure` (with
/// `max_attempts`) -> `on-failure[:N]`, `any` (the default) -> `always`.
/// `delay` and `window` are Swarm's: the engine restarts with its own
/// back-off. Compose outside Swarm ignores them; berth reads them and says
/// so in a warning, since real files carry them for Swarm and Compose alike.
fn restart_policy(cx: &mut Cx, node: &Node, what: &str) -> Option<RestartPolicy> {
    let here = format!("`deploy.restart_policy` of {what}");
    let fields = cx.map_with(node, &here, RESTART_POLICY_KEYS)?;
    for key in ["delay", "window"] {
        if let Some(field) = fields.get(key) {
            if !field.value.is_null() {
                cx.duration(field.value, &format!("`{key}` of {here}"));
            }
            cx.warn(
                field.key,
                format!("`{key}` in {here} has no effect outside Swarm"),
                "the Docker Engine restarts a container with its own back-off (100 ms, doubling, reset after 10 s up), as with `docker compose`: remove it to silence this warning",
            );
        }
    }
    let condition = match fields.value("condition") {
        None => "any".to_string(),
        Some(v) => cx.string(v, &format!("`condition` of {here}"))?,
    };
    let policy = match condition.as_str() {
        "none" | "no" => RestartPolicy::No,
        "on-failure" => RestartPolicy::OnFailure(None),
        "any" | "always" => RestartPolicy::Always,
        "unless-stopped" => RestartPolicy::UnlessStopped,
        _ => {
            let at = fields.value("condition").unwrap_or(node);
            cx.error(
                at,
                format!("`condition` of {here} must be `none`, `on-failure` or `any`, found `{condition}`"),
            );
            return None;
        }
    };
    match fields.value("max_attempts") {
        None => Some(policy),
        Some(v) => {
            let attempts = cx.int(
                v,
                &format!("`max_attempts` of {here}"),
                0,
                i64::from(u32::MAX),
            )?;
            if policy != RestartPolicy::OnFailure(None) {
                cx.error_help(
                    v,
                    format!("{here} sets `max_attempts` with `condition: {condition}`"),
                    "the engine counts restarts only for `condition: on-failure`",
                );
                return None;
            }
            // Bounded to u32 by `cx.int` above; 0 means no limit.
            let attempts = u32::try_from(attempts).ok().filter(|n| *n > 0);
            Some(RestartPolicy::OnFailure(attempts))
        }
    }
}

fn update_config(cx: &mut Cx, node: &Node, here: &str) -> UpdateConfig {
    let mut config = UpdateConfig::default();
    let Some(fields) = cx.map_with(node, here, UPDATE_KEYS) else {
        return config;
    };
    if let Some(v) = fields.value("parallelism") {
        config.parallelism = cx
            .int(v, &format!("`parallelism` of {here}"), 0, 10_000)
            .unwrap_or(1) as u32;
    }
    if let Some(v) = fields.value("delay") {
        config.delay = cx
            .duration(v, &format!("`delay` of {here}"))
            .unwrap_or_default();
    }
    if let Some(v) = fields.value("monitor") {
        config.monitor = cx
            .duration(v, &format!("`monitor` of {here}"))
            .unwrap_or_default();
    }
    if let Some(v) = fields.value("failure_action") {
        match v.scalar() {
            Some("rollback") => config.failure_action = FailureAction::Rollback,
            Some("pause") => config.failure_action = FailureAction::Pause,
            Some("continue") => config.failure_action = FailureAction::Continue,
            _ => cx.error(
                v,
                format!(
                    "`failure_action` of {here} must be `rollback`, `pause` or `continue`, found {}",
                    v.describe()
                ),
            ),
        }
    }
    if let Some(v) = fields.value("order") {
        match v.scalar() {
            Some("stop-first") => config.order = UpdateOrder::StopFirst,
            Some("start-first") => config.order = UpdateOrder::StartFirst,
            _ => cx.error(
                v,
                format!(
                    "`order` of {here} must be `stop-first` or `start-first`, found {}",
                    v.describe()
                ),
            ),
        }
    }
    if let Some(v) = fields.value("max_failure_ratio") {
        match v.as_f64() {
            Some(ratio) if (0.0..=1.0).contains(&ratio) => config.max_failure_ratio = ratio,
            _ => cx.error(
                v,
                format!(
                    "`max_failure_ratio` of {here} must be a number from 0 to 1, found {}",
                    v.describe()
                ),
            ),
        }
    }
    config
}

fn read_resources(cx: &mut Cx, node: &Node, what: &str) -> DeployResources {
    let mut out = DeployResources::default();
    let here = format!("`deploy.resources` of {what}");
    let Some(fields) = cx.map_with(node, &here, &["limits", "reservations"]) else {
        return out;
    };
    if let Some(v) = fields.value("limits") {
        let limits = format!("`deploy.resources.limits` of {what}");
        if let Some(l) = cx.map_with(v, &limits, LIMIT_KEYS) {
            if let Some(v) = l.value("cpus") {
                out.nano_cpus = cx
                    .cpus(v, &format!("`cpus` of {limits}"))
                    .map(|n| (n, cx.at(v)));
            }
            if let Some(v) = l.value("memory") {
                out.memory = cx
                    .memory(v, &format!("`memory` of {limits}"))
                    .map(|n| (n, cx.at(v)));
            }
            if let Some(v) = l.value("pids") {
                out.pids_limit = cx
                    .int(v, &format!("`pids` of {limits}"), -1, i64::MAX)
                    .map(|n| (n, cx.at(v)));
            }
        }
    }
    if let Some(v) = fields.value("reservations") {
        let reservations = format!("`deploy.resources.reservations` of {what}");
        if let Some(r) = cx.map(v, &reservations) {
            for field in &r.entries {
                match field.name {
                    "memory" => {
                        if !field.value.is_null() {
                            out.memory_reservation = cx
                                .memory(field.value, &format!("`memory` of {reservations}"))
                                .map(|n| (n, cx.at(field.value)));
                        }
                    }
                    // Compose outside Swarm skips it too ("a swarm
                    // option"): read, and said, not refused.
                    "cpus" => {
                        if !field.value.is_null() {
                            cx.cpus(field.value, &format!("`cpus` of {reservations}"));
                        }
                        cx.warn(
                            field.key,
                            format!("`cpus` in {reservations} has no effect outside Swarm"),
                            "a plain Docker Engine cannot reserve CPUs (as with `docker compose`, only `limits.cpus` is enforced): remove it to silence this warning",
                        );
                    }
                    "devices" => {
                        let here = format!("`devices` of {reservations}");
                        out.device_requests = device_requests(cx, field.value, &here, false);
                    }
                    "generic_resources" => cx.error_help(
                        field.key,
                        format!("unsupported key `{}` in {reservations}", field.name),
                        "berth supports `memory` and `devices` reservations",
                    ),
                    _ => cx.unknown_key(field, &reservations, &["memory", "devices"]),
                }
            }
        }
    }
    out
}

/// `deploy.resources.reservations.devices`: requests the engine passes to
/// a device driver (NVIDIA's container toolkit for `gpu`). As in Compose,
/// `count: all` is -1, and a request naming neither `count` nor
/// `device_ids` asks for all devices.
/// With `gpus` (the service's `gpus:` list) a request without
/// `capabilities` is for a GPU, as in Compose.
fn device_requests(cx: &mut Cx, node: &Node, what: &str, gpus: bool) -> Vec<DeviceRequestSpec> {
    const KEYS: &[&str] = &["driver", "count", "device_ids", "capabilities", "options"];
    let mut out = Vec::new();
    let Some(items) = cx.seq(node, what) else {
        return out;
    };
    for item in items {
        let here = format!("a device of {what}");
        let Some(fields) = cx.map_with(item, &here, KEYS) else {
            continue;
        };
        let mut request = DeviceRequestSpec {
            driver: fields
                .value("driver")
                .and_then(|v| cx.string(v, &format!("`driver` of {here}"))),
            ..Default::default()
        };
        if let Some(v) = fields.value("device_ids") {
            request.device_ids = cx
                .strings(v, &format!("`device_ids` of {here}"))
                .unwrap_or_default();
        }
        if let Some(v) = fields.value("count") {
            request.count = match (v.scalar(), v.as_i64()) {
                (Some("all"), _) => Some(-1),
                (_, Some(n)) if n >= 1 => Some(n),
                _ => {
                    cx.error_help(
                        v,
                        format!(
                            "`count` of {here} must be a number of devices or `all`, found {}",
                            v.describe()
                        ),
                        "write `count: all` for every device, `count: 1` for one",
                    );
                    None
                }
            };
            if !request.device_ids.is_empty() {
                cx.error_help(
                    v,
                    format!("{here} sets both `count` and `device_ids`"),
                    "keep one of them: `device_ids` names the devices, `count` takes any that many",
                );
            }
        } else if request.device_ids.is_empty() {
            request.count = Some(-1);
        }
        if let Some(v) = fields.value("options") {
            request.options = cx
                .string_map(v, &format!("`options` of {here}"))
                .unwrap_or_default();
        }
        match fields.value("capabilities") {
            Some(v) => {
                request.capabilities = cx
                    .strings(v, &format!("`capabilities` of {here}"))
                    .unwrap_or_default();
            }
            None if gpus => request.capabilities = vec!["gpu".to_string()],
            None => cx.error_help(
                item,
                format!("{here} has no `capabilities`"),
                "say what the device is for, as Compose requires: `capabilities: [gpu]` for a GPU",
            ),
        }
        out.push(request);
    }
    out
}

/// `gpus:` of a service: `all`, or a list of requests as under
/// `deploy.resources.reservations.devices` whose capabilities default to
/// `gpu`.
pub(crate) fn gpus(cx: &mut Cx, node: &Node, what: &str) -> Vec<DeviceRequestSpec> {
    if node.scalar() == Some("all") {
        return vec![DeviceRequestSpec {
            count: Some(-1),
            capabilities: vec!["gpu".to_string()],
            ..Default::default()
        }];
    }
    if !matches!(node.kind, Kind::Seq(_)) {
        cx.error_help(
            node,
            format!(
                "`gpus` of {what} must be `all` or a list of requests, found {}",
                node.describe()
            ),
            "write `gpus: all`, or `gpus: [{driver: nvidia, count: 1}]`",
        );
        return Vec::new();
    }
    device_requests(cx, node, &format!("`gpus` of {what}"), true)
}

/// Folds `deploy.resources` into the service-level limits. Compose refuses
/// the two forms with different values, and so does berth.
pub(crate) fn merge_resources(
    cx: &mut Cx,
    resources: &mut Resources,
    deploy: DeployResources,
    what: &str,
) {
    let pairs = [
        (
            &mut resources.memory,
            deploy.memory,
            "mem_limit",
            "limits.memory",
        ),
        (
            &mut resources.memory_reservation,
            deploy.memory_reservation,
            "mem_reservation",
            "reservations.memory",
        ),
        (
            &mut resources.nano_cpus,
            deploy.nano_cpus,
            "cpus",
            "limits.cpus",
        ),
        (
            &mut resources.pids_limit,
            deploy.pids_limit,
            "pids_limit",
            "limits.pids",
        ),
    ];
    resources.device_requests.extend(deploy.device_requests);
    for (current, from_deploy, key, deploy_key) in pairs {
        let Some((value, at)) = from_deploy else {
            continue;
        };
        match current {
            Some(existing) if *existing != value => cx.report(
                at,
                format!(
                    "{what} sets `{key}` and `deploy.resources.{deploy_key}` to different values"
                ),
                Some(format!(
                    "keep one of them, e.g. only `deploy.resources.{deploy_key}`"
                )),
            ),
            _ => *current = Some(value),
        }
    }
}

fn constraints(cx: &mut Cx, node: &Node, what: &str) -> Vec<Constraint> {
    let list = format!("`deploy.placement.constraints` of {what}");
    let Some(items) = cx.seq(node, &list) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let Some(text) = cx.string(item, &format!("an item of {list}")) else {
            continue;
        };
        match parse_constraint(&text) {
            Ok((attribute, equal, value)) => out.push(Constraint {
                attribute,
                equal,
                value,
                text,
                location: cx.at(item),
            }),
            Err(reason) => cx.error_help(
                item,
                format!("constraint `{text}` of {what}: {reason}"),
                "berth supports `node.hostname` and `node.labels.<key>` with `==` or `!=`, matched against `berth.yaml`",
            ),
        }
    }
    out
}

/// `node.hostname == x`, `node.labels.role != db`, … as in Swarm.
pub(crate) fn parse_constraint(text: &str) -> Result<(ConstraintAttribute, bool, String), String> {
    let eq = text.find("==");
    let ne = text.find("!=");
    let (at, equal) = match (eq, ne) {
        (Some(e), Some(n)) => (e.min(n), e < n),
        (Some(e), None) => (e, true),
        (None, Some(n)) => (n, false),
        (None, None) => return Err("expected `==` or `!=`".to_string()),
    };
    let lhs = text[..at].trim();
    let value = text[at + 2..].trim();
    if value.is_empty() {
        return Err("nothing to compare with after the operator".to_string());
    }
    let attribute = if lhs == "node.hostname" {
        ConstraintAttribute::Hostname
    } else if let Some(key) = lhs.strip_prefix("node.labels.") {
        if key.is_empty() {
            return Err("`node.labels.` needs a label key".to_string());
        }
        ConstraintAttribute::Label(key.to_string())
    } else if matches!(
        lhs,
        "node.id" | "node.role" | "node.platform.os" | "node.platform.arch"
    ) || lhs.starts_with("engine.labels.")
    {
        return Err(format!("attribute `{lhs}` is not supported"));
    } else {
        return Err(format!("unknown attribute `{lhs}`"));
    };
    Ok((attribute, equal, value.to_string()))
}

impl Constraint {
    /// Whether `host` satisfies the constraint: the one definition, used by
    /// validation and by placement.
    pub fn matches(&self, host: &HostConfig) -> bool {
        let actual = match &self.attribute {
            ConstraintAttribute::Hostname => Some(&host.name),
            ConstraintAttribute::Label(key) => host.labels.get(key),
        };
        // Swarm: `!=` also matches hosts that lack the label.
        (actual == Some(&self.value)) == self.equal
    }
}

/// Every constraint must match some host, and some host must match all.
fn check_placement(cx: &mut Cx, deploy: &Deploy, inventory: &Inventory, at: &Node, what: &str) {
    let mut each_matches = true;
    for constraint in &deploy.constraints {
        if inventory.hosts.iter().any(|h| constraint.matches(h)) {
            continue;
        }
        each_matches = false;
        cx.report(
            constraint.location.clone(),
            format!("constraint `{}` of {what} matches no host", constraint.text),
            Some(describe_hosts(&constraint.attribute, inventory)),
        );
    }
    if each_matches
        && !deploy.constraints.is_empty()
        && !inventory
            .hosts
            .iter()
            .any(|h| deploy.constraints.iter().all(|c| c.matches(h)))
    {
        cx.error_help(
            at,
            format!("the constraints of {what} together match no host"),
            "each constraint matches some host, but no host matches all of them",
        );
    }
}

/// What the inventory has for an attribute, to show next to a constraint
/// that matches nothing.
fn describe_hosts(attribute: &ConstraintAttribute, inventory: &Inventory) -> String {
    match attribute {
        ConstraintAttribute::Hostname => format!(
            "hosts in `berth.yaml`: {}",
            inventory
                .hosts
                .iter()
                .map(|h| h.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ConstraintAttribute::Label(key) => {
            let mut by_value: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for host in &inventory.hosts {
                if let Some(value) = host.labels.get(key) {
                    by_value.entry(value).or_default().push(&host.name);
                }
            }
            if by_value.is_empty() {
                format!("no host in `berth.yaml` has the label `{key}`")
            } else {
                let values: Vec<String> = by_value
                    .iter()
                    .map(|(value, hosts)| format!("{key}={value} ({})", hosts.join(", ")))
                    .collect();
                format!("hosts have labels: {}", values.join(", "))
            }
        }
    }
}

/// `max_replicas_per_node` times the eligible hosts must fit the replicas.
fn check_capacity(
    cx: &mut Cx,
    deploy: &Deploy,
    inventory: &Inventory,
    fields: &Fields<'_>,
    what: &str,
) {
    if deploy.mode != DeployMode::Replicated || deploy.max_replicas_per_node == 0 {
        return;
    }
    let eligible = inventory
        .hosts
        .iter()
        .filter(|h| deploy.constraints.iter().all(|c| c.matches(h)))
        .count();
    if eligible == 0 {
        return;
    }
    let fit = eligible as u64 * u64::from(deploy.max_replicas_per_node);
    if u64::from(deploy.replicas) > fit {
        let Some(at) = fields
            .get("replicas")
            .map(|f| f.value)
            .or_else(|| fields.get("placement").map(|f| f.key))
        else {
            return;
        };
        cx.error_help(
            at,
            format!(
                "{what} wants {} replicas, but at most {fit} fit ({} per host on {eligible} eligible hosts)",
                deploy.replicas, deploy.max_replicas_per_node
            ),
            "lower `replicas`, raise `max_replicas_per_node`, or make more hosts eligible",
        );
    }
}

/// berth's extension of a Compose service.
#[derive(Debug, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "x-berth")]
pub(crate) struct RawXBerth {
    /// Checks run against each new container once it is up (and healthy, if it has a
    /// healthcheck). A failing check fails the update, which then follows
    /// `deploy.update_config.failure_action` (rollback by default).
    #[serde(default)]
    pub validate: Vec<RawCheck>,
    /// Reload changed configs in place instead of replacing the container:
    /// berth swaps the file the container sees, runs `check`, sends
    /// `signal` (or runs `exec`), then the gates and `validate`; on a
    /// failure it puts the old file back and reloads again.
    // Read from the tree by `configs::read_reload`; here for the schema.
    #[allow(dead_code)]
    #[serde(default)]
    pub reload: Option<RawReload>,
    /// Take over running containers berth does not manage (`berth import`
    /// writes it): the first apply replaces each once with the service's
    /// container, keeping its named volumes. Without it, berth refuses to
    /// touch a container it does not manage.
    // Read from the tree by `read_adopt`; here for the schema.
    #[allow(dead_code)]
    pub adopt: Option<RawAdopt>,
    /// Publish each validated replica (its host's address and this host
    /// port) to `discovery:` targets of berth.yaml, and retire it from them
    /// (drained) before it stops.
    // Read from the tree by `discovery::read_publish`; here for the schema.
    #[allow(dead_code)]
    pub publish: Option<super::discovery::RawPublish>,
}

/// `x-berth.adopt`: one name, or one name per replica.
#[derive(Debug, JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "Adopt")]
#[allow(dead_code)] // the schema's: `read_adopt` reads the tree
pub(crate) enum RawAdopt {
    /// The container the service's one container takes over: it must be the
    /// name that container gets (`container_name`, or `<stack>-<service>-1`).
    Name(String),
    /// One container per replica, replica 1 first (a Compose service scaled
    /// to several containers): each replica takes over its container and
    /// keeps that container's name. At most `deploy.replicas` names, and no
    /// `container_name` beside it.
    Replicas(Vec<String>),
}

/// `x-berth.reload`: exactly one of `signal` and `exec`, and an optional `check`.
#[derive(Debug, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Reload")]
#[allow(dead_code)] // the schema's: `configs::read_reload` reads the tree
pub(crate) struct RawReload {
    /// A signal for the container's main process, e.g. `SIGHUP`.
    pub signal: Option<String>,
    /// A command run in the container to reload, e.g. `[nginx, -s, reload]`.
    pub exec: Option<Vec<String>>,
    /// A command run in the container against the new file before the
    /// reload, e.g. `[nginx, -t]`; failing, the old file is put back.
    pub check: Option<Vec<String>>,
}

/// One check: exactly one of `exec`, `http` or `tcp`.
#[derive(Debug, JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "Check")]
pub(crate) enum RawCheck {
    Exec(RawExecCheck),
    Http(RawHttpCheck),
    Tcp(RawTcpCheck),
}

/// Runs a command in the new container; exit status 0 passes.
#[derive(Debug, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ExecCheck")]
pub(crate) struct RawExecCheck {
    pub exec: RawCommand,
    /// Default `30s`.
    pub timeout: Option<GoDuration>,
}

/// A command: a list of arguments, or a string run with `/bin/sh -c`.
#[derive(Debug, JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "Command")]
pub(crate) enum RawCommand {
    Shell(String),
    Argv(Vec<String>),
}

/// Sends an HTTP GET; passes on the expected status (and body text).
#[derive(Debug, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "HttpCheck")]
pub(crate) struct RawHttpCheck {
    pub http: RawHttp,
    /// Default `30s`.
    pub timeout: Option<GoDuration>,
}

#[derive(Debug, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Http")]
pub(crate) struct RawHttp {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Expected status code. Default 200.
    #[schemars(range(min = 100, max = 599))]
    pub status: Option<u16>,
    /// Text the response body must contain.
    pub body_contains: Option<String>,
}

/// Opens a TCP connection to a port of the new container.
#[derive(Debug, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "TcpCheck")]
pub(crate) struct RawTcpCheck {
    pub tcp: RawTcp,
    /// Default `30s`.
    pub timeout: Option<GoDuration>,
}

#[derive(Debug, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Tcp")]
pub(crate) struct RawTcp {
    #[schemars(range(min = 1))]
    pub port: u16,
}

pub(crate) const X_BERTH_KEYS: &[&str] = &["validate", "reload", "adopt", "publish"];
const CHECK_KINDS: &[&str] = &["exec", "http", "tcp"];
const CHECK_KEYS: &[&str] = &["exec", "http", "tcp", "timeout"];

/// The service's `x-berth.validate` checks and `x-berth.adopt` names.
pub(crate) fn read_x_berth(
    cx: &mut Cx,
    node: &Node,
    what: &str,
) -> (Vec<ValidateCheck>, Option<Adopt>) {
    let raw = read_raw_x_berth(cx, node, what);
    let checks = raw.validate.into_iter().map(RawCheck::into_check).collect();
    let adopt = node
        .get("adopt")
        .and_then(|v| read_adopt(cx, v, &format!("`x-berth.adopt` of {what}")));
    (checks, adopt)
}

/// `x-berth.adopt`: a container name, or a list of distinct ones.
fn read_adopt(cx: &mut Cx, node: &Node, here: &str) -> Option<Adopt> {
    let checked =
        |cx: &mut Cx, node: &Node, name: String| match values::container_name_problem(&name) {
            Some((problem, help)) => {
                cx.error_help(
                    node,
                    format!("{here} names `{name}`, which {problem}"),
                    help,
                );
                None
            }
            None => Some(name),
        };
    if !matches!(node.kind, Kind::Seq(_)) {
        let name = cx.string(node, here)?;
        return checked(cx, node, name).map(Adopt::Name);
    }
    let items = cx.seq(node, here)?;
    if items.is_empty() {
        cx.error_help(
            node,
            format!("{here} is an empty list"),
            "name the containers to take over, replica 1 first, or remove `adopt`",
        );
        return None;
    }
    let mut names: Vec<String> = Vec::new();
    let mut ok = true;
    for item in items {
        let Some(name) = cx.string(item, &format!("an item of {here}")) else {
            ok = false;
            continue;
        };
        if names.contains(&name) {
            cx.error_help(
                item,
                format!("{here} names `{name}` twice"),
                "list each container once, replica 1 first",
            );
            ok = false;
            continue;
        }
        match checked(cx, item, name) {
            Some(name) => names.push(name),
            None => ok = false,
        }
    }
    ok.then_some(Adopt::Replicas(names))
}

fn read_raw_x_berth(cx: &mut Cx, node: &Node, what: &str) -> RawXBerth {
    let mut raw = RawXBerth::default();
    let here = format!("`x-berth` of {what}");
    let Some(fields) = cx.map_with(node, &here, X_BERTH_KEYS) else {
        return raw;
    };
    if let Some(v) = fields.value("validate") {
        let list = format!("`x-berth.validate` of {what}");
        for item in cx.seq(v, &list).unwrap_or_default() {
            if let Some(check) = read_check(cx, item, &list) {
                raw.validate.push(check);
            }
        }
    }
    raw
}

fn read_check(cx: &mut Cx, node: &Node, list: &str) -> Option<RawCheck> {
    let one = format!("a check of {list}");
    let fields = cx.map_with(node, &one, CHECK_KEYS)?;
    let kinds: Vec<_> = fields
        .entries
        .iter()
        .filter(|f| CHECK_KINDS.contains(&f.name))
        .collect();
    let kind = match kinds.as_slice() {
        [] => {
            cx.error_help(
                node,
                format!("{one} has none of `exec`, `http` or `tcp`"),
                "write e.g. `- exec: [\"/app/healthy\"]`, `- http: {url: \"http://localhost:8080/health\"}` or `- tcp: {port: 5432}`",
            );
            return None;
        }
        [kind] => **kind,
        [_, second, ..] => {
            cx.error_help(
                second.key,
                format!("{one} has more than one of `exec`, `http` and `tcp`"),
                "write each check as its own list item",
            );
            return None;
        }
    };
    let timeout = match fields.value("timeout") {
        None => None,
        Some(v) => match cx.duration(v, &format!("`timeout` of {one}"))? {
            Duration::ZERO => {
                cx.error(v, format!("`timeout` of {one} must be longer than zero"));
                return None;
            }
            d => Some(GoDuration(d)),
        },
    };
    match kind.name {
        "exec" => {
            let exec = match &kind.value.kind {
                Kind::Seq(_) => {
                    let argv = cx.strings(kind.value, &format!("`exec` of {one}"))?;
                    if argv.is_empty() {
                        cx.error(kind.value, format!("`exec` of {one} is empty"));
                        return None;
                    }
                    RawCommand::Argv(argv)
                }
                _ => RawCommand::Shell(cx.string(kind.value, &format!("`exec` of {one}"))?),
            };
            Some(RawCheck::Exec(RawExecCheck { exec, timeout }))
        }
        "http" => {
            let here = format!("`http` of {one}");
            let http = cx.map_with(kind.value, &here, &["url", "status", "body_contains"])?;
            let Some(url_node) = http.value("url") else {
                cx.error(kind.value, format!("{here} has no `url`"));
                return None;
            };
            let url = cx.string(url_node, &format!("`url` of {here}"))?;
            let host = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"))
                .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default());
            if host.is_none_or(str::is_empty) {
                cx.error_help(
                    url_node,
                    format!("`url` of {here} is not an http(s) URL: `{url}`"),
                    "write e.g. `http://localhost:8080/health`",
                );
                return None;
            }
            let status = match http.value("status") {
                Some(v) => Some(cx.int(v, &format!("`status` of {here}"), 100, 599)? as u16),
                None => None,
            };
            let body_contains = match http.value("body_contains") {
                Some(v) => Some(cx.string(v, &format!("`body_contains` of {here}"))?),
                None => None,
            };
            Some(RawCheck::Http(RawHttpCheck {
                http: RawHttp {
                    url,
                    status,
                    body_contains,
                },
                timeout,
            }))
        }
        _ => {
            let here = format!("`tcp` of {one}");
            let tcp = cx.map_with(kind.value, &here, &["port"])?;
            let Some(port) = tcp.value("port") else {
                cx.error(kind.value, format!("{here} has no `port`"));
                return None;
            };
            let port = cx.int(port, &format!("`port` of {here}"), 1, 65535)? as u16;
            Some(RawCheck::Tcp(RawTcpCheck {
                tcp: RawTcp { port },
                timeout,
            }))
        }
    }
}

impl RawCheck {
    fn into_check(self) -> ValidateCheck {
        let timeout = |t: Option<GoDuration>| t.map_or(DEFAULT_CHECK_TIMEOUT, |d| d.0);
        match self {
            RawCheck::Exec(check) => ValidateCheck::Exec {
                command: match check.exec {
                    RawCommand::Argv(argv) => argv,
                    RawCommand::Shell(line) => vec!["/bin/sh".to_string(), "-c".to_string(), line],
                },
                timeout: timeout(check.timeout),
            },
            RawCheck::Http(check) => ValidateCheck::Http {
                url: check.http.url,
                status: check.http.status.unwrap_or(200),
                body_contains: check.http.body_contains,
                timeout: timeout(check.timeout),
            },
            RawCheck::Tcp(check) => ValidateCheck::Tcp {
                port: check.tcp.port,
                timeout: timeout(check.timeout),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraints_parse() {
        assert_eq!(
            parse_constraint("node.labels.role == web").unwrap(),
            (
                ConstraintAttribute::Label("role".into()),
                true,
                "web".into()
            )
        );
        assert_eq!(
            parse_constraint("node.hostname!=db-1").unwrap(),
            (ConstraintAttribute::Hostname, false, "db-1".into())
        );
        assert_eq!(
            parse_constraint("node.role == manager").unwrap_err(),
            "attribute `node.role` is not supported"
        );
        assert_eq!(
            parse_constraint("engine.labels.x == y").unwrap_err(),
            "attribute `engine.labels.x` is not supported"
        );
        assert_eq!(
            parse_constraint("node.labels.role").unwrap_err(),
            "expected `==` or `!=`"
        );
        assert_eq!(
            parse_constraint("node.foo == x").unwrap_err(),
            "unknown attribute `node.foo`"
        );
        assert!(parse_constraint("node.hostname == ").is_err());
    }
}
