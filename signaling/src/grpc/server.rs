//! The gRPC services a node offers its peers (cluster facts 2.1, 2.2).
//! Every answer is about this node's own sessions and rooms only; callers
//! fan out and merge. Unknown ids are `NotFound`, as upstream's callers
//! expect.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use proto::grpc::rpc_backend_server::{RpcBackend, RpcBackendServer};
use proto::grpc::rpc_internal_server::{RpcInternal, RpcInternalServer};
use proto::grpc::rpc_mcu_server::{RpcMcu, RpcMcuServer};
use proto::grpc::rpc_sessions_server::{RpcSessions, RpcSessionsServer};
use proto::grpc::*;
use proto::ids::{PublicSessionId, RoomId, RoomSessionId};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

use crate::backend::Backend;
use crate::hub::room::Room;
use crate::hub::session::{ClientType, Session};
use crate::hub::Hub;
use crate::metrics::METRICS;

/// All four services, on one hub.
#[derive(Clone)]
pub struct Services {
    hub: Hub,
}

fn count(method: &str) {
    METRICS
        .grpc_server_calls_total
        .with_label_values(&[method])
        .inc();
}

impl Services {
    fn local_session(&self, id: &str) -> Option<Arc<Session>> {
        self.hub
            .inner
            .sessions
            .by_public(&PublicSessionId(id.to_owned()))
    }

    /// The backends named by URL (each once), or the compat backend when
    /// none is given.
    fn backends(&self, urls: &[String], legacy: &str) -> Result<Vec<Arc<Backend>>, Status> {
        let all = self.hub.backends();
        let mut urls: Vec<&str> = urls.iter().map(String::as_str).collect();
        if urls.is_empty() && !legacy.is_empty() {
            urls.push(legacy);
        }
        if urls.is_empty() {
            return all
                .compat()
                .cloned()
                .map(|b| vec![b])
                .ok_or_else(|| Status::not_found("no such backend"));
        }
        let mut out: Vec<Arc<Backend>> = Vec::new();
        for u in urls {
            let b = all
                .lookup(u)
                .ok_or_else(|| Status::not_found("no such backend"))?;
            if !out.iter().any(|o| o.id == b.id) {
                out.push(b);
            }
        }
        Ok(out)
    }

    fn rooms(&self, room: &str, backends: &[Arc<Backend>]) -> Result<Vec<Arc<Room>>, Status> {
        let id = RoomId(room.to_owned());
        let rooms: Vec<_> = backends
            .iter()
            .filter_map(|b| self.hub.inner.rooms.get(&b.id, &id))
            .collect();
        if rooms.is_empty() {
            return Err(Status::not_found("no such room"));
        }
        Ok(rooms)
    }
}

#[tonic::async_trait]
impl RpcBackend for Services {
    async fn get_session_count(
        &self,
        request: Request<GetSessionCountRequest>,
    ) -> Result<Response<GetSessionCountReply>, Status> {
        count("SessionCount");
        let url = request.into_inner().url;
        let backend = self
            .hub
            .backends()
            .lookup(&url)
            .ok_or_else(|| Status::not_found("no such backend"))?;
        let n = self.hub.inner.sessions.limited_count(&backend.id);
        Ok(Response::new(GetSessionCountReply {
            count: u32::try_from(n).unwrap_or(u32::MAX),
        }))
    }
}

#[tonic::async_trait]
impl RpcInternal for Services {
    async fn get_server_id(
        &self,
        _request: Request<GetServerIdRequest>,
    ) -> Result<Response<GetServerIdReply>, Status> {
        count("GetServerId");
        Ok(Response::new(GetServerIdReply {
            server_id: self.hub.inner.peers.server_id().to_owned(),
            version: proto::SERVER_VERSION.to_owned(),
        }))
    }

    async fn get_transient_data(
        &self,
        request: Request<GetTransientDataRequest>,
    ) -> Result<Response<GetTransientDataReply>, Status> {
        count("GetTransientData");
        let req = request.into_inner();
        let backends = self.backends(&req.backend_urls, "")?;
        let mut entries = std::collections::HashMap::new();
        for room in self.rooms(&req.room_id, &backends)? {
            for (k, v) in room.transient_snapshot() {
                let value = serde_json::to_vec(&v).unwrap_or_default();
                // Each node runs its own TTL timers; the absolute expiry
                // is not kept, so entries are sent without one.
                entries.insert(k, GrpcTransientDataEntry { value, expires: 0 });
            }
        }
        if entries.is_empty() {
            return Err(Status::not_found("no transient data"));
        }
        Ok(Response::new(GetTransientDataReply { entries }))
    }
}

