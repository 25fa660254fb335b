//! A YAML document as a tree whose every node knows its `line:column`.
//!
//! Built from `saphyr-parser` events in one pass, so a value and the place it
//! was written can never disagree (no second parse to keep in step). Anchors
//! and aliases are expanded, `<<` merge keys applied (explicit keys win, as in
//! Compose), and duplicate keys reported at the second occurrence. Scalars
//! keep their source text; callers decide how to read them (YAML 1.2 core
//! schema: `yes`/`no` are strings, only `true`/`false` are booleans).

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, StrInput, Tag};

/// One YAML node and where it starts (1-based line and column).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub kind: Kind,
    pub line: usize,
    pub column: usize,
    /// The file the node was read from, when it is not the file being
    /// checked (an `include`d or `extends` file, an `env_file`).
    pub file: Option<std::sync::Arc<std::path::Path>>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// `~`, `null`, or nothing at all.
    Null,
    /// `plain` is false for quoted and block scalars: `"80"` is a string, `80` may be a number.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Entries in file order; keys are unique (duplicates are reported and dropped).
    Map(Vec<(Node, Node)>),
}

/// A problem found while building the tree, at a 1-based line and column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct YamlProblem {
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub help: Option<String>,
}

/// Parsed document plus the problems that did not stop parsing (duplicate
/// keys, unsupported tags). A syntax error returns `Err` with one problem.
pub(crate) struct Parsed {
    pub root: Node,
    pub problems: Vec<YamlProblem>,
}

/// Deeper than any real Compose file; guards the recursive builder's stack.
const MAX_DEPTH: usize = 128;
/// Guards against alias bombs ("billion laughs"): nodes after alias expansion.
const MAX_NODES: usize = 1_000_000;

impl Node {
    fn new(kind: Kind, span: Span) -> Node {
        Node {
            kind,
            line: span.start.line(),
            column: span.start.col() + 1,
            file: None,
        }
    }

    /// A node made by berth (a merged value), placed where `at` is.
    pub fn synthetic(kind: Kind, at: &Node) -> Node {
        Node {
            kind,
            line: at.line,
            column: at.column,
            file: at.file.clone(),
        }
    }

    /// A string value (quoted style: never read as a number or boolean).
    pub fn string(text: impl Into<String>, at: &Node) -> Node {
        Node::synthetic(
            Kind::Scalar {
                text: text.into(),
                plain: false,
            },
            at,
        )
    }

