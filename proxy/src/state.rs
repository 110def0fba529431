//! The proxy's shared state: its Janus, the sessions of the signaling
//! servers using it, the connections to other proxies, draining, and the
//! tasks it owns. Everything else gets it as `Arc<Proxy>`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use proto::proxy::{EventBandwidth, EventServer};
use proto::session_id::SessionIdCodec;
use sfu_bridge::janus::publisher::JanusPublisher;
use sfu_bridge::janus::JanusSfu;
use sfu_bridge::sfu::{Client, Sfu, StreamType};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use transport::ws::Outbox;

use crate::config::ProxyConfig;
use crate::metrics::METRICS;
use crate::remote::{RemoteConnections, RemoteEvents, RemoteIdentity};
use crate::reply::{event_message, send_bye};
use crate::session::ProxySession;
use crate::tokens::TokenStore;

pub struct Proxy {
    pub config: Mutex<ProxyConfig>,
    pub tokens: TokenStore,
    pub sfu: JanusSfu,
    pub(crate) codec: SessionIdCodec,
    pub(crate) sessions: Mutex<HashMap<String, Arc<ProxySession>>>,
    pub(crate) next_sid: AtomicU64,
    pub draining: AtomicBool,
    /// Connections to other proxies for remote streams.
    pub remotes: Arc<RemoteConnections>,
    /// How we sign in to other proxies; `None` disables remote streams.
    pub(crate) identity: Option<RemoteIdentity>,
    /// Fires when the proxy should exit (drained, or a signal).
    pub shutdown: CancellationToken,
    /// Every task the proxy starts (connections, commands, clean-ups),
    /// awaited at exit so closes reach Janus before the process ends.
    pub tasks: TaskTracker,
    /// Stops the Janus connection; only after the clean-ups at exit.
    sfu_stop: CancellationToken,
}

impl Proxy {
    pub fn new(config: ProxyConfig, tokens: TokenStore, shutdown: CancellationToken) -> Arc<Proxy> {
        let sfu_stop = CancellationToken::new();
        let sfu = JanusSfu::start(
            sfu_bridge::janus::JanusConfig {
                url: config.janus_url.clone(),
                timeout: config.timeout,
                max_stream_bitrate: config.max_stream_bitrate,
                max_screen_bitrate: config.max_screen_bitrate,
            },
            sfu_stop.clone(),
        );
        // Random keys per process: sessions cannot survive a restart.
        let hash: [u8; 64] = std::array::from_fn(|_| rand::random());
        let block: [u8; 32] = rand::random();
        let codec = SessionIdCodec::new(&hash, Some(&block))
            .unwrap_or_else(|e| unreachable!("fixed-size session keys: {e}"));
        let identity = RemoteIdentity::from_config(&config);
        Arc::new(Proxy {
            config: Mutex::new(config),
            tokens,
            sfu,
            codec,
            sessions: Mutex::default(),
            next_sid: AtomicU64::new(1),
            draining: AtomicBool::new(false),
            remotes: Arc::default(),
            identity,
            shutdown,
            tasks: TaskTracker::new(),
            sfu_stop,
        })
    }

    /// At exit: every session ends, its clients close on Janus (in
    /// tracked tasks) and its connection gets `bye`.
    pub fn close_all(&self) {
        for s in self.all_sessions() {
            if let Some(o) = self.end_session(&s) {
                send_bye(&o, "shutdown");
            }
        }
    }

    /// Disconnects from Janus; after [`Proxy::close_all`] and the tasks.
    pub fn stop_sfu(&self) {
        self.sfu_stop.cancel();
    }

    /// Starts the background duties (load reports, session expiry) as
    /// tracked tasks.
    pub fn start_background(self: &Arc<Self>) {
        self.tasks.spawn(self.clone().report_load());
        self.tasks.spawn(self.clone().expire_sessions());
    }

