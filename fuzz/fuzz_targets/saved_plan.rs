//! `apply --plan FILE`: a saved plan is read from a file a user hands over.
//! No panic, and a plan that reads writes back to JSON that reads as the
//! same plan (reasons in words read back exactly).
#![no_main]

use berth::plan::SavedPlan;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(saved) = serde_json::from_slice::<SavedPlan>(data) else {
        return;
    };
    let json = match serde_json::to_string(&saved) {
        Ok(json) => json,
        Err(e) => panic!("a saved plan that reads does not write: {e}"),
    };
    let again: SavedPlan = match serde_json::from_str(&json) {
        Ok(again) => again,
        Err(e) => panic!("a saved plan does not read back: {e}: {json}"),
    };
    assert_eq!(
        serde_json::to_string(&again).ok().as_deref(),
        Some(json.as_str())
    );
});
