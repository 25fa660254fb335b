//! The whole repo loader: `berth.yaml`, a stack's Compose file and its
//! `.env`, with interpolation (`SET` is set in the environment), includes
//! and `extends` of a second file. No panic, no stack overflow, bounded
//! memory: every input is a repo berth loads or refuses with diagnostics.
//!
//! The input is split at NUL bytes into `stacks/web/compose.yaml`,
//! `stacks/web/.env`, `stacks/web/base.yaml` and `berth.yaml` (a fixed
//! two-host inventory when absent), written to a directory kept for the
//! process.
#![no_main]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

const INVENTORY: &str = "project: fuzz
hosts:
  - name: a
    address: 10.0.0.1
    labels: { role: web }
  - name: b
    address: 10.0.0.2
    labels: { role: db }
";

fn repo() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("berth-fuzz-load")
            .tempdir()
            .expect("a temporary directory")
            .keep();
        std::fs::create_dir_all(dir.join("stacks/web")).expect("the stack directory");
        dir
    })
}

fuzz_target!(|text: &str| {
    let mut parts = text.split('\0');
    let root = repo();
    let files = [
        ("stacks/web/compose.yaml", parts.next()),
        ("stacks/web/.env", parts.next()),
        ("stacks/web/base.yaml", parts.next()),
        ("berth.yaml", Some(parts.next().unwrap_or(INVENTORY))),
    ];
    for (path, text) in files {
        let path = root.join(path);
        match text {
            Some(text) => std::fs::write(&path, text).expect("write"),
            None => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let options = berth::spec::LoadOptions {
        environment: Some(BTreeMap::from([("SET".to_string(), "value".to_string())])),
        ..Default::default()
    };
    let _ = berth::spec::load_with(root, &options);
});
