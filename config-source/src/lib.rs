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
