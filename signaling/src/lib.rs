//! The Nextcloud Talk signaling server.
//!
//! Layout:
//! - [`config`]: `server.conf` read into one typed struct per section.
//! - [`server`]: the axum router and listeners (serving, client
//!   addresses and WebSocket plumbing come from the `transport` crate).
//! - [`client`]: one WebSocket connection (reader/writer tasks, outbox).
//! - [`hub`]: sessions, rooms and routing; one handler file per message.
//! - [`backend`]: the Nextcloud side (backend lookup, HTTP client with
//!   checksums, capabilities).
//! - [`cluster`]: the event bus (in-process loopback or NATS).
//! - [`grpc`]: the services between nodes and their discovery; [`dns`]
//!   re-resolves names for it and for [`proxies`] (where the signaling
//!   proxies come from); `config_source::etcd` watches prefixes for both.
//! - [`geoip`]: client countries from a MaxMind database.
//! - [`federation`]: rooms on other signaling servers.
//! - [`throttle`]: brute-force protection; [`metrics`]: Prometheus;
//!   [`turn`]: TURN REST credentials.
//!
//! Facts are cited from `shared/spec/upstream-facts.md` as "facts N.M".

pub mod api;
pub mod backend;
pub mod client;
pub mod cluster;
pub mod config;
pub mod dns;
pub mod federation;
pub mod geoip;
pub mod grpc;
pub mod hub;
pub mod metrics;
pub mod proxies;
pub mod server;
pub mod throttle;
pub mod turn;

use std::sync::Arc;
use std::time::Duration;

pub use config::Config;
use tokio_util::sync::CancellationToken;

/// How long connections get to close after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Setup(#[from] hub::HubSetupError),
    #[error("[nats] url: {0}")]
    Nats(#[from] cluster::nats::ConnectError),
    #[error(transparent)]
    Grpc(#[from] grpc::server::ServeError),
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// Builds the hub for `config`, connecting the event bus: in-process for
/// `nats://loopback`, a NATS server otherwise.
pub async fn build_hub(config: &Config) -> Result<hub::Hub, Error> {
    let bus: Arc<dyn cluster::EventBus> = if config.nats.is_loopback() {
        Arc::new(cluster::loopback::LoopbackBus::new())
    } else {
        Arc::new(cluster::nats::NatsBus::connect(&config.nats.urls, NATS_CONNECT_TIMEOUT).await?)
    };
    Ok(hub::Hub::new(config, bus)?)
}

/// The watchers that find the other nodes (`[grpc]` targets) and the
/// signaling proxies (`[mcu] type = proxy`). Started before the server
/// serves and stopped with `shutdown`; SIGHUP applies new static lists
/// through [`Discovery::reload`].
pub struct Discovery {
    peers: Arc<grpc::discovery::Discovery>,
    proxies: Option<Arc<proxies::ProxyDiscovery>>,
}

impl Discovery {
    pub fn start(config: &Config, hub: &hub::Hub, shutdown: &CancellationToken) -> Discovery {
        let proxies = hub.inner.proxy_sfu.as_ref().map(|sfu| {
            proxies::ProxyDiscovery::start(
                sfu.clone(),
                &config.mcu,
                &config.etcd,
                hub.inner.etcd.clone(),
                shutdown.clone(),
                hub.inner.tasks.clone(),
            )
        });
        let peers = grpc::discovery::Discovery::start(
            hub.inner.peers.clone(),
            &config.grpc,
            &config.etcd,
            hub.inner.etcd.clone(),
            shutdown.clone(),
            hub.inner.tasks.clone(),
        );
        Discovery { peers, proxies }
    }

    /// Applies a reloaded `[grpc]` target list and `[mcu]` proxy list.
    pub fn reload(&self, config: &Config) {
        self.peers.reload(&config.grpc);
        if let Some(p) = &self.proxies {
            p.reload(&config.mcu);
        }
    }
}

/// How long start-up waits for the NATS server.
pub const NATS_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the server on already-bound listeners until `shutdown` fires.
pub async fn run(
    config: &Config,
    hub: hub::Hub,
    listeners: Vec<server::Listener>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let housekeeping = tokio::spawn(hub.clone().run_housekeeping(shutdown.clone()));
    if config.backend.backend_type == config_source::SourceType::Etcd {
        let prefix = config.backend.backend_prefix.clone().unwrap_or_default();
        hub.inner.tasks.spawn(backend::etcd::watch(
            hub.clone(),
            config.etcd.clone(),
            prefix,
            shutdown.clone(),
        ));
    }
    if let Some(url) = geoip::source(&config.geoip) {
        hub.inner
            .tasks
            .spawn(hub.inner.geoip.clone().run(url, shutdown.clone()));
    }
    let grpc_server = grpc::server::serve(hub.clone(), &config.grpc, shutdown.clone()).await?;
    let state = server::AppState::new(
        hub.clone(),
        config.stats.allowed_ips.clone(),
        config.turn.clone(),
        shutdown.clone(),
    );
    let timeouts = server::ListenerTimeouts {
        http: transport::http_serve::HttpTimeouts {
            read: config.http.read_timeout,
            write: config.http.write_timeout,
        },
        https: transport::http_serve::HttpTimeouts {
            read: config.https.read_timeout,
            write: config.https.write_timeout,
        },
    };
    let result = server::serve(state, listeners, timeouts, SHUTDOWN_GRACE).await;
    shutdown.cancel();
    let _ = housekeeping.await;
    if let Some(g) = grpc_server {
        let _ = g.await;
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, hub.drain())
        .await
        .is_err()
    {
        tracing::warn!("requests to Nextcloud still running after the grace period");
    }
    Ok(result?)
}
