//! Typed values out of an [`Ini`], with warnings collected for the log.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use ipnet::IpNet;

use crate::ini::{self, Env, Ini};
use crate::ConfigError;

/// Reads typed values and records warnings.
pub struct Reader<'a> {
    pub ini: &'a Ini,
    pub env: &'a dyn Env,
    pub warnings: Vec<String>,
}

impl<'a> Reader<'a> {
    pub fn new(ini: &'a Ini, env: &'a dyn Env) -> Self {
        Reader {
            ini,
            env,
            warnings: Vec::new(),
        }
    }

    /// Raw value, empty treated as unset.
    pub fn str(&self, section: &str, key: &str) -> Option<String> {
        self.ini
            .get(section, key)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    /// Value with `$(NAME)` environment substitution.
    pub fn str_env(&self, section: &str, key: &str) -> Option<String> {
        self.str(section, key)
            .map(|v| ini::substitute_env(&v, self.env))
            .filter(|v| !v.is_empty())
    }

    pub fn bool(&self, section: &str, key: &str) -> Result<bool, ConfigError> {
        match self.str(section, key) {
            None => Ok(false),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "1" | "t" | "true" | "y" | "yes" | "on" => Ok(true),
                "0" | "f" | "false" | "n" | "no" | "off" => Ok(false),
                _ => Err(ConfigError::invalid(
                    section,
                    key,
                    format!("not a boolean: {v:?}"),
                )),
            },
        }
    }

    /// An integer where unset or <= 0 means `default`.
    pub fn positive_int(&self, section: &str, key: &str, default: u64) -> Result<u64, ConfigError> {
        match self.str(section, key) {
            None => Ok(default),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n > 0 => Ok(n as u64),
                Ok(_) => Ok(default),
                Err(_) => Err(ConfigError::invalid(
                    section,
                    key,
                    format!("not an integer: {v:?}"),
                )),
            },
        }
    }

    /// A comma separated list, entries trimmed, empty ones dropped.
    pub fn list(&self, section: &str, key: &str) -> Vec<String> {
        split_list(&self.str(section, key).unwrap_or_default(), ',')
    }

    /// A list of IPs/CIDRs, `default` when unset.
    pub fn nets(
        &self,
        section: &str,
        key: &str,
        default: &[&str],
    ) -> Result<Vec<IpNet>, ConfigError> {
        let list = self.list(section, key);
        let list: Vec<String> = if list.is_empty() {
            default.iter().map(|s| s.to_string()).collect()
        } else {
            list
        };
        list.iter()
            .map(|s| {
                parse_net(s).ok_or_else(|| {
                    ConfigError::invalid(section, key, format!("invalid IP or CIDR {s:?}"))
                })
            })
            .collect()
    }

    /// `listen` of `section`: space separated `host:port`, `:port` (every
    /// address, as in Go) or absolute Unix socket paths; with environment
    /// substitution.
    pub fn listen(&self, section: &str) -> Result<Vec<ListenAddr>, ConfigError> {
        let Some(v) = self.str_env(section, "listen") else {
            return Ok(Vec::new());
        };
        split_list(&v, ' ')
            .into_iter()
            .map(|a| {
                if a.starts_with('/') {
                    return Ok(ListenAddr::Unix(PathBuf::from(a)));
                }
                parse_socket_addr(&a).map(ListenAddr::Tcp).ok_or_else(|| {
                    ConfigError::invalid(section, "listen", format!("invalid address {a:?}"))
                })
            })
            .collect()
    }

    /// `static` (the default) or `etcd`: where a list of backends,
    /// proxies, gRPC targets or token keys comes from.
    pub fn source_type(&self, section: &str, key: &str) -> Result<SourceType, ConfigError> {
        match self.str(section, key).as_deref() {
            None | Some("static") => Ok(SourceType::Static),
            Some("etcd") => Ok(SourceType::Etcd),
            Some(other) => Err(ConfigError::invalid(
                section,
                key,
                format!("unknown type {other:?}"),
            )),
        }
    }

    pub fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }
}

/// `s` split at `sep`, entries trimmed, empty ones dropped.
pub fn split_list(s: &str, sep: char) -> Vec<String> {
    s.split(sep)
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// An IP network, or a single address as a host network.
pub fn parse_net(s: &str) -> Option<IpNet> {
    if let Ok(n) = s.parse::<IpNet>() {
        return Some(n);
    }
    s.parse::<std::net::IpAddr>().ok().map(IpNet::from)
}

/// `host:port`, or `:port` for every address as in Go.
pub fn parse_socket_addr(a: &str) -> Option<SocketAddr> {
    if let Ok(sa) = a.parse() {
        return Some(sa);
    }
    if let Some(port) = a.strip_prefix(':') {
        return format!("0.0.0.0:{port}").parse().ok();
    }
    a.to_socket_addrs().ok()?.next()
}

/// Where a list comes from: the configuration file, or etcd (watched).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceType {
    #[default]
    Static,
    Etcd,
}

/// A listener address: TCP or Unix socket path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}
