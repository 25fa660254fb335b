//! The pure mapping from a [`ContainerSpec`] to the Engine API's create
//! request: no I/O, so every field is checked by unit tests. A new container
//! key is one more line in [`create_body`] (and in its full-spec test).
//!
//! Everything set here exists in API 1.41 (Docker 20.10), except what
//! [`api_needed`] names (healthcheck `start_interval`, `annotations`): an
//! older engine would silently drop those fields, so the plan refuses them
//! for a host whose engine is older, before any change, and the create call
//! checks the negotiated version again.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    ContainerCreateBody, DeviceMapping, DeviceRequest, EndpointIpamConfig, EndpointSettings,
    HealthConfig, HostConfig, HostConfigLogConfig, Ipam, IpamConfig, Mount, MountBindOptions,
    MountBindOptionsPropagationEnum, MountType, NetworkCreateRequest, NetworkingConfig,
    PortBinding, ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum, VolumeCreateRequest,
};

use crate::labels;
use crate::spec::{ContainerSpec, MountKind, NetworkSpec, VolumeSpec};

/// A restart policy as the engine wants it; None leaves the engine's default.
fn restart_policy(restart: crate::spec::RestartPolicy) -> Option<RestartPolicy> {
    use crate::spec::RestartPolicy as Policy;
    let (name, maximum_retry_count) = match restart {
        Policy::EngineDefault => return None,
        Policy::No => (RestartPolicyNameEnum::NO, None),
        Policy::Always => (RestartPolicyNameEnum::ALWAYS, None),
        Policy::UnlessStopped => (RestartPolicyNameEnum::UNLESS_STOPPED, None),
        Policy::OnFailure(n) => (RestartPolicyNameEnum::ON_FAILURE, n.map(i64::from)),
    };
    Some(RestartPolicy {
        name: Some(name),
        maximum_retry_count,
    })
}

/// Milliseconds as the engine's nanoseconds; 0 (engine default) as None.
/// A mount in `Binds` form, `/src:/dst[:ro,rslave,z]` (or `volume:/dst:z`):
/// the engine's one way to relabel for SELinux, and what `docker compose`
/// sends.
fn bind(m: &crate::spec::MountSpec) -> String {
    let options: Vec<&str> = m
        .read_only
        .then_some("ro")
        .into_iter()
        .chain(m.propagation.as_deref())
        .chain(m.selinux.as_deref())
        .collect();
    if options.is_empty() {
        format!("{}:{}", m.source, m.target)
    } else {
        format!("{}:{}:{}", m.source, m.target, options.join(","))
    }
}

/// The engine's create-network request: berth's labels over the spec's.
pub(crate) fn network_request(
    spec: &NetworkSpec,
    labels: &BTreeMap<String, String>,
) -> NetworkCreateRequest {
    let mut all_labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    all_labels.extend(labels.clone());
    NetworkCreateRequest {
        name: spec.name.clone(),
        driver: spec.driver.clone(),
        internal: Some(spec.internal),
        // Standalone containers may join unless the spec says otherwise;
        // harmless off Swarm.
        attachable: Some(spec.attachable.unwrap_or(true)),
        labels: Some(all_labels),
        options: non_empty_map(&spec.driver_opts),
        enable_ipv6: spec.enable_ipv6,
        ipam: spec.ipam.as_ref().map(|ipam| Ipam {
            driver: ipam.driver.clone(),
            config: non_empty(
                ipam.config
                    .iter()
                    .map(|pool| IpamConfig {
                        subnet: pool.subnet.clone(),
                        ip_range: pool.ip_range.clone(),
                        gateway: pool.gateway.clone(),
                        auxiliary_addresses: non_empty_map(&pool.aux_addresses),
                    })
                    .collect(),
            ),
            options: non_empty_map(&ipam.options),
        }),
        ..Default::default()
    }
}

/// The engine's create-volume request: berth's labels over the spec's.
pub(crate) fn volume_request(
    spec: &VolumeSpec,
    labels: &BTreeMap<String, String>,
) -> VolumeCreateRequest {
    let mut all_labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    all_labels.extend(labels.clone());
    VolumeCreateRequest {
        name: Some(spec.name.clone()),
        driver: spec.driver.clone(),
        labels: Some(all_labels),
        driver_opts: non_empty_map(&spec.driver_opts),
        ..Default::default()
    }
}

fn propagation(name: &str) -> Result<MountBindOptionsPropagationEnum, String> {
    use MountBindOptionsPropagationEnum as P;
    Ok(match name {
        "private" => P::PRIVATE,
        "rprivate" => P::RPRIVATE,
        "shared" => P::SHARED,
        "rshared" => P::RSHARED,
        "slave" => P::SLAVE,
        "rslave" => P::RSLAVE,
        _ => return Err(format!("unknown bind propagation `{name}`")),
    })
}

