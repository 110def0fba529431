//! etcd: one client setup (endpoints, TLS) and one prefix watcher shared by
//! everything read from etcd (backends, gRPC targets), with the watch
//! semantics of cluster facts 3.2: read the prefix, then watch it from the
//! next revision; on errors start again with backoff.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub mod gateway;

pub use gateway::Client;
use tokio_util::sync::CancellationToken;

use std::path::PathBuf;

use crate::Reader;

/// `[etcd]`: the same section in `server.conf` and `proxy.conf`.
#[derive(Debug, Clone, Default)]
pub struct EtcdConfig {
    pub endpoints: Vec<String>,
    pub discovery_srv: Option<String>,
    pub discovery_service: Option<String>,
    pub client_key: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub ca_cert: Option<PathBuf>,
}

impl EtcdConfig {
    /// Reads `[etcd]`. Options missing there are taken from `compat`
    /// (`[mcu]` in `server.conf`, `[tokens]` in `proxy.conf`, where older
    /// versions had them) with a deprecation warning, as the reference
    /// does.
    pub fn read(r: &mut Reader<'_>, compat: Option<&str>) -> EtcdConfig {
        let mut warnings = Vec::new();
        let mut get = |key: &str| -> Option<String> {
            if let Some(v) = r.str("etcd", key) {
                return Some(v);
            }
            let section = compat?;
            let v = r.str(section, key)?;
            warnings.push(format!(
                "[{section}] {key} is deprecated: set it in [etcd] instead"
            ));
            Some(v)
        };
        let config = EtcdConfig {
            endpoints: get("endpoints")
                .map(|v| crate::split_list(&v, ','))
                .unwrap_or_default(),
            discovery_srv: get("discoverysrv"),
            discovery_service: get("discoveryservice"),
            client_key: get("clientkey").map(PathBuf::from),
            client_cert: get("clientcert").map(PathBuf::from),
            ca_cert: get("cacert").map(PathBuf::from),
        };
        for w in warnings {
            r.warn(w);
        }
        config
    }

    /// Whether etcd is configured at all (endpoints or DNS discovery).
    pub fn is_configured(&self) -> bool {
        !self.endpoints.is_empty() || self.discovery_srv.is_some()
    }
}

const RETRY_START: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(8);

/// The documents below a prefix: key -> raw value.
pub type Documents = BTreeMap<String, Vec<u8>>;

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("no etcd endpoints configured")]
    NoEndpoints,
    #[error("could not discover etcd endpoints for {domain}: {message}")]
    Discovery { domain: String, message: String },
    #[error("[etcd] TLS needs clientkey, clientcert and cacert together")]
    PartialTls,
    #[error("[etcd] TLS: {0}")]
    Tls(String),
    #[error("etcd: {0}")]
    Http(String),
    #[error("etcd: {0}")]
    Protocol(String),
}

/// The endpoints to dial: `[etcd] endpoints`, or else the answers to the
/// DNS SRV records of `discoverysrv` that etcd itself documents:
/// `_etcd-client-ssl[-<discoveryservice>]._tcp.<domain>` (https) and
/// `_etcd-client[-<discoveryservice>]._tcp.<domain>` (http). Looked up at
/// every (re)connect, so a changed record is followed.
pub async fn endpoints(config: &EtcdConfig) -> Result<Vec<String>, EtcdError> {
    if !config.endpoints.is_empty() {
        return Ok(config.endpoints.clone());
    }
    let Some(domain) = &config.discovery_srv else {
        return Err(EtcdError::NoEndpoints);
    };
    let discovery = |message: String| EtcdError::Discovery {
        domain: domain.clone(),
        message,
    };
    let resolver = hickory_resolver::TokioResolver::builder_tokio()
        .map_err(|e| discovery(e.to_string()))?
        .build();
    let suffix = config
        .discovery_service
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| format!("-{s}"))
        .unwrap_or_default();
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for (service, scheme) in [("etcd-client-ssl", "https"), ("etcd-client", "http")] {
        let name = format!("_{service}{suffix}._tcp.{}", domain.trim_end_matches('.'));
        match resolver.srv_lookup(name.as_str()).await {
            Ok(records) => {
                for srv in records.iter() {
                    let target = srv.target().to_utf8();
                    let host = target.trim_end_matches('.');
                    found.push(format!("{scheme}://{host}:{}", srv.port()));
                }
            }
            Err(e) => errors.push(format!("{name}: {e}")),
        }
    }
    if found.is_empty() {
        return Err(discovery(errors.join("; ")));
    }
    Ok(found)
}

