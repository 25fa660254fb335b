//! `--report` (JSON) and the Prometheus metrics file, for a run that
//! succeeds and for one that fails.

use super::apply;
use crate::support::{expect_code, Bed, Failed};

/// Checks a Prometheus textfile the way promtool would: HELP and TYPE before
/// each metric's samples, sample lines `name{labels} value`, numeric values.
fn check_prometheus(text: &str) -> Result<Vec<(String, f64)>, String> {
    let mut declared = std::collections::BTreeSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let name = parts.next().ok_or("TYPE without a name")?;
            if parts.next() != Some("gauge") {
                return Err(format!("unexpected TYPE line: {line}"));
            }
            declared.insert(name.to_string());
        } else if line.starts_with("# HELP ") || line.is_empty() {
        } else {
            let (series, value) = line.rsplit_once(' ').ok_or(format!("bad sample: {line}"))?;
            let name = series.split('{').next().unwrap_or_default();
            if !declared.contains(name) {
                return Err(format!("sample before its TYPE: {line}"));
            }
            if !series.ends_with('}') || series.matches('"').count() % 2 != 0 {
                return Err(format!("bad labels: {line}"));
            }
            let value: f64 = value.parse().map_err(|_| format!("bad value: {line}"))?;
            samples.push((series.to_string(), value));
        }
    }
    Ok(samples)
}

#[test]
fn reports_and_metrics_for_success_and_failure() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-report";
    let _scope = bed.scope(project);
    let repo = bed.repo(project);
    let compose = |img: &str| {
        format!(
            "services:\n  web:\n    image: {img}\n    deploy:\n      placement:\n        constraints: [node.hostname == edge-2]\n"
        )
    };
    repo.write("stacks/rep/compose.yaml", &compose(&bed.get("BED_WEB_V1")));
    repo.commit("v1");
    let report = repo.path().join("report.json");
    let metrics = repo.path().join("berth.prom");
    let outputs = [
        "--report",
        report.to_str().ok_or("path")?,
        "--metrics",
        metrics.to_str().ok_or("path")?,
    ];

    // Success.
    expect_code(&apply(&repo, &outputs), 0);
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report)?)?;
    check!(
        json["outcome"] == "converged" && json["exit_code"] == 0,
        "{json:#}"
    );
    check!(json["summary"]["create"] == 1, "{json:#}");
    let edge2 = json["hosts"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h["host"] == "edge-2"))
        .ok_or("no edge-2")?;
    check!(
        edge2["steps"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["step"] == "create" && s["ok"] == true)),
        "{json:#}"
    );
    let samples = check_prometheus(&std::fs::read_to_string(&metrics)?)?;
    check!(
        samples
            .iter()
            .any(|(s, v)| s.starts_with("berth_last_run_success{") && *v == 1.0),
        "{samples:?}"
    );

    // Failure with rollback.
    repo.write("stacks/rep/compose.yaml", &compose(&bed.get("BED_WEB_BAD")));
    repo.commit("bad");
    let mut args = outputs.to_vec();
    args.extend(["--health-timeout", "30"]);
    expect_code(&apply(&repo, &args), 1);
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report)?)?;
    check!(
        json["outcome"] == "failed" && json["exit_code"] == 1,
        "{json:#}"
    );
    check!(json["summary"]["failed_hosts"] == 1, "{json:#}");
    let edge2 = json["hosts"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h["host"] == "edge-2"))
        .ok_or("no edge-2")?;
    let error = edge2["error"].as_str().unwrap_or_default();
    check!(
        error.contains("rolled back") && error.contains("unhealthy"),
        "{json:#}"
    );
    check!(
        json["rollouts"][0]["service"] == "web"
            && json["rollouts"][0]["outcome"] == "rolled_back"
            && json["rollouts"][0]["failures"][0]
                .as_str()
                .is_some_and(|f| f.contains("unhealthy")),
        "{json:#}"
    );
    let samples = check_prometheus(&std::fs::read_to_string(&metrics)?)?;
    check!(
        samples
            .iter()
            .any(|(s, v)| s.starts_with("berth_last_run_success{") && *v == 0.0),
        "{samples:?}"
    );
    check!(
        samples
            .iter()
            .any(|(s, v)| s.starts_with("berth_host_success{")
                && s.contains("host=\"edge-2\"")
                && *v == 0.0),
        "{samples:?}"
    );
    Ok(())
}
