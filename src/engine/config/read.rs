//! Reading one JSON object strictly: typed getters that name the key in every error, and the unknown-key check
//! that suggests the nearest valid key. Numbers may arrive as JSON numbers or as strings, because
//! `{{args.*}}` substitution usually produces strings; an empty string reads as "not set".
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use super::ConfigError;
use crate::engine::{duration, promql};

/// One JSON object of the configuration, read key by key.
#[derive(Debug, Clone, Copy)]
pub struct Keys<'a> {
    map: &'a Map<String, Value>,
    /// Prefix of every key named in errors (`basicAuth.`, `tls.`, or nothing at the top level).
    prefix: &'static str,
}

impl<'a> Keys<'a> {
    pub fn new(map: &'a Map<String, Value>) -> Keys<'a> {
        Keys { map, prefix: "" }
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// The raw value of `key` (`None` when absent or `null`), for a key with a parser of its own.
    pub fn raw(&self, key: &str) -> Option<&'a Value> {
        self.get(key)
    }

    /// Whether `key` is present with a value other than `null`.
    pub fn is_set(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The keys present, `null` ones excluded.
    pub fn present(&self) -> impl Iterator<Item = &'a String> + 'a {
        self.map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, _)| k)
    }

    /// Refuses keys outside `known`, naming the nearest valid one.
    pub fn only(&self, known: &[&str]) -> Result<(), ConfigError> {
        for key in self.map.keys() {
            if !known.contains(&key.as_str()) {
                return Err(ConfigError::UnknownKey {
                    key: self.full(key),
                    nearest: nearest(key, known.iter().copied()),
                });
            }
        }
        Ok(())
    }

