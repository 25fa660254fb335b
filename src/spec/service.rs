//! One Compose service -> a canonical [`ContainerSpec`] plus what berth
//! needs around it (dependencies, secrets, deploy, validation).
//!
//! Canonical means: the same meaning gives the same value. Lists whose order
//! means nothing are sorted (ports, mounts, capabilities, security options),
//! images get `:latest` when untagged, durations become milliseconds.
//!
//! Refused on purpose (each with a hint): keys that cannot work when the
//! repo is not on the host (`env_file`), `build` without `image` (berth
//! pulls, never builds), `scale`, and Compose features that need Swarm or
//! the shell environment of whoever runs Compose. Ports are read in
//! `ports.rs`, volumes in `mounts.rs`, `deploy`/`x-berth` in `deploy.rs`,
//! keys that map one to one onto engine settings in `service_keys.rs`.
//!
//! `container_name` replaces berth's `<stack>-<service>-<replica>` name, so
//! it allows one container per host. `network_mode: service:<name>` and
//! `links` need the whole stack and are resolved by [`check_stack`].

use std::collections::{BTreeMap, BTreeSet};

use super::decls::Decls;
use super::read::{Cx, Fields, FileRef};
use super::restart::RestartPolicy;
use super::yaml::{Kind, Node};
use super::{deploy, image, mounts, ports, values};

#[path = "service_keys.rs"]
mod keys;
use super::diagnostic::Diagnostic;
use super::model::{
    Adopt, ContainerSpec, DependsCondition, DeployMode, HealthcheckSpec, Location, LoggingSpec,
    NetworkAddress, PullPolicy, SecretRef, SecretSpec, Service, Ulimit, UpdateOrder,
};

/// A service before the checks that need the whole stack.
pub(crate) struct ServiceDraft {
    pub service: Service,
    pub depends_on: Vec<Dependency>,
    /// Where `depends_on` is written (for cycle messages).
    pub depends_at: Location,
    /// The service is on the stack's `default` network.
    pub joins_default: bool,
    /// `links:` entries, checked and turned into aliases once the stack is read.
    pub links: Vec<Link>,
    /// `network_mode: service:<name>`, resolved once the stack is read.
    pub network_peer: Option<(String, Location)>,
}

pub(crate) struct Dependency {
    pub name: String,
    pub condition: DependsCondition,
    pub location: Location,
    /// `required: false`: a dependency that is not in the stack is fine.
    pub required: bool,
    /// `restart: true`: replace this service when the dependency changes.
    pub restart: bool,
}

/// `links: [db]` or `links: [db:database]`.
pub(crate) struct Link {
    pub service: String,
    pub alias: Option<String>,
    pub location: Location,
}

pub(crate) const SERVICE_KEYS: &[&str] = &[
    "image",
    "command",
    "entrypoint",
    "environment",
    "ports",
    "volumes",
    "tmpfs",
    "networks",
    "labels",
    "healthcheck",
    "restart",
    "user",
    "working_dir",
    "hostname",
    "read_only",
    "cap_add",
    "cap_drop",
    "security_opt",
    "mem_limit",
    "mem_reservation",
    "cpus",
    "pids_limit",
    "gpus",
    "logging",
    "ulimits",
    "stop_grace_period",
    "depends_on",
    "secrets",
    "configs",
    "deploy",
    "x-berth",
    "container_name",
    "pull_policy",
    "build",
    "network_mode",
    "links",
    "expose",
    "domainname",
    "init",
    "stop_signal",
    "extra_hosts",
    "dns",
    "dns_search",
    "dns_opt",
    "sysctls",
    "devices",
    "privileged",
    "shm_size",
    "platform",
    "runtime",
    "stdin_open",
    "tty",
    "ipc",
    "pid",
    "group_add",
    "cgroup_parent",
    "oom_score_adj",
    "storage_opt",
    "userns_mode",
    "memswap_limit",
    "cpu_shares",
    "cpuset",
    "annotations",
    "scale",
];

/// Compose service keys berth leaves out, with what to do instead.
fn unsupported_hint(key: &str) -> Option<&'static str> {
    let hint = match key {
        "env_file" => "berth does not read env files: put values under `environment`, credentials under `secrets`",
        "external_links" => "berth manages its own project's containers: join both to an external network (`networks: {x: {external: true}}`) and use the other container's name",
        "extends" => "share settings with YAML anchors and `<<:` merge keys",
        "profiles" => "berth deploys every service of a stack: move optional services to a stack of their own",
        "restart_policy" => "use `restart`",
        "volumes_from" => "declare a named volume and mount it in both services",
        "mac_address" | "blkio_config" | "cgroup" | "cpu_count" | "cpu_percent" | "cpu_quota"
        | "cpu_period" | "cpu_rt_period" | "cpu_rt_runtime" | "credential_spec"
        | "device_cgroup_rules" | "isolation" | "label_file" | "mem_swappiness"
        | "models" | "oom_kill_disable" | "post_start" | "pre_stop" | "provider"
        | "use_api_socket" | "uts" => "",
        _ => return None,
    };
    Some(hint)
}

