//! The data of configs (see `configs`): what a stack declares, what a
//! service reads and what a container's spec holds. Plain types, below
//! both the model and the readers, so neither imports the other for them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::diagnostic::Location;

/// A config of a stack: its bytes, read from the repo at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSpec {
    pub origin: ConfigOrigin,
    pub data: ConfigData,
    pub location: Location,
}

/// Where a config's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// A file or directory of the repo (repo-relative path).
    Path(PathBuf),
    /// `content:` (interpolated).
    Content,
    /// `environment:` the variable's value.
    Environment(String),
}

/// The bytes of a config: one file, or the files of a directory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigData {
    /// A directory's files by path relative to it (`a/b.conf`); a file's
    /// bytes under the empty path.
    pub files: BTreeMap<String, Vec<u8>>,
    pub dir: bool,
    /// `sha256:<hex>`; see [`digest_of`].
    pub digest: String,
}

impl ConfigData {
    pub fn file(bytes: Vec<u8>) -> ConfigData {
        let mut data = ConfigData {
            files: BTreeMap::from([(String::new(), bytes)]),
            dir: false,
            digest: String::new(),
        };
        data.digest = digest_of(&data);
        data
    }

    /// The bytes of a single-file config.
    pub fn bytes(&self) -> &[u8] {
        self.files.get("").map(Vec::as_slice).unwrap_or_default()
    }
}

/// The digest of a config, as the host computes it again with `sha256sum`
/// (see `hosts::config_files`): a file's is the sha256 of its bytes; a
/// directory's is the sha256 of the lines `<sha256 of file>  ./<path>`,
/// sorted by path (bytewise), as `find . -type f | LC_ALL=C sort` lists them.
pub fn digest_of(data: &ConfigData) -> String {
    if !data.dir {
        return format!("sha256:{}", hex::encode(Sha256::digest(data.bytes())));
    }
    let mut listing = String::new();
    let mut paths: Vec<(String, &Vec<u8>)> = data
        .files
        .iter()
        .map(|(path, bytes)| (format!("./{path}"), bytes))
        .collect();
    paths.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    for (path, bytes) in paths {
        listing.push_str(&format!("{}  {path}\n", hex::encode(Sha256::digest(bytes))));
    }
    format!("sha256:{}", hex::encode(Sha256::digest(listing.as_bytes())))
}

/// A service's use of a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRef {
    /// Key in the stack's configs (`./<path>` for a bind mount).
    pub source: String,
    /// Absolute path in the container; default `/<source>`.
    pub target: String,
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub mode: Option<u32>,
    pub location: Location,
}

/// `x-berth.reload`: how a running container takes a changed config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadSpec {
    /// A signal for the container's main process (`SIGHUP`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// A command run in the container instead (`[nginx, -s, reload]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<Vec<String>>,
    /// Run in the container against the new file before it is reloaded
    /// (`[nginx, -t]`); failing, the old file is put back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Vec<String>>,
}

/// A config delivered to a container: what the spec hash covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConfigFileSpec {
    /// `sha256:<hex>` of the repo's bytes (of a directory: of its
    /// `sha256sum` listing, sorted by path).
    pub digest: String,
    /// Absolute path in the container.
    pub target: String,
    /// Numeric owner of the file on the host; default `0`.
    pub uid: String,
    pub gid: String,
    /// Default 0444.
    pub mode: u32,
    /// A directory of files rather than one file.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dir: bool,
    /// The service reloads it in place (`x-berth.reload`): the container
    /// mounts its live directory, not the version.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reload: bool,
}
