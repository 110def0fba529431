//! A reader for the reference's INI dialect (Go `goconf`): `[section]`,
//! `key = value` (or `key: value`), `#`/`;` comment lines, and `$(NAME)`
//! environment substitution on the options that allow it.

use std::collections::BTreeMap;

use crate::ConfigError;

/// The parsed file: section -> key -> (value, line).
#[derive(Debug, Default, Clone)]
pub struct Ini {
    sections: BTreeMap<String, BTreeMap<String, (String, usize)>>,
}

impl Ini {
    pub fn parse(text: &str) -> Result<Ini, ConfigError> {
        let mut ini = Ini::default();
        let mut current = String::from("default");
        for (idx, raw) in text.lines().enumerate() {
            let line_no = idx + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let Some(name) = rest.strip_suffix(']') else {
                    return Err(ConfigError::Syntax {
                        line: line_no,
                        message: "section header without closing ']'".into(),
                    });
                };
                current = name.trim().to_owned();
                ini.sections.entry(current.clone()).or_default();
                continue;
            }
            let split = line.find(['=', ':']).ok_or_else(|| ConfigError::Syntax {
                line: line_no,
                message: format!("expected 'key = value', got {line:?}"),
            })?;
            let key = line[..split].trim().to_owned();
            let value = line[split + 1..].trim().to_owned();
            if key.is_empty() {
                return Err(ConfigError::Syntax {
                    line: line_no,
                    message: "empty key".into(),
                });
            }
            ini.sections
                .entry(current.clone())
                .or_default()
                .insert(key, (value, line_no));
        }
        Ok(ini)
    }

    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.sections
            .get(section)?
            .get(key)
            .map(|(v, _)| v.as_str())
    }

    /// Removes a key (so its default applies); whether it was there.
    pub fn remove(&mut self, section: &str, key: &str) -> bool {
        self.sections
            .get_mut(section)
            .is_some_and(|s| s.remove(key).is_some())
    }

    pub fn has_section(&self, section: &str) -> bool {
        self.sections.contains_key(section)
    }

    pub fn sections(&self) -> impl Iterator<Item = &str> {
        self.sections.keys().map(String::as_str)
    }

    pub fn keys(&self, section: &str) -> impl Iterator<Item = (&str, &str)> {
        self.sections
            .get(section)
            .into_iter()
            .flat_map(|s| s.iter().map(|(k, (v, _))| (k.as_str(), v.as_str())))
    }
}

/// Where environment variables come from: the process in production, a map
/// in tests (no `set_var`).
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// Replaces every `$(NAME)` by the variable's value; an unset variable is
/// replaced by its bare name, as the reference does.
pub fn substitute_env(value: &str, env: &dyn Env) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find(')') {
            Some(end) => {
                let name = &after[..end];
                out.push_str(&env.var(name).unwrap_or_else(|| name.to_owned()));
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_comments_and_both_separators() {
        let ini = Ini::parse(
            "# comment\n; other\ntop = 1\n[http]\nlisten = 127.0.0.1:8080\n\n[app]\ndebug: true\n",
        )
        .unwrap();
        assert_eq!(ini.get("default", "top"), Some("1"));
        assert_eq!(ini.get("http", "listen"), Some("127.0.0.1:8080"));
        assert_eq!(ini.get("app", "debug"), Some("true"));
        assert_eq!(ini.get("app", "missing"), None);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = Ini::parse("[http]\nlisten\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(Ini::parse("[http\n").is_err());
    }

    #[test]
    fn env_substitution_quirk() {
        let mut env = BTreeMap::new();
        env.insert("SECRET".to_string(), "s3cr3t".to_string());
        assert_eq!(substitute_env("$(SECRET)", &env), "s3cr3t");
        assert_eq!(substitute_env("a-$(SECRET)-b", &env), "a-s3cr3t-b");
        assert_eq!(substitute_env("$(UNSET_VAR)", &env), "UNSET_VAR");
        assert_eq!(substitute_env("$(broken", &env), "$(broken");
    }
}
