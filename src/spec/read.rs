//! Reading typed values out of YAML nodes while collecting every problem.
//!
//! Each reader takes the node and a short description of it for messages
//! (``port of host `edge-1` ``), records a [`Diagnostic`] at the node's place
//! when the value is wrong, and returns `None` so the caller can carry on and
//! find the next problem instead of stopping at the first.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::diagnostic::Diagnostic;
use super::diagnostic::Location;
use super::values;
use super::yaml::{Kind, Node, YamlProblem};

/// Problems found in one file.
pub(crate) struct Cx {
    pub file: PathBuf,
    pub diags: Vec<Diagnostic>,
    /// Problems that do not stop the load: a key berth reads differently
    /// from `docker compose`, said so the user is not surprised.
    pub warnings: Vec<Diagnostic>,
    /// Compose files. Their values are interpolated before they are read,
    /// so `$` needs no treatment here any more.
    #[allow(dead_code)]
    compose: bool,
}

/// One `key: value` entry of a mapping.
#[derive(Clone, Copy)]
pub(crate) struct Field<'n> {
    pub name: &'n str,
    pub key: &'n Node,
    pub value: &'n Node,
}

/// A mapping's entries, in file order.
pub(crate) struct Fields<'n> {
    pub entries: Vec<Field<'n>>,
}

impl<'n> Fields<'n> {
    pub fn get(&self, name: &str) -> Option<Field<'n>> {
        self.entries.iter().find(|f| f.name == name).copied()
    }

    /// The value, treating an explicit null like an absent key (Compose does).
    pub fn value(&self, name: &str) -> Option<&'n Node> {
        self.get(name).map(|f| f.value).filter(|v| !v.is_null())
    }
}

/// A `KEY=VALUE` list item or a mapping entry, before the caller decides
/// what a missing value means.
pub(crate) struct Pair<'n> {
    pub key: String,
    pub value: Option<String>,
    pub node: &'n Node,
}

impl Cx {
    pub fn new(file: impl Into<PathBuf>, compose: bool) -> Cx {
        Cx {
            file: file.into(),
            diags: Vec::new(),
            warnings: Vec::new(),
            compose,
        }
    }

    pub fn at(&self, node: &Node) -> Location {
        Location {
            file: node
                .file
                .as_deref()
                .map_or_else(|| self.file.clone(), PathBuf::from),
            line: node.line,
            column: node.column,
        }
    }

