//! render: turns a [`Plan`] into what people and machines read.
//!
//! Input: a `Plan`. Output: text. Invariant: every format reads the same plan
//! value; nothing here decides what changes (that is `plan`'s job).

use std::fmt::Write as _;

use crate::plan::{Action, Change, Plan};

/// `terraform plan`-like text, sorted by host, stack, service, replica.
pub fn human(plan: &Plan) -> String {
    let mut out = String::new();
    if let Some(commit) = &plan.commit {
        let _ = writeln!(out, "Planned at commit {}.\n", short(commit));
    }
    for host in &plan.hosts {
        if host.changes.is_empty()
            && host.networks.is_empty()
            && host.volumes.is_empty()
            && host.pulls.is_empty()
        {
            continue;
        }
        let _ = writeln!(out, "{}", host.host);
        for image in &host.pulls {
            let _ = writeln!(out, "  > pull {image}");
        }
        for n in &host.networks {
            let _ = writeln!(out, "  + network {}", n.name);
        }
        for v in &host.volumes {
            let _ = writeln!(out, "  + volume {}", v.name);
        }
        let width = host
            .changes
            .iter()
            .map(|c| label(c).len())
            .max()
            .unwrap_or(0);
        for c in &host.changes {
            let marker = match c.action {
                Action::Create => "+",
                Action::Replace => "~",
                Action::Remove => "-",
            };
            let drift = if c.drift { " [drift]" } else { "" };
            let _ = writeln!(
                out,
                "  {marker} {:<width$} {}{drift} ({})",
                label(c),
                verb(c.action),
                c.reason
            );
            for f in &c.fields {
                match (&f.old, &f.new) {
                    (Some(o), Some(n)) => {
                        let _ = writeln!(out, "      ~ {} = {} -> {}", f.field, o, n);
                    }
                    (None, Some(n)) => {
                        let _ = writeln!(out, "      + {} = {}", f.field, n);
                    }
                    (Some(o), None) => {
                        let _ = writeln!(out, "      - {} = {}", f.field, o);
                    }
                    (None, None) => {}
                }
            }
        }
        out.push('\n');
    }
    for u in &plan.unreachable {
        let _ = writeln!(out, "{}\n  ! unreachable: {}\n", u.host, u.error);
    }
    out.push_str(&summary(plan));
    out.push('\n');
    out
}

/// `Plan: 1 to create, 1 to replace, 1 to remove.` or `No changes.`
pub fn summary(plan: &Plan) -> String {
    let mut s = if plan.is_empty() {
        "No changes. The hosts match the repo.".to_string()
    } else {
        let mut s = format!(
            "Plan: {} to create, {} to replace, {} to remove.",
            plan.count(Action::Create),
            plan.count(Action::Replace),
            plan.count(Action::Remove)
        );
        let drift = plan.drift_count();
        if drift > 0 {
            let _ = write!(s, " ({drift} of them repair drift on the hosts.)");
        }
        s
    };
    if !plan.unreachable.is_empty() {
        let _ = write!(
            s,
            "\n{} host(s) could not be reached and were not planned: {}.",
            plan.unreachable.len(),
            plan.unreachable
                .iter()
                .map(|u| format!("`{}`", u.host))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    s
}

/// Machine-readable plan: the `Plan` value as JSON.
pub fn json(plan: &Plan) -> String {
    serde_json::to_string_pretty(plan).unwrap_or_default()
}

fn label(c: &Change) -> String {
    if c.slot.stack.is_empty() {
        c.name.clone()
    } else {
        c.slot.to_string()
    }
}

fn verb(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Replace => "replace",
        Action::Remove => "remove",
    }
}

pub fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}
