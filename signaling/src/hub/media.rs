//! Media through the SFU (cluster facts 4.3-4.7): the `offer`, `answer`,
//! `candidate`, `endOfCandidates`, `requestoffer` and `selectStream`
//! messages a client addresses to a session are signaling for the SFU,
//! not for that session. Each session's requests are handled in order by
//! one worker (offers and the candidates right behind them must reach
//! Janus in that order); `requestoffer` runs on its own because it may
//! wait for the publisher.

use std::sync::{Arc, Weak};

use proto::error::{ErrorCode, WireError};
use proto::ids::PublicSessionId;
use proto::permissions::Permission;
use proto::server::ServerMessage;
use proto::RawJson;
use serde::Deserialize;
use serde_json::Value;
use sfu_bridge::sfu::{
    media, Client, PublisherSettings, Request, Sfu, SfuError, StreamSelection, StreamType,
};
use tokio::sync::mpsc;

use super::session::{ClientType, Session};
use super::Hub;
use crate::metrics::METRICS;

mod clients;
mod listener;
mod sdp;
mod send_offer;

pub use clients::MediaClients;
use listener::{listener, sfu_message};

pub(crate) use send_offer::{send_offer, send_offer_received};

/// Message types handled here rather than delivered.
pub fn is_sfu_message(kind: &str) -> bool {
    matches!(
        kind,
        "offer" | "answer" | "candidate" | "endOfCandidates" | "requestoffer" | "selectStream"
    )
}

/// Requests a session may queue before it is considered stuck.
const QUEUE: usize = 64;

/// The `data` of an SFU message (facts 4.3).
#[derive(Debug, Deserialize)]
pub struct SfuData {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub sid: String,
    #[serde(default, rename = "roomType")]
    pub room_type: String,
    #[serde(default)]
    pub payload: Value,
    #[serde(default)]
    pub bitrate: Option<f64>,
    #[serde(default)]
    pub audiocodec: Option<String>,
    #[serde(default)]
    pub videocodec: Option<String>,
    #[serde(default)]
    pub vp9profile: Option<String>,
    #[serde(default)]
    pub h264profile: Option<String>,
}

struct Job {
    id: Option<String>,
    target: PublicSessionId,
    data: SfuData,
}

/// Closes a session's clients in the background.
fn close_clients(session: &Session, clients: Vec<Arc<dyn Client>>) {
    if clients.is_empty() {
        return;
    }
    session.media.tasks.spawn(async move {
        for c in clients {
            c.close().await;
        }
    });
}

/// The session left its room or the call: its media ends.
pub(crate) fn close_all(session: &Session) {
    close_clients(session, session.media.take_all(false));
}

/// The session is gone for good.
pub(crate) fn shut_down(session: &Session) {
    close_clients(session, session.media.take_all(true));
}

/// Permissions changed: publishers that are no longer allowed close
/// (facts 4.3).
pub(crate) fn permissions_changed(session: &Session) {
    let publish_media = session.has_permission(Permission::PublishMedia);
    let mut gone = Vec::new();
    if !session.has_permission(Permission::PublishScreen) {
        gone.extend(session.media.take_publisher(StreamType::Screen));
    }
    if !publish_media {
        let audio = session.has_permission(Permission::PublishAudio);
        let video = session.has_permission(Permission::PublishVideo);
        let mask = session
            .published_media
            .load(std::sync::atomic::Ordering::Relaxed);
        if (mask & media::AUDIO != 0 && !audio) || (mask & media::VIDEO != 0 && !video) {
            gone.extend(session.media.take_publisher(StreamType::Video));
        }
    }
    close_clients(session, gone);
}

fn error(code: ErrorCode, message: &str) -> WireError {
    let mut e = WireError::new(code);
    if !message.is_empty() {
        e.message = message.to_owned();
    }
    e
}

pub(crate) fn reply_error(session: &Session, id: Option<String>, e: WireError) {
    METRICS
        .client_errors_total
        .with_label_values(&[e.code.as_str()])
        .inc();
    session.send(&ServerMessage::error(id, e));
}

