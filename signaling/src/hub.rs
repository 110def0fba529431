//! The hub: sessions, rooms and the routing between them.
//!
//! [`Hub::handle_frame`] is the single entry point for client frames: it
//! decodes, then hands each message type to its handler in `hub/handle/`.
//! Shared state lives in registries ([`sessions`], [`rooms`]) and entities
//! ([`session`], [`room`]); everything that could cross nodes goes through
//! the event bus. No lock is held across an `.await`.

mod cluster_state;
pub mod dialout;
pub mod error;
pub mod filter;
pub mod handle;
pub mod handover;
pub mod housekeeping;
pub mod lifecycle;
pub mod media;
pub mod notify;
mod participants;
pub mod ping;
pub mod policy;
pub mod room;
pub mod rooms;
pub mod session;
pub mod sessions;
mod sfu_setup;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use proto::client::{ClientMessage, ClientRequest};
use proto::error::{ErrorCode, WireError};
use proto::event::JoinEntry;
use proto::features::ServerFeatures;
use proto::server::{bye_reason, ByeMessage, ServerBody, ServerMessage, WelcomeMessage};
use proto::session_id::SessionIdCodec;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backend::{BackendClient, Backends};
use crate::client::{ClientInfo, Outbox};
use crate::cluster::EventBus;
use crate::config::{Config, Secret};
use crate::federation::FederationSettings;
use crate::metrics::METRICS;
use crate::throttle::Throttler;
use transport::ws::CLOSE_NORMAL;

pub use error::HubError;
use rooms::Rooms;
use session::{ClientType, Session};
use sessions::Sessions;

/// Whether the connection goes on after a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Close,
}

/// A decoded frame whose handling waits (see [`Hub::finish_frame`]).
enum Pending {
    /// To the node that owns the session.
    Forward,
    Hello {
        id: Option<String>,
        hello: proto::client::HelloRequest,
    },
    Room {
        session: Arc<Session>,
        id: Option<String>,
        req: proto::client::RoomRequest,
    },
    Internal {
        session: Arc<Session>,
        id: Option<String>,
        req: proto::client::InternalRequest,
    },
}

/// Per-connection state the reader owns and passes to the hub.
pub struct ConnCtx {
    pub outbox: Outbox,
    pub info: ClientInfo,
    pub session: Option<Arc<Session>>,
    /// Set when the session lives on another node: frames go there.
    pub remote: Option<crate::grpc::remote::RemoteLink>,
}

impl ConnCtx {
    pub fn new(outbox: Outbox, info: ClientInfo) -> Self {
        ConnCtx {
            outbox,
            info,
            session: None,
            remote: None,
        }
    }

    pub fn reply(&self, msg: &ServerMessage) {
        self.outbox.send_text(msg.to_json().into());
    }

    pub fn reply_error(&self, id: Option<String>, error: WireError) {
        METRICS
            .client_errors_total
            .with_label_values(&[error.code.as_str()])
            .inc();
        self.outbox
            .send_text(ServerMessage::error(id, error).to_json().into());
    }
}

pub(crate) struct Inner {
    pub codec: SessionIdCodec,
    pub internal_secret: Secret,
    pub features: ServerFeatures,
    pub backends: RwLock<Arc<Backends>>,
    pub client: BackendClient,
    pub bus: Arc<dyn EventBus>,
    pub sessions: Sessions,
    pub rooms: Rooms,
    pub throttler: Throttler,
    pub sfu: Option<Arc<dyn sfu_bridge::sfu::Sfu>>,
    /// The same SFU when it is made of proxies (their URLs may change).
    pub proxy_sfu: Option<sfu_bridge::proxy::ProxySfu>,
    /// `[app] allowsubscribeany`.
    pub allow_subscribe_any: bool,
    /// Trusted proxies, candidate filters, GeoIP overrides (SIGHUP).
    policy: RwLock<Arc<policy::NetPolicy>>,
    /// The GeoIP database (`[geoip]`), loaded by `run`.
    pub geoip: Arc<crate::geoip::GeoIp>,
    /// Background work the hub starts (Talk leave requests); drained on
    /// shutdown.
    pub tasks: TaskTracker,
    /// Fires when the server shuts down (ends federation connections).
    pub shutdown: CancellationToken,
    pub federation: FederationSettings,
    pub dialouts: dialout::PendingDialouts,
    /// The other nodes, over gRPC.
    pub peers: Arc<crate::grpc::Peers>,
    /// Identifies this process on the bus.
    pub node: u64,
    /// Subscriptions of the node-wide subjects.
    cluster_subscriptions: parking_lot::Mutex<Vec<crate::cluster::Subscription>>,
    /// Other nodes and when they were last heard of.
    pub nodes: parking_lot::Mutex<std::collections::HashMap<u64, tokio::time::Instant>>,
    /// Sessions per backend on the other nodes, from their heartbeats.
    pub remote_counts:
        parking_lot::Mutex<std::collections::HashMap<u64, std::collections::HashMap<String, u64>>>,
    next_index: AtomicU64,
    /// The etcd watches' state (backends, gRPC targets, proxies).
    pub etcd: config_source::etcd::EtcdStatus,
    /// SIGUSR1 or SIGTERM with a grace: no new clients, readiness false.
    pub draining: std::sync::atomic::AtomicBool,
}