/// Reads one service. Always returns a draft so later checks can run; any
/// problem is in `cx`.
pub(crate) fn read_service(
    cx: &mut Cx,
    name: &str,
    key: &Node,
    node: &Node,
    decls: &Decls<'_>,
) -> ServiceDraft {
    let what = format!("service `{name}`");
    let mut container = ContainerSpec {
        restart: RestartPolicy::UnlessStopped,
        ..ContainerSpec::default()
    };
    let mut draft = ServiceDraft {
        service: Service {
            name: name.to_string(),
            location: cx.at(key),
            deploy: deploy::default_deploy(),
            depends_on: BTreeMap::new(),
            container: ContainerSpec::default(),
            validate: Vec::new(),
            secrets: Vec::new(),
            configs: Vec::new(),
            reload: None,
            container_name: None,
            pull_policy: PullPolicy::default(),
            pull_policy_at: None,
            follows: BTreeSet::new(),
            network_peer: None,
            build_ignored: None,
            adopt: None,
            publish: None,
        },
        depends_on: Vec::new(),
        depends_at: cx.at(key),
        joins_default: false,
        links: Vec::new(),
        network_peer: None,
    };
    if node.is_null() {
        cx.error_help(
            key,
            format!("{what} is empty"),
            "a service needs at least `image:`",
        );
        return draft;
    }
    let Some(fields) = cx.map(node, &what) else {
        return draft;
    };
    check_service_keys(cx, &fields, &what);

    match fields.get("image") {
        None => match fields.get("build") {
            Some(build) => cx.error_help(
                build.key,
                format!("{what} has `build` but no `image`"),
                "berth deploys images from a registry and never builds them: build and push the image in CI, then set `image: <repository>:<tag>`",
            ),
            None => cx.error_help(
                key,
                format!("{what} has no `image`"),
                "berth deploys images from a registry: set `image: <repository>:<tag>`",
            ),
        },
        Some(field) => {
            if let Some(reference) = cx.string(field.value, &format!("`image` of {what}")) {
                match image::canonical(&reference) {
                    Ok(canonical) => container.image = canonical,
                    Err(reason) => cx.error_help(
                        field.value,
                        format!("{what}: bad image reference `{reference}`: {reason}"),
                        "write `[registry/]repository[:tag][@sha256:digest]`, repository in lowercase, e.g. `ghcr.io/acme/api:1.4.2`",
                    ),
                }
            }
        }
    }
    container.command = fields
        .value("command")
        .and_then(|v| command(cx, v, &format!("`command` of {what}")));
    container.entrypoint = fields
        .value("entrypoint")
        .and_then(|v| command(cx, v, &format!("`entrypoint` of {what}")));
    if let Some(v) = fields.value("environment") {
        let strict = decls.inventory.is_some_and(|i| i.compose.strict_variables);
        container.environment = environment(cx, v, &what, strict);
    }
    if let Some(v) = fields.value("ports") {
        container.ports = ports::ports(cx, v, &what);
    }
    if let Some(v) = fields.value("volumes") {
        let (mounts, tmpfs) = mounts::mounts(cx, v, &what, decls);
        container.mounts = mounts;
        container.tmpfs = tmpfs;
        draft.service.configs = decls.bind_refs.take();
    }
    if let Some(v) = fields.value("configs") {
        let mut refs = super::configs::read_refs(cx, v, &what, decls.configs);
        for r in refs.drain(..) {
            if draft.service.configs.iter().any(|c| c.target == r.target)
                || container.mounts.iter().any(|m| m.target == r.target)
            {
                cx.report(
                    r.location.clone(),
                    format!("{what} mounts two things at `{}`", r.target),
                    Some("give the config another `target`".into()),
                );
                continue;
            }
            draft.service.configs.push(r);
        }
    }
    draft
        .service
        .configs
        .sort_by(|a, b| a.target.cmp(&b.target));
    if let Some(v) = fields.value("tmpfs") {
        mounts::tmpfs(cx, v, &what, &mut container.tmpfs);
    }
    // `build` with `image`: berth deploys the image and builds nothing, and
    // says so in the load's warnings (shown by every command).
    if let Some(build) = fields.get("build") {
        if let Some(image) = fields.value("image") {
            draft.service.build_ignored = Some(cx.at(build.key));
            let image = image.scalar().unwrap_or_default();
            cx.warn(
                build.key,
                format!("{what} has `build`: berth deploys `{image}` from its registry and builds nothing"),
                "build and push the image in CI before deploying; remove `build` to silence this warning",
            );
        }
    }
    mounts::check_mount_targets(cx, &container, &fields, &what);
    keys::read(cx, &fields, &what, &mut container);
    let mut address_at = None;
    match fields.value("network_mode") {
        Some(v) => {
            if let Some(field) = fields.get("networks") {
                cx.error_help(
                    field.key,
                    format!("{what} sets both `network_mode` and `networks`"),
                    "a container either shares a network stack (`network_mode`) or joins networks: keep one",
                );
            }
            container.network_mode = network_mode(cx, v, name, &what, &mut draft);
            check_network_mode(cx, &fields, &container, &what);
        }
        None => {
            let attached = networks(cx, fields.value("networks"), name, &what, decls);
            container.networks = attached.networks;
            container.addresses = attached.addresses;
            draft.joins_default = attached.joins_default;
            address_at = attached.address_at;
        }
    }
    if let Some(v) = fields.value("links") {
        draft.links = links(cx, v, &what);
        if let Some(mode) = &container.network_mode {
            cx.error_help(
                v,
                format!("{what} sets `links` with `network_mode: {mode}`"),
                "links are aliases on a shared network: remove `links`, or attach the service with `networks:`",
            );
        }
    }
    if let Some(v) = fields.value("container_name") {
        draft.service.container_name = container_name(cx, v, &what);
    }
    if let Some(v) = fields.value("pull_policy") {
        draft.service.pull_policy = pull_policy(cx, v, &what).unwrap_or_default();
        draft.service.pull_policy_at = Some(cx.at(v));
    }
    container.labels = super::read::read_labels(cx, &fields, &what);
    if let Some(v) = fields.value("healthcheck") {
        container.healthcheck = healthcheck(cx, v, &what);
    }
    let mut restart_key = None;
    if let Some(v) = fields.value("restart") {
        if let Some(restart) = restart(cx, v, &what) {
            container.restart = restart;
            restart_key = Some(restart);
        }
    }
    if let Some(v) = fields.value("user") {
        container.user = cx.stringify(v, &format!("`user` of {what}"));
    }
    if let Some(v) = fields.value("working_dir") {
        container.working_dir = cx.string(v, &format!("`working_dir` of {what}"));
        if let Some(dir) = &container.working_dir {
            if !dir.starts_with('/') {
                cx.error(
                    v,
                    format!("`working_dir` of {what} must be an absolute path, found `{dir}`"),
                );
            }
        }
    }
    if let Some(v) = fields.value("hostname") {
        container.hostname = cx.string(v, &format!("`hostname` of {what}"));
        if let Some(host) = &container.hostname {
            let valid = !host.is_empty()
                && host.len() <= 253
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            if !valid {
                cx.error(
                    v,
                    format!("`hostname` of {what} is not a valid host name: `{host}`"),
                );
            }
        }
    }
    if let Some(v) = fields.value("read_only") {
        container.read_only = cx
            .bool(v, &format!("`read_only` of {what}"))
            .unwrap_or(false);
    }
    if let Some(v) = fields.value("cap_add") {
        container.cap_add = capabilities(cx, v, &format!("`cap_add` of {what}"));
    }
    if let Some(v) = fields.value("cap_drop") {
        container.cap_drop = capabilities(cx, v, &format!("`cap_drop` of {what}"));
    }
    if let Some(v) = fields.value("security_opt") {
        container.security_opt = security_opt(cx, v, &what);
    }
    if let Some(v) = fields.value("mem_limit") {
        container.resources.memory = cx.memory(v, &format!("`mem_limit` of {what}"));
    }
    if let Some(v) = fields.value("mem_reservation") {
        container.resources.memory_reservation =
            cx.memory(v, &format!("`mem_reservation` of {what}"));
    }
    if let Some(v) = fields.value("cpus") {
        container.resources.nano_cpus = cx.cpus(v, &format!("`cpus` of {what}"));
    }
    if let Some(v) = fields.value("pids_limit") {
        container.resources.pids_limit =
            cx.int(v, &format!("`pids_limit` of {what}"), -1, i64::MAX);
    }
    if let Some(v) = fields.value("gpus") {
        container.resources.device_requests = deploy::gpus(cx, v, &what);
    }
    if let Some(v) = fields.value("logging") {
        container.logging = logging(cx, v, &what);
    }
    if let Some(v) = fields.value("ulimits") {
        container.ulimits = ulimits(cx, v, &what);
    }
    if let Some(v) = fields.value("stop_grace_period") {
        container.stop_grace_period = cx
            .duration(v, &format!("`stop_grace_period` of {what}"))
            .map(|d| d.as_millis().div_ceil(1000) as u64);
    }
    if let Some(field) = fields.get("depends_on") {
        draft.depends_at = cx.at(field.key);
        if !field.value.is_null() {
            draft.depends_on = depends_on(cx, field.value, &what);
        }
    }
    if let Some(v) = fields.value("secrets") {
        draft.service.secrets = secrets(cx, v, &what, decls.secrets);
    }
    if let Some(v) = fields.value("deploy") {
        if let Some(read) = deploy::read_deploy(
            cx,
            v,
            &what,
            // A Swarm places its own tasks: the hosts' labels say nothing.
            decls
                .inventory
                .filter(|i| i.swarm_of(decls.stack).is_none()),
        ) {
            draft.service.deploy = read.deploy;
            deploy::merge_resources(cx, &mut container.resources, read.resources, &what);
            // As `docker compose` does, `deploy.restart_policy` wins over
            // `restart`; a disagreement is said, not refused.
            if let Some((policy, at)) = read.restart {
                if let Some(restart) = restart_key.filter(|r| *r != policy) {
                    cx.warnings.push(Diagnostic {
                        location: at,
                        message: format!("{what} sets `restart: {restart}` and a `deploy.restart_policy` that means `{policy}`: the container gets `{policy}`"),
                        help: Some("keep one of them: outside Swarm both set the container's restart policy, and `deploy.restart_policy` wins (as with `docker compose`)".to_string()),
                    });
                }
                container.restart = policy;
            }
            for (key, (value, at)) in read.labels {
                match container.labels.get(&key) {
                    Some(existing) if existing != &value => cx.report(
                        at,
                        format!("label `{key}` of {what} is set to different values in `labels` and `deploy.labels`"),
                        Some("berth puts `deploy.labels` on the containers too: keep one value".to_string()),
                    ),
                    _ => {
                        container.labels.insert(key, value);
                    }
                }
            }
        }
    }
    if let Some(v) = fields.value("scale") {
        scale(cx, v, &fields, &mut draft.service.deploy, &what);
    }
    if let Some(v) = fields.value("container_name") {
        let deploy = &draft.service.deploy;
        if deploy.mode == DeployMode::Replicated
            && deploy.replicas > 1
            && deploy.max_replicas_per_node != 1
        {
            cx.error_help(
                v,
                format!(
                    "{what} sets `container_name` and runs {} replicas, so two could land on one host under the same name",
                    deploy.replicas
                ),
                "add `deploy.placement.max_replicas_per_node: 1` (one container of that name per host), or remove `container_name`",
            );
        }
    }
    if let Some(at) = address_at {
        fixed_address_rollout(cx, at, &draft.service.deploy, &what);
    }
    if let Some(v) = fields.value("x-berth") {
        (draft.service.validate, draft.service.adopt) = deploy::read_x_berth(cx, v, &what);
        if let (Some(Adopt::Replicas(names)), Some(at)) = (&draft.service.adopt, v.get("adopt")) {
            adopt_replicas(cx, at, names, &draft.service, &what);
        }
        if let Some(publish) = v.get("publish") {
            draft.service.publish = super::discovery::read_publish(cx, publish, &what);
        }
        if let Some(reload) = v.get("reload") {
            draft.service.reload = super::configs::read_reload(cx, reload, &what);
            if draft.service.configs.is_empty() {
                cx.warn(
                    reload,
                    format!("{what} sets `x-berth.reload` but reads no config"),
                    "list the files it reloads under the service's `configs:` (or as `./<path>:<target>` volumes), or remove `x-berth.reload`",
                );
            }
        }
    }
    draft.service.container = container;
    draft
}

