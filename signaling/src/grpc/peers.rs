//! The other nodes this one calls (cluster facts 2.2, 2.4): one gRPC
//! channel per target, grouped by where the target came from (the static
//! list, one DNS name, etcd) so each source replaces only its own. A new
//! peer is asked for its server id first; until it answered it is not
//! called, and a peer that turns out to be this process never is.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use parking_lot::{Mutex, RwLock};
use proto::grpc::rpc_backend_client::RpcBackendClient;
use proto::grpc::rpc_internal_client::RpcInternalClient;
use proto::grpc::rpc_sessions_client::RpcSessionsClient;
use proto::grpc::{
    GetServerIdRequest, GetSessionCountRequest, GetTransientDataRequest, IsSessionInCallRequest,
    LookupResumeIdRequest, LookupSessionIdRequest,
};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::metrics::METRICS;

/// Per attempt of the server id check.
const SERVER_ID_TIMEOUT: Duration = Duration::from_secs(1);
const SERVER_ID_RETRY_MAX: Duration = Duration::from_secs(8);
/// Resume lookups may take a while: the owner might be busy.
pub const RESUME_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Every other lookup.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);

/// Where to reach one peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// As configured (`host:port`), for logs and serverinfo.
    pub name: String,
    /// The resolved address when DNS discovery picked it.
    pub ip: Option<std::net::IpAddr>,
    /// What is dialled: `host:port` or `ip:port`.
    pub dial: String,
    /// Host name checked against the peer's certificate.
    pub host: String,
}

impl Target {
    /// A target `host:port` dialled as given.
    pub fn parse(name: &str) -> Option<Target> {
        let name = name.trim().trim_end_matches('/');
        let (host, port) = name.rsplit_once(':')?;
        port.parse::<u16>().ok()?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return None;
        }
        Some(Target {
            name: name.to_owned(),
            ip: None,
            dial: name.to_owned(),
            host: host.to_owned(),
        })
    }
}

#[derive(Debug, Default)]
struct PeerState {
    /// `Some(true)` once the peer said it is this process.
    is_self: Option<bool>,
    version: Option<String>,
}

/// One other node.
pub struct Peer {
    pub target: Target,
    channel: Channel,
    state: Mutex<PeerState>,
    /// Stops the server id check when the peer is removed.
    cancel: CancellationToken,
}

impl Peer {
    pub fn sessions(&self) -> RpcSessionsClient<Channel> {
        RpcSessionsClient::new(self.channel.clone())
    }

    pub fn handover(&self) -> proto::grpc::rpc_handover_client::RpcHandoverClient<Channel> {
        proto::grpc::rpc_handover_client::RpcHandoverClient::new(self.channel.clone())
    }

    fn internal(&self) -> RpcInternalClient<Channel> {
        RpcInternalClient::new(self.channel.clone())
    }

    fn backend(&self) -> RpcBackendClient<Channel> {
        RpcBackendClient::new(self.channel.clone())
    }

