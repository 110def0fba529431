//! Typed configuration read once at start-up from the reference's
//! `server.conf` (facts 4.1). Each section has its own struct; constructors
//! elsewhere take these, never the INI.

pub mod ini;
mod sections;

use std::net::SocketAddr;
use std::path::Path;

pub use sections::*;

use ini::{Env, Ini, ProcessEnv};

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

/// The whole server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub http: HttpConfig,
    pub https: HttpsConfig,
    pub app: AppConfig,
    pub sessions: SessionsConfig,
    pub clients: ClientsConfig,
    pub federation: FederationConfig,
    pub backend: BackendConfig,
    pub nats: NatsConfig,
    pub mcu: McuConfig,
    pub turn: TurnConfig,
    pub geoip: GeoIpConfig,
    pub stats: StatsConfig,
    pub etcd: EtcdConfig,
    pub grpc: GrpcConfig,
    /// Problems that do not stop start-up (unknown keys, weak keys).
    pub warnings: Vec<String>,
}

impl Config {
    /// Reads `path` with the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_ini_str(&text, &ProcessEnv)
    }

    /// Parses INI text with an explicit environment (tests pass a map).
    pub fn from_ini_str(text: &str, env: &dyn Env) -> Result<Config, ConfigError> {
        let ini = Ini::parse(text)?;
        let mut r = Reader {
            ini: &ini,
            env,
            warnings: Vec::new(),
        };
        let config = sections::read_all(&mut r)?;
        Ok(config)
    }

    /// The embedded default: one node, in-process bus, no SFU, plain HTTP on
    /// 127.0.0.1:8080. Session ids are signed with a key generated for this
    /// process, so resume ids do not survive a restart.
    pub fn embedded_default() -> Config {
        use rand::RngCore;
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        let text = format!(
            "[http]\nlisten = 127.0.0.1:8080\n[sessions]\nhashkey = {}\n[nats]\nurl = nats://loopback\n",
            hex::encode(key)
        );
        // The text above is fixed and valid.
        match Self::from_ini_str(&text, &ProcessEnv) {
            Ok(mut c) => {
                c.sessions.generated_hashkey = true;
                c
            }
            Err(e) => unreachable!("embedded default config is invalid: {e}"),
        }
    }

    /// What a real deployment must still configure, for start-up logs.
    pub fn deployment_hints(&self) -> Vec<String> {
        let mut hints = Vec::new();
        if self.backend.backends.is_empty() && !self.backend.allow_all {
            hints.push(
                "no Nextcloud backend is configured: every hello fails with invalid_backend; \
                 set [backend] backends = <id> and [<id>] urls/secret"
                    .into(),
            );
        }
        if self.sessions.generated_hashkey {
            hints.push(
                "[sessions] hashkey is generated per process: set it (32 or 64 bytes) so \
                 resume ids survive restarts and are valid across nodes"
                    .into(),
            );
        }
        if self.clients.internal_secret.is_empty() {
            hints.push(
                "[clients] internalsecret is unset: internal clients (recording, SIP bridge) \
                 are refused with invalid_client_type"
                    .into(),
            );
        }
        if self.nats.is_loopback() {
            hints.push(
                "[nats] url = nats://loopback: single node only; set a NATS url to cluster".into(),
            );
        }
        if self.mcu.kind.is_none() {
            hints.push("[mcu] is not configured: no media through an SFU".into());
        }
        hints
    }
}

/// Reads typed values and records warnings; shared with the proxy's
/// `proxy.conf`.
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

    /// A list of IPs/CIDRs, `default` when unset.
    pub fn nets(
        &self,
        section: &str,
        key: &str,
        default: &[&str],
    ) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        sections::read_nets(self, section, key, default)
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

    pub fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }
}

pub(crate) fn split_list(s: &str, sep: char) -> Vec<String> {
    s.split(sep)
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A listener address: TCP or Unix socket path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(std::path::PathBuf),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests;