/// A fixed address is one container's per host (each host has its own
/// bridge network, so replicas on different hosts may share it), and a
/// start-first rollout would start the new container while the old one
/// still holds the address.
fn fixed_address_rollout(cx: &mut Cx, at: Location, deploy: &super::model::Deploy, what: &str) {
    if deploy.mode == DeployMode::Replicated
        && deploy.replicas > 1
        && deploy.max_replicas_per_node != 1
    {
        cx.report(
            at.clone(),
            format!(
                "{what} has a fixed address and runs {} replicas, so two could land on one host with the same address",
                deploy.replicas
            ),
            Some("add `deploy.placement.max_replicas_per_node: 1` (one container per host), or remove the fixed address".to_string()),
        );
    }
    if deploy.update.order == UpdateOrder::StartFirst {
        cx.report(
            at,
            format!("{what} has a fixed address and `update_config.order: start-first`: the new container cannot take the address while the old one holds it"),
            Some("use `order: stop-first` (the default), or remove the fixed address".to_string()),
        );
    }
}

fn check_service_keys(cx: &mut Cx, fields: &Fields<'_>, what: &str) {
    for field in &fields.entries {
        if SERVICE_KEYS.contains(&field.name) {
            continue;
        }
        if dev_only_key(cx, field, what) {
            continue;
        }
        if let Some(hint) = unsupported_hint(field.name) {
            let help = if hint.is_empty() {
                format!(
                    "berth cannot pass `{}` to the Docker Engine yet: remove it if the service runs without it",
                    field.name
                )
            } else {
                hint.to_string()
            };
            cx.error_help(
                field.key,
                format!("unsupported key `{}` in {what}", field.name),
                help,
            );
        } else if field.name.starts_with("x-") {
            // Extension fields are for other tools, and Compose allows them
            // in a service; only a near miss of berth's own is a mistake.
            if values::suggest(field.name, &["x-berth"]).is_some() {
                cx.error_help(
                    field.key,
                    format!("unknown extension `{}` in {what}", field.name),
                    "did you mean `x-berth`? (other `x-` keys are left to other tools)",
                );
            }
        } else {
            cx.unknown_key(field, what, SERVICE_KEYS);
        }
    }
}

/// `scale`: Compose's older spelling of `deploy.replicas`, with the same
/// meaning in berth (replicas spread over the eligible hosts). As in
/// Compose, both may be written only with the same value.
fn scale(
    cx: &mut Cx,
    node: &Node,
    fields: &Fields<'_>,
    deploy: &mut super::model::Deploy,
    what: &str,
) {
    let Some(n) = cx.int(node, &format!("`scale` of {what}"), 0, 10_000) else {
        return;
    };
    let n = n as u32;
    let replicas_written = fields
        .value("deploy")
        .and_then(|d| d.get("replicas"))
        .is_some_and(|r| !r.is_null());
    if deploy.mode == DeployMode::Global {
        cx.error_help(
            node,
            format!("{what} sets `scale` with `deploy.mode: global`"),
            "a global service runs one replica on every eligible host: remove `scale`",
        );
    } else if replicas_written && deploy.replicas != n {
        cx.error_help(
            node,
            format!(
                "{what} sets `scale: {n}` and `deploy.replicas: {}`",
                deploy.replicas
            ),
            "keep one of them (`deploy.replicas` is the current spelling)",
        );
    } else {
        deploy.replicas = n;
    }
}