    pub fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ConfigError::WrongType {
                key: self.full(key),
                expected: "a string",
            }),
        }
    }

    /// A string that is not blank (a blank one, as an empty `{{args.x}}` gives, reads as unset).
    pub fn text(&self, key: &str) -> Result<Option<String>, ConfigError> {
        Ok(self.string(key)?.filter(|v| !v.trim().is_empty()))
    }

    pub fn number(&self, key: &str) -> Result<Option<f64>, ConfigError> {
        let wrong = || ConfigError::WrongType {
            key: self.full(key),
            expected: "a number",
        };
        let n = match self.get(key) {
            None => return Ok(None),
            Some(Value::Number(n)) => n.as_f64().ok_or_else(wrong)?,
            Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
            Some(Value::String(s)) => s.trim().parse::<f64>().map_err(|_| wrong())?,
            Some(_) => return Err(wrong()),
        };
        if !n.is_finite() {
            return Err(wrong());
        }
        Ok(Some(n))
    }

    /// A number that `accept`s, else `reason` names what is allowed.
    pub fn number_where(
        &self,
        key: &str,
        accept: impl Fn(f64) -> bool,
        reason: &str,
    ) -> Result<Option<f64>, ConfigError> {
        match self.number(key)? {
            Some(n) if !accept(n) => Err(self.invalid(key, reason)),
            n => Ok(n),
        }
    }

    /// A whole number in `1..=max`.
    pub fn count(&self, key: &str, max: f64, reason: &str) -> Result<Option<u64>, ConfigError> {
        Ok(self
            .number_where(key, |n| n >= 1.0 && n.fract() == 0.0 && n <= max, reason)?
            .map(|n| n as u64))
    }

    pub fn boolean(&self, key: &str) -> Result<bool, ConfigError> {
        match self.get(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if s == "true" => Ok(true),
            Some(Value::String(s)) if s == "false" || s.is_empty() => Ok(false),
            Some(_) => Err(ConfigError::WrongType {
                key: self.full(key),
                expected: "true or false",
            }),
        }
    }

    pub fn duration(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        let text = self.string(key).map_err(|_| ConfigError::WrongType {
            key: self.full(key),
            expected: "a duration such as `5m`",
        })?;
        match text {
            None => Ok(None),
            Some(s) if s.trim().is_empty() => Ok(None),
            Some(s) => duration::parse(&s)
                .map(Some)
                .map_err(|e| self.invalid(key, &e.to_string())),
        }
    }

    /// A list of strings, or one string (as `{{args.image}}` substitution produces).
    pub fn string_list(
        &self,
        key: &str,
        expected: &'static str,
    ) -> Result<Vec<String>, ConfigError> {
        let wrong = || ConfigError::WrongType {
            key: self.full(key),
            expected,
        };
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.trim().to_string()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(|s| s.trim().to_string())
                        .ok_or_else(wrong)
                })
                .collect(),
            Some(_) => Err(wrong()),
        }
    }

    /// One of a closed set of names (`expected` is what the error calls them: "source", "signal", …).
    pub fn one_of<T: Copy>(
        &self,
        key: &str,
        expected: &str,
        all: &[T],
        name: impl Fn(T) -> &'static str,
    ) -> Result<Option<T>, ConfigError> {
        let Some(text) = self.text(key)? else {
            return Ok(None);
        };
        all.iter()
            .copied()
            .find(|v| name(*v) == text)
            .map(Some)
            .ok_or_else(|| {
                let names: Vec<String> = all.iter().map(|v| format!("`{}`", name(*v))).collect();
                self.invalid(
                    key,
                    &format!(
                        "unknown {expected} `{text}`; expected one of {}",
                        names.join(", ")
                    ),
                )
            })
    }

    pub fn path(&self, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(PathBuf::from(s))),
            Some(_) => Err(ConfigError::WrongType {
                key: self.full(key),
                expected: "a file path",
            }),
        }
    }

    /// A nested object, read with `prefix` in its errors.
    pub fn object(&self, key: &str, prefix: &'static str) -> Result<Option<Keys<'a>>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Keys { map, prefix })),
            Some(_) => Err(ConfigError::WrongType {
                key: self.full(key),
                expected: "an object",
            }),
        }
    }

    /// An object of string values, each named `key.<name>` in errors.
    pub fn strings(&self, key: &str) -> Result<Vec<(&'a String, &'a String)>, ConfigError> {
        let Some(object) = self.object(key, "")? else {
            return Ok(Vec::new());
        };
        object
            .map
            .iter()
            .map(|(name, value)| match value {
                Value::String(v) => Ok((name, v)),
                _ => Err(ConfigError::WrongType {
                    key: format!("{key}.{name}"),
                    expected: "a string",
                }),
            })
            .collect()
    }

    /// `key`: an object of label → exact value, label names validated.
    pub fn matchers(&self, key: &str) -> Result<promql::Matchers, ConfigError> {
        let pairs: BTreeMap<String, String> = self
            .strings(key)?
            .into_iter()
            .map(|(label, value)| (label.clone(), value.clone()))
            .collect();
        promql::Matchers::new(pairs).map_err(|e| self.invalid(key, &e.to_string()))
    }

    pub fn invalid(&self, key: &str, reason: &str) -> ConfigError {
        ConfigError::Invalid {
            key: self.full(key),
            reason: reason.to_string(),
        }
    }
}

/// The candidate closest to `key` by edit distance (case-insensitive), if it is close enough to be a typo.
pub fn nearest<'k>(key: &str, candidates: impl Iterator<Item = &'k str>) -> Option<String> {
    let key_lower = key.to_ascii_lowercase();
    candidates
        .map(|k| (strsim::levenshtein(&key_lower, &k.to_ascii_lowercase()), k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_is_a_close_case_insensitive_match() {
        let known = ["threshold", "podTemplateHash", "window"];
        assert_eq!(
            nearest("thresold", known.into_iter()).as_deref(),
            Some("threshold")
        );
        assert_eq!(
            nearest("podtemplatehash", known.into_iter()).as_deref(),
            Some("podTemplateHash")
        );
        assert_eq!(nearest("colour", known.into_iter()), None);
    }
}
