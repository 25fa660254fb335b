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

/// GitHub's limit on a comment body; the Markdown plan stays under it.
pub const COMMENT_LIMIT: usize = 65_536;

/// Marker that lets a CI job find and update its own comment.
pub const COMMENT_MARKER: &str = "<!-- berth-plan -->";

/// A pull-request comment: summary first, drift called out apart from the
/// commit's changes, a table per host, field diffs collapsed. Cut (with a
/// note saying how much) to stay under [`COMMENT_LIMIT`].
pub fn markdown(plan: &Plan) -> String {
    markdown_within(plan, COMMENT_LIMIT - 1_024)
}

pub fn markdown_within(plan: &Plan, budget: usize) -> String {
    let mut head = String::new();
    let _ = writeln!(head, "{COMMENT_MARKER}");
    let title = summary(plan).lines().next().unwrap_or_default().to_string();
    let _ = writeln!(head, "### berth plan: {}\n", title.trim_end_matches('.'));
    match &plan.commit {
        Some(c) => {
            let _ = writeln!(
                head,
                "Planned at commit `{}` for project `{}`.\n",
                short(c),
                plan.project
            );
        }
        None => {
            let _ = writeln!(
                head,
                "Planned from a working tree (no commit) for project `{}`.\n",
                plan.project
            );
        }
    }
    for u in &plan.unreachable {
        let _ = writeln!(
            head,
            "> **Host `{}` could not be reached**: {}\n",
            u.host,
            one_line(&u.error)
        );
    }
    let drift: Vec<(&str, &Change)> = plan
        .hosts
        .iter()
        .flat_map(|h| {
            h.changes
                .iter()
                .filter(|c| c.drift)
                .map(move |c| (h.host.as_str(), c))
        })
        .collect();

    // Sections in order; each is kept whole or not at all.
    let mut sections: Vec<(usize, String)> = Vec::new();
    if !drift.is_empty() {
        let mut s = String::new();
        let _ = writeln!(s, "#### Drift on the hosts\n");
        let _ = writeln!(
            s,
            "Changed outside berth (not by this commit); apply repairs them.\n"
        );
        let _ = writeln!(s, "| host | container | found | apply will |");
        let _ = writeln!(s, "|---|---|---|---|");
        for (host, c) in &drift {
            let _ = writeln!(
                s,
                "| `{host}` | `{}` | {} | {} |",
                label(c),
                cell(&c.reason),
                verb(c.action)
            );
        }
        s.push('\n');
        sections.push((drift.len(), s));
    }
    for host in &plan.hosts {
        let changes: Vec<&Change> = host.changes.iter().filter(|c| !c.drift).collect();
        if changes.is_empty() && host.networks.is_empty() && host.volumes.is_empty() {
            continue;
        }
        let mut s = String::new();
        let _ = writeln!(s, "#### `{}`\n", host.host);
        if !host.networks.is_empty() || !host.volumes.is_empty() {
            let names: Vec<String> = host
                .networks
                .iter()
                .map(|n| format!("network `{}`", n.name))
                .chain(host.volumes.iter().map(|v| format!("volume `{}`", v.name)))
                .collect();
            let _ = writeln!(s, "Creates {}.\n", names.join(", "));
        }
        if !changes.is_empty() {
            let _ = writeln!(s, "| | container | action | image | why |");
            let _ = writeln!(s, "|---|---|---|---|---|");
            for c in &changes {
                let _ = writeln!(
                    s,
                    "| `{}` | `{}` | {} | {} | {} |",
                    marker(c.action),
                    label(c),
                    verb(c.action),
                    image_cell(c),
                    cell(&c.reason)
                );
            }
            let with_fields: Vec<&&Change> =
                changes.iter().filter(|c| !c.fields.is_empty()).collect();
            if !with_fields.is_empty() {
                let _ = writeln!(
                    s,
                    "\n<details><summary>Field changes on <code>{}</code></summary>\n",
                    host.host
                );
                let _ = writeln!(s, "```diff");
                for c in with_fields {
                    let _ = writeln!(s, "@@ {} @@", label(c));
                    for f in &c.fields {
                        if let Some(o) = &f.old {
                            let _ = writeln!(s, "- {} = {}", f.field, o);
                        }
                        if let Some(n) = &f.new {
                            let _ = writeln!(s, "+ {} = {}", f.field, n);
                        }
                    }
                }
                let _ = writeln!(s, "```\n\n</details>");
            }
        }
        s.push('\n');
        sections.push((changes.len(), s));
    }
    if plan.is_empty() {
        head.push_str("No changes. The hosts match the repo.\n");
    }

    let mut out = head;
    let mut hidden = 0;
    let total_sections = sections.len();
    let mut shown_sections = 0;
    for (count, s) in sections {
        // Leave room for the truncation note.
        if hidden == 0 && out.len() + s.len() + 200 <= budget {
            out.push_str(&s);
            shown_sections += 1;
        } else {
            hidden += count;
        }
    }
    if hidden > 0 {
        let _ = writeln!(
            out,
            "**{hidden} more change(s) on {} host section(s) not shown**; see the job log or the plan artifact for the full plan.",
            total_sections - shown_sections
        );
    }
    out
}

fn marker(a: Action) -> &'static str {
    match a {
        Action::Create => "+",
        Action::Replace => "~",
        Action::Remove => "-",
    }
}

fn image_cell(c: &Change) -> String {
    let old = c.current.as_ref().map(|c| c.image.as_str());
    let new = c.desired.as_ref().map(|d| d.spec.image.as_str());
    match (old, new) {
        (Some(o), Some(n)) if o != n => format!("`{o}` → `{n}`"),
        (_, Some(n)) => format!("`{n}`"),
        (Some(o), None) => format!("`{o}`"),
        (None, None) => String::new(),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cell(s: &str) -> String {
    one_line(s).replace('|', "\\|")
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
