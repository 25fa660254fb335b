//! `berth config`: the fully resolved model of a stack as YAML, the way
//! `docker compose config` shows what Compose understood. Variables are
//! interpolated, `extends` and `include` merged, profiles applied, and every
//! default berth fills in is written out, so the output is what berth
//! deploys. Values of variables whose names look secret are redacted; secret
//! values are never in the model at all (only their encrypted files).
//!
//! Pure: takes a loaded [`Project`], returns text.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::model::looks_secret;
use super::model::{
    ConstraintAttribute, ContainerSpec, DeployMode, Project, PullPolicy, Service, Stack,
    UpdateConfig,
};

/// The resolved model of `stack` (every stack when None) as YAML. Errors
/// when the stack does not exist, listing those that do.
pub fn render(project: &Project, stack: Option<&str>) -> Result<String, String> {
    let stacks: Vec<&Stack> = match stack {
        None => project.stacks.iter().collect(),
        Some(name) => match project.stacks.iter().find(|s| s.name == name) {
            Some(s) => vec![s],
            None => {
                return Err(format!(
                    "no stack `{name}` in the repo (stacks: {})",
                    project
                        .stacks
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
        },
    };
    let mut out = String::new();
    for (i, stack) in stacks.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        let value = tidy(stack_value(stack));
        out.push_str(&serde_yaml::to_string(&value).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// Drops nulls and writes serialised durations (`{secs, nanos}`) as `30s`.
fn tidy(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            if map.len() == 2 {
                if let (Some(secs), Some(nanos)) = (
                    map.get("secs").and_then(Value::as_u64),
                    map.get("nanos").and_then(Value::as_u64),
                ) {
                    return json!(duration(
                        Duration::from_secs(secs) + Duration::from_nanos(nanos)
                    ));
                }
            }
            Value::Object(
                map.into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k, tidy(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(tidy).collect()),
        other => other,
    }
}

fn stack_value(stack: &Stack) -> Value {
    let mut top = Map::new();
    top.insert("name".into(), json!(stack.name));
    let services: Map<String, Value> = stack
        .services
        .iter()
        .map(|s| (s.name.clone(), service_value(stack, s)))
        .collect();
    top.insert("services".into(), Value::Object(services));
    if !stack.networks.is_empty() {
        top.insert("networks".into(), json!(stack.networks));
    }
    if !stack.volumes.is_empty() {
        top.insert("volumes".into(), json!(stack.volumes));
    }
    if !stack.secrets.is_empty() {
        let secrets: Map<String, Value> = stack
            .secrets
            .iter()
            .map(|(k, s)| (k.clone(), json!({ "file": s.file.display().to_string() })))
            .collect();
        top.insert("secrets".into(), Value::Object(secrets));
    }
    let mut resolved = Map::new();
    if !stack.resolution.profiles.is_empty() {
        resolved.insert("profiles".into(), json!(stack.resolution.profiles));
    }
    if !stack.resolution.variables.is_empty() {
        let vars: Map<String, Value> = stack
            .resolution
            .variables
            .iter()
            .map(|(name, used)| {
                let value = if looks_secret(name) {
                    "<redacted>".to_string()
                } else {
                    used.value.clone()
                };
                (
                    name.clone(),
                    json!({ "value": value, "from": used.origin.to_string() }),
                )
            })
            .collect();
        resolved.insert("variables".into(), Value::Object(vars));
    }
    if !stack.resolution.files.is_empty() {
        let files: Vec<String> = stack
            .resolution
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        resolved.insert("files".into(), json!(files));
    }
    if !resolved.is_empty() {
        top.insert("x-berth-resolved".into(), Value::Object(resolved));
    }
    Value::Object(top)
}

fn service_value(stack: &Stack, service: &Service) -> Value {
    let mut out = match serde_json::to_value(&service.container) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    // berth's own record of the variables used, not a Compose key: the
    // stack's `variables` below show them once, redacted where secret.
    out.remove("variables");
    if !service.depends_on.is_empty() {
        let deps: Map<String, Value> = service
            .depends_on
            .iter()
            .map(|(name, condition)| (name.clone(), json!({ "condition": condition })))
            .collect();
        out.insert("depends_on".into(), Value::Object(deps));
    }
    out.insert("deploy".into(), deploy_value(service));
    // The default (`missing`) is left out, as `docker compose config` does.
    let pull_policy = match service.pull_policy {
        PullPolicy::Missing => None,
        PullPolicy::Always => Some("always".to_string()),
        PullPolicy::Never => Some("never".to_string()),
        PullPolicy::Every(every) => Some(format!("every_{}", duration(every))),
    };
    if let Some(policy) = pull_policy {
        out.insert("pull_policy".into(), json!(policy));
    }
    if !service.secrets.is_empty() {
        let secrets: Vec<Value> = service
            .secrets
            .iter()
            .map(|s| {
                let mut secret = Map::new();
                secret.insert("source".into(), json!(s.source));
                secret.insert("target".into(), json!(s.target));
                if let Some(uid) = &s.uid {
                    secret.insert("uid".into(), json!(uid));
                }
                if let Some(gid) = &s.gid {
                    secret.insert("gid".into(), json!(gid));
                }
                if let Some(mode) = s.mode {
                    secret.insert("mode".into(), json!(format!("{mode:04o}")));
                }
                Value::Object(secret)
            })
            .collect();
        out.insert("secrets".into(), json!(secrets));
    }
    let mut x_berth = Map::new();
    if !service.validate.is_empty() {
        x_berth.insert("validate".into(), json!(service.validate));
    }
    if let Some(adopt) = &service.adopt {
        x_berth.insert("adopt".into(), json!(adopt));
    }
    if !x_berth.is_empty() {
        out.insert("x-berth".into(), Value::Object(x_berth));
    }
    if let Some(hosts) = stack.resolution.per_host.get(&service.name) {
        let per_host: Map<String, Value> = hosts
            .iter()
            .map(|(host, spec)| (host.clone(), differences(&service.container, spec)))
            .collect();
        out.insert("x-berth-per-host".into(), Value::Object(per_host));
    }
    Value::Object(out)
}

/// The top-level fields of `host` that differ from `base`.
fn differences(base: &ContainerSpec, host: &ContainerSpec) -> Value {
    let (Ok(Value::Object(base)), Ok(Value::Object(host))) =
        (serde_json::to_value(base), serde_json::to_value(host))
    else {
        return Value::Null;
    };
    let diff: BTreeMap<String, Value> = host
        .into_iter()
        .filter(|(k, v)| base.get(k) != Some(v))
        .collect();
    json!(diff)
}

fn deploy_value(service: &Service) -> Value {
    let deploy = &service.deploy;
    let mut out = Map::new();
    match deploy.mode {
        DeployMode::Replicated => {
            out.insert("mode".into(), json!("replicated"));
            out.insert("replicas".into(), json!(deploy.replicas));
        }
        DeployMode::Global => {
            out.insert("mode".into(), json!("global"));
        }
    }
    let constraints: Vec<String> = deploy
        .constraints
        .iter()
        .map(|c| {
            let lhs = match &c.attribute {
                ConstraintAttribute::Hostname => "node.hostname".to_string(),
                ConstraintAttribute::Label(key) => format!("node.labels.{key}"),
            };
            format!("{lhs} {} {}", if c.equal { "==" } else { "!=" }, c.value)
        })
        .collect();
    let mut placement = Map::new();
    if !constraints.is_empty() {
        placement.insert("constraints".into(), json!(constraints));
    }
    if deploy.max_replicas_per_node > 0 {
        placement.insert(
            "max_replicas_per_node".into(),
            json!(deploy.max_replicas_per_node),
        );
    }
    if !placement.is_empty() {
        out.insert("placement".into(), Value::Object(placement));
    }
    out.insert("update_config".into(), update_value(&deploy.update));
    out.insert("rollback_config".into(), update_value(&deploy.rollback));
    Value::Object(out)
}

fn update_value(update: &UpdateConfig) -> Value {
    json!({
        "parallelism": update.parallelism,
        "delay": duration(update.delay),
        "order": update.order,
        "failure_action": update.failure_action,
        "monitor": duration(update.monitor),
        "max_failure_ratio": update.max_failure_ratio,
    })
}

/// A duration as Compose writes it (`1m30s`, `500ms`, `0s`).
fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let secs = ms / 1000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::test_support::repo;
    use crate::spec::{load_with, LoadOptions};

    /// A realistic stack: a proxy, an app built from `extends`, a database,
    /// a worker sharing settings through anchors, a debug tool in a profile.
    #[test]
    fn config_shows_the_resolved_stack() {
        let dir = repo(&[
            (
                "berth.yaml",
                "project: shop\nvariables: {REGISTRY: registry.example.com}\nhosts:\n  - name: edge-1\n    address: 10.77.0.11\n    labels: {role: web}\n  - name: db-1\n    address: 10.77.0.21\n    labels: {role: db}\n",
            ),
            ("stacks/shop/.env", "APP_TAG=1.4.2\nPG_VERSION=16\nDB_PASSWORD=not-shown\n"),
            ("stacks/shop/app.env", "LOG_FORMAT=json\nLOG_LEVEL=info\n"),
            ("stacks/shop/secrets/db.pgp", "-----BEGIN PGP MESSAGE-----\n"),
            (
                "stacks/shop/compose.yaml",
                "\
name: shop
x-app: &app
  image: ${REGISTRY}/shop/app:${APP_TAG:?set APP_TAG}
  env_file: app.env
  restart: unless-stopped
  networks: [back]
services:
  proxy:
    image: nginx:1.27-alpine
    pull_policy: never
    ports: [\"80:80\"]
    depends_on:
      web:
        condition: service_healthy
    deploy:
      placement:
        constraints: [node.labels.role == web]
  web:
    <<: *app
    command: [serve, --port, \"8080\"]
    environment:
      LOG_LEVEL: ${LOG_LEVEL:-debug}
      DB_HOST: db
    healthcheck:
      test: [CMD, wget, -qO-, http://localhost:8080/health]
      interval: 10s
    deploy:
      replicas: 2
      update_config: {order: start-first}
    x-berth:
      validate:
        - http: {url: \"http://localhost:8080/health\"}
  worker:
    extends: web
    command: [worker]
    healthcheck: {test: [NONE]}
    deploy:
      replicas: 1
      update_config: {order: stop-first}
  db:
    image: postgres:${PG_VERSION}
    volumes: [\"pgdata:/var/lib/postgresql/data\"]
    secrets: [db_password]
    environment:
      POSTGRES_PASSWORD_FILE: /run/secrets/db_password
    networks:
      back: {ipv4_address: 172.28.5.10}
    deploy:
      placement:
        constraints: [node.labels.role == db]
  pgadmin:
    image: dpage/pgadmin4
    profiles: [debug]
networks:
  back:
    ipam: {config: [{subnet: 172.28.5.0/24}]}
volumes:
  pgdata: {}
secrets:
  db_password:
    file: ./secrets/db.pgp
",
            ),
        ]);
        let opts = LoadOptions {
            profiles: Vec::new(),
            environment: Some(BTreeMap::from([(
                "APP_TAG".to_string(),
                "1.5.0".to_string(),
            )])),
        };
        let loaded = load_with(dir.path(), &opts).unwrap_or_else(|e| panic!("{e}"));
        insta::assert_snapshot!(render(&loaded.project, Some("shop")).unwrap());
        assert_eq!(
            render(&loaded.project, Some("nope")).unwrap_err(),
            "no stack `nope` in the repo (stacks: shop)"
        );
    }
}
