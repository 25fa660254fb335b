//! The words for a [`Reason`] and a [`Blocker`]: the one place they are
//! written, read by every plan format (the JSON plan carries them as its
//! `reason` strings) and read back when a saved plan is loaded.

use crate::plan::reason::{Blocker, Leftover, Reason};

/// How many changed fields a reason names before "and N more".
const FIELDS_SHOWN: usize = 4;

/// The words around the volumes of [`Reason::MovedLeavingData`].
const MOVED_LEAVING_DATA: &str = "replica moved to another host; its named volume(s) ";
const VOLUMES_STAY: &str = " and their data stay on this host (apply needs --allow-volume-move)";

/// A reason in a few words: `new`, `image, environment.LOG_LEVEL`,
/// `service no longer in the repo`.
pub fn text(reason: &Reason) -> String {
    match reason {
        Reason::New => "new".into(),
        Reason::Missing => "container is missing on the host (removed outside berth)".into(),
        Reason::NotRunning(state) => format!("container is {state} (stopped outside berth)"),
        Reason::SpecChanged { fields } => fields_summary(fields),
        Reason::HandEdited { fields } => {
            format!(
                "{} changed on the host (docker update?)",
                fields_summary(fields)
            )
        }
        Reason::TakeOver { container, fields } if fields.is_empty() => format!(
            "takes over `{container}`, a container berth did not manage (only berth's labels change)"
        ),
        Reason::TakeOver { container, fields } => format!(
            "takes over `{container}`, a container berth did not manage; the repo changes {}",
            fields_summary(fields)
        ),
        Reason::Unlabelled => "container has no berth labels".into(),
        Reason::StackGone => "stack no longer in the repo".into(),
        Reason::ServiceGone => "service no longer in the repo".into(),
        Reason::Moved => "replica moved to another host".into(),
        Reason::MovedLeavingData { volumes } => format!(
            "{MOVED_LEAVING_DATA}{}{VOLUMES_STAY}",
            volumes
                .iter()
                .map(|v| format!("`{v}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Reason::ScaledDown => "replica no longer wanted (scaled down)".into(),
        Reason::Leftover(Leftover::Retired) => {
            "old container left by an interrupted replace".into()
        }
        Reason::Leftover(Leftover::Started) => {
            "new container left by an interrupted start-first replace".into()
        }
        Reason::Leftover(Leftover::Failed) => {
            "record of a failed release the repo no longer asks for".into()
        }
        Reason::Leftover(Leftover::Other) => "leftover".into(),
        Reason::TagMoved { tag, from, to } => format!("tag {tag} moved: {from}… -> {to}…"),
    }
}

/// The reason of a change whose spec already failed its gates on this
/// host, the kept container named: `image; this spec failed before here,
/// see `web-site-1.berth-failed``.
pub fn with_failed_before(reason: &Reason, failed: Option<&str>) -> String {
    let mut text = text(reason);
    if let Some(failed) = failed {
        text.push_str(&format!("; this spec failed before here, see `{failed}`"));
    }
    text
}

/// The reason whose words (from [`with_failed_before`]) are `words`, for a
/// change whose changed fields are `fields`: the exact inverse, so a saved
/// plan reads back as it was written. None for words this berth never writes.
pub fn parse(words: &str, fields: &[String], failed: Option<&str>) -> Option<Reason> {
    let words = match failed {
        Some(failed) => {
            words.strip_suffix(&format!("; this spec failed before here, see `{failed}`"))?
        }
        None => words,
    };
    let candidates = Reason::PLAIN.into_iter().chain([
        Reason::SpecChanged {
            fields: fields.to_vec(),
        },
        Reason::HandEdited {
            fields: fields.to_vec(),
        },
    ]);
    for candidate in candidates {
        if text(&candidate) == words {
            return Some(candidate);
        }
    }
    if let Some((container, _)) = words
        .strip_prefix("takes over `")
        .and_then(|rest| rest.split_once('`'))
    {
        let take_over = Reason::TakeOver {
            container: container.to_string(),
            fields: fields.to_vec(),
        };
        return (text(&take_over) == words).then_some(take_over);
    }
    if let Some(volumes) = words
        .strip_prefix(MOVED_LEAVING_DATA)
        .and_then(|w| w.strip_suffix(VOLUMES_STAY))
    {
        let volumes = volumes
            .split(", ")
            .map(|v| v.strip_prefix('`')?.strip_suffix('`').map(str::to_string))
            .collect::<Option<Vec<String>>>()?;
        return Some(Reason::MovedLeavingData { volumes });
    }
    if let Some(moved) = words.strip_prefix("tag ") {
        let (tag, digests) = moved.split_once(" moved: ")?;
        let (from, to) = digests.split_once("… -> ")?;
        return Some(Reason::TagMoved {
            tag: tag.into(),
            from: from.into(),
            to: to.strip_suffix('…')?.into(),
        });
    }
    let state = words
        .strip_prefix("container is ")?
        .strip_suffix(" (stopped outside berth)")?;
    Some(Reason::NotRunning(state.into()))
}

/// What blocks a change, and what to do about it.
pub fn blocker(blocker: Blocker, name: &str) -> String {
    match blocker {
        Blocker::NameTaken => format!(
            "blocked: a container berth does not manage (or of another project) is named `{name}`; rename or remove it on the host"
        ),
    }
}

/// Changed field paths in words: a secret's digest moving means its value
/// (or its recipients) changed, so it says that; the digests themselves
/// tell a reviewer nothing. The first few, then how many more.
fn fields_summary(fields: &[String]) -> String {
    let mut names: Vec<String> = fields
        .iter()
        .map(|f| {
            match f
                .strip_prefix("secrets.")
                .and_then(|rest| rest.strip_suffix(".digest"))
            {
                Some(name) => format!("secret {name} changed"),
                None => f.clone(),
            }
        })
        .collect();
    names.dedup();
    if names.len() > FIELDS_SHOWN {
        format!(
            "{}, and {} more",
            names[..FIELDS_SHOWN].join(", "),
            names.len() - FIELDS_SHOWN
        )
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::ContainerState;

    /// Every reason reads back from its words, with and without the
    /// failed-before note: a saved plan loads as it was saved.
    #[test]
    fn every_reason_reads_back_from_its_words() {
        let fields: Vec<String> = ["image", "environment.LOG_LEVEL"]
            .map(String::from)
            .to_vec();
        let all = Reason::PLAIN.into_iter().chain([
            Reason::NotRunning(ContainerState::Exited),
            Reason::NotRunning(ContainerState::Other("frozen".into())),
            Reason::SpecChanged {
                fields: fields.clone(),
            },
            Reason::HandEdited {
                fields: fields.clone(),
            },
            Reason::MovedLeavingData {
                volumes: vec!["jobs_ledger-data".into()],
            },
            Reason::MovedLeavingData {
                volumes: vec!["a_x".into(), "a_y.z".into()],
            },
            Reason::TagMoved {
                tag: "2.1".into(),
                from: "sha256:aaaaaaaaaaaa".into(),
                to: "sha256:bbbbbbbbbbbb".into(),
            },
        ]);
        for reason in all {
            for failed in [None, Some("web-site-1.berth-failed")] {
                let words = with_failed_before(&reason, failed);
                assert_eq!(
                    parse(&words, &fields, failed),
                    Some(reason.clone()),
                    "{words}"
                );
            }
        }
        assert_eq!(parse("because I said so", &fields, None), None);
    }

    #[test]
    fn reasons_read_as_before() {
        assert_eq!(
            text(&Reason::NotRunning(ContainerState::Exited)),
            "container is exited (stopped outside berth)"
        );
        let many: Vec<String> = [
            "image", "command", "user", "ports[0]", "labels.a", "labels.b",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            text(&Reason::SpecChanged { fields: many }),
            "image, command, user, ports[0], and 2 more"
        );
        assert_eq!(
            text(&Reason::HandEdited {
                fields: vec!["resources.memory".into()]
            }),
            "resources.memory changed on the host (docker update?)"
        );
        assert_eq!(
            text(&Reason::SpecChanged {
                fields: vec!["secrets.db_password.digest".into()]
            }),
            "secret db_password changed"
        );
    }
}
