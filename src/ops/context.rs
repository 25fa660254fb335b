//! What apply knows beyond the plan, built from the repo and the hosts:
//! audit labels, each service's rollout policy, where secrets go.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::stages::Loaded;
use crate::apply::ApplyContext;
use crate::hosts::fleet::Fleet;
use crate::labels;
use crate::secrets::Plaintexts;
use crate::source::Checkout;

pub(super) fn apply_context(
    loaded: &Loaded,
    fleet: &Fleet,
    secrets: Plaintexts,
    health_timeout: Duration,
    parallel: usize,
) -> ApplyContext {
    // Clean up secret files only where the project has or had secrets: it
    // costs a remote command per host.
    let prune_secrets = loaded.project.stacks.iter().any(|s| !s.secrets.is_empty())
        || fleet
            .observed
            .values()
            .flat_map(|o| &o.containers)
            .filter_map(|c| c.labels.get(labels::SPEC))
            .filter_map(|spec| serde_json::from_str::<crate::spec::ContainerSpec>(spec).ok())
            .any(|spec| !spec.secrets.is_empty());
    ApplyContext {
        project: loaded.project.name.clone(),
        metadata: audit_labels(&loaded.checkout),
        health_timeout,
        services: super::stages::service_policies(&loaded.project),
        parallel,
        rollout_parallel: loaded.project.inventory.settings.rollout_parallel,
        host_operations: crate::apply::HOST_OPERATIONS,
        secrets: std::sync::Arc::new(secrets),
        secrets_dirs: loaded
            .project
            .inventory
            .hosts
            .iter()
            .map(|h| (h.name.clone(), h.secrets_dir.clone()))
            .collect(),
        configs_dirs: loaded
            .project
            .inventory
            .hosts
            .iter()
            .map(|h| (h.name.clone(), h.configs_dir.clone()))
            .collect(),
        prune_secrets,
        configs: std::sync::Arc::new(
            loaded
                .project
                .stacks
                .iter()
                .flat_map(|s| s.config_data())
                .map(|c| (c.digest.clone(), c.clone()))
                .collect(),
        ),
        // Configs live on disk: clean up where the project has or had any.
        prune_configs: loaded.project.stacks.iter().any(|s| !s.configs.is_empty())
            || fleet.observed.values().any(|o| {
                o.configs
                    .as_ref()
                    .is_some_and(|c| !c.store.is_empty() || !c.live.is_empty())
            }),
        stop: Default::default(),
    }
}

/// Audit labels: where a container came from and why, readable with
/// `docker inspect` alone. Not part of the spec hash, so they never cause a
/// replace by themselves.
fn audit_labels(checkout: &Checkout) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("berth.version".into(), env!("CARGO_PKG_VERSION").into());
    m.insert("berth.origin".into(), checkout.origin.clone());
    m.insert(
        "berth.applied-at".into(),
        crate::report::rfc3339(SystemTime::now()),
    );
    m.insert("berth.runner".into(), runner_hostname());
    if let Some(c) = &checkout.commit {
        m.insert(labels::COMMIT.into(), c.id.clone());
        m.insert("berth.commit-author".into(), c.author.clone());
        m.insert(
            "berth.commit-date".into(),
            crate::report::rfc3339(UNIX_EPOCH + Duration::from_secs(c.time.max(0) as u64)),
        );
        m.insert("berth.commit-summary".into(), c.summary.clone());
    }
    m
}

/// This machine's name, as the run lock's holder line gives it too.
fn runner_hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use crate::spec::DependsCondition;

    /// A sidecar sharing `web`'s network waits for `web`'s whole rollout
    /// (its container is made with the id of `web`'s on the same host);
    /// a plain `depends_on` keeps its own condition.
    #[test]
    fn a_network_peer_is_waited_for_until_it_has_rolled_out() {
        let dir = crate::spec::test_support::repo(&[
            (
                "berth.yaml",
                "project: p\nhosts:\n  - {name: h, address: 10.0.0.1}\n",
            ),
            (
                "stacks/s/compose.yaml",
                "services:\n  web:\n    image: reg/web:1\n    container_name: web\n  side:\n    image: reg/side:1\n    network_mode: service:web\n  api:\n    image: reg/api:1\n    depends_on: [web]\n",
            ),
        ]);
        let project = crate::spec::load(dir.path()).expect("loads");
        let policies = super::super::stages::service_policies(&project);
        let waits = |service: &str| {
            policies[&("s".to_string(), service.to_string())]
                .depends_on
                .clone()
        };
        assert_eq!(
            waits("side"),
            vec![("web".to_string(), DependsCondition::ServiceHealthy)]
        );
        assert_eq!(
            waits("api"),
            vec![("web".to_string(), DependsCondition::ServiceStarted)]
        );
    }
}