type ProxyStream = Pin<Box<dyn Stream<Item = Result<ServerSessionMessage, Status>> + Send>>;

#[tonic::async_trait]
impl RpcSessions for Services {
    async fn lookup_resume_id(
        &self,
        request: Request<LookupResumeIdRequest>,
    ) -> Result<Response<LookupResumeIdReply>, Status> {
        count("LookupResumeId");
        let resume_id = request.into_inner().resume_id;
        let session = self
            .hub
            .resumable_session(&resume_id)
            .ok_or_else(|| Status::not_found("no such room session id"))?;
        Ok(Response::new(LookupResumeIdReply {
            session_id: session.public_id.0.clone(),
        }))
    }

    async fn lookup_session_id(
        &self,
        request: Request<LookupSessionIdRequest>,
    ) -> Result<Response<LookupSessionIdReply>, Status> {
        count("LookupSessionId");
        let req = request.into_inner();
        let sessions = &self.hub.inner.sessions;
        // The map also knows Talk sessions of other nodes; only local
        // ones are answered for.
        let session = sessions
            .by_room_session(&RoomSessionId(req.room_session_id))
            .and_then(|id| sessions.by_public(&id))
            .ok_or_else(|| Status::not_found("no such room session id"))?;
        let reply = LookupSessionIdReply {
            session_id: session.public_id.0.clone(),
        };
        if !req.disconnect_reason.is_empty() {
            self.hub
                .bye_and_close(&session, &req.disconnect_reason, false);
        }
        Ok(Response::new(reply))
    }

    async fn is_session_in_call(
        &self,
        request: Request<IsSessionInCallRequest>,
    ) -> Result<Response<IsSessionInCallReply>, Status> {
        count("IsSessionInCall");
        let req = request.into_inner();
        let not_found = || Status::not_found("no such session id");
        let session = self.local_session(&req.session_id).ok_or_else(not_found)?;
        let room = session.room().ok_or_else(not_found)?;
        let same_backend = self
            .hub
            .backends()
            .lookup(&req.backend_url)
            .is_some_and(|b| b.id == room.backend.id);
        let in_call = session.is_internal() || room.is_in_call(&session.public_id);
        if room.id.0 != req.room_id || !same_backend || !in_call {
            return Err(not_found());
        }
        Ok(Response::new(IsSessionInCallReply { in_call: true }))
    }

    async fn get_internal_sessions(
        &self,
        request: Request<GetInternalSessionsRequest>,
    ) -> Result<Response<GetInternalSessionsReply>, Status> {
        count("GetInternalSessions");
        #[allow(deprecated)]
        let req = request.into_inner();
        #[allow(deprecated)]
        let backends = self.backends(&req.backend_urls, &req.backend_url)?;
        let mut reply = GetInternalSessionsReply::default();
        for room in self.rooms(&req.room_id, &backends)? {
            for s in room.members() {
                let in_call = u32::try_from(s.in_call()).unwrap_or(0);
                match s.client_type {
                    ClientType::Internal => reply.internal_sessions.push(InternalSessionData {
                        session_id: s.public_id.0.clone(),
                        in_call,
                        features: s.features.clone(),
                    }),
                    ClientType::Virtual => reply.virtual_sessions.push(VirtualSessionData {
                        session_id: s.public_id.0.clone(),
                        in_call,
                    }),
                    _ => {}
                }
            }
        }
        Ok(Response::new(reply))
    }

    type ProxySessionStream = ProxyStream;

