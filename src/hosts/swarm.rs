//! A Swarm target's manager, through the Engine API: connect (SSH like any
//! host, or the local socket), read the project's services back as
//! [`ServiceShape`]s, and apply a [`SwarmPlan`] — create, update (with the
//! `Version.Index` read again right before, retried a few times when the
//! manager says another update came first), remove — waiting for each
//! service to converge and reading its `UpdateStatus` honestly: a rollback,
//! a pause or tasks that do not come up are failures, named with the
//! tasks' own errors.
//!
//! Only services labelled with the project are read or changed, so other
//! services on the Swarm are never touched. Task containers carry no
//! `berth.project` label: host targets sharing the engines never see them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::models::{
    EndpointPortConfig, EndpointSpec, HealthConfig, NetworkAttachmentConfig, NetworkCreateRequest,
    ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, ServiceSpecRollbackConfig,
    ServiceSpecUpdateConfig, ServiceUpdateStatus, ServiceUpdateStatusStateEnum, TaskSpec,
    TaskSpecContainerSpec, TaskSpecPlacement, TaskSpecRestartPolicy, TaskState,
};
use bollard::query_parameters::{
    ListNetworksOptions, ListServicesOptions, ListTasksOptions, UpdateServiceOptions,
};
use bollard::Docker as Client;

use super::docker::{self, OpenError};
use super::shell::Shell as _;
use super::ssh::{self, ConnectOptions, Tunnel};
use crate::labels;
use crate::spec::{SwarmTarget, Transport};
use crate::swarm::{
    DesiredService, ObservedService, ServiceAction, ServiceChange, ServiceShape, ShapeHealth,
    ShapePort, ShapeUpdate, SwarmObservation, SwarmPlan, SPEC_HASH_LABEL, STACK_NAMESPACE_LABEL,
};

/// How often a converging service is looked at.
const POLL: Duration = Duration::from_millis(500);
/// Tries of an update the manager refused as out of sequence.
const UPDATE_TRIES: usize = 3;

/// One connected manager.
pub struct Manager {
    /// The target's name in berth.yaml.
    pub name: String,
    who: String,
    docker: Client,
    tunnel: Option<Tunnel>,
    dir: Option<PathBuf>,
}

/// Connects to `target`'s manager and checks it is one. `index` keeps the
/// run directories of several targets apart.
pub async fn connect(
    target: &SwarmTarget,
    opts: &ConnectOptions,
    index: usize,
) -> anyhow::Result<Manager> {
    let dir = opts
        .runtime_dir
        .join(format!("bsw{}-{index}", std::process::id()));
    make_dir(&dir)?;
    let opts = ConnectOptions {
        runtime_dir: dir.clone(),
        ..opts.clone()
    };
    let host = &ssh::with_defaults(&target.manager, &opts);
    let who = format!("Swarm target `{}`", host.name);
    let (socket, tunnel) = match host.transport {
        Transport::Local => (host.docker_socket.clone(), None),
        Transport::Ssh => {
            let tunnel = ssh::open_tunnel(host, &opts, &who).await?;
            (tunnel.docker_socket().to_string(), Some(tunnel))
        }
    };
    let mut manager = Manager {
        name: host.name.clone(),
        who: who.clone(),
        docker: match docker::open(&socket, opts.connect_timeout, opts.docker_timeout).await {
            Ok(d) => d,
            Err(e) => {
                if let Some(t) = &tunnel {
                    t.close().await;
                }
                let _ = std::fs::remove_dir_all(&dir);
                let detail = match e {
                    OpenError::NotAnswering(d) => format!("Docker Engine not answering: {d}"),
                    OpenError::TooOld(v) => format!("the Docker Engine speaks API {v}, too old"),
                };
                anyhow::bail!("{who}: {detail}");
            }
        },
        tunnel,
        dir: Some(dir),
    };
    if let Err(e) = manager.docker.inspect_swarm().await {
        manager.close().await;
        anyhow::bail!(
            "{who}: the engine at `{}` is not a Swarm manager ({})\n  help: name a manager node of the Swarm (`docker node ls` there lists the nodes), or run `docker swarm init` on it",
            target.manager.address,
            one_line(&e.to_string())
        );
    }
    Ok(manager)
}

