//! `hello`: authentication and resume (facts 1.5, 1.6).

use std::sync::Arc;

use proto::checksum;
use proto::client::{HelloAuth, HelloRequest, HelloVersion};
use proto::error::{ErrorCode, WireError};
use proto::hello_token::{self, TokenKey};
use proto::ids::PrivateSessionId;
use proto::permissions::flags;
use proto::server::{bye_reason, HelloResponse, ServerBody, ServerInfo, ServerMessage};
use proto::session_id::SessionIdData;
use proto::talk::capabilities::FEATURE_FEDERATION_V2;
use proto::talk::request::{AuthRequest, BackendRequest, BACKEND_VERSION};
use proto::RawJson;
use tokio::time::Instant;

use crate::backend::Backend;
use crate::cluster::bus::now_us;
use crate::cluster::Subject;
use crate::hub::session::{ClientType, NewSession, Session};
use crate::hub::{ConnCtx, Hub, HubError};
use crate::metrics::METRICS;
use crate::throttle::Action;

/// Anonymous sessions must join a room within this time.
pub const ANONYMOUS_JOIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Who the client turned out to be.
struct Authenticated {
    client_type: ClientType,
    backend: Arc<Backend>,
    backend_url: String,
    user_id: String,
    user_data: Option<RawJson>,
}

/// `frame` is the message as received, forwarded as is when the session
/// to resume lives on another node.
pub async fn hello(
    hub: &Hub,
    ctx: &mut ConnCtx,
    id: Option<String>,
    req: HelloRequest,
    frame: &[u8],
) {
    let version = req.version;
    let result = match req.auth {
        HelloAuth::Resume(resume_id) => {
            return resume(hub, ctx, id, version, resume_id, frame).await;
        }
        HelloAuth::ClientV1 { url, params } => client_v1(hub, url, params).await,
        HelloAuth::ClientV2 { url, token } => client_v2(hub, url, &token, ClientType::Client).await,
        HelloAuth::Federation { url, token } => {
            client_v2(hub, url, &token, ClientType::Federation).await
        }
        HelloAuth::Internal {
            random,
            token,
            backend,
        } => internal(hub, ctx, &random, &token, backend).await,
    };
    match result {
        Ok(auth) => {
            if let Err(e) = register(hub, ctx, id.clone(), version, auth, req.features).await {
                ctx.reply_error(id, e.into_wire());
            }
        }
        Err(e) => ctx.reply_error(id, e.into_wire()),
    }
}

fn lookup_backend(hub: &Hub, url: &str) -> Result<Arc<Backend>, HubError> {
    hub.backends()
        .lookup(url)
        .ok_or_else(|| ErrorCode::InvalidBackend.into())
}

async fn client_v1(hub: &Hub, url: String, params: RawJson) -> Result<Authenticated, HubError> {
    let backend = lookup_backend(hub, &url)?;
    let request = BackendRequest::Auth {
        auth: AuthRequest {
            version: BACKEND_VERSION.into(),
            params,
        },
    };
    let resp = hub.inner.client.request(&backend, &url, &request).await?;
    match (resp.kind.as_str(), resp.error, resp.auth) {
        ("error", Some(e), _) => Err(e.into()),
        ("auth", _, Some(auth)) => Ok(Authenticated {
            client_type: ClientType::Client,
            backend,
            backend_url: url,
            user_id: auth.userid,
            user_data: auth.user,
        }),
        _ => Err(ErrorCode::AuthFailed.into()),
    }
}

async fn client_v2(
    hub: &Hub,
    url: String,
    token: &str,
    client_type: ClientType,
) -> Result<Authenticated, HubError> {
    let backend = lookup_backend(hub, &url)?;
    let caps = &hub.inner.client.capabilities;
    let mut lookup = caps.get(&url).await?;
    if client_type == ClientType::Federation
        && !lookup
            .data
            .as_ref()
            .is_some_and(|c| c.has_feature(FEATURE_FEDERATION_V2))
    {
        return Err(ErrorCode::FederationUnsupported.into());
    }
    let has_key = |l: &crate::backend::capabilities::Lookup| {
        l.data
            .as_ref()
            .and_then(|c| c.hello_v2_token_key().map(str::to_owned))
    };
    let mut key = has_key(&lookup);
    if key.is_none() && lookup.cached && caps.invalidate(&url) {
        lookup = caps.get(&url).await?;
        key = has_key(&lookup);
    }
    let Some(key) = key else {
        tracing::debug!(url, "no hello-v2-token-key in capabilities");
        return Err(ErrorCode::InvalidToken.into());
    };
    let key = TokenKey::parse(&key).map_err(|e| {
        tracing::warn!(url, error = %e, "unusable hello-v2-token-key");
        HubError::from(ErrorCode::InvalidToken)
    })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let claims = hello_token::verify(token, &key, now).map_err(|e| {
        tracing::debug!(url, error = %e, "hello token refused");
        HubError::from(e.code())
    })?;
    Ok(Authenticated {
        client_type,
        backend,
        backend_url: url,
        user_id: claims.subject,
        user_data: claims.userdata,
    })
}

