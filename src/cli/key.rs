//! The runner's key, from `--key-file` or the environment. The key
//! variables are taken out of the environment first thing, so no child
//! process (ssh, `sh`, $EDITOR) inherits them.

use std::path::PathBuf;

/// The runner's key: `--key-file`/BERTH_KEY_FILE, else the armoured key in
/// BERTH_KEY; BERTH_KEY_PASSPHRASE unlocks either. Environment values are
/// taken as secrets (never printed).
pub(crate) fn key_options(key_file: Option<PathBuf>) -> crate::secrets::KeyOptions {
    use crate::secrets::KeySource;
    let (key, passphrase) = KEY_ENV.get().cloned().unwrap_or_default();
    let source = match key_file {
        Some(path) => Some(KeySource::File(path)),
        None => key.map(|key| KeySource::Env {
            var: "BERTH_KEY".into(),
            key,
        }),
    };
    crate::secrets::KeyOptions { source, passphrase }
}

/// BERTH_KEY and BERTH_KEY_PASSPHRASE, taken out of the environment.
type KeyEnv = (
    Option<crate::openpgp::SecretBytes>,
    Option<crate::openpgp::SecretBytes>,
);
static KEY_ENV: std::sync::OnceLock<KeyEnv> = std::sync::OnceLock::new();

/// Moves the key variables from the environment into memory. Called first
/// thing in `main`, while the process has one thread.
pub fn take_key_env() {
    let take = |name: &str| {
        let value = std::env::var_os(name).filter(|v| !v.is_empty()).map(|v| {
            crate::openpgp::SecretBytes::new(std::os::unix::ffi::OsStringExt::into_vec(v))
        });
        std::env::remove_var(name);
        value
    };
    let _ = KEY_ENV.set((take("BERTH_KEY"), take("BERTH_KEY_PASSPHRASE")));
}
