//! Shell fragments shared by the scripts that put files on a host
//! (secrets in `secret_files`, configs in `config_files`): the numeric
//! owner check, a path named safely in an error, reading an exact count of
//! bytes off the script's stdin, and pruning versions nothing keeps.

use std::collections::BTreeSet;

/// Whether `v` is a numeric uid or gid: files are made on the host, which
/// does not know an image's user names.
pub fn numeric_id(v: &str) -> bool {
    !v.is_empty() && v.chars().all(|c| c.is_ascii_digit())
}

/// `path` safe inside a double-quoted `echo`: quotes, `$`, backquotes and
/// backslashes become `_`.
pub fn shown(path: &str) -> String {
    path.replace(['\'', '"', '$', '`', '\\'], "_")
}

/// Reads exactly `len` bytes of the script's stdin into `dest` (a shell
/// word, e.g. `"$tmp"`). `dd` with 1-byte blocks takes this file's bytes
/// off the pipe and leaves the next file's for the next read; a short
/// read (the input cut) exits 4 naming `what`.
pub fn read_exactly(dest: &str, len: usize, what: &str) -> String {
    format!(
        "dd bs=1 count={len} of={dest} 2>/dev/null\n[ \"$(wc -c < {dest})\" -eq {len} ] || {{ echo \"short read for {what}\" >&2; exit 4; }}\n",
        what = shown(what),
    )
}

/// Removes the directories matching `glob` (relative to the current
/// directory) that are not in `keep`, then the empty directories left.
pub fn prune_versions(glob: &str, keep: &BTreeSet<String>) -> String {
    let words: Vec<String> = keep
        .iter()
        .map(|k| k.replace(['\'', ' ', '"', '$', '`', '\\'], "_"))
        .collect();
    format!(
        "for v in {glob}; do\n  [ -d \"$v\" ] || continue\n  case \" {words} \" in *\" $v \"*) continue ;; esac\n  rm -rf -- \"$v\"\ndone\n",
        words = words.join(" "),
    )
}

/// Removes the empty directories below the current one (the parents of
/// pruned versions).
pub const REMOVE_EMPTY_DIRS: &str = "find . -mindepth 1 -depth -type d -empty -delete\n";