/// Keys that only steer the `docker compose` command line, not the
/// containers: `develop` (`docker compose watch`) and `attach` (whose logs
/// `up` streams). Compose's `up` leaves containers the same with or without
/// them, and so does berth, saying so where it matters. True when handled.
fn dev_only_key(cx: &mut Cx, field: &super::read::Field<'_>, what: &str) -> bool {
    match field.name {
        "develop" => {
            cx.warn(
                field.key,
                format!("`develop` of {what} has no effect on a deploy"),
                "it steers `docker compose watch` on a developer's machine; berth deploys the image as built: keep it for local work, it changes nothing here",
            );
            true
        }
        "attach" => {
            if cx.bool(field.value, &format!("`attach` of {what}")) == Some(true) {
                cx.warn(
                    field.key,
                    format!("`attach: true` of {what} has no effect"),
                    "berth streams no container logs while deploying: read them with `docker logs` on the host",
                );
            }
            true
        }
        _ => false,
    }
}

/// `command`/`entrypoint`: a list, or a string split into words as Compose does.
fn command(cx: &mut Cx, node: &Node, what: &str) -> Option<Vec<String>> {
    if let Kind::Seq(_) = node.kind {
        return cx.strings(node, what);
    }
    let text = cx.string(node, what)?;
    match values::shell_words(&text) {
        Ok(words) => Some(words),
        Err(reason) => {
            cx.error_help(
                node,
                format!("{what}: {reason}"),
                "close the quote, or write the command as a list",
            );
            None
        }
    }
}

/// `environment` in list or map form. A name alone (`- TZ`) took its value
/// from the variables before this runs; one set nowhere is left out of the
/// container, as `docker compose` does, with a warning (an error with
/// `settings.strict_variables`).
fn environment(cx: &mut Cx, node: &Node, what: &str, strict: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for pair in cx
        .pairs(node, &format!("`environment` of {what}"), true)
        .unwrap_or_default()
    {
        if pair.key.is_empty() || pair.key.contains(['=', ' ', '\t', '\n']) {
            cx.error(
                pair.node,
                format!(
                    "`{}` in `environment` of {what} is not a variable name",
                    pair.key
                ),
            );
            continue;
        }
        match pair.value {
            Some(value) => {
                out.insert(pair.key, value);
            }
            None => {
                let key = &pair.key;
                let help = format!("set `{key}` in the stack's `.env`, in `variables:` of `berth.yaml` or in berth's environment, or write `{key}=<value>` (use `secrets` for credentials)");
                if strict {
                    cx.error_help(
                        pair.node,
                        format!("variable `{key}` of {what} has no value"),
                        format!("{help} (`settings.strict_variables` is on)"),
                    );
                } else {
                    cx.warn(
                        pair.node,
                        format!("variable `{key}` of {what} is set nowhere: the container does not get it"),
                        help,
                    );
                }
            }
        }
    }
    out
}

const NETWORK_ATTACH_KEYS: &[&str] = &["aliases", "ipv4_address", "ipv6_address"];

/// The networks a service joins, as [`networks`] reads them.
struct Attachments {
    /// Engine-side name -> aliases.
    networks: BTreeMap<String, Vec<String>>,
    /// Engine-side name -> fixed address, where one is set.
    addresses: BTreeMap<String, NetworkAddress>,
    /// Where the first fixed address is written.
    address_at: Option<Location>,
    joins_default: bool,
}

/// The engine-side networks the service joins, with aliases (the service
/// name is always one, as in Compose); `default` when it names none. Fixed
/// addresses are checked against the network's declared subnets.
fn networks(
    cx: &mut Cx,
    node: Option<&Node>,
    service: &str,
    what: &str,
    decls: &Decls<'_>,
) -> Attachments {
    let mut wanted: Vec<(&str, &Node, Vec<String>, NetworkAddress)> = Vec::new();
    let mut address_at = None;
    match node.map(|n| &n.kind) {
        None => {}
        Some(Kind::Seq(items)) => {
            for item in items {
                match item.scalar() {
                    Some(name) => wanted.push((name, item, Vec::new(), NetworkAddress::default())),
                    None => cx.error(
                        item,
                        format!(
                            "a network of {what} must be a name, found {}",
                            item.describe()
                        ),
                    ),
                }
            }
        }
        Some(Kind::Map(entries)) => {
            for (key, value) in entries {
                let name = key.key_text().unwrap_or_default();
                let mut aliases = Vec::new();
                let mut address = NetworkAddress::default();
                if !value.is_null() {
                    let attach = format!("network `{name}` of {what}");
                    if let Some(fields) = cx.map_with(value, &attach, NETWORK_ATTACH_KEYS) {
                        if let Some(v) = fields.value("aliases") {
                            aliases = cx
                                .strings(v, &format!("`aliases` of {attach}"))
                                .unwrap_or_default();
                        }
                        for (key, v6) in [("ipv4_address", false), ("ipv6_address", true)] {
                            let Some(v) = fields.value(key) else { continue };
                            let here = format!("`{key}` of {attach}");
                            let Some(ip) = fixed_address(cx, v, &here, v6) else {
                                continue;
                            };
                            check_fixed_address(cx, v, ip, &here, decls.networks.get(name), name);
                            address_at.get_or_insert_with(|| cx.at(v));
                            if v6 {
                                address.ipv6 = Some(ip.to_string());
                            } else {
                                address.ipv4 = Some(ip.to_string());
                            }
                        }
                    }
                }
                wanted.push((name, key, aliases, address));
            }
        }
        Some(_) => {
            if let Some(n) = node {
                cx.error(
                    n,
                    format!(
                        "`networks` of {what} must be a list or a mapping, found {}",
                        n.describe()
                    ),
                );
            }
        }
    }
    if wanted.is_empty() {
        wanted.push((
            "default",
            node.unwrap_or(&NULL),
            Vec::new(),
            NetworkAddress::default(),
        ));
    }
    let mut out = Attachments {
        networks: BTreeMap::new(),
        addresses: BTreeMap::new(),
        address_at,
        joins_default: false,
    };
    for (name, at, mut aliases, address) in wanted {
        let engine = match decls.networks.get(name) {
            Some(spec) => spec.name.clone(),
            None if name == "default" => format!("{}_default", decls.stack),
            None => {
                let declared: Vec<&str> = decls.networks.keys().map(String::as_str).collect();
                let mut help = String::new();
                if let Some(close) = values::suggest(name, &declared) {
                    help.push_str(&format!("did you mean `{close}`? "));
                }
                help.push_str(&format!(
                    "declare it under top-level `networks:` (`networks: {{{name}: {{}}}}`)"
                ));
                cx.error_help(at, format!("undefined network `{name}` in {what}"), help);
                continue;
            }
        };
        out.joins_default |= name == "default";
        aliases.push(service.to_string());
        aliases.sort();
        aliases.dedup();
        if address != NetworkAddress::default() {
            out.addresses.insert(engine.clone(), address);
        }
        out.networks.insert(engine, aliases);
    }
    out
}

