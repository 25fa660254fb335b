//! The YAML tree builder every repo file goes through: no panic, no stack
//! overflow on deep nesting, bounded memory on alias bombs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = berth::spec::fuzzing::yaml(text);
});
