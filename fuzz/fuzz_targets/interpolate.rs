//! Compose interpolation of one value (`${A:-${B:?x}}`, `$$`...): no
//! panic, no hang, and text without `$` comes back as it was.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let expanded = berth::spec::fuzzing::interpolate(text);
    if !text.contains('$') {
        assert_eq!(expanded, Some(text.len()));
    }
});
