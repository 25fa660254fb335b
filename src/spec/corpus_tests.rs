//! Every stack of `tests/fixtures/compose-corpus` (Compose files written the
//! way people write them) loads as a stack of a repo with three hosts.

use std::collections::BTreeMap;
use std::path::Path;

use super::test_support::copy_dir;
use super::*;

/// Stacks that also use service keys berth learns separately
/// (`container_name`, ...): until then, their only errors must be about
/// such keys.
const NEEDS_SERVICE_KEYS: &[&str] = &["nextcloud"];

const INVENTORY: &str = "\
project: corpus
hosts:
  - {name: h1, address: 10.0.0.1}
  - {name: h2, address: 10.0.0.2}
  - {name: h3, address: 10.0.0.3}
";

#[test]
fn the_compose_corpus_validates() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compose-corpus");
    let mut names: Vec<String> = std::fs::read_dir(&corpus)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 8, "corpus too small: {names:?}");
    let mut failures = Vec::new();
    for name in &names {
        let repo = tempfile::tempdir().unwrap();
        std::fs::write(repo.path().join("berth.yaml"), INVENTORY).unwrap();
        copy_dir(&corpus.join(name), &repo.path().join("stacks").join(name));
        let options = LoadOptions {
            profiles: Vec::new(),
            environment: Some(BTreeMap::new()),
        };
        match (
            load_with(repo.path(), &options),
            NEEDS_SERVICE_KEYS.contains(&name.as_str()),
        ) {
            (Ok(loaded), _) => {
                assert!(!loaded.project.stacks[0].services.is_empty(), "{name}");
            }
            (Err(e), true) => {
                for d in &e.diagnostics {
                    assert!(
                        d.message.contains("unsupported key") || d.message.contains("unknown key"),
                        "{name}: {}: {}",
                        d.location,
                        d.message
                    );
                }
            }
            (Err(e), false) => failures.push(format!("{name}:\n{e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
