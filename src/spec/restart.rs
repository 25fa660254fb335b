//! A container's restart policy, parsed once from its Compose form
//! (`no`, `always`, `unless-stopped`, `on-failure[:N]`); every other stage
//! (the engine mapping, the plan's drift check) reads the typed value.

use std::fmt;
use std::str::FromStr;

/// The engine's restart policy. Serialized in Compose form, so the spec's
/// canonical JSON (and so every spec hash) reads as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RestartPolicy {
    /// None set: the engine's default (`no`). Never read from a Compose
    /// file (berth's default there is `unless-stopped`); the empty value of
    /// a spec built in code, serialized as `""` as it always was.
    #[default]
    EngineDefault,
    No,
    Always,
    /// berth's default for services: a reconciler expects containers to stay up.
    UnlessStopped,
    /// Restart on a non-zero exit, at most N times when given (N > 0).
    OnFailure(Option<u32>),
}

impl FromStr for RestartPolicy {
    type Err = String;

    /// The one parser. The error says what was found and what is allowed.
    fn from_str(text: &str) -> Result<RestartPolicy, String> {
        let policy = match text {
            "no" => Some(RestartPolicy::No),
            "always" => Some(RestartPolicy::Always),
            "unless-stopped" => Some(RestartPolicy::UnlessStopped),
            "on-failure" => Some(RestartPolicy::OnFailure(None)),
            other => other
                .strip_prefix("on-failure:")
                .and_then(|n| n.parse::<u32>().ok())
                .map(|n| RestartPolicy::OnFailure((n > 0).then_some(n))),
        };
        policy.ok_or_else(|| {
            format!("must be `no`, `always`, `on-failure[:N]` or `unless-stopped`, found `{text}`")
        })
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartPolicy::EngineDefault => Ok(()),
            RestartPolicy::No => f.write_str("no"),
            RestartPolicy::Always => f.write_str("always"),
            RestartPolicy::UnlessStopped => f.write_str("unless-stopped"),
            RestartPolicy::OnFailure(None) => f.write_str("on-failure"),
            RestartPolicy::OnFailure(Some(n)) => write!(f, "on-failure:{n}"),
        }
    }
}

/// Tests and callers compare with the Compose form: `restart == "always"`.
impl PartialEq<&str> for RestartPolicy {
    fn eq(&self, other: &&str) -> bool {
        let text = self.to_string();
        text.as_str() == *other
    }
}

impl serde::Serialize for RestartPolicy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for RestartPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RestartPolicy, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if text.is_empty() {
            return Ok(RestartPolicy::EngineDefault);
        }
        text.parse()
            .map_err(|e: String| serde::de::Error::custom(format!("`restart` {e}")))
    }
}

impl schemars::JsonSchema for RestartPolicy {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        String::schema_name()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
    fn inline_schema() -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies_read_back_in_compose_form() {
        for text in [
            "no",
            "always",
            "unless-stopped",
            "on-failure",
            "on-failure:3",
        ] {
            let policy: RestartPolicy = text.parse().expect(text);
            assert_eq!(policy.to_string(), text);
        }
        assert_eq!("on-failure:0".parse(), Ok(RestartPolicy::OnFailure(None)));
        // Unset in code reads and writes as before: `""`.
        let unset: RestartPolicy = serde_json::from_str("\"\"").expect("empty");
        assert_eq!(unset, RestartPolicy::EngineDefault);
        assert_eq!(serde_json::to_string(&unset).expect("json"), "\"\"");
        for bad in ["sometimes", "on-failure:", "on-failure:x", "always:3", ""] {
            assert!(bad.parse::<RestartPolicy>().is_err(), "{bad}");
        }
    }
}
