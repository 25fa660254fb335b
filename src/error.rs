//! error: one error shape for every command, as cargo has it. An error is
//! data — where, what, why (its causes), how far the run got, and what to
//! do next — and one printer ([`Error::render`]) writes it:
//!
//! ```text
//! error: <location>: <message>
//!
//! Caused by:
//!     <cause>
//!
//! no host was changed.
//! help: <what to do next>
//! ```
//!
//! Code below `ops` keeps returning `anyhow` errors and says what to do
//! next with a [`Hint`] in the chain; an op turns the chain into an
//! [`Error`] and says how far the run got ([`Reach`]).

use std::fmt;

use crate::spec::SpecError;

/// How far a failed run got with the hosts: said after the error, so the
/// operator knows whether anything needs looking at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// It stopped before connecting to any host.
    NotContacted,
    /// It connected (and looked), but changed nothing.
    NotChanged,
}

impl fmt::Display for Reach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reach::NotContacted => "no host was contacted",
            Reach::NotChanged => "no host was changed",
        })
    }
}

/// One thing that is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `file:line:col` in the repo, when the problem has one.
    pub location: Option<String>,
    pub message: String,
    /// What to do about this problem alone (a repo's diagnostics each have one).
    pub help: Option<String>,
}

/// An error as the user reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Usually one; a repo with several problems reports all at once, and
    /// an apply reports every failed host.
    pub problems: Vec<Problem>,
    /// Why, outermost first: the messages of the layers below.
    pub causes: Vec<String>,
    pub reach: Option<Reach>,
    /// What to do next.
    pub help: Option<String>,
}

impl Error {
    /// One problem, with no location.
    pub fn new(message: impl Into<String>) -> Error {
        Error::of(vec![message.into()])
    }

    /// One problem per message (several hosts failing the same way).
    pub fn of(messages: Vec<String>) -> Error {
        Error {
            problems: messages
                .into_iter()
                .map(|message| Problem {
                    location: None,
                    message,
                    help: None,
                })
                .collect(),
            causes: Vec::new(),
            reach: None,
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Error {
        self.help = Some(help.into());
        self
    }

    /// Says how far the run got.
    pub fn reached(mut self, reach: Reach) -> Error {
        self.reach = Some(reach);
        self
    }

    /// For `map_err` at a stage boundary: the anyhow chain as an error
    /// that says how far the run got.
    pub fn at(reach: Reach) -> impl Fn(anyhow::Error) -> Error {
        move |e| Error::from(e).reached(reach)
    }

    /// Everything the user reads on stderr for this error.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for p in &self.problems {
            match &p.location {
                Some(l) => out.push_str(&format!("error: {l}: {}\n", p.message)),
                None => out.push_str(&format!("error: {}\n", p.message)),
            }
            if let Some(help) = &p.help {
                out.push_str(&format!("  help: {help}\n"));
            }
        }
        if !self.causes.is_empty() {
            out.push_str("\nCaused by:\n");
            for c in &self.causes {
                out.push_str(&format!("    {c}\n"));
            }
        }
        let located = self.problems.iter().any(|p| p.location.is_some());
        let closing = match (located, self.reach) {
            (true, Some(reach)) => Some(format!(
                "{} problem(s) found; {reach}.",
                self.problems.len()
            )),
            (true, None) => Some(format!("{} problem(s) found.", self.problems.len())),
            (false, Some(reach)) => Some(format!("{reach}.")),
            (false, None) => None,
        };
        if closing.is_some() || self.help.is_some() {
            out.push('\n');
        }
        if let Some(line) = closing {
            out.push_str(&line);
            out.push('\n');
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("help: {help}\n"));
        }
        out
    }
}

impl From<anyhow::Error> for Error {
    /// The chain's top message, its causes, and the first [`Hint`]'s help.
    /// A [`SpecError`] gives every diagnostic as a problem.
    fn from(e: anyhow::Error) -> Error {
        let top = e.chain().next();
        if let Some(several) = top.and_then(|t| t.downcast_ref::<Problems>()) {
            return Error {
                problems: several.0.clone(),
                causes: Vec::new(),
                reach: None,
                help: None,
            };
        }
        if let Some(spec) = e.downcast_ref::<SpecError>() {
            return Error {
                problems: spec
                    .diagnostics
                    .iter()
                    .map(|d| Problem {
                        location: Some(d.location.to_string()),
                        message: d.message.clone(),
                        help: d.help.clone(),
                    })
                    .collect(),
                causes: Vec::new(),
                reach: None,
                help: None,
            };
        }
        let mut chain = e.chain();
        let message = chain.next().map(|c| c.to_string()).unwrap_or_default();
        let causes = chain.map(|c| c.to_string()).collect();
        let help = e
            .chain()
            .find_map(|c| c.downcast_ref::<Hint>())
            .map(|h| h.help.clone());
        Error {
            causes,
            help,
            ..Error::new(message)
        }
    }
}

