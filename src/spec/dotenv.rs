//! Compose's dotenv syntax, for a stack's `.env` and for `env_file`.
//!
//! One `KEY=VALUE` per line (`export ` in front is allowed, `KEY: VALUE`
//! too); `#` starts a comment at the start of a line or, in an unquoted
//! value, after whitespace. Single quotes keep everything literally, double
//! quotes understand `\n`, `\t`, `\r`, `\\`, `\"`, `\$`; both may span lines.
//! Unquoted and double-quoted values are interpolated (`${VAR:-x}`), from
//! the runner's environment first and then the names set earlier in the same
//! file, as compose-go does. A key alone on its line takes its value from
//! the lookup, and is left out when that has none.

use super::interpolate::{self, TemplateError};

/// One `KEY=VALUE` of a dotenv file, with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// A problem at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// A variable used without a default and not set: a warning, not an error.
    pub unset: Option<String>,
}

/// Parses `text`. Problems that stop a line (a bad key, an unclosed quote,
/// a missing required variable) are returned alongside the good entries.
pub(crate) fn parse(
    text: &str,
    lookup: &mut dyn FnMut(&str) -> Option<String>,
) -> (Vec<Entry>, Vec<Problem>) {
    let mut entries: Vec<Entry> = Vec::new();
    let mut problems = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut n = 0;
    while n < lines.len() {
        let line_no = n + 1;
        let line = lines[n];
        n += 1;
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        let body = trimmed
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(trimmed);
        let key_len = body
            .bytes()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
            .count();
        let key = &body[..key_len];
        let after = body[key_len..].trim_start();
        let key_column = indent + (trimmed.len() - body.len()) + 1;
        if key.is_empty() || key.starts_with(|c: char| c.is_ascii_digit()) {
            problems.push(Problem {
                line: line_no,
                column: key_column,
                message: format!("`{}` is not a `KEY=VALUE` line", shorten(trimmed)),
                unset: None,
            });
            continue;
        }
        let raw_value = if let Some(v) = after.strip_prefix('=').or_else(|| after.strip_prefix(':'))
        {
            v.trim_start()
        } else if after.is_empty() || after.starts_with('#') {
            // `KEY` alone: inherit it from the lookup, or leave it out.
            let mut look = |name: &str| lookup(name);
            if let Some(value) = look(key) {
                entries.push(Entry {
                    key: key.to_string(),
                    value,
                    line: line_no,
                });
            }
            continue;
        } else {
            problems.push(Problem {
                line: line_no,
                column: key_column,
                message: format!("`{}` is not a `KEY=VALUE` line", shorten(trimmed)),
                unset: None,
            });
            continue;
        };
        let value_column = line.len() - raw_value.len() + 1;
        let quote = raw_value.chars().next().filter(|c| *c == '"' || *c == '\'');
        let value = match quote {
            Some(q) => {
                // The value runs to the matching quote, maybe lines later.
                let mut collected = String::new();
                let mut rest = &raw_value[1..];
                let closed = loop {
                    if let Some(end) = closing_quote(rest, q) {
                        collected.push_str(&rest[..end]);
                        break true;
                    }
                    collected.push_str(rest);
                    if n >= lines.len() {
                        break false;
                    }
                    collected.push('\n');
                    rest = lines[n];
                    n += 1;
                };
                if !closed {
                    problems.push(Problem {
                        line: line_no,
                        column: value_column,
                        message: format!("the value of `{key}` has no closing {q}"),
                        unset: None,
                    });
                    continue;
                }
                if q == '\'' {
                    Some(collected)
                } else {
                    Some(unescape_double(&collected))
                }
            }
            None => {
                let unquoted = match raw_value.find(" #").or_else(|| raw_value.find("\t#")) {
                    Some(i) => &raw_value[..i],
                    None => raw_value,
                };
                Some(unquoted.trim_end().to_string())
            }
        };
        let Some(value) = value else { continue };
        let value = if quote == Some('\'') {
            value
        } else {
            let known: Vec<(String, String)> = entries
                .iter()
                .map(|e| (e.key.clone(), e.value.clone()))
                .collect();
            let mut look = |name: &str| {
                lookup(name).or_else(|| {
                    known
                        .iter()
                        .rev()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                })
            };
            match interpolate::expand(&value, &mut look) {
                Ok(expanded) => {
                    for name in expanded.unset {
                        problems.push(Problem {
                            line: line_no,
                            column: value_column,
                            message: format!(
                                "variable `{name}` is not set; `{key}` uses an empty string"
                            ),
                            unset: Some(name),
                        });
                    }
                    expanded.text
                }
                Err(e) => {
                    problems.push(Problem {
                        line: line_no,
                        column: value_column,
                        message: template_message(&e),
                        unset: None,
                    });
                    continue;
                }
            }
        };
        entries.retain(|e| e.key != key);
        entries.push(Entry {
            key: key.to_string(),
            value,
            line: line_no,
        });
    }
    (entries, problems)
}

/// The message for a template error, shared with Compose files.
pub(crate) fn template_message(error: &TemplateError) -> String {
    match error {
        TemplateError::Invalid(t) => format!("invalid interpolation format `{t}`"),
        TemplateError::Required { name, message } if message.is_empty() => {
            format!("required variable `{name}` is missing a value")
        }
        TemplateError::Required { name, message } => {
            format!("required variable `{name}` is missing a value: {message}")
        }
    }
}

fn shorten(text: &str) -> String {
    let short: String = text.chars().take(40).collect();
    if short.len() < text.len() {
        format!("{short}…")
    } else {
        short
    }
}

/// Byte index of the closing quote in `text`; in double quotes a
/// backslash escapes the next character.
fn closing_quote(text: &str, quote: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' && quote == '"' {
            escaped = true;
        } else if c == quote {
            return Some(i);
        }
    }
    None
}

fn unescape_double(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            // `\$` is a literal dollar: keep it escaped for interpolation.
            Some('$') => out.push_str("$$"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}
