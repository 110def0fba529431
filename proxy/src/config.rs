//! `proxy.conf` (upstream facts 4.2), read with the INI dialect both
//! processes share (`config-source`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config_source::ini::{Env, Ini, ProcessEnv};
use config_source::{ConfigError, EtcdConfig, Reader, SourceType};
use ipnet::IpNet;

/// `[app] tokentype` and what it needs.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// `[tokens]`: token id -> RSA public key file.
    Static(Vec<(String, PathBuf)>),
    /// The `[tokens] keyformat` patterns, looked up in `[etcd]`.
    Etcd {
        formats: Vec<String>,
        etcd: EtcdConfig,
    },
}

impl TokenSource {
    /// The static entries (none for etcd).
    pub fn static_keys(&self) -> &[(String, PathBuf)] {
        match self {
            TokenSource::Static(keys) => keys,
            TokenSource::Etcd { .. } => &[],
        }
    }
}

/// The whole `proxy.conf`.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub listen: Vec<SocketAddr>,
    /// `[http] readtimeout` / `writetimeout` (15 s each, as the reference).
    pub http_timeouts: transport::http_serve::HttpTimeouts,
    pub country: Option<String>,
    pub trusted_proxies: Vec<IpNet>,
    /// Where the signaling servers' public keys come from.
    pub tokens: TokenSource,
    pub janus_url: String,
    pub timeout: Duration,
    pub max_stream_bitrate: u64,
    pub max_screen_bitrate: u64,
    pub allowed_candidates: Vec<IpNet>,
    pub blocked_candidates: Vec<IpNet>,
    pub stats_allowed: Vec<IpNet>,
    /// `[bandwidth]` limits in bits/s; 0 = unlimited.
    pub incoming_limit: u64,
    pub outgoing_limit: u64,
    /// `[app] token_id` / `token_key`: how this proxy signs in to other
    /// proxies for remote streams.
    pub token_id: Option<String>,
    pub token_key: Option<PathBuf>,
    /// `[app] hostname`: where other proxies' Janus sends RTP for remote
    /// streams; the first non-loopback address when unset.
    pub hostname: Option<String>,
    /// `[app] skipverify`: certificates of other proxies are not checked.
    /// The reference documents it in `[app]` but reads `[backend]
    /// skipverify`; either is honoured.
    pub skip_verify: bool,
    /// `[app] shutdowngrace` (ours): seconds SIGTERM drains like SIGUSR1
    /// before the remaining sessions are ended; 0 ends them at once.
    pub shutdown_grace: Duration,
    pub warnings: Vec<String>,
}

const MEGABIT: u64 = 1024 * 1024;