/// Cheap handle to the hub.
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug, thiserror::Error)]
pub enum HubSetupError {
    #[error("[sessions]: {0}")]
    Codec(#[from] proto::session_id::CodecError),
    #[error("backend client: {0}")]
    Backend(#[from] crate::backend::BackendError),
    #[error(transparent)]
    GrpcTls(#[from] crate::grpc::tls::TlsError),
    /// `[mcu]` names an SFU that cannot be used. The reference refuses to
    /// start too; running on without media would report a healthy node
    /// that cannot serve calls.
    #[error("[mcu] {0}")]
    Sfu(String),
}

impl Hub {
    pub fn new(config: &Config, bus: Arc<dyn EventBus>) -> Result<Hub, HubSetupError> {
        let codec = SessionIdCodec::new(
            config.sessions.hash_key.expose().as_bytes(),
            config
                .sessions
                .block_key
                .as_ref()
                .map(|k| k.expose().as_bytes()),
        )?;
        let shutdown = CancellationToken::new();
        let (sfu, proxy_sfu) = sfu_setup::sfu_from_config(config, &shutdown)?;
        let features = ServerFeatures::new(sfu.is_some());
        let client = BackendClient::new(&config.backend, features.header_value())?;
        let peers = crate::grpc::Peers::new(crate::grpc::new_server_id(), &config.grpc)?;
        let hub = Hub {
            inner: Arc::new(Inner {
                codec,
                internal_secret: config.clients.internal_secret.clone(),
                backends: RwLock::new(Arc::new(Backends::new(&config.backend))),
                client,
                bus,
                sessions: Sessions::default(),
                rooms: Rooms::default(),
                throttler: Throttler::default(),
                sfu,
                proxy_sfu,
                allow_subscribe_any: config.app.allow_subscribe_any,
                policy: RwLock::new(Arc::new(policy::NetPolicy::from_config(config))),
                geoip: Arc::default(),
                features,
                tasks: TaskTracker::new(),
                shutdown,
                federation: FederationSettings {
                    timeout: config.federation.timeout,
                    skip_verify: config.federation.skip_verify,
                },
                dialouts: dialout::PendingDialouts::default(),
                peers,
                node: rand::random(),
                cluster_subscriptions: parking_lot::Mutex::default(),
                nodes: parking_lot::Mutex::default(),
                remote_counts: parking_lot::Mutex::default(),
                // Sessions keep their index when they move to another
                // node (`handover`): a random start per node keeps indexes
                // apart across the cluster.
                next_index: AtomicU64::new((u64::from(rand::random::<u32>()) << 32) | 1),
                etcd: Default::default(),
                draining: Default::default(),
            }),
        };
        crate::metrics::backends_configured(hub.backends().all());
        if let Some(proxies) = &hub.inner.proxy_sfu {
            let peers = hub.inner.peers.clone();
            proxies.set_publisher_lookup(Arc::new(move |session, stream| {
                let peers = peers.clone();
                Box::pin(async move { peers.publisher_on_proxy(&session, stream.as_str()).await })
            }));
        }
        hub.subscribe_cluster_subjects();
        Ok(hub)
    }

    /// The address rules in force.
    pub fn policy(&self) -> Arc<policy::NetPolicy> {
        self.inner.policy.read().clone()
    }

    /// The country of a client address: `[geoip-overrides]`, then the
    /// GeoIP database; `None` when unknown.
    pub fn country_of(&self, ip: std::net::IpAddr) -> Option<String> {
        let overridden = self.policy().country_override(ip).map(str::to_owned);
        match overridden {
            Some(cc) => Some(cc),
            None if ip.is_loopback() => None,
            None => self.inner.geoip.country(ip),
        }
        .filter(|cc| sfu_bridge::geo::is_country(cc))
    }

    /// The SFU, when `[mcu]` configures one.
    pub fn sfu(&self) -> Option<&Arc<dyn sfu_bridge::sfu::Sfu>> {
        self.inner.sfu.as_ref()
    }

    pub fn features(&self) -> &ServerFeatures {
        &self.inner.features
    }

    pub(crate) fn backends(&self) -> Arc<Backends> {
        self.inner.backends.read().clone()
    }

    /// Replaces the backends with ones from a dynamic source (etcd).
    pub fn set_backend_entries(&self, entries: Vec<crate::config::BackendEntry>) {
        self.set_backends(Backends::from_entries(&entries));
    }

    fn set_backends(&self, backends: Backends) {
        crate::metrics::backends_configured(backends.all());
        *self.inner.backends.write() = Arc::new(backends);
    }

    /// SIGHUP: backends, address rules and `[continent-overrides]` from a
    /// re-read configuration (gRPC targets and proxy URLs:
    /// `Discovery::reload`).
    pub fn reload(&self, config: &Config) {
        self.set_backends(Backends::new(&config.backend));
        *self.inner.policy.write() = Arc::new(policy::NetPolicy::from_config(config));
        if let Some(sfu) = &self.inner.proxy_sfu {
            sfu.set_continent_overrides(config.geoip.continent_overrides.clone());
        }
    }

    /// The live local session a private (resume) id belongs to.
    pub(crate) fn resumable_session(&self, resume_id: &str) -> Option<Arc<Session>> {
        let data = self.inner.codec.decode_private(resume_id).ok()?;
        self.inner.sessions.by_index(data.sid).filter(|s| {
            s.private_id.as_str() == resume_id
                && !s.is_closed()
                && matches!(
                    s.client_type,
                    ClientType::Client | ClientType::Internal | ClientType::Federation
                )
        })
    }

    pub(crate) fn next_session_index(&self) -> u64 {
        self.inner.next_index.fetch_add(1, Ordering::Relaxed)
    }

    pub fn session_count(&self) -> usize {
        self.inner.sessions.len()
    }

    pub fn room_count(&self) -> usize {
        self.inner.rooms.len()
    }

    /// Waits for background requests to Talk to finish.
    /// The tasks the hub owns; [`Hub::drain`] waits for them.
    pub fn tasks(&self) -> &TaskTracker {
        &self.inner.tasks
    }

    pub async fn drain(&self) {
        // What was published last (bye notices, handover markers) reaches
        // the other nodes before the connection to NATS goes.
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(2), self.inner.bus.barrier()).await;
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        self.inner.peers.close().await;
        if let Some(sfu) = self.sfu() {
            sfu.stopped().await;
        }
        self.inner.bus.close().await;
    }

    // === connection events ===

    /// The first frame of every connection (facts 1.4).
    pub fn welcome(&self, ctx: &ConnCtx) {
        ctx.reply(&ServerMessage::new(ServerBody::Welcome {
            welcome: WelcomeMessage {
                version: proto::SERVER_VERSION.to_owned(),
                features: self.inner.features.welcome.clone(),
                country: self.country_of(ctx.info.addr),
            },
        }));
    }

    pub fn hello_timeout(&self, ctx: &ConnCtx) {
        send_bye(&ctx.outbox, bye_reason::HELLO_TIMEOUT);
    }

    pub fn binary_frame(&self, ctx: &ConnCtx) {
        ctx.reply_error(None, WireError::new(ErrorCode::InvalidFormat));
    }

    /// The socket is gone. A session that did not say bye waits for a
    /// resume (facts 1.7).
    pub fn connection_closed(&self, ctx: &mut ConnCtx) {
        // Ends the stream to the owner node, which then detaches.
        ctx.remote = None;
        if let Some(session) = ctx.session.take() {
            if session.detach(ctx.outbox.id()) {
                tracing::debug!(session = %session.public_id, "connection lost, session kept for resume");
            }
        }
    }

    /// Decodes one text frame and dispatches it.
    pub async fn handle_frame(&self, ctx: &mut ConnCtx, frame: &[u8]) -> Flow {
        match self.handle_frame_now(ctx, frame) {
            Ok(flow) => flow,
            // Boxed: that future is large (Talk requests) and would
            // otherwise be part of every idle connection's task.
            Err(pending) => Box::pin(self.finish_frame(ctx, pending, frame)).await,
        }
    }

    /// Handles what needs no waiting (messages, control, transient data,
    /// bye, errors) at once; the rest is returned for
    /// [`Hub::finish_frame`]. Most frames are messages: they must not pay
    /// for the large future of a Talk request.
    fn handle_frame_now(&self, ctx: &mut ConnCtx, frame: &[u8]) -> Result<Flow, Box<Pending>> {
        if ctx.remote.is_some() {
            return Err(Box::new(Pending::Forward));
        }
        let msg = match ClientMessage::decode(frame) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(addr = %ctx.info.addr, code = %e.error.code, "undecodable message");
                ctx.reply_error(e.id, e.error);
                return Ok(Flow::Continue);
            }
        };
        if let Some(c) = METRICS.hot.server_message(msg.body.kind()) {
            c.inc();
        }
        let Some(session) = ctx.session.clone() else {
            return match msg.body {
                ClientRequest::Hello(hello) => Err(Box::new(Pending::Hello { id: msg.id, hello })),
                _ => {
                    ctx.reply_error(msg.id, WireError::new(ErrorCode::HelloExpected));
                    Ok(Flow::Continue)
                }
            };
        };
        if !session.is_attached(ctx.outbox.id()) {
            // Taken over by a resume on another connection.
            return Ok(Flow::Close);
        }
        if let Some(fed) = session.federation() {
            // While in a remote room, everything but hello/room/bye goes
            // to the remote server (facts 6.5).
            if matches!(
                msg.body,
                ClientRequest::Message(_)
                    | ClientRequest::Control(_)
                    | ClientRequest::Transient(_)
                    | ClientRequest::Internal(_)
            ) {
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(frame) {
                    fed.forward(v);
                }
                return Ok(Flow::Continue);
            }
        }
        match msg.body {
            // A second hello on an authenticated connection is ignored.
            ClientRequest::Hello(_) => Ok(Flow::Continue),
            ClientRequest::Bye => {
                ctx.reply(&ServerMessage::reply(msg.id, ServerBody::Bye { bye: None }));
                ctx.outbox.close(CLOSE_NORMAL, "");
                ctx.session = None;
                self.close_session(&session, true);
                Ok(Flow::Close)
            }
            ClientRequest::Room(req) => Err(Box::new(Pending::Room {
                session,
                id: msg.id,
                req,
            })),
            ClientRequest::Message(m) => {
                handle::message::message(self, &session, msg.id, m, handle::message::Kind::Message);
                Ok(Flow::Continue)
            }
            ClientRequest::Control(m) => {
                handle::message::message(self, &session, msg.id, m, handle::message::Kind::Control);
                Ok(Flow::Continue)
            }
            ClientRequest::Transient(t) => {
                handle::transient::transient(self, ctx, &session, msg.id, t);
                Ok(Flow::Continue)
            }
            ClientRequest::Internal(_) if !session.is_internal() => {
                tracing::debug!(session = %session.public_id, "internal message from non-internal session ignored");
                Ok(Flow::Continue)
            }
            ClientRequest::Internal(req) => Err(Box::new(Pending::Internal {
                session,
                id: msg.id,
                req,
            })),
            ClientRequest::Unknown(kind) => {
                tracing::debug!(session = %session.public_id, kind, "unknown message type ignored");
                Ok(Flow::Continue)
            }
        }
    }

