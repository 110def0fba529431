//! One struct per `server.conf` section (facts 4.1). Field docs name the
//! INI key and its default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use config_source::{parse_net, parse_socket_addr, split_list, EtcdConfig, Reader, SourceType};

use super::{Config, ConfigError, ListenAddr, Secret};

/// `[http]`.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `listen` (env): space separated addresses; unset = no plain listener.
    pub listen: Vec<ListenAddr>,
    /// `readtimeout`, default 15 s.
    pub read_timeout: Duration,
    /// `writetimeout`, default 30 s.
    pub write_timeout: Duration,
}

/// `[https]`.
#[derive(Debug, Clone)]
pub struct HttpsConfig {
    pub listen: Vec<ListenAddr>,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    /// `certificate` / `key`: required when `listen` is set.
    pub certificate: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// `[app]`.
#[derive(Debug, Clone)]
pub struct AppConfig {
    pub debug: bool,
    pub allow_subscribe_any: bool,
    /// `trustedproxies`, default loopback only.
    pub trusted_proxies: Vec<IpNet>,
    /// `shutdowngrace` (ours): seconds SIGTERM drains like SIGUSR1 before
    /// the remaining clients are closed; 0 (default) closes them at once.
    pub shutdown_grace: std::time::Duration,
}

/// `[sessions]`.
#[derive(Debug, Clone)]
pub struct SessionsConfig {
    /// `hashkey` (env): required.
    pub hash_key: Secret,
    /// `blockkey` (env): 16, 24 or 32 bytes; unset = ids not encrypted.
    pub block_key: Option<Secret>,
    /// True for the embedded default, where the key is random per process.
    pub generated_hashkey: bool,
}

/// `[clients]`.
#[derive(Debug, Clone)]
pub struct ClientsConfig {
    /// `internalsecret` (env): unset = internal clients refused.
    pub internal_secret: Secret,
}

/// `[federation]`.
#[derive(Debug, Clone)]
pub struct FederationConfig {
    pub skip_verify: bool,
    /// `timeout`, default 10 s.
    pub timeout: Duration,
}

/// One configured Nextcloud (facts 2.7).
#[derive(Debug, Clone)]
pub struct BackendEntry {
    pub id: String,
    /// Normalized URLs (trailing `/`, no default port), sorted. Empty for
    /// the compat backend, which matches any path.
    pub urls: Vec<String>,
    pub secret: Secret,
    pub allow_http: bool,
    /// 0 = unlimited.
    pub session_limit: u64,
    pub max_stream_bitrate: u64,
    pub max_screen_bitrate: u64,
    /// Legacy `allowed` hostnames of the compat backend (empty = any host
    /// when `allowall`).
    pub hosts: Vec<String>,
}

/// `[backend]` plus the per-backend sections.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    pub backend_type: SourceType,
    pub backend_prefix: Option<String>,
    pub allow_all: bool,
    /// The common secret.
    pub secret: Secret,
    /// `timeout`, default 10 s.
    pub timeout: Duration,
    /// `connectionsperhost`, default 8.
    pub connections_per_host: usize,
    pub skip_verify: bool,
    /// Backends from `backends = ...` sections.
    pub backends: Vec<BackendEntry>,
    /// The compat backend (`allowall` or legacy `allowed`).
    pub compat: Option<BackendEntry>,
}

/// `[nats]`.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// `url` (env), default `nats://127.0.0.1:4222`.
    pub urls: Vec<String>,
}

