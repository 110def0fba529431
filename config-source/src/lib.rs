//! Where the server's and the proxy's configuration comes from.
//!
//! - [`ini`]: the reference's INI dialect (`server.conf`, `proxy.conf`),
//!   with `$(NAME)` environment substitution.
//! - [`Reader`]: typed values out of it (booleans, positive integers,
//!   lists, IP networks, listen addresses), each error naming section and
//!   key; [`Secret`] keeps secrets out of logs.
//! - [`etcd`]: the `[etcd]` section, one client setup and one prefix
//!   watcher for everything read from etcd (backends, proxies, gRPC
//!   targets, proxy token keys).
//!
//! Both binaries build their own typed config on top of this; neither
//! depends on the other.

pub mod etcd;
pub mod ini;
mod reader;

pub use etcd::EtcdConfig;
pub use reader::{parse_net, parse_socket_addr, split_list, ListenAddr, Reader, SourceType};

/// A configuration error, naming the section and key where it can.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("syntax error at line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("[{section}] {key}: {message}")]
    Invalid {
        section: String,
        key: String,
        message: String,
    },
    /// Several errors, one per line.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Many(Vec<ConfigError>),
}

impl ConfigError {
    pub fn invalid(section: &str, key: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            section: section.into(),
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Parses `ini` with `parse`, reporting every error rather than the first:
/// after an error in a key that is set, the key is dropped (its default
/// applies) and parsing runs again, until it succeeds or an error cannot
/// be got past (a required key that is missing, say).
pub fn parse_reporting_all<T>(
    mut ini: ini::Ini,
    mut parse: impl FnMut(&ini::Ini) -> Result<T, ConfigError>,
) -> Result<T, ConfigError> {
    let mut errors = Vec::new();
    loop {
        match parse(&ini) {
            Ok(value) if errors.is_empty() => return Ok(value),
            Ok(_) => break,
            Err(e) => {
                let dropped = match &e {
                    ConfigError::Invalid { section, key, .. } => ini.remove(section, key),
                    _ => false,
                };
                errors.push(e);
                if !dropped {
                    break;
                }
            }
        }
    }
    if errors.len() == 1 {
        Err(errors.remove(0))
    } else {
        Err(ConfigError::Many(errors))
    }
}

/// What `--check-config` prints for a loaded configuration: its warnings,
/// then either every error of `check` (exit 1) or the configuration with
/// secrets masked by their `Debug` (exit 0).
pub fn report_check<C: std::fmt::Debug>(
    loaded: Result<C, ConfigError>,
    warnings: impl Fn(&C) -> &[String],
    check: impl Fn(&C) -> Vec<ConfigError>,
) -> std::process::ExitCode {
    let config = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration invalid:\n{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    for w in warnings(&config) {
        eprintln!("warning: {w}");
    }
    let errors = check(&config);
    if !errors.is_empty() {
        eprintln!("configuration invalid:");
        for e in errors {
            eprintln!("{e}");
        }
        return std::process::ExitCode::FAILURE;
    }
    println!("{config:#?}");
    eprintln!("configuration OK");
    std::process::ExitCode::SUCCESS
}

/// A secret string that never appears in `Debug` output or logs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("Secret(<unset>)")
        } else {
            f.write_str("Secret(<redacted>)")
        }
    }
}