/// `ipv4_address` / `ipv6_address`: an address of that family.
fn fixed_address(cx: &mut Cx, node: &Node, here: &str, v6: bool) -> Option<std::net::IpAddr> {
    let text = cx.string(node, here)?;
    let parsed = if v6 {
        text.parse::<std::net::Ipv6Addr>()
            .ok()
            .map(std::net::IpAddr::V6)
    } else {
        text.parse::<std::net::Ipv4Addr>()
            .ok()
            .map(std::net::IpAddr::V4)
    };
    if parsed.is_none() {
        let (family, example) = if v6 {
            ("IPv6", "fd00:1::10")
        } else {
            ("IPv4", "172.28.0.10")
        };
        cx.error_help(
            node,
            format!("{here} must be an {family} address, found `{text}`"),
            format!("write the address alone, without a prefix length: `{example}`"),
        );
    }
    parsed
}

/// Docker gives a container a fixed address only on a network whose subnet
/// is configured (`ipam.config[].subnet`), inside that subnet, and not its
/// gateway; IPv6 also needs `enable_ipv6`. Said here, at the address,
/// rather than by the engine halfway through an apply. An external
/// network's subnet is not in the repo: the engine checks those.
fn check_fixed_address(
    cx: &mut Cx,
    node: &Node,
    ip: std::net::IpAddr,
    here: &str,
    network: Option<&super::model::NetworkSpec>,
    name: &str,
) {
    if network.is_some_and(|n| n.external) {
        return;
    }
    let (family, example) = if ip.is_ipv6() {
        ("IPv6", "fd00:1::/64")
    } else {
        ("IPv4", "172.28.0.0/16")
    };
    if ip.is_ipv6() && network.and_then(|n| n.enable_ipv6) != Some(true) {
        cx.error_help(
            node,
            format!("{here} needs network `{name}` to enable IPv6"),
            format!("set `enable_ipv6: true` and an IPv6 subnet on network `{name}`: `ipam: {{config: [{{subnet: {example}}}]}}`"),
        );
        return;
    }
    let pools: Vec<&super::model::IpamPool> = network
        .and_then(|n| n.ipam.as_ref())
        .map(|ipam| {
            ipam.config
                .iter()
                .filter(|p| {
                    p.subnet
                        .as_deref()
                        .is_some_and(|s| values::in_subnet(ip, s).is_some())
                })
                .collect()
        })
        .unwrap_or_default();
    if pools.is_empty() {
        cx.error_help(
            node,
            format!("{here} needs an {family} subnet declared on network `{name}`"),
            format!("Docker gives fixed addresses only on networks with a configured subnet: declare `networks: {{{name}: {{ipam: {{config: [{{subnet: {example}}}]}}}}}}` at the top level"),
        );
        return;
    }
    let subnets: Vec<&str> = pools.iter().filter_map(|p| p.subnet.as_deref()).collect();
    match pools
        .iter()
        .find(|p| p.subnet.as_deref().and_then(|s| values::in_subnet(ip, s)) == Some(true))
    {
        None => cx.error_help(
            node,
            format!(
                "{here} is `{ip}`, outside the subnet of network `{name}` ({})",
                subnets.join(", ")
            ),
            format!(
                "pick an address in {}, or change the network's `ipam` subnet",
                subnets.join(" or ")
            ),
        ),
        Some(pool) if pool.gateway.as_deref().and_then(|g| g.parse().ok()) == Some(ip) => cx
            .error_help(
                node,
                format!("{here} is `{ip}`, the gateway of network `{name}`"),
                "pick another address in the subnet: the gateway belongs to the host",
            ),
        Some(_) => {}
    }
}

/// Stands in for a missing node when a message has no better place.
static NULL: Node = Node {
    file: None,
    kind: Kind::Null,
    line: 0,
    column: 0,
};

const HEALTHCHECK_KEYS: &[&str] = &[
    "test",
    "interval",
    "timeout",
    "start_period",
    "start_interval",
    "retries",
    "disable",
];

fn healthcheck(cx: &mut Cx, node: &Node, what: &str) -> Option<HealthcheckSpec> {
    let hc = format!("`healthcheck` of {what}");
    let fields = cx.map_with(node, &hc, HEALTHCHECK_KEYS)?;
    let mut spec = HealthcheckSpec::default();
    if let Some(v) = fields.value("disable") {
        if cx.bool(v, &format!("`disable` of {hc}")) == Some(true) {
            if let Some(f) = fields.get("test") {
                cx.error(f.key, format!("{hc} sets both `disable: true` and `test`"));
            }
            spec.test = vec!["NONE".to_string()];
            return Some(spec);
        }
    }
    if let Some(v) = fields.value("test") {
        spec.test = match &v.kind {
            Kind::Seq(_) => {
                let test = cx.strings(v, &format!("`test` of {hc}"))?;
                match test.first().map(String::as_str) {
                    Some("NONE") | Some("CMD") | Some("CMD-SHELL") => test,
                    _ => {
                        cx.error_help(
                            v,
                            format!("`test` of {hc} must start with `CMD`, `CMD-SHELL` or `NONE`"),
                            "write `test: [\"CMD\", \"curl\", \"-f\", \"http://localhost/\"]`, or a string to run in a shell",
                        );
                        return None;
                    }
                }
            }
            _ => vec![
                "CMD-SHELL".to_string(),
                cx.string(v, &format!("`test` of {hc}"))?,
            ],
        };
    }
    let millis = |cx: &mut Cx, key: &str| -> u64 {
        fields
            .value(key)
            .and_then(|v| cx.duration(v, &format!("`{key}` of {hc}")))
            .map_or(0, |d| d.as_millis() as u64)
    };
    spec.interval_ms = millis(cx, "interval");
    spec.timeout_ms = millis(cx, "timeout");
    spec.start_period_ms = millis(cx, "start_period");
    spec.start_interval_ms = millis(cx, "start_interval");
    if let Some(v) = fields.value("retries") {
        spec.retries = cx
            .int(v, &format!("`retries` of {hc}"), 0, i64::from(u32::MAX))
            .unwrap_or(0) as u32;
    }
    Some(spec)
}