    /// What `/readyz` reports: Janus, etcd for token keys, draining.
    pub async fn readiness(&self) -> transport::health::Readiness {
        use transport::health::Check;
        let mut checks = vec![if self.sfu.is_connected() {
            Check::ok("janus", "connected")
        } else {
            Check::failed("janus", "not connected")
        }];
        match self.tokens.etcd_reachable().await {
            None => {}
            Some(Ok(())) => checks.push(Check::ok("etcd", "reachable")),
            Some(Err(e)) => checks.push(Check::failed("etcd", e)),
        }
        transport::health::Readiness {
            draining: self.is_draining(),
            checks,
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// A publisher of this proxy by its client id.
    pub(crate) fn janus_publisher(&self, client_id: &str) -> Option<Arc<JanusPublisher>> {
        self.sfu
            .publisher(client_id, StreamType::Video)
            .or_else(|| self.sfu.publisher(client_id, StreamType::Screen))
    }

    pub(crate) fn session(&self, id: &str) -> Option<Arc<ProxySession>> {
        self.sessions.lock().get(id).cloned()
    }

    pub(crate) fn session_count(&self) -> usize {
        self.sessions.lock().len()
    }

    fn all_sessions(&self) -> Vec<Arc<ProxySession>> {
        self.sessions.lock().values().cloned().collect()
    }

    /// A publisher here is gone: the proxies it was forwarded to learn it
    /// (`publisher-closed` with its id, facts 6.7).
    pub fn publisher_deleted(&self, client_id: &str) {
        for s in self.all_sessions() {
            if s.forget_remote(client_id) {
                s.event("publisher-closed", client_id);
            }
        }
    }

    /// Closes `clients` in a tracked task.
    pub(crate) fn close_clients(&self, clients: Vec<Arc<dyn Client>>) {
        if clients.is_empty() {
            return;
        }
        self.tasks.spawn(async move {
            for c in clients {
                c.close().await;
            }
        });
    }

    /// Removes the session from the registry and ends it: its clients
    /// close and the forwardings it asked for stop. Returns its
    /// connection, if attached; `None` also when it had ended already.
    pub(crate) fn end_session(&self, s: &ProxySession) -> Option<Outbox> {
        // Once: a bye and the expiry may race.
        self.sessions.lock().remove(&s.id)?;
        let publishers: Vec<_> = s
            .take_remote()
            .into_iter()
            .filter_map(|(id, targets)| Some((self.janus_publisher(&id)?, targets)))
            .collect();
        let requester = s.id.clone();
        self.tasks.spawn(async move {
            for (p, targets) in publishers {
                for t in targets {
                    if let Err(e) = p
                        .unpublish_remotely(&requester, &t.hostname, t.port, t.rtcp_port)
                        .await
                    {
                        tracing::debug!(error = %e, host = t.hostname, "could not stop a remote forwarding");
                    }
                }
            }
        });
        METRICS.sessions.dec();
        let (outbox, clients) = s.close();
        self.close_clients(clients);
        outbox
    }

    fn client_count(&self) -> usize {
        self.sessions
            .lock()
            .values()
            .map(|s| s.client_count())
            .sum()
    }

    /// `update-load` (facts 6.5): load and bandwidth against the limits.
    pub(crate) fn load_event(&self) -> EventServer {
        let (mut incoming, mut outgoing, mut clients) = (0u64, 0u64, 0u64);
        for s in &self.all_sessions() {
            let (i, o) = s.bitrates();
            incoming += i;
            outgoing += o;
            clients += s.client_count() as u64;
        }
        let load = clients.min((incoming + outgoing) / 1024);
        METRICS.load.set(load as i64);
        let (max_in, max_out) = {
            let c = self.config.lock();
            (c.incoming_limit, c.outgoing_limit)
        };
        let pct = |v: u64, max: u64| (max > 0).then(|| v as f64 / max as f64 * 100.0);
        let bandwidth =
            (max_in > 0 || max_out > 0 || incoming > 0 || outgoing > 0).then(|| EventBandwidth {
                incoming: pct(incoming, max_in),
                outgoing: pct(outgoing, max_out),
                received: Some(incoming),
                sent: Some(outgoing),
            });
        EventServer {
            kind: "update-load".into(),
            load: Some(load),
            bandwidth,
            ..Default::default()
        }
    }

    /// Sends `update-load` to every session when it changed; runs until
    /// shutdown.
    async fn report_load(self: Arc<Self>) {
        let mut last: Option<(Option<u64>, Option<u64>, Option<u64>)> = None;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if self.is_draining() {
                continue;
            }
            let event = self.load_event();
            let key = (
                event.load,
                event.bandwidth.as_ref().and_then(|b| b.received),
                event.bandwidth.as_ref().and_then(|b| b.sent),
            );
            if last == Some(key) {
                continue;
            }
            last = Some(key);
            let msg = event_message(event);
            for s in self.all_sessions() {
                s.send(&msg);
            }
        }
    }

    /// Removes sessions unused for a minute; runs until shutdown.
    async fn expire_sessions(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(10)) => {}
            }
            let now = tokio::time::Instant::now();
            let expired: Vec<_> = self
                .all_sessions()
                .into_iter()
                .filter(|s| s.expired(now))
                .collect();
            for s in expired {
                tracing::info!(session = s.id, "proxy session expired");
                if let Some(o) = self.end_session(&s) {
                    send_bye(&o, "session_expired");
                }
            }
            self.exit_if_drained();
        }
    }

    /// SIGUSR1: no new publishers; exit once no client is left.
    pub fn drain(&self) {
        if self.draining.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::info!("shutdown scheduled: draining");
        let msg = event_message(EventServer {
            kind: "shutdown-scheduled".into(),
            ..Default::default()
        });
        for s in self.all_sessions() {
            s.send(&msg);
        }
        self.exit_if_drained();
    }

    pub(crate) fn exit_if_drained(&self) {
        if self.is_draining() && self.client_count() == 0 {
            tracing::info!("drained: no clients left");
            self.shutdown.cancel();
        }
    }
}

impl RemoteEvents for Proxy {
    /// A publisher on another proxy is gone: our subscribers of it close.
    fn publisher_gone(&self, publisher: &str) {
        let subscribers: Vec<_> = self
            .all_sessions()
            .iter()
            .flat_map(|s| s.subscribers_of(publisher))
            .collect();
        self.close_clients(subscribers);
    }
}