fn nanos(ms: u64) -> Option<i64> {
    (ms > 0).then(|| i64::try_from(ms.saturating_mul(1_000_000)).unwrap_or(i64::MAX))
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

fn non_empty_map(m: &BTreeMap<String, String>) -> Option<HashMap<String, String>> {
    (!m.is_empty()).then(|| m.clone().into_iter().collect())
}

/// The newest Engine API version a field of `spec` needs, with the key that
/// needs it, when that is newer than 1.41 (the oldest engine berth speaks to).
pub fn api_needed(spec: &ContainerSpec) -> Option<(&'static str, (usize, usize))> {
    let mut needs = Vec::new();
    if spec
        .healthcheck
        .as_ref()
        .is_some_and(|h| h.start_interval_ms > 0)
    {
        needs.push(("healthcheck.start_interval", (1, 44)));
    }
    if !spec.annotations.is_empty() {
        needs.push(("annotations", (1, 43)));
    }
    if spec
        .resources
        .device_requests
        .iter()
        .any(|r| r.driver.as_deref() == Some("cdi"))
    {
        needs.push(("devices: <vendor>/<class>=<name>", (1, 44)));
    }
    needs.into_iter().max_by_key(|(_, version)| *version)
}

/// The create request for `spec`, plus the networks to connect after create
/// (API 1.41 takes one network at create; the first by name goes there).
/// `labels` (berth's own) are added to the spec's labels and win on a clash.
/// Secrets become read-only bind mounts of the files apply delivered under
/// `secrets_dir` (through `Mounts`, which fails on a missing file where
/// `Binds` would quietly mount an empty directory).
pub fn create_body(
    spec: &ContainerSpec,
    labels: &BTreeMap<String, String>,
    secrets_dir: &str,
) -> Result<(ContainerCreateBody, Vec<(String, EndpointSettings)>), String> {
    let mut all_labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    all_labels.extend(labels.clone());

    let mut exposed = spec.expose.clone();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for port in &spec.ports {
        let key = format!("{}/{}", port.target, port.protocol);
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: port.host_ip.clone(),
                // Empty: the engine picks a free port.
                host_port: Some(port.published.map(|p| p.to_string()).unwrap_or_default()),
            });
    }

    // Bind mounts go through `Binds`, like Compose: it creates a missing host
    // directory, where `Mounts` would fail. A path with `:` cannot be said in
    // `Binds` and takes `Mounts` (which requires it to exist). A volume takes
    // `Binds` only when relabelled for SELinux, which `Mounts` cannot ask.
    let mut binds = Vec::new();
    let mut mounts = Vec::new();
    for m in &spec.mounts {
        match m.kind {
            MountKind::Bind if !m.source.contains(':') && !m.target.contains(':') => {
                binds.push(bind(m));
            }
            MountKind::Volume if m.selinux.is_some() && !m.target.contains(':') => {
                binds.push(bind(m));
            }
            kind => {
                if m.selinux.is_some() {
                    // Only `Binds` can relabel; a path with `:` cannot go there.
                    return Err(format!(
                        "mount `{}` asks for an SELinux relabel, which the engine cannot do for a path containing `:`",
                        m.source
                    ));
                }
                mounts.push(Mount {
                    typ: Some(match kind {
                        MountKind::Bind => MountType::BIND,
                        MountKind::Volume => MountType::VOLUME,
                    }),
                    source: Some(m.source.clone()),
                    target: Some(m.target.clone()),
                    read_only: m.read_only.then_some(true),
                    bind_options: m
                        .propagation
                        .as_deref()
                        .map(propagation)
                        .transpose()?
                        .map(|p| MountBindOptions {
                            propagation: Some(p),
                            ..Default::default()
                        }),
                    ..Default::default()
                });
            }
        }
    }

    if !spec.secrets.is_empty() {
        let label = |key: &str| {
            labels
                .get(key)
                .ok_or_else(|| format!("a container with secrets needs the `{key}` label"))
        };
        let (project, stack, service) = (
            label(labels::PROJECT)?,
            label(labels::STACK)?,
            label(labels::SERVICE)?,
        );
        for (name, file) in &spec.secrets {
            mounts.push(Mount {
                typ: Some(MountType::BIND),
                source: Some(crate::spec::secret_paths::host_path(
                    secrets_dir,
                    project,
                    stack,
                    service,
                    name,
                    file,
                )),
                target: Some(file.target.clone()),
                read_only: Some(true),
                ..Default::default()
            });
        }
    }

    let endpoint = |name: &String, aliases: &Vec<String>| EndpointSettings {
        aliases: non_empty(aliases.clone()),
        // A fixed address goes in the endpoint's IPAM config (a bare
        // `IPAddress` is what the engine reports, not what it honours).
        ipam_config: spec.addresses.get(name).map(|a| EndpointIpamConfig {
            ipv4_address: a.ipv4.clone(),
            ipv6_address: a.ipv6.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    // BTreeMap: sorted by name, so "first" is stable. With `network_mode`
    // the spec has no networks (validation sees to it).
    let mut networks = spec.networks.iter();
    let first = networks.next();
    let more: Vec<(String, EndpointSettings)> = networks
        .map(|(name, aliases)| (name.clone(), endpoint(name, aliases)))
        .collect();

    let healthcheck = spec.healthcheck.as_ref().map(|h| HealthConfig {
        // Empty: keep the image's test, override only the timings.
        test: non_empty(h.test.clone()),
        interval: nanos(h.interval_ms),
        timeout: nanos(h.timeout_ms),
        retries: (h.retries > 0).then_some(i64::from(h.retries)),
        start_period: nanos(h.start_period_ms),
        // API 1.44; `api_needed` keeps it from older engines.
        start_interval: nanos(h.start_interval_ms),
    });

    let host_config = HostConfig {
        binds: non_empty(binds),
        mounts: non_empty(mounts),
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        network_mode: spec
            .network_mode
            .clone()
            .or_else(|| first.map(|(name, _)| name.clone())),
        restart_policy: restart_policy(spec.restart),
        readonly_rootfs: spec.read_only.then_some(true),
        cap_add: non_empty(spec.cap_add.clone()),
        cap_drop: non_empty(spec.cap_drop.clone()),
        security_opt: non_empty(spec.security_opt.clone()),
        memory: spec.resources.memory,
        memory_reservation: spec.resources.memory_reservation,
        nano_cpus: spec.resources.nano_cpus,
        pids_limit: spec.resources.pids_limit,
        device_requests: non_empty(
            spec.resources
                .device_requests
                .iter()
                .map(|r| DeviceRequest {
                    driver: r.driver.clone(),
                    count: r.count,
                    device_ids: non_empty(r.device_ids.clone()),
                    // The engine's list is alternatives of capability sets;
                    // Compose's one list is a single set, all required. A
                    // request to a named driver (`cdi`) may have none.
                    capabilities: (!r.capabilities.is_empty())
                        .then(|| vec![r.capabilities.clone()]),
                    options: non_empty_map(&r.options),
                })
                .collect(),
        ),
        log_config: spec.logging.as_ref().map(|l| HostConfigLogConfig {
            typ: Some(l.driver.clone()),
            config: (!l.options.is_empty()).then(|| l.options.clone().into_iter().collect()),
        }),
        tmpfs: (!spec.tmpfs.is_empty()).then(|| spec.tmpfs.clone().into_iter().collect()),
        ulimits: non_empty(
            spec.ulimits
                .iter()
                .map(|(name, u)| ResourcesUlimits {
                    name: Some(name.clone()),
                    soft: Some(u.soft),
                    hard: Some(u.hard),
                })
                .collect(),
        ),
        extra_hosts: non_empty(spec.extra_hosts.clone()),
        dns: non_empty(spec.dns.clone()),
        dns_search: non_empty(spec.dns_search.clone()),
        dns_options: non_empty(spec.dns_opt.clone()),
        sysctls: non_empty_map(&spec.sysctls),
        devices: non_empty(
            spec.devices
                .iter()
                .map(|d| DeviceMapping {
                    path_on_host: Some(d.host.clone()),
                    path_in_container: Some(d.container.clone()),
                    cgroup_permissions: Some(d.permissions.clone()),
                })
                .collect(),
        ),
        privileged: spec.privileged.then_some(true),
        shm_size: spec.shm_size,
        init: spec.init,
        runtime: spec.runtime.clone(),
        ipc_mode: spec.ipc.clone(),
        pid_mode: spec.pid.clone(),
        group_add: non_empty(spec.group_add.clone()),
        cgroup_parent: spec.cgroup_parent.clone(),
        oom_score_adj: spec.oom_score_adj,
        storage_opt: non_empty_map(&spec.storage_opt),
        userns_mode: spec.userns_mode.clone(),
        memory_swap: spec.memswap_limit,
        cpu_shares: spec.cpu_shares,
        cpuset_cpus: spec.cpuset.clone(),
        annotations: non_empty_map(&spec.annotations),
        ..Default::default()
    };

    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: non_empty(
            spec.environment
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        ),
        labels: Some(all_labels),
        exposed_ports: non_empty(exposed),
        healthcheck,
        user: spec.user.clone(),
        working_dir: spec.working_dir.clone(),
        hostname: spec.hostname.clone(),
        domainname: spec.domainname.clone(),
        stop_signal: spec.stop_signal.clone(),
        tty: spec.tty.then_some(true),
        open_stdin: spec.stdin_open.then_some(true),
        stop_timeout: spec
            .stop_grace_period
            .map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
        host_config: Some(host_config),
        networking_config: first.map(|(name, aliases)| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(name.clone(), endpoint(name, aliases))])),
        }),
        ..Default::default()
    };
    Ok((body, more))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{HealthcheckSpec, LoggingSpec, MountSpec, PortSpec, Resources, Ulimit};

    #[test]
    fn maps_restart_policies() {
        use crate::spec::RestartPolicy as Policy;
        let p = restart_policy(Policy::OnFailure(Some(3))).expect("some");
        assert_eq!(p.name, Some(RestartPolicyNameEnum::ON_FAILURE));
        assert_eq!(p.maximum_retry_count, Some(3));
        let p = restart_policy(Policy::UnlessStopped).expect("some");
        assert_eq!(p.name, Some(RestartPolicyNameEnum::UNLESS_STOPPED));
        assert_eq!(p.maximum_retry_count, None);
        let p = restart_policy(Policy::No).expect("some");
        assert_eq!(p.name, Some(RestartPolicyNameEnum::NO));
        assert!(restart_policy(Policy::EngineDefault).is_none());
    }

    fn full_spec() -> ContainerSpec {
        ContainerSpec {
            image: "10.77.0.1:5000/berth/web:v1".into(),
            command: Some(vec!["httpd".into(), "-f".into()]),
            entrypoint: Some(vec!["/entry".into()]),
            environment: BTreeMap::from([("A".into(), "1".into()), ("B".into(), "x=y".into())]),
            ports: vec![
                PortSpec {
                    host_ip: None,
                    published: Some(8080),
                    target: 80,
                    protocol: "tcp".into(),
                },
                PortSpec {
                    host_ip: Some("127.0.0.1".into()),
                    published: None,
                    target: 80,
                    protocol: "tcp".into(),
                },
                PortSpec {
                    host_ip: None,
                    published: Some(53),
                    target: 53,
                    protocol: "udp".into(),
                },
            ],
            mounts: vec![
                MountSpec {
                    kind: MountKind::Volume,
                    source: "web_data".into(),
                    target: "/data".into(),
                    read_only: false,
                    propagation: None,
                    selinux: None,
                },
                MountSpec {
                    kind: MountKind::Bind,
                    source: "/etc/web".into(),
                    target: "/conf".into(),
                    read_only: true,
                    propagation: None,
                    selinux: None,
                },
            ],
            networks: BTreeMap::from([
                ("web_front".into(), vec!["api".into(), "web".into()]),
                ("web_back".into(), vec!["api".into()]),
            ]),
            labels: BTreeMap::from([
                ("team".into(), "ops".into()),
                ("berth.project".into(), "spoofed".into()),
            ]),
            healthcheck: Some(HealthcheckSpec {
                test: vec!["CMD".into(), "wget".into(), "-q".into(), "localhost".into()],
                interval_ms: 1000,
                timeout_ms: 500,
                retries: 3,
                start_period_ms: 0,
                start_interval_ms: 0,
            }),
            restart: crate::spec::RestartPolicy::OnFailure(Some(5)),
            user: Some("1000:1000".into()),
            read_only: true,
            cap_add: vec!["NET_ADMIN".into()],
            cap_drop: vec!["ALL".into()],
            security_opt: vec!["no-new-privileges:true".into()],
            resources: Resources {
                memory: Some(64 << 20),
                memory_reservation: Some(32 << 20),
                nano_cpus: Some(500_000_000),
                pids_limit: Some(100),
                device_requests: Vec::new(),
            },
            logging: Some(LoggingSpec {
                driver: "json-file".into(),
                options: BTreeMap::from([("max-size".into(), "10m".into())]),
            }),
            tmpfs: BTreeMap::from([("/tmp".into(), "size=64m".into())]),
            ulimits: BTreeMap::from([(
                "nofile".into(),
                Ulimit {
                    soft: 1024,
                    hard: 2048,
                },
            )]),
            stop_grace_period: Some(30),
            working_dir: Some("/www".into()),
            hostname: Some("web1".into()),
            secrets: BTreeMap::from([(
                "db".into(),
                crate::spec::SecretFileSpec {
                    digest: "sha256:0123456789abcdef".into(),
                    target: "/run/secrets/db".into(),
                    uid: "0".into(),
                    gid: "0".into(),
                    mode: 0o400,
                },
            )]),
            ..Default::default()
        }
    }

    #[test]
    fn maps_a_full_spec_to_the_create_request() {
        let labels = BTreeMap::from([
            ("berth.project".to_string(), "demo".to_string()),
            ("berth.stack".to_string(), "app".to_string()),
            ("berth.service".to_string(), "web".to_string()),
        ]);
        let (body, more) =
            create_body(&full_spec(), &labels, "/run/berth/secrets").expect("valid spec");
        let host = body.host_config.clone().expect("host config");

        assert_eq!(body.image.as_deref(), Some("10.77.0.1:5000/berth/web:v1"));
        assert_eq!(body.cmd, Some(vec!["httpd".to_string(), "-f".to_string()]));
        assert_eq!(body.entrypoint, Some(vec!["/entry".to_string()]));
        assert_eq!(body.env, Some(vec!["A=1".to_string(), "B=x=y".to_string()]));
        let l = body.labels.clone().expect("labels");
        assert_eq!(l.get("team").map(String::as_str), Some("ops"));
        assert_eq!(
            l.get("berth.project").map(String::as_str),
            Some("demo"),
            "berth's label wins"
        );

        let mut exposed = body.exposed_ports.clone().expect("exposed");
        exposed.sort();
        assert_eq!(exposed, vec!["53/udp".to_string(), "80/tcp".to_string()]);
        let ports = host.port_bindings.clone().expect("bindings");
        let web = ports["80/tcp"].clone().expect("80/tcp");
        assert_eq!(web.len(), 2);
        assert_eq!(web[0].host_port.as_deref(), Some("8080"));
        assert_eq!(web[0].host_ip, None);
        assert_eq!(web[1].host_port.as_deref(), Some(""), "ephemeral");
        assert_eq!(web[1].host_ip.as_deref(), Some("127.0.0.1"));

        assert_eq!(host.binds, Some(vec!["/etc/web:/conf:ro".to_string()]));
        let mounts = host.mounts.clone().expect("mounts");
        assert_eq!(mounts.len(), 2, "the volume and the secret");
        assert_eq!(mounts[0].typ, Some(MountType::VOLUME));
        assert_eq!(mounts[0].source.as_deref(), Some("web_data"));
        assert_eq!(mounts[0].read_only, None);

        // One network at create (API 1.41), the first by name; the rest after.
        assert_eq!(host.network_mode.as_deref(), Some("web_back"));
        let endpoints = body
            .networking_config
            .clone()
            .and_then(|n| n.endpoints_config)
            .expect("endpoints");
        assert_eq!(endpoints.len(), 1);
        assert_eq!(endpoints["web_back"].aliases, Some(vec!["api".to_string()]));
        assert_eq!(more.len(), 1);
        assert_eq!(more[0].0, "web_front");
        assert_eq!(
            more[0].1.aliases,
            Some(vec!["api".to_string(), "web".to_string()])
        );

        let hc = body.healthcheck.clone().expect("healthcheck");
        assert_eq!(hc.interval, Some(1_000_000_000));
        assert_eq!(hc.timeout, Some(500_000_000));
        assert_eq!(hc.retries, Some(3));
        assert_eq!(hc.start_period, None);
        assert_eq!(hc.start_interval, None);

        let restart = host.restart_policy.clone().expect("restart");
        assert_eq!(restart.name, Some(RestartPolicyNameEnum::ON_FAILURE));
        assert_eq!(restart.maximum_retry_count, Some(5));
        assert_eq!(body.user.as_deref(), Some("1000:1000"));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.cap_add, Some(vec!["NET_ADMIN".to_string()]));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(
            host.security_opt,
            Some(vec!["no-new-privileges:true".to_string()])
        );
        assert_eq!(host.memory, Some(64 << 20));
        assert_eq!(host.memory_reservation, Some(32 << 20));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.pids_limit, Some(100));
        let log = host.log_config.clone().expect("log config");
        assert_eq!(log.typ.as_deref(), Some("json-file"));
        assert_eq!(
            log.config
                .and_then(|c| c.get("max-size").cloned())
                .as_deref(),
            Some("10m")
        );
        assert_eq!(
            host.tmpfs
                .clone()
                .and_then(|t| t.get("/tmp").cloned())
                .as_deref(),
            Some("size=64m")
        );
        let ulimits = host.ulimits.clone().expect("ulimits");
        assert_eq!(ulimits[0].name.as_deref(), Some("nofile"));
        assert_eq!((ulimits[0].soft, ulimits[0].hard), (Some(1024), Some(2048)));
        assert_eq!(body.stop_timeout, Some(30));
        assert_eq!(body.working_dir.as_deref(), Some("/www"));
        assert_eq!(body.hostname.as_deref(), Some("web1"));

        // A secret is a read-only mount of the delivered file, by digest;
        // nothing about it reaches the environment.
        let secret = mounts
            .iter()
            .find(|m| m.target.as_deref() == Some("/run/secrets/db"))
            .expect("secret mount");
        assert_eq!(
            secret.source.as_deref(),
            Some("/run/berth/secrets/demo/app/web/0123456789ab/db")
        );
        assert_eq!(secret.read_only, Some(true));
        assert_eq!(secret.typ, Some(MountType::BIND));
        let json = serde_json::to_string(&body).expect("serialises");
        // No field newer than API 1.41.
        assert!(!json.contains("StartInterval"), "{json}");
    }

    fn bind(
        source: &str,
        target: &str,
        propagation: Option<&str>,
        selinux: Option<&str>,
    ) -> MountSpec {
        MountSpec {
            kind: MountKind::Bind,
            source: source.into(),
            target: target.into(),
            read_only: true,
            propagation: propagation.map(str::to_string),
            selinux: selinux.map(str::to_string),
        }
    }

    #[test]
    fn selinux_relabels_and_bind_propagation_go_into_binds() {
        let spec = ContainerSpec {
            image: "app:1".into(),
            mounts: vec![
                bind("/", "/host", Some("rslave"), None),
                bind("/srv/a", "/a", None, Some("Z")),
                bind("/srv/b", "/b", Some("rshared"), Some("z")),
                MountSpec {
                    kind: MountKind::Volume,
                    source: "app_db".into(),
                    target: "/db".into(),
                    read_only: false,
                    propagation: None,
                    selinux: Some("Z".into()),
                },
                MountSpec {
                    kind: MountKind::Volume,
                    source: "app_cache".into(),
                    target: "/cache".into(),
                    read_only: false,
                    propagation: None,
                    selinux: None,
                },
            ],
            ..Default::default()
        };
        let (body, _) = create_body(&spec, &BTreeMap::new(), "/run/berth/secrets").unwrap();
        let host = body.host_config.expect("host config");
        assert_eq!(
            host.binds,
            Some(vec![
                "/:/host:ro,rslave".to_string(),
                "/srv/a:/a:ro,Z".to_string(),
                "/srv/b:/b:ro,rshared,z".to_string(),
                "app_db:/db:Z".to_string(),
            ])
        );
        // A volume without a relabel stays in `Mounts`.
        let mounts = host.mounts.expect("mounts");
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].source.as_deref(), Some("app_cache"));
    }

    #[test]
    fn a_bind_with_a_colon_takes_mounts_with_its_propagation() {
        let spec = ContainerSpec {
            image: "app:1".into(),
            mounts: vec![bind("/srv/a:b", "/a", Some("rslave"), None)],
            ..Default::default()
        };
        let (body, _) = create_body(&spec, &BTreeMap::new(), "/run/berth/secrets").unwrap();
        let mounts = body.host_config.and_then(|h| h.mounts).expect("mounts");
        let options = mounts[0].bind_options.as_ref().expect("bind options");
        assert_eq!(
            options.propagation,
            Some(MountBindOptionsPropagationEnum::RSLAVE)
        );
        // The engine cannot relabel through `Mounts`: said, not dropped.
        let spec = ContainerSpec {
            image: "app:1".into(),
            mounts: vec![bind("/srv/a:b", "/a", None, Some("z"))],
            ..Default::default()
        };
        let error = create_body(&spec, &BTreeMap::new(), "/run/berth/secrets").unwrap_err();
        assert!(error.contains("SELinux relabel"), "{error}");
    }

    #[test]
    fn maps_network_driver_opts_and_ipam() {
        use crate::spec::{IpamPool, IpamSpec};
        let plain = NetworkSpec {
            name: "web_default".into(),
            ..Default::default()
        };
        let labels = BTreeMap::from([("berth.project".to_string(), "demo".to_string())]);
        // What berth sent before these keys existed, unchanged.
        assert_eq!(
            serde_json::to_value(network_request(&plain, &labels)).unwrap(),
            serde_json::json!({
                "Name": "web_default",
                "Internal": false,
                "Attachable": true,
                "Labels": {"berth.project": "demo"},
            })
        );
        let spec = NetworkSpec {
            name: "web_front".into(),
            driver: Some("bridge".into()),
            driver_opts: BTreeMap::from([(
                "com.docker.network.bridge.name".to_string(),
                "br-front".to_string(),
            )]),
            attachable: Some(false),
            enable_ipv6: Some(true),
            ipam: Some(IpamSpec {
                driver: Some("default".into()),
                config: vec![IpamPool {
                    subnet: Some("172.28.0.0/16".into()),
                    ip_range: Some("172.28.5.0/24".into()),
                    gateway: Some("172.28.0.1".into()),
                    aux_addresses: BTreeMap::from([(
                        "router".to_string(),
                        "172.28.1.5".to_string(),
                    )]),
                }],
                options: BTreeMap::from([("foo".to_string(), "bar".to_string())]),
            }),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(network_request(&spec, &BTreeMap::new())).unwrap(),
            serde_json::json!({
                "Name": "web_front",
                "Driver": "bridge",
                "Internal": false,
                "Attachable": false,
                "EnableIPv6": true,
                "Labels": {},
                "Options": {"com.docker.network.bridge.name": "br-front"},
                "IPAM": {
                    "Driver": "default",
                    "Config": [{
                        "Subnet": "172.28.0.0/16",
                        "IPRange": "172.28.5.0/24",
                        "Gateway": "172.28.0.1",
                        "AuxiliaryAddresses": {"router": "172.28.1.5"},
                    }],
                    "Options": {"foo": "bar"},
                },
            })
        );
    }

    #[test]
    fn maps_volume_driver_opts() {
        let plain = VolumeSpec {
            name: "web_data".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(volume_request(&plain, &BTreeMap::new())).unwrap(),
            serde_json::json!({"Name": "web_data", "Labels": {}})
        );
        let nfs = VolumeSpec {
            name: "web_nfs".into(),
            driver: Some("local".into()),
            driver_opts: BTreeMap::from([
                ("type".to_string(), "nfs".to_string()),
                (
                    "o".to_string(),
                    "addr=10.40.0.199,nolock,soft,rw".to_string(),
                ),
                ("device".to_string(), ":/docker/example".to_string()),
            ]),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(volume_request(&nfs, &BTreeMap::new())).unwrap(),
            serde_json::json!({
                "Name": "web_nfs",
                "Driver": "local",
                "Labels": {},
                "DriverOpts": {
                    "type": "nfs",
                    "o": "addr=10.40.0.199,nolock,soft,rw",
                    "device": ":/docker/example",
                },
            })
        );
    }

    #[test]
    fn maps_gpu_requests_to_device_requests() {
        use crate::spec::DeviceRequestSpec;
        let spec = ContainerSpec {
            image: "ollama/ollama".into(),
            resources: Resources {
                device_requests: vec![
                    DeviceRequestSpec {
                        driver: Some("nvidia".into()),
                        count: Some(-1),
                        capabilities: vec!["gpu".into()],
                        ..Default::default()
                    },
                    DeviceRequestSpec {
                        driver: Some("nvidia".into()),
                        device_ids: vec!["0".into(), "3".into()],
                        capabilities: vec!["gpu".into(), "utility".into()],
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
            ..Default::default()
        };
        let (body, _) = create_body(&spec, &BTreeMap::new(), "/run/berth/secrets").unwrap();
        let host = serde_json::to_value(body.host_config.expect("host config")).unwrap();
        assert_eq!(
            host["DeviceRequests"],
            serde_json::json!([
                {"Driver": "nvidia", "Count": -1, "Capabilities": [["gpu"]]},
                {"Driver": "nvidia", "DeviceIDs": ["0", "3"], "Capabilities": [["gpu", "utility"]]},
            ])
        );
    }

    #[test]
    fn maps_a_minimal_spec_without_empty_fields() {
        let spec = ContainerSpec {
            image: "redis:7".into(),
            ..Default::default()
        };
        let (body, more) =
            create_body(&spec, &BTreeMap::new(), "/run/berth/secrets").expect("valid");
        assert!(more.is_empty());
        assert!(body.networking_config.is_none());
        assert!(body.env.is_none());
        assert!(body.exposed_ports.is_none());
        assert!(body.healthcheck.is_none());
        let host = body.host_config.clone().expect("host config");
        assert!(host.network_mode.is_none());
        assert!(host.restart_policy.is_none());
        assert!(host.port_bindings.is_none());
        assert!(host.binds.is_none() && host.mounts.is_none());
        // Nothing else either: the engine's defaults apply, as before the
        // later keys existed.
        assert_eq!(serde_json::to_value(&host).unwrap(), serde_json::json!({}));
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"Image": "redis:7", "Labels": {}, "HostConfig": {}})
        );
        assert_eq!(api_needed(&spec), None);
    }

    /// The Compose keys that map one to one onto engine settings.
    fn engine_keys_spec() -> ContainerSpec {
        use crate::spec::DeviceSpec;
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let map = |items: &[(&str, &str)]| {
            items
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        ContainerSpec {
            image: "nginx:1".into(),
            ports: vec![PortSpec {
                host_ip: None,
                published: Some(8080),
                target: 80,
                protocol: "tcp".into(),
            }],
            expose: strings(&["80/tcp", "9000/tcp"]),
            hostname: Some("api".into()),
            domainname: Some("example.com".into()),
            init: Some(true),
            stop_signal: Some("SIGQUIT".into()),
            extra_hosts: strings(&["db:10.0.0.5", "gw:host-gateway"]),
            dns: strings(&["1.1.1.1"]),
            dns_search: strings(&["example.com"]),
            dns_opt: strings(&["ndots:2"]),
            sysctls: map(&[("net.core.somaxconn", "1024")]),
            devices: vec![DeviceSpec {
                host: "/dev/fuse".into(),
                container: "/dev/fuse".into(),
                permissions: "rwm".into(),
            }],
            privileged: true,
            shm_size: Some(256 << 20),
            runtime: Some("runc".into()),
            stdin_open: true,
            tty: true,
            ipc: Some("shareable".into()),
            pid: Some("host".into()),
            group_add: strings(&["video"]),
            cgroup_parent: Some("/berth".into()),
            oom_score_adj: Some(-500),
            storage_opt: map(&[("size", "10G")]),
            userns_mode: Some("host".into()),
            memswap_limit: Some(-1),
            cpu_shares: Some(512),
            cpuset: Some("0-1".into()),
            ..Default::default()
        }
    }

    #[test]
    fn maps_the_engine_keys() {
        let (body, _) =
            create_body(&engine_keys_spec(), &BTreeMap::new(), "/run/berth/secrets").unwrap();
        let json = serde_json::to_value(&body).unwrap();
        let host = &json["HostConfig"];
        assert_eq!(
            json["ExposedPorts"],
            serde_json::json!({"80/tcp": {}, "9000/tcp": {}}),
            "`expose` and the published ports' targets, once each"
        );
        assert_eq!(json["Hostname"], "api");
        assert_eq!(json["Domainname"], "example.com");
        assert_eq!(json["StopSignal"], "SIGQUIT");
        assert_eq!(json["Tty"], true);
        assert_eq!(json["OpenStdin"], true);
        assert_eq!(host["Init"], true);
        assert_eq!(
            host["ExtraHosts"],
            serde_json::json!(["db:10.0.0.5", "gw:host-gateway"])
        );
        assert_eq!(host["Dns"], serde_json::json!(["1.1.1.1"]));
        assert_eq!(host["DnsSearch"], serde_json::json!(["example.com"]));
        assert_eq!(host["DnsOptions"], serde_json::json!(["ndots:2"]));
        assert_eq!(
            host["Sysctls"],
            serde_json::json!({"net.core.somaxconn": "1024"})
        );
        assert_eq!(
            host["Devices"],
            serde_json::json!([{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"}])
        );
        assert_eq!(host["Privileged"], true);
        assert_eq!(host["ShmSize"], 256 << 20);
        assert_eq!(host["Runtime"], "runc");
        assert_eq!(host["IpcMode"], "shareable");
        assert_eq!(host["PidMode"], "host");
        assert_eq!(host["GroupAdd"], serde_json::json!(["video"]));
        assert_eq!(host["CgroupParent"], "/berth");
        assert_eq!(host["OomScoreAdj"], -500);
        assert_eq!(host["StorageOpt"], serde_json::json!({"size": "10G"}));
        assert_eq!(host["UsernsMode"], "host");
        assert_eq!(host["MemorySwap"], -1);
        assert_eq!(host["CpuShares"], 512);
        assert_eq!(host["CpusetCpus"], "0-1");
        assert!(host.get("Annotations").is_none());
        assert_eq!(api_needed(&engine_keys_spec()), None);
    }

    #[test]
    fn network_mode_replaces_the_networks() {
        let spec = ContainerSpec {
            image: "app:1".into(),
            network_mode: Some("container:web-vpn-1".into()),
            ..Default::default()
        };
        let (body, more) = create_body(&spec, &BTreeMap::new(), "/s").unwrap();
        assert!(more.is_empty());
        assert!(body.networking_config.is_none());
        assert_eq!(
            body.host_config.unwrap().network_mode.as_deref(),
            Some("container:web-vpn-1")
        );
    }

    #[test]
    fn fixed_addresses_go_to_their_networks_endpoint() {
        let spec = ContainerSpec {
            image: "app:1".into(),
            networks: BTreeMap::from([
                ("web_back".to_string(), vec!["api".to_string()]),
                ("web_front".to_string(), vec!["api".to_string()]),
                ("web_z".to_string(), vec!["api".to_string()]),
            ]),
            addresses: BTreeMap::from([
                (
                    "web_back".to_string(),
                    crate::spec::NetworkAddress {
                        ipv4: Some("172.28.0.10".into()),
                        ipv6: Some("fd00:1::10".into()),
                    },
                ),
                (
                    "web_front".to_string(),
                    crate::spec::NetworkAddress {
                        ipv4: Some("172.29.0.10".into()),
                        ipv6: None,
                    },
                ),
            ]),
            ..Default::default()
        };
        let (body, more) = create_body(&spec, &BTreeMap::new(), "/s").unwrap();
        let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
        let at_create = endpoints["web_back"].ipam_config.clone().expect("ipam");
        assert_eq!(at_create.ipv4_address.as_deref(), Some("172.28.0.10"));
        assert_eq!(at_create.ipv6_address.as_deref(), Some("fd00:1::10"));
        // Joined after create, through `connect`, with its own address.
        let front = more[0].1.ipam_config.clone().expect("ipam");
        assert_eq!(more[0].0, "web_front");
        assert_eq!(front.ipv4_address.as_deref(), Some("172.29.0.10"));
        assert_eq!(front.ipv6_address, None);
        assert_eq!(more[1].0, "web_z");
        assert_eq!(more[1].1.ipam_config, None, "no fixed address there");
    }

    #[test]
    fn newer_api_fields_are_named() {
        let mut spec = ContainerSpec {
            image: "app:1".into(),
            annotations: BTreeMap::from([("a".to_string(), "b".to_string())]),
            ..Default::default()
        };
        assert_eq!(api_needed(&spec), Some(("annotations", (1, 43))));
        spec.healthcheck = Some(HealthcheckSpec {
            test: vec!["CMD".into(), "true".into()],
            start_interval_ms: 2000,
            ..Default::default()
        });
        assert_eq!(
            api_needed(&spec),
            Some(("healthcheck.start_interval", (1, 44)))
        );
        let (body, _) = create_body(&spec, &BTreeMap::new(), "/s").unwrap();
        assert_eq!(
            body.healthcheck.unwrap().start_interval,
            Some(2_000_000_000)
        );
        let cdi = ContainerSpec {
            image: "app:1".into(),
            resources: Resources {
                device_requests: vec![crate::spec::DeviceRequestSpec {
                    driver: Some("cdi".into()),
                    device_ids: vec!["nvidia.com/gpu=all".into()],
                    ..Default::default()
                }],
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            api_needed(&cdi),
            Some(("devices: <vendor>/<class>=<name>", (1, 44)))
        );
        let (cdi_body, _) = create_body(&cdi, &BTreeMap::new(), "/s").unwrap();
        let requests = cdi_body.host_config.unwrap().device_requests.unwrap();
        assert_eq!(requests[0].driver.as_deref(), Some("cdi"));
        assert_eq!(
            requests[0].device_ids,
            Some(vec!["nvidia.com/gpu=all".to_string()])
        );
        assert_eq!(
            requests[0].capabilities, None,
            "none asked of the cdi driver"
        );
        assert_eq!(
            body.host_config.unwrap().annotations,
            Some(HashMap::from([("a".to_string(), "b".to_string())]))
        );
    }
}