    /// Marks this node and everything under it as read from `file`.
    pub fn set_file(&mut self, file: &std::sync::Arc<std::path::Path>) {
        self.file = Some(file.clone());
        match &mut self.kind {
            Kind::Seq(items) => items.iter_mut().for_each(|i| i.set_file(file)),
            Kind::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
                k.set_file(file);
                v.set_file(file);
            }),
            _ => {}
        }
    }

    /// The value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.key_text() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match &mut self.kind {
            Kind::Map(entries) => entries
                .iter_mut()
                .find(|(k, _)| k.key_text() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Removes `key` from a mapping, returning its key and value nodes.
    pub fn remove(&mut self, key: &str) -> Option<(Node, Node)> {
        match &mut self.kind {
            Kind::Map(entries) => {
                let i = entries
                    .iter()
                    .position(|(k, _)| k.key_text() == Some(key))?;
                Some(entries.remove(i))
            }
            _ => None,
        }
    }

    /// Sets `key` in a mapping (replacing its value, or appending it).
    pub fn set(&mut self, key: Node, value: Node) {
        if let Kind::Map(entries) = &mut self.kind {
            let text = key.key_text().map(str::to_string);
            match entries
                .iter_mut()
                .find(|(k, _)| k.key_text().map(str::to_string) == text)
            {
                Some(entry) => entry.1 = value,
                None => entries.push((key, value)),
            }
        }
    }

    /// The scalar's text, or None for null, lists and mappings.
    pub fn scalar(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// A mapping key's text: keys are compared as written.
    pub fn key_text(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            Kind::Null => Some(""),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.kind, Kind::Null)
    }

    /// A plain (unquoted) scalar's text: only these can be numbers or booleans.
    pub fn plain(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, plain: true } => Some(text),
            _ => None,
        }
    }

    /// `true`/`false` in the YAML 1.2 core schema spellings.
    pub fn as_bool(&self) -> Option<bool> {
        match self.plain()? {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            _ => None,
        }
    }

    /// A plain integer: decimal, `0x` hex or `0o` octal, optionally signed.
    pub fn as_i64(&self) -> Option<i64> {
        parse_int(self.plain()?)
    }

    /// A plain integer or float (`.inf` and `.nan` are not accepted: no field wants them).
    pub fn as_f64(&self) -> Option<f64> {
        let text = self.plain()?;
        if let Some(i) = parse_int(text) {
            return Some(i as f64);
        }
        let looks_numeric = text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
        if looks_numeric && text.chars().any(|c| c.is_ascii_digit()) {
            text.parse().ok()
        } else {
            None
        }
    }

    /// A short description for "found …" in messages.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Null => "nothing".to_string(),
            Kind::Scalar { text, .. } => {
                let short: String = text.chars().take(60).collect();
                if short.len() < text.len() {
                    format!("`{short}…`")
                } else {
                    format!("`{short}`")
                }
            }
            Kind::Seq(_) => "a list".to_string(),
            Kind::Map(_) => "a mapping".to_string(),
        }
    }

    fn size(&self) -> usize {
        1 + match &self.kind {
            Kind::Seq(items) => items.iter().map(Node::size).sum(),
            Kind::Map(entries) => entries.iter().map(|(k, v)| k.size() + v.size()).sum(),
            _ => 0,
        }
    }
}

/// Integers as the YAML 1.2 core schema writes them.
pub(crate) fn parse_int(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let value = if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()?
    } else if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
        digits.parse().ok()?
    } else {
        return None;
    };
    Some(if negative { -value } else { value })
}

/// Parses one YAML document. An empty file is a null root.
pub(crate) fn parse(text: &str) -> Result<Parsed, YamlProblem> {
    let mut builder = Builder {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        problems: Vec::new(),
        nodes: 0,
    };
    let root = builder.document()?;
    Ok(Parsed {
        root,
        problems: builder.problems,
    })
}

struct Builder<'a> {
    parser: Parser<'a, StrInput<'a>>,
    /// Anchor id -> finished node and its size (for the alias-bomb guard).
    anchors: HashMap<usize, (Node, usize)>,
    problems: Vec<YamlProblem>,
    nodes: usize,
}

fn scan_problem(error: &ScanError) -> YamlProblem {
    YamlProblem {
        line: error.marker().line(),
        column: error.marker().col() + 1,
        message: format!("invalid YAML: {}", error.info()),
        help: None,
    }
}