impl ProxyConfig {
    pub fn load(path: &Path) -> Result<ProxyConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_ini_str(&text, &ProcessEnv)
    }

    /// Parses INI text, reporting every error (see
    /// `config_source::parse_reporting_all`).
    pub fn from_ini_str(text: &str, env: &dyn Env) -> Result<ProxyConfig, ConfigError> {
        let ini = Ini::parse(text)?;
        config_source::parse_reporting_all(ini, |ini| Self::read(ini, env))
    }

    fn read(ini: &Ini, env: &dyn Env) -> Result<ProxyConfig, ConfigError> {
        let mut r = Reader::new(ini, env);
        let listen = r
            .str_env("http", "listen")
            .unwrap_or_default()
            .split_whitespace()
            .map(|a| {
                a.parse::<SocketAddr>().map_err(|_| {
                    ConfigError::invalid("http", "listen", format!("invalid address {a:?}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let country = match r.str("app", "country") {
            None => None,
            Some(c) if c.len() == 2 && c.chars().all(|ch| ch.is_ascii_alphabetic()) => {
                Some(c.to_ascii_uppercase())
            }
            Some(c) => {
                return Err(ConfigError::invalid(
                    "app",
                    "country",
                    format!("invalid country {c:?}"),
                ))
            }
        };
        let tokens = match r.source_type("app", "tokentype")? {
            SourceType::Static => TokenSource::Static(
                ini.keys("tokens")
                    .filter(|(k, _)| *k != "keyformat")
                    .map(|(k, v)| (k.to_owned(), PathBuf::from(v)))
                    .collect(),
            ),
            SourceType::Etcd => {
                let mut formats = r.list("tokens", "keyformat");
                if formats.is_empty() {
                    formats.push("/%s".into());
                }
                let etcd = EtcdConfig::read(&mut r, Some("tokens"));
                if !etcd.is_configured() {
                    return Err(ConfigError::invalid(
                        "etcd",
                        "endpoints",
                        "required for tokentype = etcd",
                    ));
                }
                TokenSource::Etcd { formats, etcd }
            }
        };
        match r.str("mcu", "type").as_deref() {
            None | Some("janus") => {}
            Some(other) => {
                return Err(ConfigError::invalid(
                    "mcu",
                    "type",
                    format!("unsupported type {other:?}"),
                ))
            }
        }
        let mbit = |r: &Reader<'_>, key: &str| -> Result<u64, ConfigError> {
            match r.str("bandwidth", key) {
                None => Ok(0),
                Some(v) => v
                    .parse::<f64>()
                    .map(|m| (m.max(0.0) * MEGABIT as f64) as u64)
                    .map_err(|_| {
                        ConfigError::invalid("bandwidth", key, format!("not a number: {v:?}"))
                    }),
            }
        };
        let http_timeouts = transport::http_serve::HttpTimeouts {
            read: Duration::from_secs(r.positive_int("http", "readtimeout", 15)?),
            write: Duration::from_secs(r.positive_int("http", "writetimeout", 15)?),
        };
        let config = ProxyConfig {
            listen,
            http_timeouts,
            country,
            trusted_proxies: r.nets(
                "app",
                "trustedproxies",
                transport::realip::DEFAULT_TRUSTED_PROXIES,
            )?,
            tokens,
            timeout: Duration::from_secs(r.positive_int("mcu", "timeout", 10)?),
            max_stream_bitrate: r.positive_int("mcu", "maxstreambitrate", 1_048_576)?,
            max_screen_bitrate: r.positive_int("mcu", "maxscreenbitrate", 2_097_152)?,
            allowed_candidates: r.nets("mcu", "allowedcandidates", &[])?,
            blocked_candidates: r.nets("mcu", "blockedcandidates", &[])?,
            stats_allowed: r.nets("stats", "allowed_ips", &["127.0.0.1", "::1"])?,
            incoming_limit: mbit(&r, "incoming")?,
            outgoing_limit: mbit(&r, "outgoing")?,
            token_id: r.str("app", "token_id"),
            token_key: r.str("app", "token_key").map(PathBuf::from),
            hostname: r.str("app", "hostname"),
            skip_verify: r.bool("app", "skipverify")? || r.bool("backend", "skipverify")?,
            shutdown_grace: Duration::from_secs(r.positive_int("app", "shutdowngrace", 0)?),
            warnings: Vec::new(),
            // Last: a missing URL cannot be got past, so every other error
            // is reported first.
            janus_url: r
                .str_env("mcu", "url")
                .ok_or_else(|| ConfigError::invalid("mcu", "url", "required"))?,
        };
        let warnings = std::mem::take(&mut r.warnings);
        Ok(ProxyConfig { warnings, ..config })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_config_files() {
        proto::fuzzing::run_str(
            "proxy_conf",
            &[
                include_str!("../../deploy/proxy.conf.example"),
                "[http]\nlisten = 127.0.0.1:9090\n[app]\ncountry = DE\ntokentype = etcd\n[tokens]\nkeyformat = /t/%s\n[etcd]\nendpoints = http://127.0.0.1:2379\n[mcu]\nurl = ws://127.0.0.1:8188\n[bandwidth]\nincoming = 100\n",
            ],
            |t| {
                let _ = ProxyConfig::from_ini_str(t, &NoEnv);
            },
        );
    }

    pub(super) struct NoEnv;
    impl Env for NoEnv {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
    }

    #[test]
    fn reads_the_reference_keys() {
        let c = ProxyConfig::from_ini_str(
            "[http]\nlisten = 127.0.0.1:9090 127.0.0.1:9091\n[app]\ncountry = de\n\
             [tokens]\nserver1 = /etc/proxy/server1.pem\n[mcu]\nurl = ws://127.0.0.1:8188\n\
             [bandwidth]\nincoming = 2\n",
            &NoEnv,
        )
        .unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.country.as_deref(), Some("DE"));
        assert_eq!(
            c.tokens.static_keys(),
            [(
                "server1".to_owned(),
                PathBuf::from("/etc/proxy/server1.pem")
            )]
        );
        assert_eq!(c.incoming_limit, 2 * MEGABIT);
        assert_eq!(c.outgoing_limit, 0);
        assert!(
            ProxyConfig::from_ini_str("[app]\ncountry = xyz\n[mcu]\nurl = ws://x\n", &NoEnv)
                .is_err()
        );
        assert!(ProxyConfig::from_ini_str("[http]\nlisten = 127.0.0.1:1\n", &NoEnv).is_err());
        let err =
            ProxyConfig::from_ini_str("[app]\ntokentype = ldap\n[mcu]\nurl = ws://x\n", &NoEnv)
                .unwrap_err();
        assert_eq!(err.to_string(), "[app] tokentype: unknown type \"ldap\"");
        let c = ProxyConfig::from_ini_str(
            "[app]\ntokentype = etcd\n[etcd]\nendpoints = http://127.0.0.1:2379\n[mcu]\nurl = ws://x\n",
            &NoEnv,
        )
        .unwrap();
        assert!(matches!(c.tokens, TokenSource::Etcd { ref formats, .. } if formats == &["/%s"]));
    }

    #[test]
    fn skipverify_from_app_or_backend() {
        let read = |extra: &str| {
            ProxyConfig::from_ini_str(&format!("[mcu]\nurl = ws://x\n{extra}"), &NoEnv)
                .unwrap()
                .skip_verify
        };
        assert!(!read(""));
        assert!(read("[app]\nskipverify = true\n"));
        assert!(read("[backend]\nskipverify = true\n"));
        assert!(!read("[app]\nskipverify = false\n"));
    }
}