    /// The part of a frame that waits: Talk requests, the owner node of a
    /// session on another node.
    async fn finish_frame(&self, ctx: &mut ConnCtx, pending: Box<Pending>, frame: &[u8]) -> Flow {
        match *pending {
            Pending::Forward => match &ctx.remote {
                Some(remote) if remote.forward(frame).await => Flow::Continue,
                _ => Flow::Close,
            },
            Pending::Hello { id, hello } => {
                handle::hello::hello(self, ctx, id, hello, frame).await;
                Flow::Continue
            }
            Pending::Room { session, id, req } => {
                handle::room::room(self, ctx, &session, id, req).await;
                Flow::Continue
            }
            Pending::Internal { session, id, req } => {
                handle::internal::internal(self, ctx, &session, id, req).await;
                Flow::Continue
            }
        }
    }

    // === session lifecycle ===

    /// Ends a session for good: leaves its room (telling Talk if
    /// `notify_backend`) and unregisters it.
    pub(crate) fn close_session(&self, session: &Arc<Session>, notify_backend: bool) {
        if !session.mark_closed() {
            return;
        }
        if let Some(fed) = session.take_federation() {
            fed.close();
        }
        if session.is_internal() {
            for v in self.inner.sessions.virtuals_of(&session.public_id) {
                handle::internal::close_virtual(self, &v, None);
            }
        }
        handle::room::leave_room(self, session, notify_backend);
        media::shut_down(session);
        self.inner.sessions.unregister(session);
        if session.backend.session_limit > 0 {
            // Free the slot for the other nodes at once.
            self.heartbeat();
        }
        tracing::debug!(session = %session.public_id, "session closed");
    }

