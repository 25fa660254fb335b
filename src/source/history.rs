//! history: whether the checked-out commit moves forward from what the
//! hosts run. Apply refuses to go backwards unless told to: an old commit,
//! or one from a rewritten history, would silently undo what was deployed
//! since. Blocking (git2).

use std::collections::{BTreeMap, BTreeSet};

use super::checkout::Checkout;
use super::signature;
use crate::render::short;

/// A host that runs a commit the checkout does not descend from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewound {
    pub host: String,
    pub commit: String,
    /// Why it counts as going backwards.
    pub why: String,
}

/// `applied`: commit -> the hosts that run it (their container labels, or
/// the commit their last apply recorded). Returns every host whose commit
/// the checkout does not descend from; empty when the source is not a git
/// repo.
pub fn rewound(checkout: &Checkout, applied: &BTreeMap<String, BTreeSet<String>>) -> Vec<Rewound> {
    let Some(head) = &checkout.commit else {
        return Vec::new();
    };
    let applied: Vec<_> = applied.iter().filter(|(c, _)| **c != head.id).collect();
    if applied.is_empty() {
        return Vec::new();
    }
    let (repo, head_oid) = match git2::Repository::discover(&checkout.root)
        .and_then(|r| git2::Oid::from_str(&head.id).map(|oid| (r, oid)))
    {
        Ok(found) => found,
        // A commit without its repo: history cannot be checked, so every
        // other commit counts as a possible step back.
        Err(e) => {
            let why = format!("the repo's history cannot be read ({})", e.message());
            return applied
                .into_iter()
                .flat_map(|(commit, on)| {
                    let why = why.clone();
                    on.iter().map(move |host| Rewound {
                        host: host.clone(),
                        commit: commit.clone(),
                        why: why.clone(),
                    })
                })
                .collect();
        }
    };
    let mut out = Vec::new();
    for (commit, on) in applied {
        let known = git2::Oid::from_str(commit)
            .ok()
            .filter(|c| repo.find_commit(*c).is_ok());
        let why = match known {
            None => format!("{} is not in this repo's history", short(commit)),
            Some(c) => match signature::is_descendant_or_equal(&repo, head_oid, c) {
                Ok(true) => continue,
                Ok(false) => format!(
                    "{} is not a descendant of {}",
                    short(&head.id),
                    short(commit)
                ),
                Err(e) => format!("cannot compare with {}: {e:#}", short(commit)),
            },
        };
        for host in on {
            out.push(Rewound {
                host: host.clone(),
                commit: commit.clone(),
                why: why.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(repo: &git2::Repository, message: &str) -> String {
        let sig = git2::Signature::now("t", "t@berth.invalid").expect("signature");
        let tree_id = repo.index().and_then(|mut i| i.write_tree()).expect("tree");
        let tree = repo.find_tree(tree_id).expect("tree");
        let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
            .expect("commit")
            .to_string()
    }

    fn on_h(commit: &str) -> BTreeMap<String, BTreeSet<String>> {
        BTreeMap::from([(commit.to_string(), BTreeSet::from(["h".to_string()]))])
    }

    #[test]
    fn only_older_or_foreign_commits_count_as_going_backwards() {
        let dir = tempfile::tempdir().expect("dir");
        let repo = git2::Repository::init(dir.path()).expect("init");
        let old = commit(&repo, "one");
        let new = commit(&repo, "two");
        let checkout_at = |id: &str| Checkout {
            root: dir.path().to_path_buf(),
            commit: Some(super::super::checkout::CommitInfo {
                id: id.into(),
                summary: String::new(),
                author: String::new(),
                time: 0,
            }),
            origin: "test".into(),
            dirty: false,
        };
        // Forward, or the same commit: fine.
        assert!(rewound(&checkout_at(&new), &on_h(&old)).is_empty());
        assert!(rewound(&checkout_at(&new), &on_h(&new)).is_empty());
        // Back to the older commit while the host runs the newer one.
        let back = rewound(&checkout_at(&old), &on_h(&new));
        assert_eq!(back.len(), 1);
        assert!(back[0].why.contains("is not a descendant of"), "{back:?}");
        // A commit this repo has never seen (a rewritten history).
        let stranger = "0123456789abcdef0123456789abcdef01234567";
        let gone = rewound(&checkout_at(&new), &on_h(stranger));
        assert!(
            gone[0].why.contains("not in this repo's history"),
            "{gone:?}"
        );
    }
}
