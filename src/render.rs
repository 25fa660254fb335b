//! render: turns a [`Plan`] into what people and machines read.
//!
//! Input: a `Plan`. Output: text. Invariant: every format reads the same plan
//! value; nothing here decides what changes (that is `plan`'s job).

use std::fmt::Write as _;

use crate::plan::{Action, Blocked, Change, Plan, Reason};

mod group;
pub mod reason;

use group::Grouped;

/// The variables that came from the environment of the machine that
/// planned, one a line (`TAG=4f2c1e from the environment (stacks: web)`):
/// the same commit plans something else where they differ.
fn environment_lines(plan: &Plan, quote: &str) -> String {
    let mut out = String::from("Variables from the environment:\n");
    for v in &plan.environment {
        let _ = writeln!(
            out,
            "  {quote}{}={}{quote} from the environment (stacks: {})",
            v.name,
            v.value,
            v.stacks.join(", ")
        );
    }
    out
}

/// `terraform plan`-like text: first what is the same on many hosts, once
/// (`~ web/site: 60 replicas on edge-01..edge-60 replace (image)`), then
/// host by host what is not, sorted by host, stack, service, replica.
pub fn human(plan: &Plan) -> String {
    let mut out = String::new();
    if let Some(commit) = &plan.commit {
        let _ = writeln!(out, "Planned at commit {}.\n", short(commit));
    }
    if !plan.environment.is_empty() {
        let _ = writeln!(out, "{}", environment_lines(plan, ""));
    }
    let grouped = Grouped::of(plan);
    if !grouped.is_empty() {
        let _ = writeln!(out, "Across hosts");
        for (image, hosts) in &grouped.pulls {
            let _ = writeln!(out, "  > pull {image} on {}", group::hosts_text(hosts));
        }
        for (name, hosts) in &grouped.networks {
            let _ = writeln!(out, "  + network {name} on {}", group::hosts_text(hosts));
        }
        for (name, hosts) in &grouped.volumes {
            let _ = writeln!(out, "  + volume {name} on {}", group::hosts_text(hosts));
        }
        for g in &grouped.changes {
            let c = g.change;
            let _ = writeln!(
                out,
                "  {} {}: {} {} ({})",
                marker(c.action),
                g.label(),
                g.spread(),
                verb(c.action),
                c.reason_text()
            );
            field_lines(&mut out, c);
            digest_line(&mut out, c);
            config_lines(&mut out, c);
        }
        out.push('\n');
    }
    for host in &plan.hosts {
        let pulls: Vec<&String> = host.pulls.iter().filter(|i| !grouped.has_pull(i)).collect();
        let networks: Vec<_> = host
            .networks
            .iter()
            .filter(|n| !grouped.has_network(&n.name))
            .collect();
        let volumes: Vec<_> = host
            .volumes
            .iter()
            .filter(|v| !grouped.has_volume(&v.name))
            .collect();
        let changes: Vec<&Change> = host.changes.iter().filter(|c| !grouped.has(c)).collect();
        if changes.is_empty()
            && host.blocked.is_empty()
            && host.available.is_empty()
            && networks.is_empty()
            && volumes.is_empty()
            && pulls.is_empty()
        {
            continue;
        }
        let _ = writeln!(out, "{}", host.host);
        for image in pulls {
            let _ = writeln!(out, "  > pull {image}");
        }
        for n in networks {
            let _ = writeln!(out, "  + network {}", n.name);
        }
        for v in volumes {
            let _ = writeln!(out, "  + volume {}", v.name);
        }
        let width = changes.iter().map(|c| label(c).len()).max().unwrap_or(0);
        for c in changes {
            let drift = if c.drift { " [drift]" } else { "" };
            let _ = writeln!(
                out,
                "  {} {:<width$} {}{drift} ({})",
                marker(c.action),
                label(c),
                verb(c.action),
                c.reason_text()
            );
            field_lines(&mut out, c);
            digest_line(&mut out, c);
            config_lines(&mut out, c);
        }
        for m in &host.available {
            let _ = writeln!(out, "  = {} {}", m.slot, available_text(m));
        }
        for b in &host.blocked {
            let _ = writeln!(out, "  ! {} {}", slot_label(b), blocker_text(b));
        }
        out.push('\n');
    }
    swarm_lines(&mut out, plan);
    for u in &plan.unreachable {
        let _ = writeln!(out, "{}\n  ! unreachable: {}\n", u.host, u.error);
    }
    out.push_str(&summary(plan));
    out.push('\n');
    out
}