    async fn proxy_session(
        &self,
        request: Request<Streaming<ClientSessionMessage>>,
    ) -> Result<Response<ProxyStream>, Status> {
        count("ProxySession");
        let meta = request.metadata();
        let get = |k: &str| {
            meta.get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        if get("sessionid").is_empty() {
            return Err(Status::invalid_argument("no metadata provided"));
        }
        let info = crate::client::ClientInfo {
            addr: get("remoteaddr")
                .parse()
                .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
            user_agent: get("useragent"),
        };
        let stream = super::remote::serve_proxied(self.hub.clone(), info, request.into_inner());
        Ok(Response::new(stream))
    }
}

#[tonic::async_trait]
impl RpcMcu for Services {
    async fn get_publisher_id(
        &self,
        request: Request<GetPublisherIdRequest>,
    ) -> Result<Response<GetPublisherIdReply>, Status> {
        count("GetPublisherId");
        let req = request.into_inner();
        let session = self
            .local_session(&req.session_id)
            .ok_or_else(|| Status::not_found("no such session"))?;
        let stream = sfu_bridge::sfu::StreamType::parse(&req.stream_type)
            .map_err(|_| Status::not_found("no such publisher"))?;
        // Only publishers on a signaling proxy can be shared between nodes.
        let location = session
            .media
            .publisher(stream)
            .and_then(|p| p.proxy_location())
            .ok_or_else(|| Status::not_found("no such publisher"))?;
        let proxies = self
            .hub
            .inner
            .proxy_sfu
            .as_ref()
            .ok_or_else(|| Status::not_found("no such publisher"))?;
        Ok(Response::new(GetPublisherIdReply {
            connect_token: proxies.token(None).unwrap_or_default(),
            publisher_token: proxies.token(Some(&location.client_id)).unwrap_or_default(),
            publisher_id: location.client_id,
            proxy_url: location.url,
            ip: location.ip.map(|ip| ip.to_string()).unwrap_or_default(),
        }))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("[grpc] listen {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] super::tls::TlsError),
}

/// Binds `[grpc] listen` and serves until `shutdown`.
pub async fn serve(
    hub: Hub,
    config: &crate::config::GrpcConfig,
    shutdown: CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<()>>, ServeError> {
    let Some(addr) = config.listen else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let tls = super::tls::ServerTls::load(config)?;
    tracing::info!(addr = %listener.local_addr().unwrap_or(addr), "gRPC listening");
    let handover = super::handover::HandoverService { hub: hub.clone() };
    let services = Services { hub };
    let router = tonic::transport::Server::builder()
        .add_service(proto::grpc::rpc_handover_server::RpcHandoverServer::new(
            handover,
        ))
        .add_service(RpcBackendServer::new(services.clone()))
        .add_service(RpcInternalServer::new(services.clone()))
        .add_service(RpcSessionsServer::new(services.clone()))
        .add_service(RpcMcuServer::new(services));
    let done = shutdown.clone().cancelled_owned();
    Ok(Some(tokio::spawn(async move {
        // The TLS accept loop and its handshakes; the server's task waits
        // for them after tonic has stopped.
        let accepting = TaskTracker::new();
        let served = match tls {
            None => {
                let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
                router.serve_with_incoming_shutdown(incoming, done).await
            }
            Some(tls) => {
                let incoming = tls_incoming(listener, tls, &accepting, shutdown);
                router.serve_with_incoming_shutdown(incoming, done).await
            }
        };
        if let Err(e) = served {
            tracing::error!(error = %e, "gRPC server failed");
        }
        accepting.close();
        accepting.wait().await;
    })))
}

/// Longest TLS handshake of an incoming connection.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// TLS connections with the settings current when each was accepted (so
/// a renewed certificate applies without a restart); the files are
/// watched while the stream is alive. The accept loop and every handshake
/// run on `tasks` and end at `shutdown` or when tonic drops the stream.
fn tls_incoming(
    listener: tokio::net::TcpListener,
    tls: std::sync::Arc<super::tls::ServerTls>,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> impl futures_util::Stream<
    Item = std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>,
> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let handshakes = tasks.clone();
    tasks.spawn(async move {
        let mut watch = tokio::time::interval(super::tls::WATCH_INTERVAL);
        loop {
            let tcp = tokio::select! {
                _ = tx.closed() => return,
                () = shutdown.cancelled() => return,
                _ = watch.tick() => {
                    tls.reload_if_changed();
                    continue;
                }
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        // Out of file descriptors and the like: pause
                        // instead of spinning.
                        tracing::warn!(error = %e, "gRPC accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
            let tx = tx.clone();
            handshakes.spawn(async move {
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
                let shaken = tokio::select! {
                    shaken = handshake => shaken,
                    _ = tx.closed() => return,
                };
                match shaken {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "gRPC TLS handshake failed"),
                    Err(_) => tracing::debug!("gRPC TLS handshake timed out"),
                }
            });
        }
    });
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