/// Queues an SFU message of `session` addressed to `target`.
pub(crate) fn submit(
    hub: &Hub,
    session: &Arc<Session>,
    id: Option<String>,
    target: PublicSessionId,
    raw: &RawJson,
) {
    let data: SfuData = match serde_json::from_str(raw.get()) {
        Ok(d) => d,
        Err(_) => return reply_error(session, id, WireError::new(ErrorCode::InvalidFormat)),
    };
    if let Err(e) = validate(&data) {
        return reply_error(session, id, e);
    }
    if data.kind == "requestoffer" {
        // May wait for the publisher: not in the session's queue.
        let (hub, session) = (hub.clone(), session.clone());
        let tasks = session.media.tasks.clone();
        tasks.spawn(async move { process(&hub, &session, Job { id, target, data }).await });
        return;
    }
    let mut c = session.media.inner.lock();
    if c.closed {
        return;
    }
    let queue = c.queue.get_or_insert_with(|| {
        let (tx, rx) = mpsc::channel(QUEUE);
        session
            .media
            .tasks
            .spawn(worker(hub.clone(), Arc::downgrade(session), rx));
        tx
    });
    if let Err(e) = queue.try_send(Job { id, target, data }) {
        let job = match e {
            mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => j,
        };
        drop(c);
        tracing::warn!(session = %session.public_id, "SFU request queue full");
        reply_error(session, job.id, WireError::new(ErrorCode::ProcessingFailed));
    }
}

async fn worker(hub: Hub, session: Weak<Session>, mut rx: mpsc::Receiver<Job>) {
    while let Some(job) = rx.recv().await {
        let Some(s) = session.upgrade() else { return };
        process(&hub, &s, job).await;
    }
}

/// Syntax checks of facts 4.3, before anything reaches the SFU.
fn validate(data: &SfuData) -> Result<(), WireError> {
    if !data.room_type.is_empty() && StreamType::parse(&data.room_type).is_err() {
        return Err(error(ErrorCode::InvalidFormat, "Invalid room type."));
    }
    match data.kind.as_str() {
        "offer" | "answer" => {
            let sdp = data.payload["sdp"].as_str().unwrap_or_default();
            sdp::parse(sdp).map_err(|e| error(ErrorCode::InvalidSdp, &e))?;
        }
        "candidate" => match data.payload.get("candidate") {
            None => return Err(WireError::new(ErrorCode::NoCandidate)),
            Some(c) if !c["candidate"].is_string() => {
                return Err(WireError::new(ErrorCode::InvalidCandidate));
            }
            Some(_) => {}
        },
        _ => {}
    }
    Ok(())
}

async fn process(hub: &Hub, session: &Arc<Session>, job: Job) {
    let Some(sfu) = hub.inner.sfu.clone() else {
        return;
    };
    let Job { id, target, data } = job;
    let stream = StreamType::parse(&data.room_type).unwrap_or(StreamType::Video);
    let own = target == session.public_id;
    let result = match data.kind.as_str() {
        "offer" => offer(hub, &sfu, session, &data, stream).await,
        "requestoffer" if !own => request_offer(hub, &sfu, session, &target, &data, stream).await,
        "answer" | "candidate" | "endOfCandidates" | "selectStream" => {
            forward(hub, session, &target, &data, stream).await
        }
        _ => Ok(None),
    };
    match result {
        Ok(Some((from, jsep, sid))) => {
            let kind = if data.kind == "offer" {
                "answer"
            } else {
                "offer"
            };
            session.send(&sfu_message(id, session, &from, kind, stream, jsep, &sid));
        }
        Ok(None) => {}
        Err(e) => reply_error(session, id, e),
    }
}

type Answer = Option<(PublicSessionId, Value, String)>;

fn sfu_error(e: SfuError) -> WireError {
    tracing::debug!(error = %e, "SFU request failed");
    match e {
        SfuError::InvalidSelection(_) => WireError::new(ErrorCode::InvalidFormat),
        _ => WireError::new(ErrorCode::ProcessingFailed),
    }
}

/// Allowed media of an offer (facts 4.4); the mask to publish with.
fn allowed_media(session: &Session, stream: StreamType, sdp: &sdp::Sdp) -> Option<u32> {
    if stream == StreamType::Screen {
        return session
            .has_permission(Permission::PublishScreen)
            .then_some(media::SCREEN);
    }
    let any = session.has_permission(Permission::PublishMedia);
    let mut mask = 0;
    for kind in &sdp.media {
        match kind.as_str() {
            "audio" => {
                if !(any || session.has_permission(Permission::PublishAudio)) {
                    return None;
                }
                mask |= media::AUDIO;
            }
            "video" => {
                if !(any || session.has_permission(Permission::PublishVideo)) {
                    return None;
                }
                mask |= media::VIDEO;
            }
            _ => {}
        }
    }
    Some(mask)
}

fn can_publish_something(session: &Session, stream: StreamType) -> bool {
    if stream == StreamType::Screen {
        return session.has_permission(Permission::PublishScreen);
    }
    [
        Permission::PublishMedia,
        Permission::PublishAudio,
        Permission::PublishVideo,
    ]
    .into_iter()
    .any(|p| session.has_permission(p))
}

