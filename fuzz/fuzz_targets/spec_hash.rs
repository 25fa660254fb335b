//! The canonical spec hash: any container spec read from JSON (as a saved
//! plan carries it) hashes without panic, and its canonical JSON reads back
//! to the same hash, so "changed or not" cannot flap between runs.
#![no_main]

use berth::placement::{canonical_json, spec_hash};
use berth::spec::ContainerSpec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = serde_json::from_slice::<ContainerSpec>(data) else {
        return;
    };
    let hash = spec_hash(&spec);
    let json = canonical_json(&spec);
    let again: ContainerSpec = match serde_json::from_str(&json) {
        Ok(again) => again,
        Err(e) => panic!("canonical JSON does not read back: {e}: {json}"),
    };
    assert_eq!(spec_hash(&again), hash, "{json}");
    assert_eq!(canonical_json(&again), json);
});
