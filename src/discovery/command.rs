//! The `command` target: the user's own commands, run on the runner with
//! `sh -c`, the replica in the environment — for Consul, a file provider,
//! DNS, or anything berth does not speak itself.
//!
//! Environment (each command, besides the runner's own): `BERTH_ADDRESS`,
//! `BERTH_PORT`, `BERTH_HOST`, `BERTH_PROJECT`, `BERTH_STACK`,
//! `BERTH_SERVICE`, `BERTH_REPLICA`, `BERTH_TARGET`, `BERTH_EVENT`
//! (`promote` or `retire`) and `BERTH_BACKEND` when the service names one.
//! A command may run again for the same replica (a re-run after a crash,
//! a put-back after a failure): it should say its end state.

use super::replica::{Publishing, Replica};
use crate::hosts::shell::run_command;
use crate::spec::discovery::{DiscoveryKind, DiscoveryTarget};

/// Runs `on_promote`, if the target has one.
pub async fn promote(target: &DiscoveryTarget, p: &Publishing, r: &Replica) -> anyhow::Result<()> {
    match &target.kind {
        DiscoveryKind::Command {
            on_promote: Some(line),
            timeout,
            ..
        } => run(target, "promote", line, *timeout, p, r).await,
        _ => Ok(()),
    }
}

/// Runs `on_retire`, if the target has one.
pub async fn retire(target: &DiscoveryTarget, p: &Publishing, r: &Replica) -> anyhow::Result<()> {
    match &target.kind {
        DiscoveryKind::Command {
            on_retire: Some(line),
            timeout,
            ..
        } => run(target, "retire", line, *timeout, p, r).await,
        _ => Ok(()),
    }
}

/// The variables a command sees, by name.
pub fn environment(
    target: &DiscoveryTarget,
    event: &str,
    p: &Publishing,
    r: &Replica,
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("BERTH_EVENT", event.to_string()),
        ("BERTH_TARGET", target.name.clone()),
        ("BERTH_ADDRESS", r.address.clone()),
        ("BERTH_PORT", r.port.to_string()),
        ("BERTH_HOST", r.host.clone()),
        ("BERTH_PROJECT", r.project.clone()),
        ("BERTH_STACK", r.stack.clone()),
        ("BERTH_SERVICE", r.service.clone()),
        ("BERTH_REPLICA", r.replica.to_string()),
    ];
    if let Some(backend) = &p.backend {
        env.push(("BERTH_BACKEND", backend.clone()));
    }
    env
}

async fn run(
    target: &DiscoveryTarget,
    event: &str,
    line: &str,
    timeout: std::time::Duration,
    p: &Publishing,
    r: &Replica,
) -> anyhow::Result<()> {
    let mut command = tokio::process::Command::new("sh");
    command.arg("-c").arg(line);
    command.envs(environment(target, event, p, r));
    let who = format!("`on_{event}` of discovery target `{}`", target.name);
    let (code, output) = run_command(command, &who, None, timeout).await?;
    if code != 0 {
        anyhow::bail!(
            "{who} exited with {code}: {}",
            crate::hosts::shell::truncate(output.trim(), 2000)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn target(on_promote: &str, on_retire: &str) -> DiscoveryTarget {
        DiscoveryTarget {
            name: "hooks".into(),
            kind: DiscoveryKind::Command {
                on_promote: Some(on_promote.into()),
                on_retire: Some(on_retire.into()),
                timeout: Duration::from_secs(5),
            },
            drain_timeout: Duration::from_secs(1),
            location: Default::default(),
        }
    }

    fn replica() -> Replica {
        Replica {
            project: "p".into(),
            stack: "web".into(),
            service: "app".into(),
            replica: 2,
            host: "edge-1".into(),
            address: "10.77.0.11".into(),
            port: 8081,
        }
    }

    #[tokio::test]
    async fn commands_see_the_replica_in_their_environment() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let line = format!(
            "echo \"$BERTH_EVENT $BERTH_TARGET $BERTH_PROJECT $BERTH_STACK/$BERTH_SERVICE.$BERTH_REPLICA $BERTH_HOST $BERTH_ADDRESS:$BERTH_PORT $BERTH_BACKEND\" >> {}",
            log.display()
        );
        let t = target(&line, &line);
        let p = Publishing {
            backend: Some("be".into()),
            ..Publishing::default()
        };
        promote(&t, &p, &replica()).await.unwrap();
        retire(&t, &p, &replica()).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "promote hooks p web/app.2 edge-1 10.77.0.11:8081 be\nretire hooks p web/app.2 edge-1 10.77.0.11:8081 be\n"
        );
    }

    #[tokio::test]
    async fn a_failing_command_says_which_and_what_it_printed() {
        let t = target("echo no consul here >&2; exit 3", "true");
        let e = promote(&t, &Publishing::default(), &replica())
            .await
            .unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "`on_promote` of discovery target `hooks` exited with 3: no consul here"
        );
    }
}