/// The bitrate a publisher asks for, capped by the backend (facts 4.5).
fn requested_bitrate(session: &Session, stream: StreamType, requested: Option<f64>) -> u64 {
    let backend_max = match stream {
        StreamType::Video => session.backend.max_stream_bitrate,
        StreamType::Screen => session.backend.max_screen_bitrate,
    };
    let requested = requested
        .filter(|b| *b > 0.0)
        .map(|b| b as u64)
        .unwrap_or(0);
    if requested == 0 || (backend_max > 0 && requested > backend_max) {
        backend_max
    } else {
        requested
    }
}

async fn offer(
    hub: &Hub,
    sfu: &Arc<dyn Sfu>,
    session: &Arc<Session>,
    data: &SfuData,
    stream: StreamType,
) -> Result<Answer, WireError> {
    let raw_sdp = data.payload["sdp"].as_str().unwrap_or_default();
    let parsed = sdp::parse(raw_sdp).map_err(|e| error(ErrorCode::InvalidSdp, &e))?;
    let Some(mask) = allowed_media(session, stream, &parsed) else {
        return Err(error(ErrorCode::NotAllowed, "Not allowed to publish."));
    };
    let publisher = match session.media.publisher(stream) {
        Some(p) => p,
        None => {
            let settings = PublisherSettings {
                country: session.country.lock().clone(),
                bitrate: requested_bitrate(session, stream, data.bitrate),
                media_types: mask,
                audio_codec: data.audiocodec.clone(),
                video_codec: data.videocodec.clone(),
                vp9_profile: data.vp9profile.clone(),
                h264_profile: data.h264profile.clone(),
            };
            let p = sfu
                .new_publisher(
                    listener(session),
                    &session.public_id.0,
                    &data.sid,
                    stream,
                    settings,
                )
                .await
                .map_err(|e| {
                    tracing::debug!(session = %session.public_id, error = %e, "no publisher");
                    WireError::new(ErrorCode::ClientNotFound)
                })?;
            let mut c = session.media.inner.lock();
            if c.closed {
                drop(c);
                close_clients(session, vec![p]);
                return Ok(None);
            }
            // A racing offer may have created one meanwhile: keep the first.
            match c.publishers.get(&stream) {
                Some(existing) => {
                    let existing = existing.clone();
                    drop(c);
                    close_clients(session, vec![p]);
                    existing
                }
                None => {
                    c.publishers.insert(stream, p.clone());
                    p
                }
            }
        }
    };
    if stream == StreamType::Video {
        session
            .published_media
            .store(mask, std::sync::atomic::Ordering::Relaxed);
    }
    let mut jsep = data.payload.clone();
    let policy = hub.policy();
    if let Some(filtered) = sdp::filter_candidates(raw_sdp, &|c| policy.candidate_allowed(c)) {
        jsep["sdp"] = Value::String(filtered);
    }
    // The client's JSEP as it came (Janus reads `trickle` too), with the
    // filtered SDP.
    jsep["type"] = Value::String("offer".into());
    let answer = publisher
        .send(Request::Offer(jsep), &data.sid)
        .await
        .map_err(sfu_error)?;
    Ok(answer.map(|a| (session.public_id.clone(), a, publisher.sid())))
}

/// Whether `session` may subscribe to `target` (facts 4.3 `requestoffer`).
async fn may_subscribe(hub: &Hub, session: &Session, target: &PublicSessionId) -> bool {
    if session.is_internal() || hub.inner.allow_subscribe_any {
        return true;
    }
    let Some(room) = session.room() else {
        tracing::debug!(session = %session.public_id.0, "may not subscribe: not in a room");
        return false;
    };
    if !room.is_in_call(&session.public_id) {
        tracing::debug!(session = %session.public_id.0, "may not subscribe: not in the call");
        return false;
    }
    if let Some(t) = hub.inner.sessions.by_public(target) {
        let same_room = t.room().is_some_and(|r| Arc::ptr_eq(&r, &room));
        return same_room && (t.client_type == ClientType::Internal || room.is_in_call(target));
    }
    let in_call = hub
        .inner
        .peers
        .is_session_in_call(&target.0, &room.id.0, &session.backend_url)
        .await;
    if !in_call {
        tracing::debug!(target = %target.0, "may not subscribe: no node has the target in the call");
    }
    in_call
}

