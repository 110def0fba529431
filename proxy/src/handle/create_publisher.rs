//! `create-publisher`: a publisher on our Janus for the session's client.

use std::sync::Arc;

use proto::proxy::{codes, ServerMessage};
use sfu_bridge::sfu::{PublisherSettings, Sfu, StreamType};

use crate::listener::ClientListener;
use crate::reply::other_error;
use crate::session::ProxySession;
use crate::state::Proxy;

pub async fn handle(
    proxy: &Arc<Proxy>,
    session: &Arc<ProxySession>,
    id: Option<String>,
    sid: &str,
    stream_type: &str,
    settings: proto::proxy::PublisherSettings,
) -> ServerMessage {
    if proxy.is_draining() {
        return other_error(
            id,
            codes::SHUTDOWN_SCHEDULED,
            "The server is scheduled to shutdown.",
        );
    }
    let Ok(stream) = StreamType::parse(stream_type) else {
        return super::invalid_stream_type(id);
    };
    let settings = PublisherSettings {
        country: None,
        bitrate: settings.bitrate.unwrap_or(0),
        media_types: settings.mediatypes.unwrap_or(0),
        audio_codec: settings.audiocodec,
        video_codec: settings.videocodec,
        vp9_profile: settings.vp9_profile,
        h264_profile: settings.h264_profile,
    };
    let listener = ClientListener::for_new_client(proxy, session);
    let client_id = listener.client_id.clone();
    let created = proxy
        .sfu
        .new_publisher(listener, &client_id, sid, stream, settings)
        .await;
    super::adopt(session, id, client_id, created, "publisher").await
}