    /// Sends `bye` with a reason, closes the connection and the session.
    pub(crate) fn bye_and_close(&self, session: &Arc<Session>, reason: &str, notify_backend: bool) {
        if let Some(outbox) = session.take_outbox() {
            send_bye(&outbox, reason);
        }
        self.close_session(session, notify_backend);
    }

    /// The bus sink of a session for one of its subjects: per-receiver
    /// delivery, the close a disinvite from the current room asks for,
    /// and the cut while the session moves to another node.
    pub(crate) fn session_sink(
        &self,
        session: &Arc<Session>,
        kind: session::SubjectKind,
    ) -> crate::cluster::BusSink {
        let weak = Arc::downgrade(session);
        let hub = Arc::downgrade(&self.inner);
        Arc::new(move |m: &Arc<crate::cluster::BusMessage>| {
            let Some(s) = weak.upgrade() else { return };
            if !s.admit(kind, m) {
                return;
            }
            if let crate::cluster::BusPayload::SendOffer {
                message_id,
                sender,
                data,
            } = &m.payload
            {
                if let Some(inner) = hub.upgrade() {
                    media::send_offer_received(
                        &Hub { inner },
                        &s,
                        message_id.clone(),
                        sender.clone(),
                        data,
                    );
                }
                return;
            }
            if s.deliver(m) == session::Delivered::CloseAfter {
                if let Some(inner) = hub.upgrade() {
                    Hub { inner }.close_after_disinvite(&s);
                }
            }
        })
    }

