//! The Janus client and videoroom SFU of `sfu-bridge` against a real
//! Janus: publishing answers an offer, a subscriber waits for the
//! publisher's media, closing destroys the room in Janus, errors keep
//! their Janus codes, and a restarted Janus is used again.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Value};
use sfu_bridge::janus::{Gateway, JanusConfig, JanusError, JanusSfu};
use sfu_bridge::sfu::{
    ClientRef, Listener, PublisherSettings, Request, Sfu, SfuError, StreamSelection, StreamType,
};
use tests::janus::{Janus, JanusOptions};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Events {
    closed: Mutex<Vec<ClientRef>>,
}

impl Listener for Events {
    fn on_update_offer(&self, _: &ClientRef, _: &str, _: Value) {}
    fn on_ice_candidate(&self, _: &ClientRef, _: &str, _: Value) {}
    fn on_closed(&self, client: &ClientRef) {
        self.closed.lock().push(client.clone());
    }
}

fn config(janus: &Janus) -> JanusConfig {
    JanusConfig {
        url: janus.url.clone(),
        timeout: Duration::from_secs(5),
        max_stream_bitrate: 1_048_576,
        max_screen_bitrate: 2_097_152,
    }
}

#[tokio::test]
async fn publish_subscribe_close() {
    let janus = Janus::start(JanusOptions::default()).await;
    let shutdown = CancellationToken::new();
    let mut cfg = config(&janus);
    cfg.timeout = Duration::from_secs(1);
    let sfu = JanusSfu::start(cfg, shutdown.clone());
    assert!(sfu.wait_connected(Duration::from_secs(10)).await);
    let info = sfu.server_info();
    assert_eq!(info["janus"]["connected"], true);
    assert_eq!(info["janus"]["version"], "1.1.2");

    let events = Arc::new(Events::default());
    let settings = PublisherSettings {
        bitrate: 5_000_000,
        video_codec: Some("vp8".into()),
        ..Default::default()
    };
    let publisher = sfu
        .new_publisher(
            events.clone(),
            "alice-session",
            "sid-1",
            StreamType::Video,
            settings,
        )
        .await
        .unwrap();
    // Capped to the SFU's maximum.
    assert_eq!(publisher.max_bitrate(), 1_048_576);
    let listed = janus.rooms().await;
    let room = listed
        .iter()
        .find(|r| r["description"] == "alice-session|video")
        .unwrap_or_else(|| panic!("room not created: {listed:?}"));
    assert_eq!(room["bitrate"], 1_048_576);
    assert_eq!(room["videocodec"], "vp8");

    let offer = tests::sdp::publisher_offer(&["audio", "video"]);
    let answer = publisher
        .send(
            Request::Offer(json!({"type": "offer", "sdp": offer})),
            "sid-1",
        )
        .await
        .unwrap()
        .expect("an answer");
    assert_eq!(answer["type"], "answer");
    assert!(answer["sdp"].as_str().unwrap().contains("m=audio"));

    let subscriber = sfu
        .new_subscriber(events.clone(), "alice-session", StreamType::Video, None)
        .await
        .unwrap();
    // Janus lets subscribers join only once the publisher's media is up
    // (no peer here): the request waits for it, then gives up.
    let err = subscriber
        .send(Request::RequestOffer(StreamSelection::default()), "")
        .await
        .unwrap_err();
    assert_eq!(err, SfuError::NoPublisher("alice-session".into()));
    let err = subscriber
        .send(Request::Candidate(json!({"candidate": ""})), "other")
        .await
        .unwrap_err();
    assert_eq!(err, SfuError::Closed);

    // Closing the publisher destroys its room; the subscriber follows.
    publisher.close().await;
    assert!(!janus
        .rooms()
        .await
        .iter()
        .any(|r| r["description"] == "alice-session|video"));
    let closed = tests::wait::eventually(Duration::from_secs(5), || {
        let n = events.closed.lock().len();
        async move { (n == 2).then_some(()) }
    })
    .await;
    assert!(
        closed.is_some(),
        "publisher and subscriber closed: {:?}",
        events.closed.lock()
    );
    shutdown.cancel();
}

/// A subscriber for a stream nobody publishes fails after the timeout;
/// Janus errors keep their codes.
#[tokio::test]
async fn errors() {
    let janus = Janus::start(JanusOptions::default()).await;
    let mut cfg = config(&janus);
    cfg.timeout = Duration::from_millis(300);
    let sfu = JanusSfu::start(cfg, CancellationToken::new());
    assert!(sfu.wait_connected(Duration::from_secs(10)).await);
    let events = Arc::new(Events::default());
    let err = sfu
        .new_subscriber(events, "nobody", StreamType::Screen, None)
        .await
        .err();
    assert_eq!(err, Some(SfuError::NoPublisher("nobody".into())));

    let gw = Gateway::connect(&janus.url, Duration::from_secs(5))
        .await
        .unwrap();
    let session = gw.create_session().await.unwrap();
    let (handle, _) = session.attach("janus.plugin.videoroom").await.unwrap();
    let err = handle
        .request_sync(json!({"request": "destroy", "room": 4242}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), 426, "{err}");
    session.destroy().await.unwrap();
    let err = session.keepalive().await.unwrap_err();
    assert!(
        matches!(err, JanusError::Gateway { code: 458, .. }),
        "{err}"
    );
    gw.close();
}

/// Janus killed: clients are closed and the SFU reconnects when Janus is
/// back, and publishing works again.
#[tokio::test]
async fn janus_restart() {
    let janus = Janus::start(JanusOptions::default()).await;
    let sfu = JanusSfu::start(config(&janus), CancellationToken::new());
    assert!(sfu.wait_connected(Duration::from_secs(10)).await);
    let events = Arc::new(Events::default());
    let publisher = sfu
        .new_publisher(
            events.clone(),
            "bob",
            "s",
            StreamType::Screen,
            PublisherSettings::default(),
        )
        .await
        .unwrap();
    assert_eq!(publisher.max_bitrate(), 2_097_152);
    janus.process.signal(9);
    let closed = tests::wait::eventually(Duration::from_secs(5), || {
        let n = events.closed.lock().len();
        async move { (n == 1).then_some(()) }
    })
    .await;
    assert!(closed.is_some(), "publisher closed when janus died");
    assert!(!sfu.wait_connected(Duration::from_millis(100)).await);
    let port = janus.port;
    drop(janus);
    let _janus = Janus::start(JanusOptions {
        port: Some(port),
        ..Default::default()
    })
    .await;
    assert!(
        sfu.wait_connected(Duration::from_secs(20)).await,
        "reconnected"
    );
    sfu.new_publisher(
        events,
        "bob",
        "s",
        StreamType::Screen,
        PublisherSettings::default(),
    )
    .await
    .unwrap();
}