fn restart(cx: &mut Cx, node: &Node, what: &str) -> Option<RestartPolicy> {
    let text = cx.string(node, &format!("`restart` of {what}"))?;
    match text.parse() {
        Ok(policy) => Some(policy),
        Err(e) => {
            cx.error_help(
                node,
                format!("`restart` of {what} {e}"),
                "berth's default is `unless-stopped`",
            );
            None
        }
    }
}

/// Capabilities as Docker knows them: upper case, without `CAP_`, sorted.
fn capabilities(cx: &mut Cx, node: &Node, what: &str) -> Vec<String> {
    let mut caps: Vec<String> = cx
        .strings(node, what)
        .unwrap_or_default()
        .into_iter()
        .map(|c| {
            let upper = c.to_ascii_uppercase();
            upper
                .strip_prefix("CAP_")
                .map(str::to_string)
                .unwrap_or(upper)
        })
        .collect();
    for cap in &caps {
        if cap.is_empty()
            || !cap
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            cx.error(node, format!("{what}: `{cap}` is not a capability name"));
        }
    }
    caps.sort();
    caps.dedup();
    caps
}

fn security_opt(cx: &mut Cx, node: &Node, what: &str) -> Vec<String> {
    let mut opts = cx
        .strings(node, &format!("`security_opt` of {what}"))
        .unwrap_or_default();
    for opt in &opts {
        if let Some(profile) = opt
            .strip_prefix("seccomp=")
            .or_else(|| opt.strip_prefix("seccomp:"))
        {
            if profile != "unconfined" {
                cx.error_help(
                    node,
                    format!("{what}: `{opt}` names a seccomp profile file"),
                    "the Docker CLI sends a profile file's contents, which berth does not do: use the engine's default profile or `seccomp=unconfined`",
                );
            }
        }
    }
    opts.sort();
    opts.dedup();
    opts
}

fn logging(cx: &mut Cx, node: &Node, what: &str) -> Option<LoggingSpec> {
    let log = format!("`logging` of {what}");
    let fields = cx.map_with(node, &log, &["driver", "options"])?;
    let Some(driver) = fields.value("driver") else {
        cx.error_help(
            node,
            format!("{log} has no `driver`"),
            "set `driver:`, e.g. `json-file` or `local`",
        );
        return None;
    };
    let driver = cx.string(driver, &format!("`driver` of {log}"))?;
    let options = match fields.value("options") {
        Some(v) => cx.string_map(v, &format!("`options` of {log}"))?,
        None => BTreeMap::new(),
    };
    Some(LoggingSpec { driver, options })
}

const ULIMIT_NAMES: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

fn ulimits(cx: &mut Cx, node: &Node, what: &str) -> BTreeMap<String, Ulimit> {
    let mut out = BTreeMap::new();
    let limits = format!("`ulimits` of {what}");
    let Some(fields) = cx.map(node, &limits) else {
        return out;
    };
    for field in &fields.entries {
        if !ULIMIT_NAMES.contains(&field.name) {
            let mut help = String::new();
            if let Some(close) = values::suggest(field.name, ULIMIT_NAMES) {
                help.push_str(&format!("did you mean `{close}`? "));
            }
            help.push_str(&format!("ulimits: {}", ULIMIT_NAMES.join(", ")));
            cx.error_help(
                field.key,
                format!("unknown ulimit `{}` in {what}", field.name),
                help,
            );
            continue;
        }
        let one = format!("ulimit `{}` of {what}", field.name);
        let limit = if let Kind::Map(_) = field.value.kind {
            let Some(pair) = cx.map_with(field.value, &one, &["soft", "hard"]) else {
                continue;
            };
            let (Some(soft), Some(hard)) = (pair.value("soft"), pair.value("hard")) else {
                cx.error(field.value, format!("{one} needs both `soft` and `hard`"));
                continue;
            };
            let (Some(soft), Some(hard)) = (
                cx.int(soft, &format!("`soft` of {one}"), -1, i64::MAX),
                cx.int(hard, &format!("`hard` of {one}"), -1, i64::MAX),
            ) else {
                continue;
            };
            if hard != -1 && (soft == -1 || soft > hard) {
                cx.error(
                    field.value,
                    format!("{one}: soft limit {soft} is above the hard limit {hard}"),
                );
                continue;
            }
            Ulimit { soft, hard }
        } else {
            let Some(n) = cx.int(field.value, &one, -1, i64::MAX) else {
                continue;
            };
            Ulimit { soft: n, hard: n }
        };
        out.insert(field.name.to_string(), limit);
    }
    out
}

fn depends_on(cx: &mut Cx, node: &Node, what: &str) -> Vec<Dependency> {
    let mut out = Vec::new();
    match &node.kind {
        Kind::Seq(items) => {
            for item in items {
                if let Some(name) = cx.string(item, &format!("an item of `depends_on` of {what}")) {
                    out.push(Dependency {
                        name,
                        condition: DependsCondition::ServiceStarted,
                        location: cx.at(item),
                        required: true,
                        restart: false,
                    });
                }
            }
        }
        Kind::Map(entries) => {
            for (key, value) in entries {
                let name = key.key_text().unwrap_or_default().to_string();
                let dep = format!("dependency `{name}` of {what}");
                let mut condition = DependsCondition::ServiceStarted;
                let (mut required, mut restart) = (true, false);
                if !value.is_null() {
                    let Some(fields) =
                        cx.map_with(value, &dep, &["condition", "required", "restart"])
                    else {
                        continue;
                    };
                    if let Some(v) = fields.value("required") {
                        required = cx.bool(v, &format!("`required` of {dep}")).unwrap_or(true);
                    }
                    if let Some(v) = fields.value("restart") {
                        restart = cx.bool(v, &format!("`restart` of {dep}")).unwrap_or(false);
                    }
                    if let Some(v) = fields.value("condition") {
                        condition = match v.scalar() {
                            Some("service_started") => DependsCondition::ServiceStarted,
                            Some("service_healthy") => DependsCondition::ServiceHealthy,
                            Some("service_completed_successfully") => {
                                DependsCondition::ServiceCompletedSuccessfully
                            }
                            _ => {
                                cx.error(
                                    v,
                                    format!(
                                        "`condition` of {dep} must be `service_started`, `service_healthy` or `service_completed_successfully`, found {}",
                                        v.describe()
                                    ),
                                );
                                continue;
                            }
                        };
                    }
                }
                out.push(Dependency {
                    name,
                    condition,
                    location: cx.at(key),
                    required,
                    restart,
                });
            }
        }
        _ => cx.error(
            node,
            format!(
                "`depends_on` of {what} must be a list or a mapping, found {}",
                node.describe()
            ),
        ),
    }
    out
}

const SECRET_REF_KEYS: &[&str] = &["source", "target", "uid", "gid", "mode"];