    pub fn error(&mut self, node: &Node, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            location: self.at(node),
            message: message.into(),
            help: None,
        });
    }

    pub fn error_help(&mut self, node: &Node, message: impl Into<String>, help: impl Into<String>) {
        self.diags.push(Diagnostic {
            location: self.at(node),
            message: message.into(),
            help: Some(help.into()),
        });
    }

    /// A warning at the node: the load goes on.
    pub fn warn(&mut self, node: &Node, message: impl Into<String>, help: impl Into<String>) {
        self.warnings.push(Diagnostic {
            location: self.at(node),
            message: message.into(),
            help: Some(help.into()),
        });
    }

    /// A warning at a place remembered earlier (for checks that span entries).
    pub fn warn_at(
        &mut self,
        location: Location,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.warnings.push(Diagnostic {
            location,
            message: message.into(),
            help: Some(help.into()),
        });
    }

    /// A problem at a place remembered earlier (for checks that span entries).
    pub fn report(&mut self, location: Location, message: impl Into<String>, help: Option<String>) {
        self.diags.push(Diagnostic {
            location,
            message: message.into(),
            help,
        });
    }

    pub fn yaml_problem(&mut self, problem: YamlProblem) {
        self.diags.push(Diagnostic {
            location: Location {
                file: self.file.clone(),
                line: problem.line,
                column: problem.column,
            },
            message: problem.message,
            help: problem.help,
        });
    }

    /// The node's entries if it is a mapping.
    pub fn map<'n>(&mut self, node: &'n Node, what: &str) -> Option<Fields<'n>> {
        match &node.kind {
            Kind::Map(entries) => Some(Fields {
                entries: entries
                    .iter()
                    .map(|(key, value)| Field {
                        name: key.key_text().unwrap_or_default(),
                        key,
                        value,
                    })
                    .collect(),
            }),
            _ => {
                self.error(
                    node,
                    format!("{what} must be a mapping, found {}", node.describe()),
                );
                None
            }
        }
    }

    /// Like [`Cx::map`], and reports every key not in `supported`.
    pub fn map_with<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        supported: &[&str],
    ) -> Option<Fields<'n>> {
        let fields = self.map(node, what)?;
        for field in &fields.entries {
            if !supported.contains(&field.name) {
                self.unknown_key(field, what, supported);
            }
        }
        Some(fields)
    }

    /// ``unknown key `volumez` in service `api` `` with a suggestion, or
    /// else the supported keys in alphabetical order (a service has sixty:
    /// listing them after a good suggestion only buries it).
    pub fn unknown_key(&mut self, field: &Field<'_>, what: &str, supported: &[&str]) {
        let help = match values::suggest(field.name, supported) {
            Some(close) => format!("did you mean `{close}`?"),
            None => {
                let mut sorted = supported.to_vec();
                sorted.sort_unstable();
                format!("supported keys: {}", sorted.join(", "))
            }
        };
        self.error_help(
            field.key,
            format!("unknown key `{}` in {what}", field.name),
            help,
        );
    }

    pub fn seq<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [Node]> {
        match &node.kind {
            Kind::Seq(items) => Some(items),
            _ => {
                self.error(
                    node,
                    format!("{what} must be a list, found {}", node.describe()),
                );
                None
            }
        }
    }

    /// Any scalar as text (`user: 1000` is the string `1000`).
    pub fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        let Some(text) = node.scalar() else {
            self.error(
                node,
                format!("{what} must be a string, found {}", node.describe()),
            );
            return None;
        };
        Some(text.to_string())
    }

    /// A scalar as Compose would stringify it: booleans lowercase, integers in decimal.
    pub fn stringify(&mut self, node: &Node, what: &str) -> Option<String> {
        if let Some(b) = node.as_bool() {
            return Some(b.to_string());
        }
        if let Some(i) = node.as_i64() {
            return Some(i.to_string());
        }
        self.string(node, what)
    }

    pub fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
        let value = node.as_bool();
        if value.is_none() {
            self.error(
                node,
                format!(
                    "{what} must be `true` or `false`, found {}",
                    node.describe()
                ),
            );
        }
        value
    }

    /// An integer in `min..=max`; a quoted number is accepted too (`"8080"`).
    pub fn int(&mut self, node: &Node, what: &str, min: i64, max: i64) -> Option<i64> {
        let value = node
            .as_i64()
            .or_else(|| node.scalar().and_then(|t| t.trim().parse().ok()));
        match value {
            Some(v) if (min..=max).contains(&v) => Some(v),
            _ => {
                let range = if max == i64::MAX {
                    format!("an integer of at least {min}")
                } else {
                    format!("an integer from {min} to {max}")
                };
                self.error(
                    node,
                    format!("{what} must be {range}, found {}", node.describe()),
                );
                None
            }
        }
    }

    pub fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let text = self.string(node, what)?;
        match values::duration(&text) {
            Ok(d) => Some(d),
            Err(reason) => {
                self.error_help(
                    node,
                    format!("{what}: {reason}"),
                    "write a duration with a unit, like `30s`, `1m30s` or `500ms`",
                );
                None
            }
        }
    }

    /// A Docker memory size (`512m`, `1g`, or bytes).
    pub fn memory(&mut self, node: &Node, what: &str) -> Option<i64> {
        let text = self.stringify(node, what)?;
        match values::memory(&text) {
            Ok(bytes) => Some(bytes),
            Err(reason) => {
                self.error_help(
                    node,
                    format!("{what}: {reason}"),
                    "write a size like `512m`, `1g` or a number of bytes",
                );
                None
            }
        }
    }

    /// A number of CPUs (`0.5`, or `"1.5"`) as NanoCpus.
    pub fn cpus(&mut self, node: &Node, what: &str) -> Option<i64> {
        let text = self.stringify(node, what)?;
        match values::nano_cpus(&text) {
            Ok(nano) => Some(nano),
            Err(reason) => {
                self.error(node, format!("{what}: {reason}"));
                None
            }
        }
    }

    /// A file mode as Compose users write it: `0440` and `0o440` are octal
    /// (Compose reads YAML 1.1 octals), `288` is decimal.
    pub fn file_mode(&mut self, node: &Node, what: &str) -> Option<u32> {
        let text = self.string(node, what)?;
        let parsed = if let Some(octal) = text.strip_prefix("0o") {
            u32::from_str_radix(octal, 8).ok()
        } else if text.len() > 1 && text.starts_with('0') {
            u32::from_str_radix(&text[1..], 8).ok()
        } else {
            text.parse().ok()
        };
        match parsed {
            Some(mode) if mode <= 0o7777 => Some(mode),
            _ => {
                self.error(
                    node,
                    format!(
                        "{what} must be a file mode like `0440`, found {}",
                        node.describe()
                    ),
                );
                None
            }
        }
    }

    /// A list of strings (numbers are accepted as their text).
    pub fn strings(&mut self, node: &Node, what: &str) -> Option<Vec<String>> {
        let items = self.seq(node, what)?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in items {
            match self.string(item, &format!("an item of {what}")) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A mapping of scalars, or (with `list_ok`) a list of `KEY=VALUE`
    /// strings, as Compose allows for `environment` and `labels`. A missing
    /// value (`KEY` alone, or `KEY:` with nothing) comes back as `None`.
    pub fn pairs<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        list_ok: bool,
    ) -> Option<Vec<Pair<'n>>> {
        let mut out = Vec::new();
        let mut ok = true;
        match &node.kind {
            Kind::Map(entries) => {
                for (key, value) in entries {
                    let key_text = key.key_text().unwrap_or_default().to_string();
                    let value_text = match &value.kind {
                        Kind::Null => None,
                        Kind::Scalar { .. } => {
                            match self.stringify(value, &format!("`{key_text}` in {what}")) {
                                Some(v) => Some(v),
                                None => {
                                    ok = false;
                                    continue;
                                }
                            }
                        }
                        _ => {
                            self.error(
                                value,
                                format!(
                                    "`{key_text}` in {what} must be a string, found {}",
                                    value.describe()
                                ),
                            );
                            ok = false;
                            continue;
                        }
                    };
                    out.push(Pair {
                        key: key_text,
                        value: value_text,
                        node: key,
                    });
                }
            }
            Kind::Seq(items) if list_ok => {
                let mut seen: BTreeMap<String, usize> = BTreeMap::new();
                for item in items {
                    let Some(text) = self.string(item, &format!("an item of {what}")) else {
                        ok = false;
                        continue;
                    };
                    let (key, value) = match text.split_once('=') {
                        Some((k, v)) => (k.to_string(), Some(v.to_string())),
                        None => (text, None),
                    };
                    if let Some(line) = seen.insert(key.clone(), item.line) {
                        self.error(
                            item,
                            format!("`{key}` is set twice in {what} (first at line {line})"),
                        );
                        ok = false;
                        continue;
                    }
                    out.push(Pair {
                        key,
                        value,
                        node: item,
                    });
                }
            }
            _ => {
                let shape = if list_ok {
                    "a mapping or a list of `KEY=VALUE`"
                } else {
                    "a mapping"
                };
                self.error(
                    node,
                    format!("{what} must be {shape}, found {}", node.describe()),
                );
                return None;
            }
        }
        ok.then_some(out)
    }

    /// A mapping of strings where a missing value is an error.
    pub fn string_map(&mut self, node: &Node, what: &str) -> Option<BTreeMap<String, String>> {
        let pairs = self.pairs(node, what, false)?;
        let mut out = BTreeMap::new();
        let mut ok = true;
        for pair in pairs {
            match pair.value {
                Some(v) => {
                    out.insert(pair.key, v);
                }
                None => {
                    self.error(pair.node, format!("`{}` in {what} has no value", pair.key));
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }
}

/// `labels` of a network, volume or service: a mapping or `KEY=VALUE` list;
/// berth's own `berth.*` labels are reserved.
pub(crate) fn read_labels(
    cx: &mut Cx,
    fields: &Fields<'_>,
    what: &str,
) -> BTreeMap<String, String> {
    let Some(node) = fields.value("labels") else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for pair in cx
        .pairs(node, &format!("`labels` of {what}"), true)
        .unwrap_or_default()
    {
        if pair.key.is_empty() {
            cx.error(pair.node, format!("an empty label key in {what}"));
        } else if pair.key.starts_with("berth.") {
            cx.error_help(
                pair.node,
                format!(
                    "label `{}` of {what} uses the reserved prefix `berth.`",
                    pair.key
                ),
                "berth sets `berth.*` labels itself to know what it manages; choose another prefix",
            );
        } else {
            out.insert(pair.key, pair.value.unwrap_or_default());
        }
    }
    out
}

/// One entry of a service's `secrets:` or `configs:`: short syntax (a name)
/// or long (`source`, `target`, `uid`, `gid`, `mode`). Read in one place
/// because Compose gives both lists the same shape.
pub struct FileRef<'n> {
    pub source_node: &'n Node,
    pub source: String,
    pub target: Option<String>,
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub mode: Option<u32>,
}

impl Cx {
    /// Reads `item` as a [`FileRef`] of `what`; `kind` is `secret` or
    /// `config`, `keys` the long syntax's keys. None once an error is
    /// reported.
    pub fn file_ref<'n>(
        &mut self,
        item: &'n Node,
        what: &str,
        kind: &str,
        keys: &[&str],
    ) -> Option<FileRef<'n>> {
        let one = format!("a {kind} of {what}");
        let Kind::Map(_) = item.kind else {
            let source = self.string(item, &one)?;
            return Some(FileRef {
                source_node: item,
                source,
                target: None,
                uid: None,
                gid: None,
                mode: None,
            });
        };
        let fields = self.map_with(item, &one, keys)?;
        let Some(source_node) = fields.value("source") else {
            self.error_help(
                item,
                format!("{one} has no `source`"),
                format!("name a {kind} declared under top-level `{kind}s:`"),
            );
            return None;
        };
        let source = self.string(source_node, &format!("`source` of {one}"))?;
        let target = fields
            .value("target")
            .and_then(|v| self.string(v, &format!("`target` of {one}")));
        let uid = fields
            .value("uid")
            .and_then(|v| self.stringify(v, &format!("`uid` of {one}")));
        let gid = fields
            .value("gid")
            .and_then(|v| self.stringify(v, &format!("`gid` of {one}")));
        let mode = fields
            .value("mode")
            .and_then(|v| self.file_mode(v, &format!("`mode` of {one}")));
        Some(FileRef {
            source_node,
            source,
            target,
            uid,
            gid,
            mode,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::yaml;

    fn node(text: &str) -> Node {
        yaml::parse(text).unwrap().root
    }

    #[test]
    fn unknown_keys_suggest_and_list() {
        let mut cx = Cx::new("f.yaml", false);
        let root = node("imgae: x\n");
        cx.map_with(&root, "service `api`", &["image", "command"]);
        assert_eq!(cx.diags.len(), 1);
        assert_eq!(cx.diags[0].message, "unknown key `imgae` in service `api`");
        assert_eq!(cx.diags[0].help.as_deref(), Some("did you mean `image`?"));
        assert_eq!(
            (cx.diags[0].location.line, cx.diags[0].location.column),
            (1, 1)
        );
    }

    #[test]
    fn pairs_accept_both_forms() {
        let mut cx = Cx::new("f.yaml", true);
        let map = node("A: 1\nB: true\nC: x$y\nD:\n");
        let pairs = cx.pairs(&map, "`environment`", true).unwrap();
        let got: Vec<_> = pairs
            .iter()
            .map(|p| (p.key.as_str(), p.value.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("A", Some("1".to_string())),
                ("B", Some("true".to_string())),
                ("C", Some("x$y".to_string())),
                ("D", None)
            ]
        );
        let list = node("- A=1\n- B\n- A=2\n");
        assert!(cx.pairs(&list, "`environment`", true).is_none());
        assert_eq!(
            cx.diags[0].message,
            "`A` is set twice in `environment` (first at line 1)"
        );
    }

    #[test]
    fn strings_are_read_as_written() {
        // Compose files are interpolated before they are read.
        let mut cx = Cx::new("f.yaml", true);
        assert_eq!(cx.string(&node("a$b"), "`x`").as_deref(), Some("a$b"));
    }
}