async fn internal(
    hub: &Hub,
    ctx: &ConnCtx,
    random: &str,
    token: &str,
    backend_url: String,
) -> Result<Authenticated, HubError> {
    let secret = &hub.inner.internal_secret;
    if secret.is_empty() {
        return Err(ErrorCode::InvalidClientType.into());
    }
    let attempt = hub
        .inner
        .throttler
        .check(ctx.info.addr, Action::HelloInternal)
        .map_err(|_| HubError::from(ErrorCode::TooManyRequests))?;
    if !checksum::verify_internal_token(secret.expose().as_bytes(), random, token) {
        attempt.failed().await;
        return Err(ErrorCode::InvalidToken.into());
    }
    let Some(backend) = hub.backends().lookup(&backend_url) else {
        attempt.failed().await;
        return Err(ErrorCode::InvalidBackend.into());
    };
    Ok(Authenticated {
        client_type: ClientType::Internal,
        backend,
        backend_url,
        user_id: String::new(),
        user_data: None,
    })
}

fn server_info(hub: &Hub, internal: bool) -> ServerInfo {
    let f = hub.features();
    ServerInfo {
        version: proto::SERVER_VERSION.to_owned(),
        features: if internal {
            f.internal.clone()
        } else {
            f.client.clone()
        },
    }
}

fn hello_response(hub: &Hub, session: &Session, version: HelloVersion) -> ServerBody {
    ServerBody::Hello {
        hello: HelloResponse {
            version: version.as_str().to_owned(),
            sessionid: session.public_id.clone(),
            resumeid: session.private_id.clone(),
            userid: session.effective_user_id(),
            server: Some(server_info(hub, session.is_internal())),
        },
    }
}

/// Session registration (facts 1.5.7).
async fn register(
    hub: &Hub,
    ctx: &mut ConnCtx,
    id: Option<String>,
    version: HelloVersion,
    auth: Authenticated,
    features: Vec<String>,
) -> Result<(), HubError> {
    if ctx.outbox.is_closed() {
        return Ok(());
    }
    let index = hub.next_session_index();
    let data = SessionIdData {
        sid: index,
        created: now_us(),
        backend_id: auth.backend.id.0.clone(),
    };
    let codec = &hub.inner.codec;
    let session = Arc::new(Session::new(NewSession {
        tasks: hub.inner.tasks.clone(),
        index,
        public_id: codec.encode_public(&data),
        private_id: codec.encode_private(&data),
        client_type: auth.client_type,
        backend: auth.backend,
        backend_url: auth.backend_url,
        user_id: auth.user_id,
        user_data: auth.user_data,
        in_call: if auth.client_type == ClientType::Internal
            && !features
                .iter()
                .any(|f| f == proto::features::CLIENT_INTERNAL_INCALL)
        {
            flags::IN_CALL | flags::WITH_AUDIO
        } else {
            0
        },
        features,
        virtual_owner: None,
        flags: 0,
    }));
    let remote = if session.backend.session_limit == 0 {
        0
    } else if hub.inner.peers.active().is_empty() {
        hub.remote_session_count(&session.backend.id)
    } else {
        // Asked at this moment rather than taken from the last heartbeats.
        hub.inner.peers.session_count(&session.backend_url).await
    };
    if hub.inner.sessions.register(&session, remote).is_err() {
        return Err(ErrorCode::SessionLimitExceeded.into());
    }
    if session.backend.session_limit > 0 {
        // Other nodes learn the new count at once, not at the next beat.
        hub.heartbeat();
    }
    subscribe_session(hub, &session);
    let country = hub.country_of(ctx.info.addr);
    crate::metrics::client_country(country.as_deref());
    *session.country.lock() = country;
    session.attach(ctx.outbox.clone());
    if session.user_id.is_empty() && session.client_type != ClientType::Internal {
        session.set_join_deadline(Some(Instant::now() + ANONYMOUS_JOIN_TIMEOUT));
    }
    tracing::debug!(session = %session.public_id, user = session.user_id, kind = session.client_type.as_str(), "session registered");
    // The subscriptions must be live on the bus before the client can be
    // addressed by others.
    hub.inner.bus.barrier().await;
    ctx.reply(&ServerMessage::reply(
        id,
        hello_response(hub, &session, version),
    ));
    ctx.session = Some(session);
    Ok(())
}

