//! A stack's `.env` (and `env_file`): no panic, no hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = berth::spec::fuzzing::dotenv(text);
});
