//! How `berth import` says what it wrote, and what to do next.

use std::fmt::Write as _;

use crate::ops::ImportReport;

/// The files written, the containers each stack takes over, what was left
/// out or skipped, and the next commands.
pub fn report(r: &ImportReport) -> String {
    let mut out = String::new();
    if let Some(path) = &r.wrote_inventory {
        let _ = writeln!(out, "wrote {} (host `{}`)", path.display(), r.host);
    }
    if r.stacks.is_empty() {
        let of = match &r.project {
            Some(p) => format!(" of Compose project `{p}`"),
            None => " that berth does not manage".to_string(),
        };
        let _ = writeln!(out, "host `{}`: no running container{of} to import", r.host);
    }
    for (path, stack) in &r.stacks {
        let _ = writeln!(
            out,
            "wrote {}: takes over `{}`",
            path.display(),
            stack.containers.join("`, `")
        );
        for left in &stack.left_out {
            let _ = writeln!(out, "  not reproduced: {left}");
        }
    }
    for skipped in &r.skipped {
        let _ = writeln!(out, "skipped {skipped}");
    }
    if !r.insecure_added.is_empty() {
        let _ = writeln!(
            out,
            "added `{}` to `settings.insecure_registries` in berth.yaml: host `{}`'s engine pulls from {} over plain HTTP, so the plan asks {} for digests the same way",
            r.insecure_added.join("`, `"),
            r.host,
            if r.insecure_added.len() == 1 { "it" } else { "them" },
            if r.insecure_added.len() == 1 { "it" } else { "them" },
        );
    }
    if !r.insecure_missing.is_empty() {
        let _ = writeln!(
            out,
            "warning: host `{}`'s engine pulls from `{}` over plain HTTP, and berth.yaml does not list {} in `settings.insecure_registries`\nhelp: add {} there (this import edits only a `settings:` block mapping without that key), or `berth plan` cannot ask for digests",
            r.host,
            r.insecure_missing.join("`, `"),
            if r.insecure_missing.len() == 1 { "it" } else { "them" },
            if r.insecure_missing.len() == 1 { "it" } else { "them" },
        );
    }
    if !r.stacks.is_empty() {
        let _ = writeln!(
            out,
            "\nnext: `berth validate`, then `berth plan` (each container shows as a replace that takes it over, with any field the repo does not reproduce), then `berth apply`"
        );
    }
    out
}
