//! Entry points for the fuzz targets (`fuzz/`): the parsers berth runs on
//! a repo's text, callable on one string without a repo on disk. Each
//! returns a small summary so the work cannot be optimised away. Not an API
//! for anything else: it changes with the fuzz targets.
//!
//! The whole loader (berth.yaml, Compose files with interpolation from a
//! `.env`) is fuzzed through [`super::load_with`] on files written to a
//! directory, as a user's repo is read.

/// The YAML tree builder the loader reads every file with (anchors,
/// aliases and merge keys included): the number of problems it reported,
/// or None when the text is not YAML.
pub fn yaml(text: &str) -> Option<usize> {
    super::yaml::parse(text).ok().map(|p| p.problems.len())
}

/// The dotenv parser of a stack's `.env` and of `env_file`, with `SET` set
/// in the environment and every other name unset: (entries, problems).
pub fn dotenv(text: &str) -> (usize, usize) {
    let mut lookup = |name: &str| (name == "SET").then(|| "value".to_string());
    let (entries, problems) = super::dotenv::parse(text, &mut lookup);
    (entries.len(), problems.len())
}

/// Compose interpolation of one value, with `SET` set and every other name
/// unset: the expanded length, or None for a template it refuses.
pub fn interpolate(text: &str) -> Option<usize> {
    let mut lookup = |name: &str| (name == "SET").then(|| "value".to_string());
    super::interpolate::expand(text, &mut lookup)
        .ok()
        .map(|e| e.text.len())
}
