//! Typed configuration read once at start-up from the reference's
//! `server.conf` (facts 4.1). Each section has its own struct; constructors
//! elsewhere take these, never the INI.

mod files;
pub mod from_env;
mod sections;
mod unknown_keys;

use std::path::Path;

pub use config_source::{ConfigError, EtcdConfig, ListenAddr, Secret};
pub use sections::*;

use config_source::ini::{Env, Ini, ProcessEnv};
use config_source::Reader;

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
        config_source::parse_reporting_all(ini, |ini| {
            let mut r = Reader::new(ini, env);
            sections::read_all(&mut r)
        })
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

#[cfg(test)]
mod tests;