fn secrets(
    cx: &mut Cx,
    node: &Node,
    what: &str,
    declared: &BTreeMap<String, SecretSpec>,
) -> Vec<SecretRef> {
    let Some(items) = cx.seq(node, &format!("`secrets` of {what}")) else {
        return Vec::new();
    };
    let mut out: Vec<SecretRef> = Vec::new();
    for item in items {
        let Some(FileRef {
            source_node,
            source,
            target,
            uid,
            gid,
            mode,
        }) = cx.file_ref(item, what, "secret", SECRET_REF_KEYS)
        else {
            continue;
        };
        if !declared.contains_key(&source) {
            let names: Vec<&str> = declared.keys().map(String::as_str).collect();
            let mut help = String::new();
            if let Some(close) = values::suggest(&source, &names) {
                help.push_str(&format!("did you mean `{close}`? "));
            }
            help.push_str(&format!("declare it under top-level `secrets:` (`{source}: {{file: ./secrets/{source}.pgp}}`)"));
            cx.error_help(
                source_node,
                format!("undefined secret `{source}` in {what}"),
                help,
            );
            continue;
        }
        let target = match target {
            Some(t) if t.starts_with('/') => t,
            Some(t) => format!("/run/secrets/{t}"),
            None => format!("/run/secrets/{source}"),
        };
        if out.iter().any(|s| s.source == source) {
            cx.error_help(
                item,
                format!("{what} uses secret `{source}` twice"),
                "a secret is delivered as one file: mount it once",
            );
            continue;
        }
        if out.iter().any(|s| s.target == target) {
            cx.error(item, format!("{what} puts two secrets at `{target}`"));
            continue;
        }
        out.push(SecretRef {
            source,
            target,
            uid,
            gid,
            mode,
            location: cx.at(item),
        });
    }
    out.sort_by(|a, b| a.target.cmp(&b.target));
    out
}

/// `network_mode`: `host`, `none`, `bridge`, `container:<name>`, or
/// `service:<name>` (remembered in the draft and resolved to the other
/// service's container name by [`check_stack`]).
fn network_mode(
    cx: &mut Cx,
    node: &Node,
    service: &str,
    what: &str,
    draft: &mut ServiceDraft,
) -> Option<String> {
    let here = format!("`network_mode` of {what}");
    let text = cx.string(node, &here)?;
    match text.split_once(':') {
        None if matches!(text.as_str(), "host" | "none" | "bridge") => Some(text),
        Some(("container", name)) if values::is_name(name) => Some(text),
        Some(("service", name)) if values::is_name(name) => {
            if name == service {
                cx.error(node, format!("{here} names the service itself"));
                return None;
            }
            draft.network_peer = Some((name.to_string(), cx.at(node)));
            // Filled in by `check_stack` once the other service is known.
            Some(text)
        }
        _ => {
            cx.error_help(
                node,
                format!("{here} must be `host`, `none`, `bridge`, `service:<name>` or `container:<name>`, found `{text}`"),
                "to join a network of the stack, list it under `networks:` instead",
            );
            None
        }
    }
}

/// What the engine refuses (or would silently drop) next to a `network_mode`.
fn check_network_mode(cx: &mut Cx, fields: &Fields<'_>, container: &ContainerSpec, what: &str) {
    let Some(mode) = container.network_mode.as_deref() else {
        return;
    };
    let shared = mode.starts_with("container:") || mode.starts_with("service:");
    let refused: &[&str] = if shared {
        &[
            "ports",
            "expose",
            "hostname",
            "domainname",
            "dns",
            "dns_search",
            "dns_opt",
            "extra_hosts",
        ]
    } else if mode == "host" || mode == "none" {
        &["ports"]
    } else {
        &[]
    };
    for key in refused {
        let Some(field) = fields.get(key) else {
            continue;
        };
        let help = if shared {
            format!(
                "the container uses the network stack of the other container: set `{key}` there"
            )
        } else if mode == "host" {
            "the container listens on the host's own ports directly: remove `ports`".to_string()
        } else {
            "a container without a network publishes nothing: remove `ports`".to_string()
        };
        cx.error_help(
            field.key,
            format!("{what} sets `{key}` with `network_mode: {mode}`"),
            help,
        );
    }
}

fn links(cx: &mut Cx, node: &Node, what: &str) -> Vec<Link> {
    let here = format!("`links` of {what}");
    let Some(items) = cx.seq(node, &here) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let Some(text) = cx.string(item, &format!("an item of {here}")) else {
            continue;
        };
        let (service, alias) = match text.split_once(':') {
            Some((service, alias)) => (service, Some(alias)),
            None => (text.as_str(), None),
        };
        if !values::is_name(service) || alias.is_some_and(|a| !values::is_name(a)) {
            cx.error_help(
                item,
                format!("{here}: `{text}` is not a link"),
                "write `<service>` or `<service>:<alias>`",
            );
            continue;
        }
        out.push(Link {
            service: service.to_string(),
            alias: alias.filter(|a| *a != service).map(str::to_string),
            location: cx.at(item),
        });
    }
    out
}

/// `container_name`: a Docker container name, not one of berth's own
/// leftover names.
fn container_name(cx: &mut Cx, node: &Node, what: &str) -> Option<String> {
    let here = format!("`container_name` of {what}");
    let name = cx.string(node, &here)?;
    match values::container_name_problem(&name) {
        Some((problem, help)) => {
            cx.error_help(node, format!("{here} {problem}: `{name}`"), help);
            None
        }
        None => Some(name),
    }
}

/// A list of `x-berth.adopt` names names the replicas' containers: the
/// service must run that many replicas or more, and set no
/// `container_name` (which would name them all).
fn adopt_replicas(cx: &mut Cx, at: &Node, names: &[String], service: &Service, what: &str) {
    let deploy = &service.deploy;
    let runs = match deploy.mode {
        DeployMode::Replicated => deploy.replicas,
        DeployMode::Global => 1,
    };
    if service.container_name.is_some() {
        cx.error_help(
            at,
            format!("{what} sets `container_name` and lists the containers `x-berth.adopt` takes over, which name its replicas"),
            "remove `container_name`, or take over one container: `adopt: <its name>`",
        );
    } else if names.len() > runs as usize {
        let per = match deploy.mode {
            DeployMode::Replicated => format!("runs {runs} replica(s)"),
            DeployMode::Global => "runs one container per host (`deploy.mode: global`)".into(),
        };
        cx.error_help(
            at,
            format!(
                "`x-berth.adopt` of {what} takes over {} containers, but the service {per}",
                names.len()
            ),
            format!(
                "set `deploy.replicas: {}` (one replica per container taken over), or list fewer containers",
                names.len()
            ),
        );
    }
}