    /// Checked and not this process.
    fn is_usable(&self) -> bool {
        self.state.lock().is_self == Some(false)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Counts a client call in `signaling_grpc_client_calls_total`.
pub fn count_call(method: &str) {
    METRICS
        .grpc_client_calls_total
        .with_label_values(&[method])
        .inc();
}

/// All peers of this node.
pub struct Peers {
    server_id: String,
    tls: RwLock<Option<ClientTlsConfig>>,
    /// Where `tls` comes from; watched by [`Peers::watch_tls`].
    tls_files: super::tls::ClientTls,
    groups: RwLock<HashMap<String, HashMap<Target, Arc<Peer>>>>,
    /// The server id checks of new channels; [`Peers::close`] ends them.
    checks: tokio_util::task::TaskTracker,
}

impl Peers {
    pub fn new(
        server_id: String,
        config: &crate::config::GrpcConfig,
    ) -> Result<Arc<Peers>, super::tls::TlsError> {
        let (tls, tls_files) = super::tls::ClientTls::load(config)?;
        Ok(Arc::new(Peers {
            server_id,
            tls: RwLock::new(tls),
            tls_files,
            groups: RwLock::default(),
            checks: tokio_util::task::TaskTracker::new(),
        }))
    }

    /// Closes every channel and waits for their server id checks.
    pub async fn close(&self) {
        for peers in std::mem::take(&mut *self.groups.write()).into_values() {
            for peer in peers.into_values() {
                peer.cancel.cancel();
            }
        }
        self.checks.close();
        self.checks.wait().await;
    }

    /// Reconnects every peer with new client certificates when their
    /// files change, until `stop`.
    pub async fn watch_tls(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(super::tls::WATCH_INTERVAL);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Some(tls) = self.tls_files.changed() {
                self.replace_tls(tls);
            }
        }
    }

    /// New channels with `tls` for every peer; calls in flight finish on
    /// the old ones.
    fn replace_tls(self: &Arc<Self>, tls: Option<ClientTlsConfig>) {
        *self.tls.write() = tls;
        let mut groups = self.groups.write();
        for peers in groups.values_mut() {
            for (t, peer) in peers.iter_mut() {
                match self.connect(t) {
                    Ok(new) => {
                        self.checks
                            .spawn(check_server_id(Arc::downgrade(self), new.clone()));
                        std::mem::replace(peer, new).cancel.cancel();
                    }
                    Err(e) => {
                        tracing::warn!(target = t.name, error = %e, "gRPC target kept with old TLS")
                    }
                }
            }
        }
    }

    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    /// Replaces the targets of one source: kept targets keep their
    /// channel, new ones are checked, gone ones are closed.
    pub fn set_group(self: &Arc<Self>, group: &str, targets: Vec<Target>) {
        let mut groups = self.groups.write();
        let old = groups.remove(group).unwrap_or_default();
        let mut next = HashMap::new();
        for t in targets {
            if next.contains_key(&t) {
                continue;
            }
            if let Some(p) = old.get(&t) {
                next.insert(t, p.clone());
                continue;
            }
            match self.connect(&t) {
                Ok(peer) => {
                    tracing::info!(target = t.name, ip = ?t.ip, "gRPC target added");
                    self.checks
                        .spawn(check_server_id(Arc::downgrade(self), peer.clone()));
                    next.insert(t, peer);
                }
                Err(e) => tracing::warn!(target = t.name, error = %e, "invalid gRPC target"),
            }
        }
        for (t, p) in &old {
            if !next.contains_key(t) {
                tracing::info!(target = t.name, ip = ?t.ip, "gRPC target removed");
                p.cancel.cancel();
            }
        }
        if !next.is_empty() {
            groups.insert(group.to_owned(), next);
        }
        let total: usize = groups.values().map(HashMap::len).sum();
        METRICS.grpc_clients.set(total as i64);
    }

    /// The groups that currently have peers.
    pub fn group_names(&self) -> Vec<String> {
        self.groups.read().keys().cloned().collect()
    }

    fn connect(&self, t: &Target) -> Result<Arc<Peer>, tonic::transport::Error> {
        let tls = self.tls.read().clone();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{}", t.dial))?
            .connect_timeout(LOOKUP_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        if let Some(tls) = tls {
            endpoint = endpoint.tls_config(tls.domain_name(t.host.clone()))?;
        }
        Ok(Arc::new(Peer {
            target: t.clone(),
            channel: endpoint.connect_lazy(),
            state: Mutex::default(),
            cancel: CancellationToken::new(),
        }))
    }

    /// Peers that may be called: checked, not this process.
    pub fn active(&self) -> Vec<Arc<Peer>> {
        self.groups
            .read()
            .values()
            .flat_map(|g| g.values())
            .filter(|p| p.is_usable())
            .cloned()
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.read().is_empty()
    }

    /// For serverinfo: every peer except this process.
    pub fn describe(&self) -> serde_json::Value {
        let groups = self.groups.read();
        let list: Vec<_> = groups
            .values()
            .flat_map(|g| g.values())
            .filter(|p| p.state.lock().is_self != Some(true))
            .map(|p| {
                let s = p.state.lock();
                serde_json::json!({
                    "target": p.target.name,
                    "ip": p.target.ip.map(|ip| ip.to_string()),
                    "connected": s.is_self == Some(false),
                    "version": s.version,
                })
            })
            .collect();
        serde_json::Value::Array(list)
    }

    /// Asks every peer in parallel; the first `Some` wins and the other
    /// calls are dropped.
    async fn first<T, F, Fut>(&self, timeout: Duration, call: F) -> Option<(Arc<Peer>, T)>
    where
        F: Fn(Arc<Peer>) -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let mut calls: FuturesUnordered<_> = self
            .active()
            .into_iter()
            .map(|p| {
                let fut = call(p.clone());
                async move { fut.await.map(|v| (p, v)) }
            })
            .collect();
        tokio::time::timeout(timeout, async {
            while let Some(r) = calls.next().await {
                if r.is_some() {
                    return r;
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    }

    /// Asks every peer in parallel and collects the answers that came in
    /// time.
    async fn all<T, F, Fut>(&self, timeout: Duration, call: F) -> Vec<T>
    where
        F: Fn(Arc<Peer>) -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let calls: FuturesUnordered<_> = self
            .active()
            .into_iter()
            .map(|p| tokio::time::timeout(timeout, call(p)))
            .collect();
        calls
            .filter_map(|r| async move { r.ok().flatten() })
            .collect()
            .await
    }

    /// Which peer holds the session with this private id, and its public
    /// id.
    pub async fn lookup_resume_id(&self, resume_id: &str) -> Option<(Arc<Peer>, String)> {
        self.first(RESUME_LOOKUP_TIMEOUT, |p| {
            count_call("LookupResumeId");
            let req = LookupResumeIdRequest {
                resume_id: resume_id.to_owned(),
            };
            async move {
                let reply = p.sessions().lookup_resume_id(req).await.ok()?;
                Some(reply.into_inner().session_id).filter(|id| !id.is_empty())
            }
        })
        .await
    }

    /// The public id of the session holding a Talk session id on another
    /// node; with a reason, that session is disconnected with it.
    pub async fn lookup_session_id(&self, room_session: &str, reason: &str) -> Option<String> {
        self.first(LOOKUP_TIMEOUT, |p| {
            count_call("LookupSessionId");
            let req = LookupSessionIdRequest {
                room_session_id: room_session.to_owned(),
                disconnect_reason: reason.to_owned(),
            };
            async move {
                let reply = p.sessions().lookup_session_id(req).await.ok()?;
                Some(reply.into_inner().session_id).filter(|id| !id.is_empty())
            }
        })
        .await
        .map(|(_, id)| id)
    }

    /// Whether a session on another node is in the call of a room.
    pub async fn is_session_in_call(&self, session: &str, room: &str, backend_url: &str) -> bool {
        self.first(LOOKUP_TIMEOUT, |p| {
            count_call("IsSessionInCall");
            let req = IsSessionInCallRequest {
                session_id: session.to_owned(),
                room_id: room.to_owned(),
                backend_url: backend_url.to_owned(),
            };
            async move {
                let reply = p.sessions().is_session_in_call(req).await.ok()?;
                reply.into_inner().in_call.then_some(())
            }
        })
        .await
        .is_some()
    }

    /// Where another node's session publishes a stream through a proxy.
    pub async fn publisher_on_proxy(
        &self,
        session: &str,
        stream: &str,
    ) -> Option<sfu_bridge::proxy::RemotePublisherInfo> {
        self.first(LOOKUP_TIMEOUT, |p| {
            count_call("GetPublisherId");
            let req = proto::grpc::GetPublisherIdRequest {
                session_id: session.to_owned(),
                stream_type: stream.to_owned(),
            };
            async move {
                let mut client = proto::grpc::rpc_mcu_client::RpcMcuClient::new(p.channel.clone());
                let reply = client.get_publisher_id(req).await.ok()?.into_inner();
                (!reply.publisher_id.is_empty()).then_some(sfu_bridge::proxy::RemotePublisherInfo {
                    url: reply.proxy_url,
                    ip: reply.ip.parse().ok(),
                    proxy_id: reply.publisher_id,
                    connect_token: reply.connect_token,
                    publisher_token: reply.publisher_token,
                })
            }
        })
        .await
        .map(|(_, v)| v)
    }

    /// Sessions of a backend counted for its limit on all other nodes.
    pub async fn session_count(&self, backend_url: &str) -> u64 {
        self.all(LOOKUP_TIMEOUT, |p| {
            count_call("GetSessionCount");
            let req = GetSessionCountRequest {
                url: backend_url.to_owned(),
            };
            async move {
                let reply = p.backend().get_session_count(req).await.ok()?;
                Some(u64::from(reply.into_inner().count))
            }
        })
        .await
        .into_iter()
        .sum()
    }

    /// Transient data of a room on the other nodes, merged.
    pub async fn transient_data(
        &self,
        room: &str,
        backend_urls: &[String],
    ) -> serde_json::Map<String, serde_json::Value> {
        let replies = self
            .all(LOOKUP_TIMEOUT, |p| {
                count_call("GetTransientData");
                let req = GetTransientDataRequest {
                    room_id: room.to_owned(),
                    backend_urls: backend_urls.to_vec(),
                };
                async move { p.internal().get_transient_data(req).await.ok() }
            })
            .await;
        let mut merged = serde_json::Map::new();
        for reply in replies {
            for (k, e) in reply.into_inner().entries {
                if let Ok(v) = serde_json::from_slice(&e.value) {
                    merged.entry(k).or_insert(v);
                }
            }
        }
        merged
    }
}

/// Asks a new peer for its server id until it answers (facts 2.4).
async fn check_server_id(peers: std::sync::Weak<Peers>, peer: Arc<Peer>) {
    let mut delay = Duration::from_secs(1);
    loop {
        let Some(own) = peers.upgrade().map(|p| p.server_id.clone()) else {
            return;
        };
        count_call("GetServerId");
        let mut client = peer.internal();
        let call = client.get_server_id(GetServerIdRequest {});
        let answer = tokio::select! {
            _ = peer.cancel.cancelled() => return,
            r = tokio::time::timeout(SERVER_ID_TIMEOUT, call) => r,
        };
        match answer {
            Ok(Ok(reply)) => {
                let reply = reply.into_inner();
                let is_self = reply.server_id == own;
                if is_self {
                    tracing::info!(target = peer.target.name, "gRPC target is this server");
                } else if reply.version != proto::SERVER_VERSION {
                    tracing::warn!(
                        target = peer.target.name,
                        version = reply.version,
                        "gRPC target runs a different version"
                    );
                }
                let mut s = peer.state.lock();
                s.is_self = Some(is_self);
                s.version = Some(reply.version);
                return;
            }
            Ok(Err(e)) => {
                tracing::debug!(target = peer.target.name, error = %e, "server id check failed")
            }
            Err(_) => tracing::debug!(target = peer.target.name, "server id check timed out"),
        }
        tokio::select! {
            _ = peer.cancel.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(SERVER_ID_RETRY_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn targets() {
        let t = Target::parse("node1.example:9090").unwrap();
        assert_eq!(t.host, "node1.example");
        assert_eq!(t.dial, "node1.example:9090");
        assert_eq!(Target::parse("[::1]:9090/").unwrap().host, "::1");
        assert!(Target::parse("node1.example").is_none());
        assert!(Target::parse(":9090").is_none());
        assert!(Target::parse("host:port").is_none());
    }
}