/// Connects to the configured endpoints (with TLS when all three files
/// are set).
pub async fn connect(config: &EtcdConfig) -> Result<Client, EtcdError> {
    Ok(connect_with_endpoints(config).await?.0)
}

/// As [`connect`], also returning the endpoints dialled.
pub async fn connect_with_endpoints(
    config: &EtcdConfig,
) -> Result<(Client, Vec<String>), EtcdError> {
    let endpoints = endpoints(config).await?;
    let client = Client::connect(config, endpoints.clone()).await?;
    Ok((client, endpoints))
}

/// Whether every prefix watched in etcd is connected, shared by the
/// watches of one process for readiness and `serverinfo`.
#[derive(Debug, Clone, Default)]
pub struct EtcdStatus(Arc<parking_lot::Mutex<StatusInner>>);

#[derive(Debug, Default)]
struct StatusInner {
    endpoints: Vec<String>,
    /// Prefix -> whether its watch is established.
    watches: BTreeMap<String, bool>,
}

/// What [`EtcdStatus::snapshot`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdState {
    pub endpoints: Vec<String>,
    /// Every watch has read its prefix and is watching it.
    pub connected: bool,
}

impl EtcdStatus {
    fn set(&self, prefix: &str, endpoints: &[String], connected: bool) {
        let mut s = self.0.lock();
        s.endpoints = endpoints.to_vec();
        s.watches.insert(prefix.to_owned(), connected);
    }

    /// `None` while nothing watches etcd.
    pub fn snapshot(&self) -> Option<EtcdState> {
        let s = self.0.lock();
        if s.watches.is_empty() {
            return None;
        }
        Some(EtcdState {
            endpoints: s.endpoints.clone(),
            connected: s.watches.values().all(|c| *c),
        })
    }
}

/// Calls `apply` with every document below `prefix`, first once all are
/// read and then after each change, until `shutdown`; `status` follows
/// whether the watch is established.
pub async fn watch_prefix(
    config: EtcdConfig,
    prefix: String,
    status: EtcdStatus,
    shutdown: CancellationToken,
    mut apply: impl FnMut(&Documents) + Send,
) {
    let mut delay = RETRY_START;
    status.set(&prefix, &config.endpoints, false);
    loop {
        let run = watch_once(&config, &prefix, &status, &mut apply);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = run => if let Err(e) = r {
                tracing::warn!(prefix, error = %e, "etcd watch failed, retrying");
            },
        }
        status.set(&prefix, &config.endpoints, false);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(RETRY_MAX);
    }
}

async fn watch_once(
    config: &EtcdConfig,
    prefix: &str,
    status: &EtcdStatus,
    apply: &mut (impl FnMut(&Documents) + Send),
) -> Result<(), EtcdError> {
    let (client, endpoints) = connect_with_endpoints(config).await?;
    let (mut docs, revision) = client.get_prefix(prefix).await?;
    apply(&docs);
    let mut watch = client.watch_prefix(prefix, revision + 1).await?;
    status.set(prefix, &endpoints, true);
    while let Some(changes) = watch.next().await? {
        for change in changes {
            match change {
                gateway::Change::Put { key, value } => {
                    docs.insert(key, value);
                }
                gateway::Change::Delete { key } => {
                    docs.remove(&key);
                }
            }
        }
        apply(&docs);
    }
    Ok(())
}
