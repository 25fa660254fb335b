//! The Grafana dashboard (`ci/grafana/berth.json`) and the Prometheus alert
//! rules (`ci/prometheus/berth.rules.yml`) read the textfile metrics berth
//! writes. Every metric a query or rule names must be one berth writes, with
//! only labels berth sets: both are read from a real `berth plan --metrics`
//! run, not from a list kept by hand. promtool checks the rules, runs their
//! unit tests (`berth.rules.test.yml`) and parses the dashboard's queries.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

const DASHBOARD: &str = "ci/grafana/berth.json";
const RULES: &str = "ci/prometheus/berth.rules.yml";
const RULES_TEST: &str = "ci/prometheus/berth.rules.test.yml";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Metric name -> the label names berth writes it with, from the textfile
/// of a real run: `berth plan --metrics` on a one-host repo whose host does
/// not answer (127.0.0.1, port 1), so every per-host metric is written too.
fn written_metrics() -> BTreeMap<String, BTreeSet<String>> {
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(
        repo.path().join("berth.yaml"),
        "project: metrics\n\
         settings:\n  connect_timeout: 2s\n\
         hosts:\n  - name: down\n    address: 127.0.0.1\n    port: 1\n",
    )
    .unwrap();
    let prom = repo.path().join("berth.prom");
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("plan")
        .arg("--repo")
        .arg(repo.path())
        .arg("--metrics")
        .arg(&prom)
        .env("NO_COLOR", "1")
        .env("BERTH_CACHE_DIR", repo.path().join("cache"))
        .output()
        .expect("run berth");
    let text = std::fs::read_to_string(&prom).unwrap_or_else(|e| {
        panic!(
            "berth plan --metrics wrote no file ({e}):\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let mut metrics: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split_whitespace().next().unwrap_or_default();
            metrics.entry(name.to_string()).or_default();
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (name, labels) = match line.split_once('{') {
            Some((name, rest)) => (name, rest.split_once('}').map_or("", |(l, _)| l)),
            None => (line.split_whitespace().next().unwrap_or_default(), ""),
        };
        let set = metrics.entry(name.to_string()).or_default();
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            let label = pair.split_once('=').map_or(pair, |(l, _)| l);
            set.insert(label.trim().to_string());
        }
    }
    assert!(
        metrics.keys().any(|m| m.starts_with("berth_host_")),
        "expected per-host metrics from berth, got:\n{text}"
    );
    metrics
}

/// What a PromQL expression names: metrics with the labels of their
/// matchers, and the labels of `by`/`without`/`on`/`ignoring`/`group_*`.
#[derive(Debug, Default, PartialEq)]
struct Names {
    metrics: Vec<(String, BTreeSet<String>)>,
    grouping: BTreeSet<String>,
    /// Selectors without a metric name (`{job="x"}`): never berth's.
    bare_selectors: usize,
}

const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
/// Binary operators and modifiers, and the aggregations (which may come
/// before their `by (...)`, not followed by a parenthesis).
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "atan2",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// A small PromQL scanner: enough to find names, not to check syntax
/// (promtool does that).
fn promql_names(expr: &str) -> Names {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Names::default();
    let mut i = 0;
    let skip_space = |mut i: usize| {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        i
    };
    // Label names of a `{...}` starting at `start`; returns them and the index after `}`.
    let matchers = |start: usize| -> (BTreeSet<String>, usize) {
        let mut labels = BTreeSet::new();
        let mut i = start + 1;
        let mut expect_name = true;
        while i < chars.len() && chars[i] != '}' {
            let c = chars[i];
            if c == '"' || c == '\'' || c == '`' {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                continue;
            }
            if expect_name && (c.is_ascii_alphabetic() || c == '_') {
                let s = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                labels.insert(chars[s..i].iter().collect());
                expect_name = false;
                continue;
            }
            if c == ',' {
                expect_name = true;
            }
            i += 1;
        }
        (labels, i + 1)
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '{' {
            let (_, next) = matchers(i);
            names.bare_selectors += 1;
            i = next;
        } else if c == '$' {
            // A Grafana variable outside a string, e.g. $__interval.
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_{}".contains(chars[i]))
            {
                i += 1;
            }
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let s = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[s..i].iter().collect();
            let after = skip_space(i);
            if GROUPING.contains(&word.as_str()) {
                if after < chars.len() && chars[after] == '(' {
                    let close = chars[after..]
                        .iter()
                        .position(|&c| c == ')')
                        .map_or(chars.len(), |p| after + p);
                    let list: String = chars[after + 1..close].iter().collect();
                    names.grouping.extend(
                        list.split(',')
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(str::to_string),
                    );
                    i = close + 1;
                }
            } else if KEYWORDS.contains(&word.as_str())
                || (after < chars.len() && chars[after] == '(')
            {
                // An operator, or a function / aggregation name.
            } else if after < chars.len() && chars[after] == '{' {
                let (labels, next) = matchers(after);
                names.metrics.push((word, labels));
                i = next;
            } else {
                names.metrics.push((word, BTreeSet::new()));
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn promql_scanner_finds_metrics_and_labels() {
    let got = promql_names(
        r#"time() - max by (project, host) (max_over_time(((berth_b == 1) * on (project) group_left berth_a{project=~"$project", command="apply"})[24h:1m])) > 1800 or vector(0) and berth_c offset 5m"#,
    );
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        got.metrics,
        vec![
            ("berth_b".to_string(), set(&[])),
            ("berth_a".to_string(), set(&["project", "command"])),
            ("berth_c".to_string(), set(&[])),
        ]
    );
    assert_eq!(got.grouping, set(&["project", "host"]));
    assert_eq!(promql_names(r#"{job="x"}"#).bare_selectors, 1);
    // A metric berth does not write is found, so the check below can fail.
    assert_eq!(promql_names("up == 0").metrics[0].0, "up");
}

/// Every `expr` of the dashboard's panels, and the metric + label of its
/// `label_values(...)` variables.
fn dashboard_queries(dashboard: &serde_json::Value) -> (Vec<String>, Vec<(String, String)>) {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut exprs = Vec::new();
    walk(&dashboard["panels"], &mut exprs);
    let mut label_values = Vec::new();
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if var["type"] != "query" {
            continue;
        }
        let query = var["query"]["query"]
            .as_str()
            .or_else(|| var["query"].as_str())
            .unwrap_or_default();
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .unwrap_or_else(|| {
                panic!("{DASHBOARD}: variable query {query:?} is not label_values(metric, label)")
            });
        let (metric, label) = inner
            .rsplit_once(',')
            .unwrap_or_else(|| panic!("{DASHBOARD}: {query:?} names no label"));
        label_values.push((metric.trim().to_string(), label.trim().to_string()));
    }
    (exprs, label_values)
}

fn rule_exprs(rules: &Value) -> Vec<(String, String)> {
    rules["groups"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{RULES}: no groups"))
        .iter()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .map(|r| {
            let name = r["alert"].as_str().or(r["record"].as_str()).unwrap_or("?");
            (
                name.to_string(),
                r["expr"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Problems with one expression: metrics berth does not write, labels it
/// does not set on them, grouping by labels none of its metrics carry.
fn check_expr(
    what: &str,
    expr: &str,
    written: &BTreeMap<String, BTreeSet<String>>,
    problems: &mut Vec<String>,
) {
    let names = promql_names(expr);
    if names.metrics.is_empty() {
        problems.push(format!("{what}: names no metric: {expr}"));
    }
    if names.bare_selectors > 0 {
        problems.push(format!("{what}: a selector without a metric name: {expr}"));
    }
    let mut labels_here = BTreeSet::new();
    for (metric, labels) in &names.metrics {
        let Some(set) = written.get(metric) else {
            problems.push(format!("{what}: berth writes no metric `{metric}`"));
            continue;
        };
        for label in labels.difference(set) {
            problems.push(format!(
                "{what}: berth sets no label `{label}` on `{metric}` (it sets {set:?})"
            ));
        }
        labels_here.extend(set.iter().cloned());
    }
    for label in names.grouping.difference(&labels_here) {
        problems.push(format!(
            "{what}: groups by `{label}`, which none of its metrics carries"
        ));
    }
}

#[test]
fn dashboard_and_rules_name_only_metrics_and_labels_berth_writes() {
    let written = written_metrics();
    let dashboard: serde_json::Value =
        serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"));
    let rules: Value =
        serde_yaml::from_str(&read(RULES)).unwrap_or_else(|e| panic!("{RULES}: {e}"));
    let mut problems = Vec::new();

    let (exprs, label_values) = dashboard_queries(&dashboard);
    assert!(!exprs.is_empty(), "{DASHBOARD}: no queries found");
    let mut dashboard_metrics = BTreeSet::new();
    for expr in &exprs {
        check_expr(DASHBOARD, expr, &written, &mut problems);
        dashboard_metrics.extend(promql_names(expr).metrics.into_iter().map(|(m, _)| m));
    }
    for (metric, label) in &label_values {
        match written.get(metric) {
            Some(set) if set.contains(label) => {}
            _ => problems.push(format!(
                "{DASHBOARD}: variable label_values({metric}, {label}): berth writes no such metric and label"
            )),
        }
    }

    let alerts = rule_exprs(&rules);
    let mut rule_metrics: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, expr) in &alerts {
        check_expr(&format!("{RULES}: {name}"), expr, &written, &mut problems);
        rule_metrics.insert(
            name.clone(),
            promql_names(expr)
                .metrics
                .into_iter()
                .map(|(m, _)| m)
                .collect(),
        );
    }
    assert!(
        problems.is_empty(),
        "queries that do not match what berth writes ({written:?}):\n  {}",
        problems.join("\n  ")
    );

    // What the dashboard is for: the last (successful) run and its age,
    // drift, changes, rollbacks and duration.
    for metric in [
        "berth_last_run_timestamp_seconds",
        "berth_last_run_success",
        "berth_host_success",
        "berth_host_drift",
        "berth_host_changes",
        "berth_host_rollbacks",
        "berth_last_run_duration_seconds",
    ] {
        assert!(
            dashboard_metrics.contains(metric),
            "{DASHBOARD}: no panel shows {metric}"
        );
    }
    // And what the alerts watch.
    let uses =
        |alert: &str, metric: &str| rule_metrics.get(alert).is_some_and(|m| m.contains(metric));
    assert!(uses(
        "BerthNoSuccessfulRun",
        "berth_last_run_timestamp_seconds"
    ));
    assert!(uses("BerthNoSuccessfulRun", "berth_last_run_success"));
    assert!(uses("BerthDriftPersists", "berth_host_drift"));
    assert!(uses("BerthRollback", "berth_host_rollbacks"));
}

fn promtool() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("promtool"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "promtool not found on PATH: ci/install-deps.sh installs it (from Debian's \
                 `prometheus` package, without installing that package)"
            )
        })
}

fn run_promtool(args: &[&str], dir: &Path) {
    let out = Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool {}:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_checks_and_tests_the_rules() {
    let dir = root().join("ci/prometheus");
    run_promtool(&["check", "rules", "berth.rules.yml"], &dir);
    let test = Path::new(RULES_TEST)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    run_promtool(&["test", "rules", test], &dir);
}

/// promtool parses every dashboard query, as recording rules with the
/// Grafana variables filled in.
#[test]
fn promtool_parses_the_dashboard_queries() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"));
    let (exprs, _) = dashboard_queries(&dashboard);
    let mut rules = String::from("groups:\n  - name: berth_dashboard\n    rules:\n");
    for (n, expr) in exprs.iter().enumerate() {
        let filled = expr
            .replace("$__rate_interval", "5m")
            .replace("$__interval", "1m")
            .replace("$__range", "1h")
            .replace("$project", ".*");
        rules.push_str(&format!(
            "      - record: berth_dashboard_query_{n}\n        expr: {}\n",
            serde_json::to_string(&filled).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dashboard.rules.yml"), rules).unwrap();
    run_promtool(&["check", "rules", "dashboard.rules.yml"], dir.path());
}