    /// Closes connection and session after a disinvite event was queued.
    pub(crate) fn close_after_disinvite(&self, session: &Arc<Session>) {
        if let Some(outbox) = session.take_outbox() {
            outbox.close(CLOSE_NORMAL, "");
        }
        self.close_session(session, true);
    }

    /// Publishes on the event bus. A failure is logged: the bus reconnects
    /// on its own and the protocol has no retry for these messages.
    pub(crate) fn publish(
        &self,
        subject: &crate::cluster::Subject,
        msg: crate::cluster::BusMessage,
    ) {
        match self.inner.bus.publish(subject, Arc::new(msg)) {
            Ok(()) => {}
            // Counted in signaling_nats_publish_dropped_total; a warning
            // per message would flood the log exactly when NATS is slow.
            Err(crate::cluster::bus::BusError::Overloaded) => {
                tracing::debug!(subject = %subject.to_subject_string(), "bus queue full, message dropped");
            }
            Err(e) => {
                tracing::warn!(subject = %subject.to_subject_string(), error = %e, "could not publish on the bus");
            }
        }
    }

    /// The `join` entry describing `s` to others (facts 1.14.1).
    pub(crate) fn join_entry(&self, s: &Session) -> JoinEntry {
        JoinEntry {
            sessionid: s.public_id.clone(),
            userid: s.effective_user_id(),
            user: s.user_data.clone(),
            roomsessionid: s
                .room_session_id()
                .map(|r| r.0)
                .filter(|_| s.client_type != ClientType::Virtual)
                .unwrap_or_default(),
            features: s.features.clone(),
            federated: s.client_type == ClientType::Federation,
        }
    }
}

/// Sends `bye` with a reason, then closes the connection.
pub(crate) fn send_bye(outbox: &Outbox, reason: &str) {
    let bye = ServerMessage::new(ServerBody::Bye {
        bye: Some(ByeMessage {
            reason: reason.to_owned(),
        }),
    });
    outbox.send_text(bye.to_json().into());
    outbox.close(CLOSE_NORMAL, "");
}