fn make_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| anyhow::anyhow!("cannot create runtime directory `{}`: {e}", dir.display()))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Manager {
    /// Ends the SSH connection and removes the run directory.
    pub async fn close(&mut self) {
        if let Some(t) = self.tunnel.take() {
            t.close().await;
        }
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// The project's services and the Swarm's networks.
    pub async fn observe(&self, project: &str) -> anyhow::Result<SwarmObservation> {
        let networks = self
            .docker
            .list_networks(None::<ListNetworksOptions>)
            .await
            .map_err(|e| self.failed("list networks", e))?;
        let by_id: HashMap<String, String> = networks
            .iter()
            .filter_map(|n| Some((n.id.clone()?, n.name.clone()?)))
            .collect();
        // A local network of the same name (a host target's) is no use to
        // a service: only the Swarm's own count as there.
        let mut swarm_networks: Vec<String> = networks
            .iter()
            .filter(|n| n.scope.as_deref() == Some("swarm"))
            .filter_map(|n| n.name.clone())
            .collect();
        swarm_networks.sort();
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{}={project}", labels::PROJECT)],
        )]);
        let services = self
            .docker
            .list_services(Some(ListServicesOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| self.failed("list services", e))?;
        let mut observed = SwarmObservation {
            services: BTreeMap::new(),
            networks: swarm_networks,
        };
        for s in services {
            let Some(spec) = s.spec else { continue };
            let Some(name) = spec.name.clone() else {
                continue;
            };
            let label = |key: &str| spec.labels.as_ref().and_then(|l| l.get(key)).cloned();
            observed.services.insert(
                name.clone(),
                ObservedService {
                    stack: label(labels::STACK).unwrap_or_default(),
                    service: label(labels::SERVICE).unwrap_or_default(),
                    spec_hash: label(SPEC_HASH_LABEL),
                    version: s.version.and_then(|v| v.index).unwrap_or(0),
                    shape: shape_of(&spec, &by_id),
                    name,
                },
            );
        }
        Ok(observed)
    }

    /// The digest the manager's engine finds for `image` in its registry.
    pub async fn distribution_digest(&self, image: &str) -> anyhow::Result<String> {
        let found = self
            .docker
            .inspect_registry_image(image, None)
            .await
            .map_err(|e| self.failed(&format!("resolve image `{image}`"), e))?;
        found
            .descriptor
            .digest
            .ok_or_else(|| anyhow::anyhow!("{}: no digest for image `{image}`", self.who))
    }

    fn failed(&self, what: &str, e: bollard::errors::Error) -> anyhow::Error {
        anyhow::anyhow!("{}: cannot {what}: {}", self.who, one_line(&e.to_string()))
    }

    /// Applies `plan`: networks first, then each change in order, each
    /// waited for until it converged (at most `timeout` each). Stops at
    /// the first failure. Returns what was done, and the error that
    /// stopped it with whether Swarm rolled the service back.
    pub async fn apply(&self, plan: &SwarmPlan, ctx: &ApplyContext<'_>) -> Applied {
        let mut applied = Applied::default();
        for n in &plan.networks {
            let t = Instant::now();
            let request = NetworkCreateRequest {
                name: n.name.clone(),
                driver: Some("overlay".into()),
                attachable: Some(true),
                internal: Some(n.internal),
                labels: Some(HashMap::from([
                    (labels::PROJECT.to_string(), ctx.project.to_string()),
                    (STACK_NAMESPACE_LABEL.to_string(), n.stack.clone()),
                ])),
                ..Default::default()
            };
            let result = self.docker.create_network(request).await;
            let error = result
                .err()
                .map(|e| self.failed(&format!("create network `{}`", n.name), e));
            applied.steps.push(Done {
                what: "network",
                target: n.name.clone(),
                seconds: t.elapsed().as_secs_f64(),
                error: error.as_ref().map(|e| format!("{e:#}")),
            });
            if let Some(e) = error {
                applied.error = Some(format!("{e:#}"));
                return applied;
            }
        }
        for change in &plan.changes {
            let t = Instant::now();
            let desired = ctx.desired.iter().find(|d| d.name == change.name);
            let result = match (change.action, desired) {
                (ServiceAction::Remove, _) => {
                    self.docker.delete_service(&change.name).await.map_err(|e| {
                        Failure::plain(self.failed(&format!("remove service `{}`", change.name), e))
                    })
                }
                (ServiceAction::Create, Some(d)) => self.create(d, ctx).await,
                (ServiceAction::Update, Some(d)) => self.update(d, change, ctx).await,
                (_, None) => Err(Failure::plain(anyhow::anyhow!(
                    "{}: service `{}` is not in the desired state",
                    self.who,
                    change.name
                ))),
            };
            let what = match change.action {
                ServiceAction::Create => "create",
                ServiceAction::Update => "update",
                ServiceAction::Remove => "remove",
            };
            applied.steps.push(Done {
                what,
                target: change.name.clone(),
                seconds: t.elapsed().as_secs_f64(),
                error: result.as_ref().err().map(|f| format!("{:#}", f.error)),
            });
            if let Err(f) = result {
                applied.error = Some(format!("{:#}", f.error));
                applied.rolled_back = f.rolled_back;
                return applied;
            }
        }
        applied
    }

    async fn create(&self, d: &DesiredService, ctx: &ApplyContext<'_>) -> Result<(), Failure> {
        let spec = service_spec(d, ctx.project, ctx.commit);
        self.docker
            .create_service(spec, None)
            .await
            .map_err(|e| Failure::plain(self.failed(&format!("create service `{}`", d.name), e)))?;
        self.converge(&d.name, &d.shape.image, None, false, ctx.timeout)
            .await
    }

    async fn update(
        &self,
        d: &DesiredService,
        change: &ServiceChange,
        ctx: &ApplyContext<'_>,
    ) -> Result<(), Failure> {
        let rolling = change.fields.iter().any(|f| rolls_tasks(&f.field));
        let mut tries = 0;
        let before = loop {
            tries += 1;
            // Read right before the update: the manager refuses an update
            // naming an older version ("update out of sequence").
            let current = self
                .docker
                .inspect_service(&d.name, None)
                .await
                .map_err(|e| {
                    Failure::plain(self.failed(&format!("inspect service `{}`", d.name), e))
                })?;
            let version = current.version.and_then(|v| v.index).unwrap_or(0);
            let before = current.update_status.as_ref().map(fingerprint);
            let options = UpdateServiceOptions {
                version: i32::try_from(version).unwrap_or(i32::MAX),
                ..Default::default()
            };
            match self
                .docker
                .update_service(
                    &d.name,
                    service_spec(d, ctx.project, ctx.commit),
                    options,
                    None,
                )
                .await
            {
                Ok(_) => break before,
                Err(e) if tries < UPDATE_TRIES && e.to_string().contains("out of sequence") => {
                    tokio::time::sleep(POLL).await;
                }
                Err(e) => {
                    return Err(Failure::plain(
                        self.failed(&format!("update service `{}`", d.name), e),
                    ))
                }
            }
        };
        self.converge(&d.name, &d.shape.image, before, rolling, ctx.timeout)
            .await
    }

    /// Waits until `name` converged: its rolling update (when `rolling`)
    /// finished as `completed`, and as many tasks run as it wants. A
    /// rollback or a pause ends the wait at once, as a failure.
    async fn converge(
        &self,
        name: &str,
        image: &str,
        before: Option<String>,
        rolling: bool,
        timeout: Duration,
    ) -> Result<(), Failure> {
        let deadline = Instant::now() + timeout;
        let mut updated = !rolling;
        // Why the Swarm began to roll back ("… of task <id>"): the final
        // status only says "rollback completed".
        let mut why: Option<String> = None;
        loop {
            let s = self.docker.inspect_service(name, None).await.map_err(|e| {
                Failure::plain(self.failed(&format!("inspect service `{name}`"), e))
            })?;
            if !updated {
                if let Some(status) = s
                    .update_status
                    .as_ref()
                    .filter(|u| Some(fingerprint(u)) != before)
                {
                    let message = status.message.clone().unwrap_or_default();
                    match status.state {
                        Some(ServiceUpdateStatusStateEnum::COMPLETED) => updated = true,
                        Some(ServiceUpdateStatusStateEnum::ROLLBACK_STARTED) => {
                            why.get_or_insert(message);
                        }
                        Some(ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED) => {
                            let why = why.unwrap_or(message);
                            // The old tasks serve again before berth says so.
                            let wanted = s
                                .spec
                                .as_ref()
                                .and_then(|spec| spec.mode.as_ref())
                                .and_then(|m| m.replicated.as_ref())
                                .and_then(|r| r.replicas);
                            while Instant::now() < deadline {
                                let (running, asked) = self.running(name).await?;
                                if running == asked && wanted.is_none_or(|n| running as i64 == n) {
                                    break;
                                }
                                tokio::time::sleep(POLL).await;
                            }
                            return Err(Failure {
                                error: anyhow::anyhow!(
                                    "service `{name}`: the Swarm rolled the update back: {why}{}",
                                    self.task_errors(name, image, &why).await
                                ),
                                rolled_back: true,
                            });
                        }
                        Some(
                            ServiceUpdateStatusStateEnum::PAUSED
                            | ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED,
                        ) => {
                            return Err(Failure::plain(anyhow::anyhow!(
                                "service `{name}`: the Swarm paused the update ({message}){}",
                                self.task_errors(name, image, &message).await
                            )))
                        }
                        _ => {}
                    }
                }
            }
            if updated {
                let wanted = s
                    .spec
                    .as_ref()
                    .and_then(|spec| spec.mode.as_ref())
                    .and_then(|m| m.replicated.as_ref())
                    .and_then(|r| r.replicas);
                let (running, asked) = self.running(name).await?;
                let enough = match wanted {
                    Some(n) => running as i64 == n && asked as i64 == n,
                    None => asked > 0 && running == asked,
                };
                if enough {
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    return Err(Failure::plain(anyhow::anyhow!(
                        "service `{name}`: {running} of {} task(s) running after {}{}",
                        wanted.map_or(asked as i64, |n| n),
                        humantime::format_duration(timeout),
                        self.task_errors(name, image, why.as_deref().unwrap_or(""))
                            .await
                    )));
                }
            } else if Instant::now() >= deadline {
                return Err(Failure::plain(anyhow::anyhow!(
                    "service `{name}`: its update did not finish within {}{}",
                    humantime::format_duration(timeout),
                    self.task_errors(name, image, why.as_deref().unwrap_or(""))
                        .await
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Tasks meant to run, and of them those running.
    async fn running(&self, name: &str) -> Result<(usize, usize), Failure> {
        let filters = HashMap::from([
            ("service".to_string(), vec![name.to_string()]),
            ("desired-state".to_string(), vec!["running".to_string()]),
        ]);
        let tasks = self
            .docker
            .list_tasks(Some(ListTasksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| Failure::plain(self.failed(&format!("list tasks of `{name}`"), e)))?;
        let running = tasks
            .iter()
            .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
            .count();
        Ok((running, tasks.len()))
    }

    /// The task a status message names (`… of task <id>`), else the
    /// tasks of the new release (`image`), then the latest task errors of
    /// `name`, as `; task web_site.2 (failed): …` (up to 3 of each).
    async fn task_errors(&self, name: &str, image: &str, message: &str) -> String {
        let mut errors = Vec::new();
        let named = message
            .rsplit_once("task ")
            .map(|(_, id)| id.trim().to_string())
            .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()));
        if let Some(id) = &named {
            if let Ok(t) = self.docker.inspect_task(id).await {
                let status = t.status.unwrap_or_default();
                let said = status
                    .err
                    .filter(|e| !e.is_empty())
                    .or(status.message)
                    .unwrap_or_default();
                errors.push(format!(
                    "task {name}.{} ({}) ended {}: {}",
                    t.slot.unwrap_or(0),
                    &id[..id.len().min(12)],
                    status.state.map(|s| s.to_string()).unwrap_or_default(),
                    one_line(&said)
                ));
            }
        }
        let filters = HashMap::from([("service".to_string(), vec![name.to_string()])]);
        let mut tasks = self
            .docker
            .list_tasks(Some(ListTasksOptions {
                filters: Some(filters),
            }))
            .await
            .unwrap_or_default();
        tasks.sort_by_key(|t| std::cmp::Reverse(format!("{:?}", t.updated_at)));
        if errors.is_empty() {
            // The status no longer names the task: the new release's tasks
            // say how they ended.
            errors.extend(
                tasks
                    .iter()
                    .filter(|t| {
                        t.spec
                            .as_ref()
                            .and_then(|s| s.container_spec.as_ref())
                            .and_then(|c| c.image.as_deref())
                            == Some(image)
                    })
                    .filter_map(|t| {
                        let status = t.status.as_ref()?;
                        let said = status
                            .err
                            .clone()
                            .filter(|e| !e.is_empty())
                            .or(status.message.clone())
                            .unwrap_or_default();
                        Some(format!(
                            "task {name}.{} of the new release ended {}: {}",
                            t.slot.unwrap_or(0),
                            status.state.map(|s| s.to_string()).unwrap_or_default(),
                            one_line(&said)
                        ))
                    })
                    .take(3),
            );
        }
        errors.extend(
            tasks
                .iter()
                .filter_map(|t| {
                    let status = t.status.as_ref()?;
                    let err = status.err.clone().filter(|e| !e.is_empty())?;
                    let state = status.state.map(|s| s.to_string()).unwrap_or_default();
                    Some(format!(
                        "task {name}.{} ({state}): {}",
                        t.slot.unwrap_or(0),
                        one_line(&err)
                    ))
                })
                .take(3),
        );
        if errors.is_empty() {
            String::new()
        } else {
            format!("; {}", errors.join("; "))
        }
    }
}

/// What an apply needs beside the plan.
pub struct ApplyContext<'a> {
    pub project: &'a str,
    pub commit: Option<&'a str>,
    pub desired: &'a [DesiredService],
    /// Longest wait for one service to converge.
    pub timeout: Duration,
}

/// What [`Manager::apply`] did.
#[derive(Debug, Default)]
pub struct Applied {
    pub steps: Vec<Done>,
    /// The failure that stopped the apply.
    pub error: Option<String>,
    /// The Swarm rolled the failed service back: the old tasks serve.
    pub rolled_back: bool,
}

/// One step of an apply on a Swarm target.
#[derive(Debug)]
pub struct Done {
    /// `network`, `create`, `update` or `remove`.
    pub what: &'static str,
    pub target: String,
    pub seconds: f64,
    pub error: Option<String>,
}

struct Failure {
    error: anyhow::Error,
    rolled_back: bool,
}

impl Failure {
    fn plain(error: anyhow::Error) -> Failure {
        Failure {
            error,
            rolled_back: false,
        }
    }
}

/// Tells one `UpdateStatus` from the next: a new update has a new start.
fn fingerprint(u: &ServiceUpdateStatus) -> String {
    format!("{:?}", u.started_at)
}

/// Whether a change of this field makes the Swarm replace the tasks in a
/// rolling update (a change of `replicas` or of the update settings does not).
fn rolls_tasks(field: &str) -> bool {
    let head = field.split(['.', '[']).next().unwrap_or(field);
    !matches!(
        head,
        "replicas" | "mode" | "update_config" | "rollback_config"
    )
}

/// The `ServiceSpec` berth sends for `d`.
pub fn service_spec(d: &DesiredService, project: &str, commit: Option<&str>) -> ServiceSpec {
    let shape = &d.shape;
    let mut labels = HashMap::from([
        (labels::PROJECT.to_string(), project.to_string()),
        (labels::STACK.to_string(), d.stack.clone()),
        (labels::SERVICE.to_string(), d.service.clone()),
        (SPEC_HASH_LABEL.to_string(), shape.hash()),
        (STACK_NAMESPACE_LABEL.to_string(), d.stack.clone()),
    ]);
    if let Some(commit) = commit {
        labels.insert(labels::COMMIT.to_string(), commit.to_string());
    }
    let container = TaskSpecContainerSpec {
        image: Some(shape.image.clone()),
        command: shape.entrypoint.clone(),
        args: shape.command.clone(),
        env: Some(
            shape
                .environment
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        ),
        labels: Some(shape.labels.clone().into_iter().collect()),
        health_check: shape.healthcheck.as_ref().map(|h| HealthConfig {
            test: Some(h.test.clone()),
            interval: Some(h.interval_ns),
            timeout: Some(h.timeout_ns),
            retries: Some(h.retries),
            start_period: Some(h.start_period_ns),
            ..Default::default()
        }),
        user: shape.user.clone(),
        dir: shape.working_dir.clone(),
        stop_grace_period: (shape.stop_grace_period_ns > 0).then_some(shape.stop_grace_period_ns),
        ..Default::default()
    };
    let task = TaskSpec {
        container_spec: Some(container),
        restart_policy: Some(TaskSpecRestartPolicy {
            condition: shape.restart.parse().ok(),
            ..Default::default()
        }),
        placement: Some(TaskSpecPlacement {
            constraints: Some(shape.constraints.clone()),
            max_replicas: (shape.max_replicas_per_node > 0)
                .then_some(shape.max_replicas_per_node as i64),
            ..Default::default()
        }),
        networks: Some(
            shape
                .networks
                .iter()
                .map(|(name, aliases)| NetworkAttachmentConfig {
                    target: Some(name.clone()),
                    aliases: Some(aliases.clone()),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    };
    let mode = if shape.mode == "global" {
        ServiceSpecMode {
            global: Some(HashMap::new()),
            ..Default::default()
        }
    } else {
        ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(shape.replicas.unwrap_or(1) as i64),
            }),
            ..Default::default()
        }
    };
    ServiceSpec {
        name: Some(d.name.clone()),
        labels: Some(labels),
        task_template: Some(task),
        mode: Some(mode),
        update_config: Some(ServiceSpecUpdateConfig {
            parallelism: Some(shape.update_config.parallelism as i64),
            delay: Some(shape.update_config.delay_ns),
            failure_action: shape.update_config.failure_action.parse().ok(),
            monitor: Some(shape.update_config.monitor_ns),
            max_failure_ratio: Some(shape.update_config.max_failure_ratio),
            order: shape.update_config.order.parse().ok(),
        }),
        rollback_config: Some(ServiceSpecRollbackConfig {
            parallelism: Some(shape.rollback_config.parallelism as i64),
            delay: Some(shape.rollback_config.delay_ns),
            failure_action: shape.rollback_config.failure_action.parse().ok(),
            monitor: Some(shape.rollback_config.monitor_ns),
            max_failure_ratio: Some(shape.rollback_config.max_failure_ratio),
            order: shape.rollback_config.order.parse().ok(),
        }),
        endpoint_spec: Some(EndpointSpec {
            ports: Some(
                shape
                    .ports
                    .iter()
                    .map(|p| EndpointPortConfig {
                        protocol: p.protocol.parse().ok(),
                        target_port: Some(i64::from(p.target)),
                        published_port: Some(i64::from(p.published)),
                        publish_mode: p.mode.parse().ok(),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The shape of an inspected spec: the fields berth sets, the engine's
/// defaults written out (see [`ServiceShape`]).
pub fn shape_of(spec: &ServiceSpec, networks: &HashMap<String, String>) -> ServiceShape {
    let task = spec.task_template.clone().unwrap_or_default();
    let c = task.container_spec.clone().unwrap_or_default();
    let mode = spec.mode.clone().unwrap_or_default();
    let global = mode.global.is_some();
    let text = |e: Option<String>| e.unwrap_or_default();
    let mut ports: Vec<ShapePort> = spec
        .endpoint_spec
        .as_ref()
        .and_then(|e| e.ports.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|p| ShapePort {
            published: p.published_port.unwrap_or(0) as u16,
            target: p.target_port.unwrap_or(0) as u16,
            protocol: p.protocol.map_or("tcp".to_string(), |x| x.to_string()),
            mode: p
                .publish_mode
                .map_or("ingress".to_string(), |x| x.to_string()),
        })
        .collect();
    ports.sort();
    let placement = task.placement.clone().unwrap_or_default();
    let mut constraints = placement.constraints.unwrap_or_default();
    constraints.sort();
    let update = |parallelism: Option<i64>,
                  delay: Option<i64>,
                  failure: Option<String>,
                  monitor: Option<i64>,
                  ratio: Option<f64>,
                  order: Option<String>| ShapeUpdate {
        parallelism: parallelism.unwrap_or(0) as u64,
        delay_ns: delay.unwrap_or(0),
        failure_action: failure
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| "pause".into()),
        monitor_ns: monitor.unwrap_or(0),
        max_failure_ratio: ratio.unwrap_or(0.0),
        order: order
            .filter(|o| !o.is_empty())
            .unwrap_or_else(|| "stop-first".into()),
    };
    let u = spec.update_config.clone().unwrap_or_default();
    let r = spec.rollback_config.clone().unwrap_or_default();
    ServiceShape {
        image: text(c.image),
        mode: if global { "global" } else { "replicated" }.to_string(),
        replicas: (!global)
            .then(|| mode.replicated.and_then(|r| r.replicas).unwrap_or(1).max(0) as u64),
        entrypoint: c.command.clone(),
        command: c.args.clone(),
        environment: c
            .env
            .unwrap_or_default()
            .iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.clone(), String::new()),
            })
            .collect(),
        labels: c.labels.unwrap_or_default().into_iter().collect(),
        ports,
        networks: task
            .networks
            .or(spec.networks.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|n| {
                let target = n.target.unwrap_or_default();
                let name = networks.get(&target).cloned().unwrap_or(target);
                let mut aliases = n.aliases.unwrap_or_default();
                aliases.sort();
                aliases.dedup();
                (name, aliases)
            })
            .collect(),
        healthcheck: c.health_check.map(|h| ShapeHealth {
            test: h.test.unwrap_or_default(),
            interval_ns: h.interval.unwrap_or(0),
            timeout_ns: h.timeout.unwrap_or(0),
            retries: h.retries.unwrap_or(0),
            start_period_ns: h.start_period.unwrap_or(0),
        }),
        constraints,
        max_replicas_per_node: placement.max_replicas.unwrap_or(0).max(0) as u64,
        update_config: update(
            u.parallelism,
            u.delay,
            u.failure_action.map(|x| x.to_string()),
            u.monitor,
            u.max_failure_ratio,
            u.order.map(|x| x.to_string()),
        ),
        rollback_config: update(
            r.parallelism,
            r.delay,
            r.failure_action.map(|x| x.to_string()),
            r.monitor,
            r.max_failure_ratio,
            r.order.map(|x| x.to_string()),
        ),
        restart: task
            .restart_policy
            .and_then(|p| p.condition)
            .map(|x| x.to_string())
            .filter(|x| !x.is_empty())
            .unwrap_or_else(|| "any".into()),
        user: c.user.filter(|u| !u.is_empty()),
        working_dir: c.dir.filter(|d| !d.is_empty()),
        stop_grace_period_ns: c.stop_grace_period.unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swarm::desired::shape;

    /// What berth sends reads back as the same shape: a second plan is empty.
    #[test]
    fn a_spec_sent_reads_back_as_its_shape() {
        let mut container = crate::spec::ContainerSpec {
            image: "reg/web:1@sha256:abc".into(),
            command: Some(vec!["httpd".into()]),
            ..Default::default()
        };
        container.environment.insert("A".into(), "b=c".into());
        container.ports.push(crate::spec::PortSpec {
            host_ip: None,
            published: Some(8080),
            target: 80,
            protocol: "tcp".into(),
        });
        container
            .networks
            .insert("web_default".into(), vec!["site".into()]);
        container.healthcheck = Some(crate::spec::HealthcheckSpec {
            test: vec!["CMD".into(), "true".into()],
            interval_ms: 1000,
            timeout_ms: 500,
            retries: 2,
            start_period_ms: 0,
            start_interval_ms: 0,
        });
        let deploy = crate::spec::Deploy {
            mode: crate::spec::DeployMode::Replicated,
            replicas: 3,
            constraints: Vec::new(),
            max_replicas_per_node: 1,
            update: Default::default(),
            rollback: Default::default(),
        };
        let wanted = shape(&container, &deploy, container.image.clone());
        let d = DesiredService {
            target: "sw".into(),
            stack: "web".into(),
            service: "site".into(),
            name: "web_site".into(),
            shape: wanted.clone(),
            networks: Vec::new(),
        };
        let spec = service_spec(&d, "p", Some("abc"));
        // The manager answers with network ids.
        let mut answered = spec.clone();
        if let Some(n) = answered
            .task_template
            .as_mut()
            .and_then(|t| t.networks.as_mut())
        {
            n[0].target = Some("id1".into());
        }
        let ids = HashMap::from([("id1".to_string(), "web_default".to_string())]);
        assert_eq!(shape_of(&answered, &ids), wanted);
        assert_eq!(
            spec.labels
                .as_ref()
                .and_then(|l| l.get(STACK_NAMESPACE_LABEL)),
            Some(&"web".to_string())
        );
    }

    #[test]
    fn replicas_and_update_settings_roll_no_task() {
        assert!(!rolls_tasks("replicas"));
        assert!(!rolls_tasks("update_config.parallelism"));
        assert!(rolls_tasks("image"));
        assert!(rolls_tasks("environment.A"));
        assert!(rolls_tasks("ports[0].published"));
    }
}