fn pull_policy(cx: &mut Cx, node: &Node, what: &str) -> Option<PullPolicy> {
    let here = format!("`pull_policy` of {what}");
    let text = cx.string(node, &here)?;
    let policy = match text.as_str() {
        "missing" | "if_not_present" => PullPolicy::Missing,
        "always" => PullPolicy::Always,
        "never" => PullPolicy::Never,
        "daily" => PullPolicy::Every(std::time::Duration::from_secs(24 * 3600)),
        "weekly" => PullPolicy::Every(std::time::Duration::from_secs(7 * 24 * 3600)),
        "build" => {
            cx.error_help(
                node,
                format!("{here} is `build`, and berth never builds images"),
                "build and push the image in CI, set `image:`, and remove `pull_policy` (or use `missing`)",
            );
            return None;
        }
        other => match other.strip_prefix("every_").map(values::period) {
            Some(Ok(every)) if !every.is_zero() => PullPolicy::Every(every),
            _ => {
                cx.error_help(
                    node,
                    format!("{here} must be `always`, `missing`, `never`, `daily`, `weekly` or `every_<duration>`, found `{text}`"),
                    "`missing` (the default) pulls an image only when the host lacks it; `every_12h`, `every_2d` or `every_1w` pull it again when the host's copy is older than that",
                );
                return None;
            }
        },
    };
    // Every policy decides when berth pulls as in Compose, for the
    // containers a plan creates or replaces; whether a tag that moved in
    // the registry replaces running containers is the plan's (see
    // `plan::digests::follows`).
    Some(policy)
}

/// Checks that need every service of the stack, before `depends_on` is
/// resolved: `network_mode: service:`, `links`, `depends_on` with
/// `required: false` or `restart: true`, and `container_name` clashes.
/// Adds the implicit dependencies Compose adds (a service starts after the
/// service whose network it shares, and after the ones it links to).
pub(crate) fn check_stack(cx: &mut Cx, drafts: &mut [ServiceDraft], stack: &str) {
    let names: BTreeSet<String> = drafts.iter().map(|d| d.service.name.clone()).collect();
    let suggest = |name: &str| {
        let list: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut help = String::new();
        if let Some(close) = values::suggest(name, &list) {
            help.push_str(&format!("did you mean `{close}`? "));
        }
        help.push_str(&format!("services of this stack: {}", list.join(", ")));
        help
    };

    // `required: false`: Compose starts the service without it.
    for draft in drafts.iter_mut() {
        draft
            .depends_on
            .retain(|dep| dep.required || names.contains(&dep.name));
        for dep in &draft.depends_on {
            if dep.restart {
                draft.service.follows.insert(dep.name.clone());
            }
        }
    }

    // The engine-side name of each service's only container on a host, when
    // there is such a single name.
    let single_name: BTreeMap<String, Option<String>> = drafts
        .iter()
        .map(|d| {
            let s = &d.service;
            let name = match (&s.container_name, s.deploy.mode) {
                (Some(name), _) => Some(name.clone()),
                (None, DeployMode::Global) => Some(format!("{stack}-{}-1", s.name)),
                (None, DeployMode::Replicated) if s.deploy.replicas <= 1 => {
                    Some(format!("{stack}-{}-1", s.name))
                }
                _ => None,
            };
            (s.name.clone(), name)
        })
        .collect();
    let peers: BTreeMap<String, bool> = drafts
        .iter()
        .map(|d| (d.service.name.clone(), d.network_peer.is_some()))
        .collect();

    let mut aliases: Vec<(String, String, Vec<String>, Location, String)> = Vec::new();
    for draft in drafts.iter_mut() {
        let what = format!("service `{}`", draft.service.name);
        if let Some((peer, at)) = draft.network_peer.take() {
            match single_name.get(&peer) {
                None => cx.report(
                    at,
                    format!("{what} uses `network_mode: service:{peer}`, but `{peer}` is not a service of stack `{stack}`"),
                    Some(suggest(&peer)),
                ),
                Some(_) if peers.get(&peer) == Some(&true) => cx.report(
                    at,
                    format!("{what} shares the network of `{peer}`, which itself shares another service's network"),
                    Some("point `network_mode` at the service that owns the network".to_string()),
                ),
                Some(None) => cx.report(
                    at,
                    format!("{what} shares the network of `{peer}`, which runs several replicas per host under different names"),
                    Some(format!("give `{peer}` a `container_name` with `max_replicas_per_node: 1`, or run it with `deploy.mode: global`")),
                ),
                Some(Some(container)) => {
                    draft.service.container.network_mode = Some(format!("container:{container}"));
                    draft.service.network_peer = Some(peer.clone());
                    draft.service.follows.insert(peer.clone());
                    add_implicit_dependency(draft, &peer, at);
                }
            }
        }
        for link in std::mem::take(&mut draft.links) {
            if !names.contains(&link.service) {
                cx.report(
                    link.location,
                    format!(
                        "{what} links to `{}`, which is not a service of stack `{stack}`",
                        link.service
                    ),
                    Some(suggest(&link.service)),
                );
                continue;
            }
            if link.service == draft.service.name {
                cx.report(link.location, format!("{what} links to itself"), None);
                continue;
            }
            if let Some(alias) = &link.alias {
                let networks: Vec<String> =
                    draft.service.container.networks.keys().cloned().collect();
                aliases.push((
                    link.service.clone(),
                    alias.clone(),
                    networks,
                    link.location.clone(),
                    what.clone(),
                ));
            }
            add_implicit_dependency(draft, &link.service, link.location);
        }
    }
    // A link alias becomes a network alias of the linked service on the
    // networks the linking service is on (as `--link` does on user networks).
    for (target, alias, networks, at, what) in aliases {
        let Some(draft) = drafts.iter_mut().find(|d| d.service.name == target) else {
            continue;
        };
        let mut shared = false;
        for network in networks {
            if let Some(list) = draft.service.container.networks.get_mut(&network) {
                shared = true;
                if !list.contains(&alias) {
                    list.push(alias.clone());
                    list.sort();
                }
            }
        }
        if !shared {
            cx.report(
                at,
                format!("{what} links to `{target}` as `{alias}`, but the two share no network"),
                Some("attach both services to a common network under `networks:`".to_string()),
            );
        }
    }

    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for draft in drafts.iter() {
        let Some(name) = &draft.service.container_name else {
            continue;
        };
        if let Some(first) = seen.insert(name.clone(), draft.service.name.clone()) {
            cx.report(
                draft.service.location.clone(),
                format!(
                    "services `{first}` and `{}` both set `container_name: {name}`",
                    draft.service.name
                ),
                Some("container names are unique on a host: give each service its own".to_string()),
            );
        }
    }
}

fn add_implicit_dependency(draft: &mut ServiceDraft, on: &str, at: Location) {
    if !draft.depends_on.iter().any(|d| d.name == on) {
        draft.depends_on.push(Dependency {
            name: on.to_string(),
            condition: DependsCondition::ServiceStarted,
            location: at,
            required: true,
            restart: false,
        });
    }
}