/// Subscribes a new session to its own and its user's subjects.
pub(crate) fn subscribe_session(hub: &Hub, session: &Arc<Session>) {
    use crate::hub::session::SubjectKind;
    let bus = &hub.inner.bus;
    let mut subjects = vec![(
        Subject::Session(session.public_id.clone()),
        SubjectKind::Session,
    )];
    if !session.user_id.is_empty() {
        subjects.push((
            Subject::User {
                backend: session.backend.id.clone(),
                compat: session.backend.is_compat(),
                user: session.user_id.clone(),
            },
            SubjectKind::User,
        ));
    }
    for (subject, kind) in subjects {
        match bus.subscribe(&subject, hub.session_sink(session, kind)) {
            Ok(sub) => session.add_subscription(sub),
            Err(e) => {
                tracing::error!(session = %session.public_id, error = %e, "could not subscribe")
            }
        }
    }
}

/// Resume (facts 1.6).
async fn resume(
    hub: &Hub,
    ctx: &mut ConnCtx,
    id: Option<String>,
    version: HelloVersion,
    resume_id: PrivateSessionId,
    frame: &[u8],
) {
    let Ok(attempt) = hub
        .inner
        .throttler
        .check(ctx.info.addr, Action::HelloResume)
    else {
        ctx.reply_error(id, WireError::new(ErrorCode::TooManyRequests));
        return;
    };
    if let Err(e) = hub.inner.codec.decode_private(resume_id.as_str()) {
        tracing::debug!(error = %e, "undecodable resume id");
        METRICS.hub_sessions_resume_failed_total.inc();
        attempt.failed().await;
        ctx.reply_error(id, WireError::new(ErrorCode::NoSuchSession));
        return;
    }
    let session = match hub.resumable_session(resume_id.as_str()) {
        Some(s) => s,
        None => match resume_elsewhere(hub, ctx, &resume_id, frame).await {
            Elsewhere::Moved(s) => s,
            Elsewhere::Proxied => {
                // Not resumed here (counted as the reference does).
                METRICS.hub_sessions_resume_failed_total.inc();
                return;
            }
            Elsewhere::Nowhere => {
                METRICS.hub_sessions_resume_failed_total.inc();
                ctx.reply_error(id, WireError::new(ErrorCode::NoSuchSession));
                return;
            }
        },
    };
    *session.country.lock() = hub.country_of(ctx.info.addr);
    let reply = ServerMessage::reply(id, hello_response(hub, &session, version));
    let (old, flushed) = session.resume(ctx.outbox.clone(), Arc::from(reply.to_json()));
    if let Some(old) = old {
        // Detached above, so this bye does not close the session.
        crate::hub::send_bye(&old, bye_reason::SESSION_RESUMED);
    }
    METRICS
        .hub_sessions_resume_total
        .with_label_values(&[session.backend.id.as_str(), session.client_type.as_str()])
        .inc();
    tracing::debug!(session = %session.public_id, flushed, "session resumed");
    ctx.session = Some(session);
}

/// What became of a resume for a session this node does not have.
enum Elsewhere {
    /// Its draining node gave it to this one (`hub::handover`).
    Moved(Arc<Session>),
    /// This connection is proxied to the node that has it.
    Proxied,
    /// No node has it.
    Nowhere,
}

/// Resumes a session another node owns: it moves here if that node is
/// draining, else this connection is proxied to it (cluster facts 2.3).
async fn resume_elsewhere(
    hub: &Hub,
    ctx: &mut ConnCtx,
    resume_id: &PrivateSessionId,
    frame: &[u8],
) -> Elsewhere {
    let peers = &hub.inner.peers;
    if peers.is_empty() {
        return Elsewhere::Nowhere;
    }
    let Some((peer, public_id)) = peers.lookup_resume_id(resume_id.as_str()).await else {
        return Elsewhere::Nowhere;
    };
    match hub.take_over(&peer, resume_id.as_str()).await {
        Ok(session) => return Elsewhere::Moved(session),
        Err(crate::hub::handover::HandoverError::Refused(why)) => {
            tracing::debug!(session = public_id, why, "session stays on its node");
        }
        Err(e) => {
            tracing::warn!(session = public_id, node = peer.target.name, error = %e, "could not take the session over");
            return Elsewhere::Nowhere;
        }
    }
    match crate::grpc::remote::open(
        &peer,
        &public_id,
        &ctx.info,
        frame,
        ctx.outbox.clone(),
        hub.tasks(),
    )
    .await
    {
        Ok(link) => {
            tracing::debug!(
                session = public_id,
                node = peer.target.name,
                "session proxied to its node"
            );
            ctx.remote = Some(link);
            Elsewhere::Proxied
        }
        Err(e) => {
            tracing::warn!(session = public_id, node = peer.target.name, error = %e, "could not proxy session");
            Elsewhere::Nowhere
        }
    }
}