fn problem_at(span: Span, message: impl Into<String>) -> YamlProblem {
    YamlProblem {
        line: span.start.line(),
        column: span.start.col() + 1,
        message: message.into(),
        help: None,
    }
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), YamlProblem> {
        match self.parser.next_event() {
            Some(Ok(event)) => Ok(event),
            Some(Err(error)) => Err(scan_problem(&error)),
            None => Err(YamlProblem {
                line: 0,
                column: 0,
                message: "invalid YAML: unexpected end of input".to_string(),
                help: None,
            }),
        }
    }

    fn document(&mut self) -> Result<Node, YamlProblem> {
        let mut root = None;
        loop {
            let (event, span) = self.next()?;
            match event {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::StreamEnd => {
                    return Ok(root.unwrap_or(Node::new(Kind::Null, span)));
                }
                Event::DocumentStart(_) if root.is_some() => {
                    return Err(YamlProblem {
                        help: Some("keep one document per file (no second `---`)".to_string()),
                        ..problem_at(span, "a file must hold a single YAML document")
                    });
                }
                Event::DocumentStart(_) => {
                    let (event, span) = self.next()?;
                    root = Some(self.node(event, span, 0)?);
                }
                _ => return Err(problem_at(span, "invalid YAML: unexpected event")),
            }
        }
    }

    fn count(&mut self, n: usize, span: Span) -> Result<(), YamlProblem> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(problem_at(
                span,
                "document is too large after expanding aliases",
            ));
        }
        Ok(())
    }

    fn node(&mut self, event: Event<'a>, span: Span, depth: usize) -> Result<Node, YamlProblem> {
        if depth > MAX_DEPTH {
            return Err(problem_at(span, "document is nested too deeply"));
        }
        self.count(1, span)?;
        let (node, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                let forced_string = self.check_tag(tag.as_deref(), span);
                let plain = style == ScalarStyle::Plain && !forced_string;
                let kind = if plain && matches!(&*text, "" | "~" | "null" | "Null" | "NULL") {
                    Kind::Null
                } else {
                    Kind::Scalar {
                        text: text.into_owned(),
                        plain,
                    }
                };
                (Node::new(kind, span), anchor)
            }
            Event::SequenceStart(anchor, tag) => {
                self.check_tag(tag.as_deref(), span);
                let mut items = Vec::new();
                loop {
                    let (event, item_span) = self.next()?;
                    if event == Event::SequenceEnd {
                        break;
                    }
                    items.push(self.node(event, item_span, depth + 1)?);
                }
                (Node::new(Kind::Seq(items), span), anchor)
            }
            Event::MappingStart(anchor, tag) => {
                self.check_tag(tag.as_deref(), span);
                (self.mapping(span, depth)?, anchor)
            }
            Event::Alias(id) => {
                let Some((node, size)) = self.anchors.get(&id) else {
                    return Err(problem_at(span, "invalid YAML: unknown alias"));
                };
                let (node, size) = (node.clone(), *size);
                self.count(size, span)?;
                (node, 0)
            }
            _ => return Err(problem_at(span, "invalid YAML: unexpected event")),
        };
        if anchor != 0 {
            let size = node.size();
            self.anchors.insert(anchor, (node.clone(), size));
        }
        Ok(node)
    }

    fn mapping(&mut self, span: Span, depth: usize) -> Result<Node, YamlProblem> {
        let mut entries: Vec<(Node, Node)> = Vec::new();
        let mut merged: Vec<Node> = Vec::new();
        loop {
            let (event, key_span) = self.next()?;
            if event == Event::MappingEnd {
                break;
            }
            let is_merge =
                matches!(&event, Event::Scalar(text, ScalarStyle::Plain, _, None) if text == "<<");
            let key = self.node(event, key_span, depth + 1)?;
            let (event, value_span) = self.next()?;
            let empty = matches!(&event, Event::Scalar(text, ScalarStyle::Plain, _, None) if text.is_empty());
            let mut value = self.node(event, value_span, depth + 1)?;
            if empty {
                // An empty value has no place of its own: point at its key.
                value.line = key.line;
                value.column = key.column;
            }
            if is_merge {
                self.collect_merge(value, &mut merged);
                continue;
            }
            let Some(text) = key.key_text() else {
                self.problems.push(YamlProblem {
                    help: Some("use a plain string as the key".to_string()),
                    ..problem_at(key_span, "a mapping key must be a scalar")
                });
                continue;
            };
            if let Some((first, _)) = entries.iter().find(|(k, _)| k.key_text() == Some(text)) {
                self.problems.push(YamlProblem {
                    line: key.line,
                    column: key.column,
                    message: format!("duplicate key `{text}` (first at line {})", first.line),
                    help: Some("remove one of them; YAML keys must be unique".to_string()),
                });
                continue;
            }
            entries.push((key, value));
        }
        // `<<: *base` fills in keys the mapping does not set itself; with a
        // list of bases the earlier one wins, as in YAML 1.1 and Compose.
        for base in merged {
            if let Kind::Map(base_entries) = base.kind {
                for (k, v) in base_entries {
                    if !entries.iter().any(|(e, _)| e.key_text() == k.key_text()) {
                        entries.push((k, v));
                    }
                }
            }
        }
        Ok(Node::new(Kind::Map(entries), span))
    }

    fn collect_merge(&mut self, value: Node, merged: &mut Vec<Node>) {
        match value.kind {
            Kind::Map(_) => merged.push(value),
            Kind::Seq(items) if items.iter().all(|i| matches!(i.kind, Kind::Map(_))) => {
                merged.extend(items)
            }
            _ => self.problems.push(YamlProblem {
                line: value.line,
                column: value.column,
                message: "`<<` merges a mapping or a list of mappings".to_string(),
                help: Some("write `<<: *anchor` where the anchor names a mapping".to_string()),
            }),
        }
    }

    /// Core-schema tags are fine (`!!str` makes a string); anything else,
    /// like Compose's `!reset`/`!override`, is reported. Returns whether the
    /// tag forces a string.
    fn check_tag(&mut self, tag: Option<&Tag>, span: Span) -> bool {
        let Some(tag) = tag else { return false };
        if tag.is_yaml_core_schema() {
            return tag.suffix == "str";
        }
        let shown = if tag.handle == "!" {
            format!("!{}", tag.suffix)
        } else {
            format!("{}{}", tag.handle, tag.suffix)
        };
        let help = if matches!(tag.suffix.as_str(), "reset" | "override") && tag.handle == "!" {
            "`!reset` and `!override` only matter when Compose merges several files; berth reads one file per stack"
        } else {
            "remove the tag"
        };
        self.problems.push(YamlProblem {
            help: Some(help.to_string()),
            ..problem_at(span, format!("unsupported YAML tag `{shown}`"))
        });
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Node {
        parse(text).unwrap().root
    }

    #[test]
    fn scalars_keep_text_and_style() {
        let node = root("a: 80\nb: \"80\"\nc:\nd: ~\ne: yes\n");
        let Kind::Map(entries) = node.kind else {
            panic!()
        };
        assert_eq!(entries[0].1.as_i64(), Some(80));
        assert_eq!(entries[1].1.as_i64(), None);
        assert_eq!(entries[1].1.scalar(), Some("80"));
        assert!(entries[2].1.is_null());
        assert_eq!((entries[2].1.line, entries[2].1.column), (3, 1));
        assert!(entries[3].1.is_null());
        assert_eq!(entries[4].1.as_bool(), None);
    }

    #[test]
    fn locations_are_one_based() {
        let node = root("top:\n  - x\n  - {k: v}\n");
        let Kind::Map(entries) = &node.kind else {
            panic!()
        };
        let Kind::Seq(items) = &entries[0].1.kind else {
            panic!()
        };
        assert_eq!((items[0].line, items[0].column), (2, 5));
        assert_eq!((items[1].line, items[1].column), (3, 5));
    }

    #[test]
    fn merge_keys_and_aliases() {
        let node = root("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n");
        let Kind::Map(entries) = &node.kind else {
            panic!()
        };
        let Kind::Map(used) = &entries[1].1.kind else {
            panic!()
        };
        let pairs: Vec<_> = used
            .iter()
            .map(|(k, v)| (k.scalar().unwrap(), v.scalar().unwrap()))
            .collect();
        assert_eq!(pairs, vec![("y", "3"), ("x", "1")]);
    }

    #[test]
    fn duplicate_keys_and_tags_are_problems() {
        let parsed = parse("a: 1\nb: !reset []\na: 2\n").unwrap();
        let messages: Vec<_> = parsed.problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            messages,
            vec![
                "unsupported YAML tag `!reset`",
                "duplicate key `a` (first at line 1)"
            ]
        );
        assert_eq!(parsed.problems[1].line, 3);
    }

    #[test]
    fn syntax_errors_have_a_place() {
        let err = parse("a: b: c\n").err().unwrap();
        assert_eq!((err.line, err.column), (1, 5));
        assert!(err.message.starts_with("invalid YAML: "));
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let prev = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        assert!(parse(&text).is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_int("0x1F"), Some(31));
        assert_eq!(parse_int("-12"), Some(-12));
        assert_eq!(parse_int("1.5"), None);
        assert_eq!(root("1.5").as_f64(), Some(1.5));
        assert_eq!(root("abc").as_f64(), None);
    }
}