async fn request_offer(
    hub: &Hub,
    sfu: &Arc<dyn Sfu>,
    session: &Arc<Session>,
    target: &PublicSessionId,
    data: &SfuData,
    stream: StreamType,
) -> Result<Answer, WireError> {
    if !may_subscribe(hub, session, target).await {
        return Err(error(
            ErrorCode::NotAllowed,
            "Not allowed to request offer.",
        ));
    }
    let selection = StreamSelection::from_payload(&data.payload).map_err(sfu_error)?;
    let subscriber = match subscriber_for(sfu, session, target, stream).await {
        Ok(Some(s)) => s,
        Ok(None) => return Ok(None),
        Err(e) => {
            tracing::debug!(session = %session.public_id, publisher = %target, error = %e, "no subscriber");
            return Err(WireError::new(ErrorCode::ClientNotFound));
        }
    };
    let offer = subscriber
        .send(Request::RequestOffer(selection), &data.sid)
        .await
        .map_err(sfu_error)?;
    Ok(offer.map(|o| (target.clone(), o, subscriber.sid())))
}

/// `session`'s subscriber of `publisher`'s stream, created if there is
/// none yet; `None` if the session closed meanwhile.
async fn subscriber_for(
    sfu: &Arc<dyn Sfu>,
    session: &Arc<Session>,
    publisher: &PublicSessionId,
    stream: StreamType,
) -> Result<Option<Arc<dyn Client>>, SfuError> {
    if let Some(s) = session.media.subscriber(publisher, stream) {
        return Ok(Some(s));
    }
    let country = session.country.lock().clone();
    let s = sfu
        .new_subscriber(listener(session), &publisher.0, stream, country)
        .await?;
    let mut c = session.media.inner.lock();
    if c.closed {
        drop(c);
        close_clients(session, vec![s]);
        return Ok(None);
    }
    // A racing request may have created one meanwhile: keep the first.
    match c.subscribers.get(&(publisher.clone(), stream)) {
        Some(existing) => {
            let existing = existing.clone();
            drop(c);
            close_clients(session, vec![s]);
            Ok(Some(existing))
        }
        None => {
            c.subscribers.insert((publisher.clone(), stream), s.clone());
            Ok(Some(s))
        }
    }
}

/// `answer`, `candidate`, `endOfCandidates`, `selectStream`: to the own
/// publisher or the subscriber of the target's stream.
async fn forward(
    hub: &Hub,
    session: &Arc<Session>,
    target: &PublicSessionId,
    data: &SfuData,
    stream: StreamType,
) -> Result<Answer, WireError> {
    let own = *target == session.public_id;
    let request = match data.kind.as_str() {
        "answer" => {
            let raw = data.payload["sdp"].as_str().unwrap_or_default();
            let mut jsep = data.payload.clone();
            jsep["type"] = Value::String("answer".into());
            let policy = hub.policy();
            if let Some(filtered) = sdp::filter_candidates(raw, &|c| policy.candidate_allowed(c)) {
                jsep["sdp"] = Value::String(filtered);
            }
            Request::Answer(jsep)
        }
        "candidate" => {
            let candidate = data.payload["candidate"].clone();
            let line = candidate["candidate"].as_str().unwrap_or_default();
            let policy = hub.policy();
            if !line.is_empty() && !sdp::candidate_allowed(line, &|c| policy.candidate_allowed(c)) {
                return Ok(None);
            }
            if own && !can_publish_something(session, stream) {
                return Err(error(
                    ErrorCode::NotAllowed,
                    "Not allowed to send candidate.",
                ));
            }
            Request::Candidate(candidate)
        }
        "endOfCandidates" => Request::EndOfCandidates,
        _ if own => return Ok(None),
        _ => {
            Request::SelectStream(StreamSelection::from_payload(&data.payload).map_err(sfu_error)?)
        }
    };
    let client = if own {
        session.media.publisher(stream)
    } else {
        session.media.subscriber(target, stream)
    };
    let Some(client) = client else {
        return Err(WireError::new(ErrorCode::ClientNotFound));
    };
    client
        .send(request, &data.sid)
        .await
        .map(|_| None)
        .map_err(sfu_error)
}

/// `unshareScreen` to oneself: the screen publisher closes after a second
/// unless the session shares again meanwhile (facts 4.3).
pub(crate) fn unshare_screen(session: &Arc<Session>) {
    let weak = Arc::downgrade(session);
    session.media.tasks.spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        if let Some(s) = weak.upgrade() {
            if !s.is_closed() {
                close_clients(
                    &s,
                    s.media
                        .take_publisher(StreamType::Screen)
                        .into_iter()
                        .collect(),
                );
            }
        }
    });
}

/// `sendoffer` needs the permission of the stream it offers (facts 4.4).
fn may_send_offer(session: &Session, stream: StreamType) -> bool {
    can_publish_something(session, stream)
}