impl fmt::Display for Error {
    /// The problems' messages, one per line: for logs. The user's view is
    /// [`Error::render`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self
            .problems
            .iter()
            .map(|p| match &p.location {
                Some(l) => format!("{l}: {}", p.message),
                None => p.message.clone(),
            })
            .collect();
        f.write_str(&lines.join("\n"))
    }
}

impl std::error::Error for Error {}

/// An error message with what to do next, for code that returns `anyhow`
/// errors: `return Err(Hint::new(message, help).into())`. Displays as the
/// message alone; the printer puts the help on its own `help:` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    pub message: String,
    pub help: String,
}

impl Hint {
    pub fn new(message: impl Into<String>, help: impl Into<String>) -> Hint {
        Hint {
            message: message.into(),
            help: help.into(),
        }
    }
}

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hint {}

/// Several problems found at once, each with what to do about it (several
/// images that cannot be resolved): for code that returns `anyhow` errors
/// and must not keep only the first help. The printer gives each problem
/// its own `error:` and `help:` lines; as a string (a log, a report) each
/// help stays under its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// One problem per error, each with the first [`Hint`]'s help in its
    /// chain.
    pub fn of(errors: &[anyhow::Error]) -> Problems {
        Problems(
            errors
                .iter()
                .map(|e| Problem {
                    location: None,
                    message: format!("{e:#}"),
                    help: e
                        .chain()
                        .find_map(|c| c.downcast_ref::<Hint>())
                        .map(|h| h.help.clone()),
                })
                .collect(),
        )
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(&p.message)?;
            if let Some(help) = &p.help {
                write!(f, "\n  help: {help}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// An `anyhow` error of `message`, with `help` when there is one: for
/// typed errors that know what to do about them (`e.help()`).
pub fn hinted(message: impl Into<String>, help: Option<String>) -> anyhow::Error {
    match help {
        Some(help) => Hint::new(message, help).into(),
        None => anyhow::Error::msg(message.into()),
    }
}

/// `e` on one line, its help after it: for where an error becomes a string
/// in a plan, a report or a log (an unreachable host, a failed step).
pub fn one_line(e: &anyhow::Error) -> String {
    match e.chain().find_map(|c| c.downcast_ref::<Hint>()) {
        Some(hint) => format!("{e:#}\n  help: {}", hint.help),
        None => format!("{e:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_reach_and_help_each_get_their_line() {
        let e = anyhow::Error::new(Hint::new("permission denied", "run as the owner"))
            .context("cannot read `p.json`");
        let shown = Error::from(e).reached(Reach::NotChanged).render();
        assert_eq!(
            shown,
            "error: cannot read `p.json`\n\nCaused by:\n    permission denied\n\nno host was changed.\nhelp: run as the owner\n"
        );
    }

    #[test]
    fn a_bare_error_is_one_line() {
        assert_eq!(Error::new("boom").render(), "error: boom\n");
    }

    #[test]
    fn several_problems_keep_each_help() {
        let errors = vec![
            anyhow::Error::new(Hint::new("registry `a` refused", "log in to `a`")),
            anyhow::anyhow!("registry `b` answered 500"),
        ];
        let e: anyhow::Error = Problems::of(&errors).into();
        assert_eq!(
            e.to_string(),
            "registry `a` refused\n  help: log in to `a`\nregistry `b` answered 500"
        );
        assert_eq!(
            Error::from(e).reached(Reach::NotChanged).render(),
            "error: registry `a` refused\n  help: log in to `a`\nerror: registry `b` answered 500\n\nno host was changed.\n"
        );
    }

    #[test]
    fn one_line_keeps_the_help() {
        let e = anyhow::Error::new(Hint::new("refused", "start sshd")).context("host `a`");
        assert_eq!(one_line(&e), "host `a`: refused\n  help: start sshd");
    }
}
