//! Compose variable interpolation, as the Compose Specification defines it:
//! `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`,
//! `${VAR?message}`, `${VAR:+alt}`, `${VAR+alt}`, nested (`${A:-${B:-x}}`)
//! and `$$` for a literal `$`.
//!
//! Applied to every scalar value of a Compose file's tree (never to keys)
//! before the typed model is read, so each value keeps its `line:col` and
//! its plain/quoted style: `replicas: ${N}` is still a number afterwards.
//!
//! Differences from compose-go, on purpose: a `$` followed by neither a
//! name, `{` nor `$` is kept literally (as compose-go does), and an unset
//! variable inside an unused default is not reported.

use super::yaml::{Kind, Node};

/// Why a template could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TemplateError {
    /// `${` without a valid name and operator, or without its closing `}`.
    Invalid(String),
    /// `${VAR:?message}` / `${VAR?message}` with the variable missing.
    Required { name: String, message: String },
}

/// The result of expanding one string.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Expanded {
    pub text: String,
    /// Variables used without a default that are not set (each once, in order).
    pub unset: Vec<String>,
}

/// Expands `text`, looking names up with `lookup` (None = not set).
pub(crate) fn expand(
    text: &str,
    lookup: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<Expanded, TemplateError> {
    let mut out = Expanded::default();
    if !text.contains('$') {
        out.text = text.to_string();
        return Ok(out);
    }
    expand_into(text, lookup, &mut out)?;
    Ok(out)
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn expand_into(
    text: &str,
    lookup: &mut dyn FnMut(&str) -> Option<String>,
    out: &mut Expanded,
) -> Result<(), TemplateError> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut literal_from = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        out.text.push_str(&text[literal_from..i]);
        match bytes.get(i + 1) {
            Some(b'$') => {
                out.text.push('$');
                i += 2;
            }
            Some(&c) if is_name_start(c) => {
                let end = i
                    + 1
                    + bytes[i + 1..]
                        .iter()
                        .take_while(|&&c| is_name_char(c))
                        .count();
                let name = &text[i + 1..end];
                match lookup(name) {
                    Some(value) => out.text.push_str(&value),
                    None => note_unset(out, name),
                }
                i = end;
            }
            Some(b'{') => {
                let close = closing_brace(bytes, i)
                    .ok_or_else(|| TemplateError::Invalid(text[i..].to_string()))?;
                braced(&text[i..=close], &text[i + 2..close], lookup, out)?;
                i = close + 1;
            }
            _ => {
                out.text.push('$');
                i += 1;
            }
        }
        literal_from = i;
    }
    out.text.push_str(&text[literal_from..]);
    Ok(())
}

fn note_unset(out: &mut Expanded, name: &str) {
    if !out.unset.iter().any(|n| n == name) {
        out.unset.push(name.to_string());
    }
}

/// Index of the `}` closing the `${` at `start`, counting nested `${`.
fn closing_brace(bytes: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while i < bytes.len() {
        if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'$') {
            i += 2;
            continue;
        }
        if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'{') {
            depth += 1;
            i += 2;
            continue;
        }
        if bytes[i] == b'}' {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
        i += 1;
    }
    None
}

/// `${...}`: `whole` is the full template (for messages), `inner` what is
/// between the braces.
fn braced(
    whole: &str,
    inner: &str,
    lookup: &mut dyn FnMut(&str) -> Option<String>,
    out: &mut Expanded,
) -> Result<(), TemplateError> {
    let bytes = inner.as_bytes();
    if bytes.is_empty() || !is_name_start(bytes[0]) {
        return Err(TemplateError::Invalid(whole.to_string()));
    }
    let name_end = bytes.iter().take_while(|&&c| is_name_char(c)).count();
    let name = &inner[..name_end];
    let rest = &inner[name_end..];
    if rest.is_empty() {
        match lookup(name) {
            Some(value) => out.text.push_str(&value),
            None => note_unset(out, name),
        }
        return Ok(());
    }
    let (colon, op, arg) = match rest.as_bytes() {
        [b':', op @ (b'-' | b'?' | b'+'), ..] => (true, *op, &rest[2..]),
        [op @ (b'-' | b'?' | b'+'), ..] => (false, *op, &rest[1..]),
        _ => return Err(TemplateError::Invalid(whole.to_string())),
    };
    // The argument is itself a template (nested defaults, `$$`).
    let mut argument = Expanded::default();
    expand_into(arg, lookup, &mut argument)?;
    let value = lookup(name);
    let present = match &value {
        Some(v) => !colon || !v.is_empty(),
        None => false,
    };
    match op {
        b'-' => {
            if present {
                out.text.push_str(value.as_deref().unwrap_or_default());
            } else {
                out.text.push_str(&argument.text);
                for n in argument.unset {
                    note_unset(out, &n);
                }
            }
        }
        b'+' => {
            if present {
                out.text.push_str(&argument.text);
                for n in argument.unset {
                    note_unset(out, &n);
                }
            } else {
                out.text.push_str(value.as_deref().unwrap_or_default());
            }
        }
        _ => {
            if !present {
                return Err(TemplateError::Required {
                    name: name.to_string(),
                    message: argument.text,
                });
            }
            out.text.push_str(value.as_deref().unwrap_or_default());
        }
    }
    Ok(())
}

/// A problem found while interpolating a tree, at the value's node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TreeProblem {
    pub line: usize,
    pub column: usize,
    /// Dotted path of the value (`services.api.image`), for messages.
    pub path: String,
    pub kind: TreeProblemKind,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TreeProblemKind {
    Template(TemplateError),
    /// A variable used without a default and not set (became empty).
    Unset(String),
}

/// Interpolates every scalar value under `node` in place. Keys are left as
/// written. Returns the problems in tree order.
pub(crate) fn interpolate_tree(
    node: &mut Node,
    lookup: &mut dyn FnMut(&str, usize, usize) -> Option<String>,
) -> Vec<TreeProblem> {
    let mut problems = Vec::new();
    let mut path = Vec::new();
    walk(node, lookup, &mut path, &mut problems);
    problems
}

fn walk(
    node: &mut Node,
    lookup: &mut dyn FnMut(&str, usize, usize) -> Option<String>,
    path: &mut Vec<String>,
    problems: &mut Vec<TreeProblem>,
) {
    let (line, column) = (node.line, node.column);
    match &mut node.kind {
        Kind::Null => {}
        Kind::Scalar { text, .. } => {
            let at = |kind| TreeProblem {
                line,
                column,
                path: path.join("."),
                kind,
            };
            let mut at_value = |name: &str| lookup(name, line, column);
            match expand(text, &mut at_value) {
                Ok(expanded) => {
                    for name in expanded.unset {
                        problems.push(at(TreeProblemKind::Unset(name)));
                    }
                    *text = expanded.text;
                }
                Err(e) => problems.push(at(TreeProblemKind::Template(e))),
            }
        }
        Kind::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(i.to_string());
                walk(item, lookup, path, problems);
                path.pop();
            }
        }
        Kind::Map(entries) => {
            for (key, value) in entries.iter_mut() {
                path.push(key.key_text().unwrap_or_default().to_string());
                walk(value, lookup, path, problems);
                path.pop();
            }
        }
    }
}