/// A change's field diff, one `~ field = old -> new` line each.
fn field_lines(out: &mut String, c: &Change) {
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

/// A change's config diffs, indented under it; a binary file or a
/// directory by its digests.
fn config_lines(out: &mut String, c: &Change) {
    for d in &c.configs {
        match &d.diff {
            Some(diff) => {
                for line in diff.lines() {
                    let _ = writeln!(out, "        {line}");
                }
            }
            None => {
                let _ = writeln!(
                    out,
                    "        config {}: {} -> {}",
                    d.config,
                    d.old_digest.as_deref().unwrap_or("(none)"),
                    d.new_digest
                );
            }
        }
    }
}

/// The digest a create or replace is pinned to, under its change:
/// `image = "reg/app:2.1" (sha256:4f2c8a1b9e0d…)`.
fn digest_line(out: &mut String, c: &Change) {
    if let Some(d) = c.desired.as_ref().filter(|_| c.action != Action::Remove) {
        if let Some(digest) = &d.digest {
            let _ = writeln!(
                out,
                "      image = {:?} ({}…)",
                d.spec.image,
                crate::plan::digests::short(digest)
            );
        }
    }
}

/// Config diffs of a Markdown plan, collapsed: one `<details>` for all.
fn markdown_config_diffs(plan: &Plan) -> String {
    let mut s = String::new();
    let mut seen = std::collections::BTreeSet::new();
    for host in &plan.hosts {
        for c in &host.changes {
            for d in &c.configs {
                if !seen.insert((
                    c.slot.stack.clone(),
                    d.config.clone(),
                    d.old_digest.clone(),
                    d.new_digest.clone(),
                )) {
                    continue;
                }
                let _ = writeln!(
                    s,
                    "<details><summary>config <code>{}</code> of <code>{}/{}</code></summary>\n",
                    d.config, c.slot.stack, c.slot.service
                );
                match &d.diff {
                    Some(diff) => {
                        let _ =
                            writeln!(s, "```diff\n{}\n```", diff.trim_end().replace("```", "ʼʼʼ"));
                    }
                    None => {
                        let _ = writeln!(
                            s,
                            "`{}` → `{}`",
                            d.old_digest.as_deref().unwrap_or("(none)"),
                            d.new_digest
                        );
                    }
                }
                let _ = writeln!(s, "\n</details>\n");
            }
        }
    }
    s
}

/// A replace because the image's tag moved in the registry.
fn tag_moved(c: &Change) -> bool {
    matches!(c.reason, Reason::TagMoved { .. })
}

/// A moved tag the plan does not follow, in words.
fn available_text(m: &crate::plan::MovedTag) -> String {
    format!(
        "{} moved: {}… -> {}…, available, not applied (`pull_policy` keeps what runs)",
        m.image,
        crate::plan::digests::short(&m.from),
        crate::plan::digests::short(&m.to)
    )
}

/// Each Swarm target with changes: its networks, then its services
/// (`~ web_site  update (image)` and the field diff), as hosts are shown.
fn swarm_lines(out: &mut String, plan: &Plan) {
    use crate::swarm::ServiceAction;
    for swarm in plan.swarms.iter().filter(|s| !s.is_empty()) {
        let _ = writeln!(out, "{} (Swarm)", swarm.target);
        for n in &swarm.networks {
            let _ = writeln!(out, "  + network {} (overlay)", n.name);
        }
        let width = swarm
            .changes
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(0);
        for c in &swarm.changes {
            let (mark, verb) = match c.action {
                ServiceAction::Create => ("+", "create"),
                ServiceAction::Update => ("~", "update"),
                ServiceAction::Remove => ("-", "remove"),
            };
            let drift = if c.drift { " [drift]" } else { "" };
            let _ = writeln!(
                out,
                "  {mark} {:<width$} {verb}{drift} ({})",
                c.name,
                c.reason()
            );
            for f in &c.fields {
                let _ = writeln!(
                    out,
                    "      ~ {} = {} -> {}",
                    f.field,
                    f.old.as_deref().unwrap_or("(none)"),
                    f.new.as_deref().unwrap_or("(none)")
                );
            }
        }
        out.push('\n');
    }
}

/// `Plan: 1 to create, 1 to replace, 1 to remove.` or `No changes.`
/// Swarm services count as creates and removes, and their updates as
/// `N to update`.
pub fn summary(plan: &Plan) -> String {
    use crate::swarm::ServiceAction;
    let mut s = if plan.is_empty() {
        "No changes. The hosts match the repo.".to_string()
    } else {
        let updates = plan.swarm_count(ServiceAction::Update);
        let updates = if updates > 0 {
            format!(" {updates} to update,")
        } else {
            String::new()
        };
        let mut s = format!(
            "Plan: {} to create, {} to replace,{updates} {} to remove.",
            plan.count(Action::Create) + plan.swarm_count(ServiceAction::Create),
            plan.count(Action::Replace),
            plan.count(Action::Remove) + plan.swarm_count(ServiceAction::Remove)
        );
        let reloads = plan.count(Action::Reload);
        if reloads > 0 {
            s.pop();
            let _ = write!(s, ", {reloads} to reload in place.");
        }
        let drift = plan.drift_count();
        if drift > 0 {
            let _ = write!(s, " ({drift} of them repair drift on the hosts.)");
        }
        s
    };
    let available = plan.hosts.iter().map(|h| h.available.len()).sum::<usize>();
    if available > 0 {
        let _ = write!(
            s,
            "\n{available} container(s) run a tag that moved: available, not applied (their `pull_policy` keeps what runs)."
        );
    }
    let blocked = plan.blocked().count();
    if blocked > 0 {
        let _ = write!(
            s,
            "\n{blocked} container(s) blocked: apply refuses this plan until they are fixed on the host."
        );
    }
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

/// A pull-request comment: summary first, then what is the same on many
/// hosts once, drift called out apart from the commit's changes, a table per
/// host for the rest, field diffs collapsed. Cut (with a note saying how
/// much) to stay under [`COMMENT_LIMIT`].
pub fn markdown(plan: &Plan) -> String {
    markdown_within(plan, COMMENT_LIMIT - 1_024)
}

pub fn markdown_within(plan: &Plan, budget: usize) -> String {
    let mut head = String::new();
    let _ = writeln!(head, "{COMMENT_MARKER}");
    let title = summary(plan).lines().next().unwrap_or_default().to_string();
    let title = title.trim_start_matches("Plan: ").trim_end_matches('.');
    let _ = writeln!(head, "### berth plan: {title}\n");
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
    if !plan.environment.is_empty() {
        let _ = writeln!(head, "{}", environment_lines(plan, "`"));
    }
    for u in &plan.unreachable {
        let _ = writeln!(
            head,
            "> **Host `{}` could not be reached**: {}\n",
            u.host,
            one_line(&u.error)
        );
    }
    let mut swarms = String::new();
    swarm_lines(&mut swarms, plan);
    if !swarms.is_empty() {
        let _ = writeln!(head, "Swarm targets:\n\n```\n{}```\n", swarms.trim_end());
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

    let blocked: Vec<(&str, &Blocked)> = plan.blocked().collect();
    if !blocked.is_empty() {
        let _ = writeln!(head, "#### Blocked\n");
        let _ = writeln!(
            head,
            "Apply refuses this plan until these are fixed on the host.\n"
        );
        let _ = writeln!(head, "| host | container | why |");
        let _ = writeln!(head, "|---|---|---|");
        for (host, b) in &blocked {
            let _ = writeln!(
                head,
                "| `{host}` | `{}` | {} |",
                slot_label(b),
                cell(&blocker_text(b))
            );
        }
        head.push('\n');
    }

    // Sections in order; each is kept whole or not at all.
    let mut sections: Vec<(usize, String)> = Vec::new();
    let grouped = Grouped::of(plan);
    if !grouped.is_empty() {
        sections.push(grouped_section(&grouped));
    }
    let config_diffs = markdown_config_diffs(plan);
    if !config_diffs.is_empty() {
        sections.push((0, format!("#### Config diffs\n\n{config_diffs}")));
    }
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
                cell(&c.reason_text()),
                verb(c.action)
            );
        }
        s.push('\n');
        sections.push((drift.len(), s));
    }
    // Tags that moved in the registry, apart from the commit's changes
    // (like drift): those apply follows, and those it leaves as they run.
    let moved: Vec<(&str, &Change)> = plan
        .hosts
        .iter()
        .flat_map(|h| {
            h.changes
                .iter()
                .filter(|c| tag_moved(c) && !grouped.has(c))
                .map(move |c| (h.host.as_str(), c))
        })
        .collect();
    let available: Vec<(&str, &crate::plan::MovedTag)> = plan
        .hosts
        .iter()
        .flat_map(|h| h.available.iter().map(move |m| (h.host.as_str(), m)))
        .collect();
    if !moved.is_empty() || !available.is_empty() {
        let mut s = String::new();
        let _ = writeln!(s, "#### Tags that moved in the registry\n");
        let _ = writeln!(
            s,
            "New bytes under the same tag (not this commit's change); each service's `pull_policy` decides.\n"
        );
        let _ = writeln!(
            s,
            "| host | container | image | runs | tag names now | apply will |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|");
        for (host, c) in &moved {
            if let Reason::TagMoved { from, to, .. } = &c.reason {
                let _ = writeln!(
                    s,
                    "| `{host}` | `{}` | `{}` | `{from}…` | `{to}…` | replace |",
                    label(c),
                    c.desired
                        .as_ref()
                        .map(|d| d.spec.image.as_str())
                        .unwrap_or_default()
                );
            }
        }
        for (host, m) in &available {
            let _ = writeln!(
                s,
                "| `{host}` | `{}` | `{}` | `{}…` | `{}…` | nothing (`pull_policy` keeps what runs) |",
                m.slot,
                m.image,
                crate::plan::digests::short(&m.from),
                crate::plan::digests::short(&m.to)
            );
        }
        s.push('\n');
        sections.push((moved.len() + available.len(), s));
    }
    for host in &plan.hosts {
        let changes: Vec<&Change> = host
            .changes
            .iter()
            .filter(|c| !c.drift && !tag_moved(c) && !grouped.has(c))
            .collect();
        let names: Vec<String> = host
            .networks
            .iter()
            .filter(|n| !grouped.has_network(&n.name))
            .map(|n| format!("network `{}`", n.name))
            .chain(
                host.volumes
                    .iter()
                    .filter(|v| !grouped.has_volume(&v.name))
                    .map(|v| format!("volume `{}`", v.name)),
            )
            .collect();
        if changes.is_empty() && names.is_empty() {
            continue;
        }
        let mut s = String::new();
        let _ = writeln!(s, "#### `{}`\n", host.host);
        if !names.is_empty() {
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
                    cell(&c.reason_text())
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
                    diff_lines(&mut s, c);
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

/// The changes the same on many hosts, once each: a table, networks and
/// volumes, then the field diffs collapsed. Counted as all their members.
fn grouped_section(grouped: &Grouped) -> (usize, String) {
    let mut s = String::new();
    let _ = writeln!(s, "#### Across hosts\n");
    let creates: Vec<String> = grouped
        .networks
        .iter()
        .map(|(n, hosts)| format!("network `{n}` on {}", group::hosts_text(hosts)))
        .chain(
            grouped
                .volumes
                .iter()
                .map(|(v, hosts)| format!("volume `{v}` on {}", group::hosts_text(hosts))),
        )
        .collect();
    if !creates.is_empty() {
        let _ = writeln!(s, "Creates {}.\n", creates.join("; "));
    }
    if !grouped.changes.is_empty() {
        let _ = writeln!(s, "| | service | action | where | image | why |");
        let _ = writeln!(s, "|---|---|---|---|---|---|");
        for g in &grouped.changes {
            let c = g.change;
            let _ = writeln!(
                s,
                "| `{}` | `{}` | {} | {} | {} | {} |",
                marker(c.action),
                g.label(),
                verb(c.action),
                cell(&g.spread()),
                image_cell(c),
                cell(&c.reason_text())
            );
        }
        let with_fields: Vec<_> = grouped
            .changes
            .iter()
            .filter(|g| !g.change.fields.is_empty())
            .collect();
        if !with_fields.is_empty() {
            let _ = writeln!(
                s,
                "\n<details><summary>Field changes across hosts</summary>\n"
            );
            let _ = writeln!(s, "```diff");
            for g in with_fields {
                let _ = writeln!(s, "@@ {} ({} replicas) @@", g.label(), g.hosts.len());
                diff_lines(&mut s, g.change);
            }
            let _ = writeln!(s, "```\n\n</details>");
        }
    }
    s.push('\n');
    (grouped.changes.iter().map(|g| g.hosts.len()).sum(), s)
}

/// A change's field diff as `diff` lines.
fn diff_lines(s: &mut String, c: &Change) {
    for f in &c.fields {
        if let Some(o) = &f.old {
            let _ = writeln!(s, "- {} = {}", f.field, o);
        }
        if let Some(n) = &f.new {
            let _ = writeln!(s, "+ {} = {}", f.field, n);
        }
    }
}

fn marker(a: Action) -> &'static str {
    match a {
        Action::Create => "+",
        Action::Replace => "~",
        Action::Remove => "-",
        Action::Reload => "~",
    }
}

fn image_cell(c: &Change) -> String {
    let old = c.current.as_ref().map(|c| c.image.as_str());
    let new = c.desired.as_ref().map(|d| d.spec.image.as_str());
    let digest = c
        .desired
        .as_ref()
        .and_then(|d| d.digest.as_deref())
        .map(|d| format!(" (`{}…`)", crate::plan::digests::short(d)))
        .unwrap_or_default();
    match (old, new) {
        (Some(o), Some(n)) if o != n => format!("`{o}` → `{n}`{digest}"),
        (_, Some(n)) => format!("`{n}`{digest}"),
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

fn slot_label(b: &Blocked) -> String {
    b.slot.to_string()
}

fn blocker_text(b: &Blocked) -> String {
    reason::blocker(b.blocker, &b.name)
}

/// One line per blocked container, `host `edge-1`: blocked: …`, for the
/// error apply gives when it refuses a blocked plan.
pub fn blocked_lines(plan: &Plan) -> Vec<String> {
    plan.blocked()
        .map(|(host, b)| format!("host `{host}`: {} {}", slot_label(b), blocker_text(b)))
        .collect()
}

fn verb(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Replace => "replace",
        Action::Remove => "remove",
        Action::Reload => "reload",
    }
}

pub fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::labels;
    use crate::observed::{ContainerState, HostObservation, ObservedContainer};
    use crate::placement::{
        canonical_json, spec_hash, DesiredContainer, DesiredHost, DesiredState, Slot,
    };
    use crate::spec::ContainerSpec;

    fn spec(image: &str, level: &str) -> ContainerSpec {
        let mut s = ContainerSpec {
            image: image.into(),
            restart: crate::spec::RestartPolicy::UnlessStopped,
            ..Default::default()
        };
        s.environment.insert("LOG_LEVEL".into(), level.into());
        s
    }

    /// What a host has of one service, for [`fleet_plan`].
    enum Have {
        /// Running at v1 (`reg.example/api:1.4.2`, info logging).
        Old,
        /// Running at another v1 image.
        OldImage(String),
        /// The wanted spec, stopped by hand (drift).
        Stopped,
        /// Nothing: the service is new there.
        Nothing,
    }

    /// `hosts` hosts (`edge-01`…), each wanting `services` services at v2
    /// with debug logging; `have(host, service)` (both from 1) says what
    /// each host runs now.
    fn fleet_plan(hosts: usize, services: usize, have: impl Fn(usize, usize) -> Have) -> Plan {
        let mut desired = DesiredState {
            project: "shop".into(),
            hosts: BTreeMap::new(),
        };
        let mut observed = BTreeMap::new();
        for h in 1..=hosts {
            let host = format!("edge-{h:02}");
            let mut want = DesiredHost::default();
            let mut obs = HostObservation {
                images: BTreeSet::from(["reg.example/api:1.4.2".to_string()]),
                ..Default::default()
            };
            for s in 1..=services {
                let slot = Slot {
                    stack: "shop".into(),
                    service: format!("svc{s}"),
                    replica: 1,
                };
                let new = spec("reg.example/api:1.5.0", "debug");
                want.containers.push(DesiredContainer {
                    name: slot.container_name(),
                    spec_hash: spec_hash(&new),
                    spec: new,
                    slot: slot.clone(),
                    pull_policy: Default::default(),
                });
                let (old, state) = match have(h, s) {
                    Have::Nothing => continue,
                    Have::Stopped => (
                        spec("reg.example/api:1.5.0", "debug"),
                        ContainerState::Exited,
                    ),
                    Have::Old => (
                        spec("reg.example/api:1.4.2", "info"),
                        ContainerState::Running,
                    ),
                    Have::OldImage(image) => (spec(&image, "info"), ContainerState::Running),
                };
                obs.containers.push(ObservedContainer {
                    id: format!("{h:04}{s:04}"),
                    name: slot.container_name(),
                    labels: BTreeMap::from([
                        (labels::PROJECT.to_string(), "shop".to_string()),
                        (labels::STACK.to_string(), slot.stack.clone()),
                        (labels::SERVICE.to_string(), slot.service.clone()),
                        (labels::REPLICA.to_string(), "1".to_string()),
                        (labels::SPEC_HASH.to_string(), spec_hash(&old)),
                        (labels::SPEC.to_string(), canonical_json(&old)),
                    ]),
                    image: old.image.clone(),
                    state,
                    health: None,
                    created: 0,
                    live: None,
                });
            }
            desired.hosts.insert(host.clone(), want);
            observed.insert(host, obs);
        }
        crate::plan::diff(
            &desired,
            &observed,
            Vec::new(),
            Some("3f2a9c1d0b7e55aa".into()),
        )
    }

    /// `hosts` hosts, each running `services` services at v1; the repo wants
    /// v2 with debug logging. On the first host, the first service's
    /// container was stopped by hand (drift); the last service is new there.
    fn sample_plan(hosts: usize, services: usize) -> Plan {
        fleet_plan(hosts, services, |h, s| {
            if h == 1 && s == services && services > 1 {
                Have::Nothing
            } else if h == 1 && s == 1 {
                Have::Stopped
            } else {
                Have::Old
            }
        })
    }

    #[test]
    fn markdown_plan_of_two_services_on_three_hosts() {
        let plan = sample_plan(3, 2);
        assert_eq!(plan.count(Action::Create), 1);
        assert_eq!(plan.count(Action::Replace), 5);
        insta::assert_snapshot!(markdown(&plan));
    }

    #[test]
    fn human_plan_of_two_services_on_three_hosts() {
        insta::assert_snapshot!(human(&sample_plan(3, 2)));
    }

    #[test]
    fn plans_name_the_variables_that_came_from_the_environment() {
        let mut plan = sample_plan(1, 1);
        plan.environment = vec![
            crate::plan::EnvironmentValue {
                name: "DB_PASSWORD".into(),
                value: "<redacted>".into(),
                stacks: vec!["web".into()],
            },
            crate::plan::EnvironmentValue {
                name: "TAG".into(),
                value: "4f2c1e".into(),
                stacks: vec!["web".into(), "jobs".into()],
            },
        ];
        let text = human(&plan);
        assert!(
            text.contains("  TAG=4f2c1e from the environment (stacks: web, jobs)\n"),
            "{text}"
        );
        assert!(
            text.contains("  DB_PASSWORD=<redacted> from the environment"),
            "{text}"
        );
        let md = markdown(&plan);
        assert!(md.contains("`TAG=4f2c1e` from the environment"), "{md}");
        let top = |p: &Plan| -> serde_json::Value { serde_json::from_str(&json(p)).unwrap() };
        assert_eq!(top(&plan)["environment"][1]["name"], "TAG");
        // Without any, the JSON keeps its shape.
        assert!(top(&sample_plan(1, 1)).get("environment").is_none());
    }

    /// 60 hosts x 5 services, each host from another old image: nothing
    /// groups, so the comment is cut, and says so.
    #[test]
    fn markdown_of_sixty_hosts_stays_under_the_comment_limit() {
        let plan = fleet_plan(60, 5, |h, s| {
            if h == 1 && s == 5 {
                Have::Nothing
            } else {
                Have::OldImage(format!("reg.example/api:1.4.{h}"))
            }
        });
        assert_eq!(
            plan.count(Action::Replace) + plan.count(Action::Create),
            300
        );
        let md = markdown(&plan);
        assert!(md.len() < COMMENT_LIMIT, "{} characters", md.len());
        assert!(
            md.contains("### berth plan: 1 to create, 299 to replace, 0 to remove"),
            "{}",
            &md[..300]
        );
        assert!(
            md.contains("more change(s) on"),
            "a cut comment must say so"
        );
        assert!(md.contains("see the job log or the plan artifact"));
        // Every host section shown is whole: details blocks are closed.
        assert_eq!(
            md.matches("<details>").count(),
            md.matches("</details>").count()
        );
    }

    /// The same bump on 60 hosts x 5 services reads as 5 grouped changes,
    /// in both the comment and the terminal, with nothing host by host.
    #[test]
    fn sixty_hosts_all_bumped_read_as_five_grouped_changes() {
        let plan = fleet_plan(60, 5, |_, _| Have::Old);
        assert_eq!(plan.count(Action::Replace), 300);
        let md = markdown(&plan);
        assert!(!md.contains("not shown"), "{md}");
        assert!(!md.contains("#### `edge-"), "{md}");
        assert_eq!(
            md.matches("60 replicas on edge-01..edge-60").count(),
            5,
            "{md}"
        );
        insta::assert_snapshot!("markdown_sixty_hosts_all_bumped", md);
        let text = human(&plan);
        assert!(!text.contains("\nedge-"), "{text}");
        insta::assert_snapshot!("human_sixty_hosts_all_bumped", text);
    }

    /// Two of the 60 hosts drifted: the groups leave them out, and both
    /// formats still name them with what they found there.
    #[test]
    fn hosts_that_differ_are_still_named() {
        let plan = fleet_plan(60, 5, |h, s| {
            if (h == 7 || h == 42) && s == 1 {
                Have::Stopped
            } else {
                Have::Old
            }
        });
        let md = markdown(&plan);
        assert!(
            md.contains("58 replicas on edge-01..edge-06, edge-08..edge-41, edge-43..edge-60"),
            "{md}"
        );
        for host in ["edge-07", "edge-42"] {
            assert!(
                md.contains(&format!(
                    "| `{host}` | `shop/svc1.1` | container is exited (stopped outside berth) | replace |"
                )),
                "{md}"
            );
        }
        insta::assert_snapshot!("markdown_sixty_hosts_two_drifted", md);
        let text = human(&plan);
        insta::assert_snapshot!("human_sixty_hosts_two_drifted", text);
        for host in ["edge-07", "edge-42"] {
            assert!(
                text.contains(&format!(
                    "\n{host}\n  ~ shop/svc1.1 replace [drift] (container is exited (stopped outside berth))\n"
                )),
                "{text}"
            );
        }
    }

    /// The comment renders as GitHub would: a table per host plus the drift
    /// table, diffs as code blocks inside <details>.
    #[test]
    fn markdown_plan_renders_to_tables() {
        use pulldown_cmark::{html, Options, Parser};
        let md = markdown(&sample_plan(3, 2));
        let mut out = String::new();
        html::push_html(&mut out, Parser::new_ext(&md, Options::ENABLE_TABLES));
        assert_eq!(out.matches("<table>").count(), 4, "{out}");
        assert_eq!(out.matches("<details>").count(), 2, "{out}");
        assert!(out.contains("<code class=\"language-diff\">"), "{out}");
        assert!(out.contains("<td><code>~</code></td>"), "{out}");
    }

    #[test]
    fn small_markdown_plans_are_not_cut() {
        let md = markdown(&sample_plan(3, 2));
        assert!(!md.contains("not shown"));
        for h in ["edge-01", "edge-02", "edge-03"] {
            assert!(md.contains(&format!("#### `{h}`")), "{h} missing");
        }
    }

    /// A saved plan reads back as it was written: every reason from its words.
    #[test]
    fn json_plan_reads_back_as_it_was_written() {
        let plan = sample_plan(3, 2);
        let text = json(&plan);
        let back: Plan = serde_json::from_str(&text).expect("plan reads back");
        assert_eq!(json(&back), text);
        assert!(
            text.contains("\"reason\": \"image, environment.LOG_LEVEL\""),
            "{text}"
        );
        assert!(
            text.contains("\"reason\": \"container is exited (stopped outside berth)\""),
            "{text}"
        );
        let mut edited: serde_json::Value = serde_json::from_str(&text).unwrap();
        edited["hosts"][0]["changes"][0]["reason"] = "because".into();
        assert!(serde_json::from_value::<Plan>(edited).is_err());
    }

    /// A name taken by a container berth does not manage is blocked, named
    /// in every format, and counted as nothing to create.
    #[test]
    fn a_blocked_container_is_named_and_not_counted() {
        let mut plan = sample_plan(1, 1);
        plan.hosts[0].changes.clear();
        plan.hosts[0].pulls.clear();
        plan.hosts[0].blocked.push(crate::plan::Blocked {
            slot: Slot {
                stack: "web".into(),
                service: "site".into(),
                replica: 1,
            },
            name: "web-site-1".into(),
            blocker: crate::plan::Blocker::NameTaken,
        });
        let text = human(&plan);
        assert!(
            text.contains("  ! web/site.1 blocked: a container berth does not manage (or of another project) is named `web-site-1`; rename or remove it on the host\n"),
            "{text}"
        );
        assert!(
            text.contains("Plan: 0 to create, 0 to replace, 0 to remove.\n1 container(s) blocked"),
            "{text}"
        );
        let md = markdown(&plan);
        assert!(
            md.contains("| `edge-01` | `web/site.1` | blocked: a container"),
            "{md}"
        );
        assert_eq!(
            blocked_lines(&plan),
            ["host `edge-01`: web/site.1 blocked: a container berth does not manage (or of another project) is named `web-site-1`; rename or remove it on the host"]
        );
        assert!(json(&plan).contains("\"blocker\": \"name_taken\""));
    }

    #[test]
    fn json_plan_validates_against_the_checked_in_schema() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/plan.schema.json");
        let schema: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("schema file"))
                .expect("schema JSON");
        let validator = jsonschema::validator_for(&schema).expect("valid schema");
        let plan: serde_json::Value =
            serde_json::from_str(&json(&sample_plan(3, 2))).expect("plan JSON");
        let errors: Vec<String> = validator
            .iter_errors(&plan)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
        // And a broken plan does not.
        let mut broken = plan.clone();
        broken["hosts"][0]["changes"][0]["action"] = "explode".into();
        assert!(!validator.is_valid(&broken));
    }
}