impl NatsConfig {
    pub fn is_loopback(&self) -> bool {
        self.urls
            .iter()
            .any(|u| u == "nats://loopback" || u == ":loopback:")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McuType {
    Janus,
    Proxy,
}

/// `[mcu]`.
#[derive(Debug, Clone)]
pub struct McuConfig {
    pub kind: Option<McuType>,
    pub urls: Vec<String>,
    pub max_stream_bitrate: u64,
    pub max_screen_bitrate: u64,
    pub allowed_candidates: Vec<IpNet>,
    pub blocked_candidates: Vec<IpNet>,
    pub timeout: Duration,
    pub proxy_timeout: Duration,
    /// `urltype`: where the proxies come from.
    pub url_type: SourceType,
    pub skip_verify: bool,
    pub token_id: Option<String>,
    pub token_key: Option<PathBuf>,
    pub dns_discovery: bool,
    pub key_prefix: Option<String>,
}

/// `[turn]`.
#[derive(Debug, Clone)]
pub struct TurnConfig {
    pub api_key: Secret,
    pub secret: Secret,
    pub servers: Vec<String>,
}

/// `[geoip]`, `[geoip-overrides]`, `[continent-overrides]`.
#[derive(Debug, Clone)]
pub struct GeoIpConfig {
    pub license: Option<Secret>,
    pub url: Option<String>,
    pub overrides: Vec<(IpNet, String)>,
    pub continent_overrides: Vec<(String, Vec<String>)>,
}

/// `[stats]`.
#[derive(Debug, Clone)]
pub struct StatsConfig {
    /// `allowed_ips`, default exactly 127.0.0.1 and ::1.
    pub allowed_ips: Vec<IpNet>,
}

/// `[grpc]`.
#[derive(Debug, Clone)]
pub struct GrpcConfig {
    pub listen: Option<SocketAddr>,
    pub server_certificate: Option<PathBuf>,
    pub server_key: Option<PathBuf>,
    pub server_ca: Option<PathBuf>,
    pub client_certificate: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
    /// `targettype`: where the gRPC targets come from.
    pub target_type: SourceType,
    pub targets: Vec<String>,
    pub dns_discovery: bool,
    pub target_prefix: Option<String>,
}

pub(super) fn read_all(r: &mut Reader<'_>) -> Result<Config, ConfigError> {
    let backend = read_backend(r)?;
    let config = Config {
        http: HttpConfig {
            listen: r.listen("http")?,
            read_timeout: secs(r.positive_int("http", "readtimeout", 15)?),
            write_timeout: secs(r.positive_int("http", "writetimeout", 30)?),
        },
        https: read_https(r)?,
        app: AppConfig {
            debug: r.bool("app", "debug")?,
            allow_subscribe_any: r.bool("app", "allowsubscribeany")?,
            trusted_proxies: r.nets(
                "app",
                "trustedproxies",
                transport::realip::DEFAULT_TRUSTED_PROXIES,
            )?,
            shutdown_grace: secs(r.positive_int("app", "shutdowngrace", 0)?),
        },
        clients: ClientsConfig {
            internal_secret: Secret::new(
                r.str_env("clients", "internalsecret").unwrap_or_default(),
            ),
        },
        federation: FederationConfig {
            skip_verify: r.bool("federation", "skipverify")?,
            timeout: secs(r.positive_int("federation", "timeout", 10)?),
        },
        nats: NatsConfig {
            urls: {
                let urls = split_list(&r.str_env("nats", "url").unwrap_or_default(), ',');
                if urls.is_empty() {
                    vec!["nats://127.0.0.1:4222".into()]
                } else {
                    urls
                }
            },
        },
        mcu: read_mcu(r)?,
        turn: read_turn(r)?,
        geoip: read_geoip(r)?,
        stats: StatsConfig {
            allowed_ips: r.nets("stats", "allowed_ips", &["127.0.0.1/32", "::1/128"])?,
        },
        // The reference's server takes etcd options missing in [etcd] from
        // [mcu] (deprecated).
        etcd: EtcdConfig::read(r, Some("mcu")),
        grpc: read_grpc(r)?,
        // Last: a missing hashkey cannot be got past, so every other
        // error is reported first (`parse_reporting_all`).
        sessions: read_sessions(r)?,
        backend,
        warnings: Vec::new(),
    };
    super::unknown_keys::warn_unknown(r, &config);
    Ok(Config {
        warnings: std::mem::take(&mut r.warnings),
        ..config
    })
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn read_https(r: &Reader<'_>) -> Result<HttpsConfig, ConfigError> {
    let listen = r.listen("https")?;
    let certificate = r.str("https", "certificate").map(PathBuf::from);
    let key = r.str("https", "key").map(PathBuf::from);
    if !listen.is_empty() {
        if certificate.is_none() {
            return Err(ConfigError::invalid(
                "https",
                "certificate",
                "required when [https] listen is set",
            ));
        }
        if key.is_none() {
            return Err(ConfigError::invalid(
                "https",
                "key",
                "required when [https] listen is set",
            ));
        }
    }
    Ok(HttpsConfig {
        listen,
        read_timeout: secs(r.positive_int("https", "readtimeout", 15)?),
        write_timeout: secs(r.positive_int("https", "writetimeout", 30)?),
        certificate,
        key,
    })
}

fn read_sessions(r: &mut Reader<'_>) -> Result<SessionsConfig, ConfigError> {
    let hash_key = r
        .str_env("sessions", "hashkey")
        .ok_or_else(|| ConfigError::invalid("sessions", "hashkey", "required"))?;
    if hash_key.len() != 32 && hash_key.len() != 64 {
        r.warn(format!(
            "[sessions] hashkey has {} bytes; 32 or 64 are recommended",
            hash_key.len()
        ));
    }
    let block_key = r.str_env("sessions", "blockkey");
    if let Some(b) = &block_key {
        if ![16, 24, 32].contains(&b.len()) {
            return Err(ConfigError::invalid(
                "sessions",
                "blockkey",
                format!("must be 16, 24 or 32 bytes, got {}", b.len()),
            ));
        }
    }
    Ok(SessionsConfig {
        hash_key: Secret::new(hash_key),
        block_key: block_key.map(Secret::new),
        generated_hashkey: false,
    })
}

/// Normalizes a configured backend URL: trailing `/`, default port dropped.
pub(crate) fn normalize_backend_url(
    section: &str,
    key: &str,
    u: &str,
) -> Result<String, ConfigError> {
    let with_slash = if u.ends_with('/') {
        u.to_owned()
    } else {
        format!("{u}/")
    };
    let parsed = url::Url::parse(&with_slash)
        .map_err(|e| ConfigError::invalid(section, key, format!("invalid URL {u:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(ConfigError::invalid(
            section,
            key,
            format!("not an http(s) URL: {u:?}"),
        ));
    }
    Ok(parsed.to_string())
}

fn read_backend(r: &mut Reader<'_>) -> Result<BackendConfig, ConfigError> {
    let backend_type = r.source_type("backend", "backendtype")?;
    let secret = Secret::new(r.str_env("backend", "secret").unwrap_or_default());
    let allow_all = r.bool("backend", "allowall")?;
    let limits = |r: &Reader<'_>, section: &str| -> Result<(u64, u64, u64), ConfigError> {
        Ok((
            r.positive_int(section, "sessionlimit", 0)?,
            r.positive_int(section, "maxstreambitrate", 0)?,
            r.positive_int(section, "maxscreenbitrate", 0)?,
        ))
    };
    let mut backends: Vec<BackendEntry> = Vec::new();
    let mut compat = None;
    if backend_type == SourceType::Static {
        let mut ids = r.list("backend", "backends");
        let mut seen = std::collections::HashSet::new();
        ids.retain(|id| seen.insert(id.clone()));
        for id in ids {
            let mut urls = r
                .str_env(&id, "urls")
                .map(|v| split_list(&v, ','))
                .unwrap_or_default();
            if urls.is_empty() {
                if let Some(u) = r.str_env(&id, "url") {
                    urls.push(u);
                }
            }
            if urls.is_empty() {
                r.warn(format!("backend [{id}] has no urls and is skipped"));
                continue;
            }
            let mut normalized = Vec::new();
            for u in urls {
                let n = normalize_backend_url(&id, "urls", &u)?;
                if backends.iter().any(|b| b.urls.contains(&n)) {
                    r.warn(format!(
                        "[{id}] url {n} is already used by another backend and is skipped"
                    ));
                    continue;
                }
                normalized.push(n);
            }
            normalized.sort();
            normalized.dedup();
            let own = r.str_env(&id, "secret").map(Secret::new);
            let secret = match own {
                Some(s) => s,
                None if !secret.is_empty() => secret.clone(),
                None => {
                    r.warn(format!("backend [{id}] has no secret and is skipped"));
                    continue;
                }
            };
            let (session_limit, max_stream_bitrate, max_screen_bitrate) = limits(r, &id)?;
            backends.push(BackendEntry {
                allow_http: normalized.iter().any(|u| u.starts_with("http://")),
                id,
                urls: normalized,
                secret,
                session_limit,
                max_stream_bitrate,
                max_screen_bitrate,
                hosts: Vec::new(),
            });
        }
        let allowed: Vec<String> = r
            .list("backend", "allowed")
            .into_iter()
            .map(|h| h.split('/').next().unwrap_or("").to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        if allow_all || (backends.is_empty() && !allowed.is_empty()) {
            if secret.is_empty() {
                return Err(ConfigError::invalid(
                    "backend",
                    "secret",
                    "required with allowall or allowed",
                ));
            }
            let (session_limit, max_stream_bitrate, max_screen_bitrate) = limits(r, "backend")?;
            compat = Some(BackendEntry {
                id: "compat".into(),
                urls: Vec::new(),
                secret: secret.clone(),
                allow_http: allow_all || r.bool("backend", "allowhttp")?,
                session_limit,
                max_stream_bitrate,
                max_screen_bitrate,
                hosts: if allow_all { Vec::new() } else { allowed },
            });
        }
    }
    let connections = r.positive_int("backend", "connectionsperhost", 8)?;
    Ok(BackendConfig {
        backend_type,
        backend_prefix: r.str("backend", "backendprefix"),
        allow_all,
        secret,
        timeout: secs(r.positive_int("backend", "timeout", 10)?),
        connections_per_host: connections as usize,
        skip_verify: r.bool("backend", "skipverify")?,
        backends,
        compat,
    })
}

fn read_mcu(r: &mut Reader<'_>) -> Result<McuConfig, ConfigError> {
    let urls_raw = r.str_env("mcu", "url");
    let kind = match r.str("mcu", "type").as_deref() {
        None if urls_raw.is_some() => Some(McuType::Janus),
        None => None,
        Some("janus") => Some(McuType::Janus),
        Some("proxy") => Some(McuType::Proxy),
        Some(other) => {
            return Err(ConfigError::invalid(
                "mcu",
                "type",
                format!("unknown type {other:?}"),
            ))
        }
    };
    let urls = match kind {
        Some(McuType::Proxy) => split_list(&urls_raw.unwrap_or_default(), ' '),
        _ => urls_raw.into_iter().collect(),
    };
    let url_type = r.source_type("mcu", "urltype")?;
    Ok(McuConfig {
        kind,
        urls,
        max_stream_bitrate: r.positive_int("mcu", "maxstreambitrate", 1_048_576)?,
        max_screen_bitrate: r.positive_int("mcu", "maxscreenbitrate", 2_097_152)?,
        allowed_candidates: r.nets("mcu", "allowedcandidates", &[])?,
        blocked_candidates: r.nets("mcu", "blockedcandidates", &[])?,
        timeout: secs(r.positive_int("mcu", "timeout", 10)?),
        proxy_timeout: secs(r.positive_int("mcu", "proxytimeout", 2)?),
        url_type,
        skip_verify: r.bool("mcu", "skipverify")?,
        token_id: r.str("mcu", "token_id"),
        token_key: r.str("mcu", "token_key").map(PathBuf::from),
        dns_discovery: r.bool("mcu", "dnsdiscovery")?,
        key_prefix: r.str("mcu", "keyprefix"),
    })
}

fn read_turn(r: &Reader<'_>) -> Result<TurnConfig, ConfigError> {
    let t = TurnConfig {
        api_key: Secret::new(r.str_env("turn", "apikey").unwrap_or_default()),
        secret: Secret::new(r.str_env("turn", "secret").unwrap_or_default()),
        servers: r.list("turn", "servers"),
    };
    if !t.servers.is_empty() {
        if t.api_key.is_empty() {
            return Err(ConfigError::invalid(
                "turn",
                "apikey",
                "required when [turn] servers is set",
            ));
        }
        if t.secret.is_empty() {
            return Err(ConfigError::invalid(
                "turn",
                "secret",
                "required when [turn] servers is set",
            ));
        }
    }
    Ok(t)
}

fn read_geoip(r: &Reader<'_>) -> Result<GeoIpConfig, ConfigError> {
    let mut overrides = Vec::new();
    for (k, v) in r.ini.keys("geoip-overrides") {
        let net = parse_net(k)
            .ok_or_else(|| ConfigError::invalid("geoip-overrides", k, "invalid IP or CIDR"))?;
        overrides.push((net, v.to_ascii_uppercase()));
    }
    let continent_overrides = r
        .ini
        .keys("continent-overrides")
        .map(|(k, v)| {
            (
                k.to_ascii_uppercase(),
                split_list(&v.to_ascii_uppercase(), ','),
            )
        })
        .collect();
    Ok(GeoIpConfig {
        license: r.str("geoip", "license").map(Secret::new),
        url: r
            .str("geoip", "url")
            .filter(|u| u != "default" && u != "none"),
        overrides,
        continent_overrides,
    })
}

fn read_grpc(r: &Reader<'_>) -> Result<GrpcConfig, ConfigError> {
    let listen = match r.str_env("grpc", "listen") {
        None => None,
        Some(a) => Some(parse_socket_addr(&a).ok_or_else(|| {
            ConfigError::invalid("grpc", "listen", format!("invalid address {a:?}"))
        })?),
    };
    let target_type = r.source_type("grpc", "targettype")?;
    Ok(GrpcConfig {
        listen,
        server_certificate: r.str("grpc", "servercertificate").map(PathBuf::from),
        server_key: r.str("grpc", "serverkey").map(PathBuf::from),
        server_ca: r.str("grpc", "serverca").map(PathBuf::from),
        client_certificate: r.str("grpc", "clientcertificate").map(PathBuf::from),
        client_key: r.str("grpc", "clientkey").map(PathBuf::from),
        client_ca: r.str("grpc", "clientca").map(PathBuf::from),
        target_type,
        targets: r.list("grpc", "targets"),
        dns_discovery: r.bool("grpc", "dnsdiscovery")?,
        target_prefix: r.str("grpc", "targetprefix"),
    })
}
