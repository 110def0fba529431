//! WebRTC peers for the media tests: a publisher sending synthetic audio
//! and video, a subscriber counting the RTP packets it gets.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MediaEngine, MIME_TYPE_OPUS, MIME_TYPE_VP8};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::APIBuilder;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::interceptor::registry::Registry;
use webrtc::media::Sample;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecCapability, RTPCodecType};
use webrtc::track::track_local::track_local_static_sample::TrackLocalStaticSample;

pub(crate) const PEER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// A WebRTC peer limited to 127.0.0.2, UDP, no mDNS (components.md).
pub(crate) async fn peer() -> Arc<RTCPeerConnection> {
    let mut media = MediaEngine::default();
    media.register_default_codecs().expect("codecs");
    let registry =
        register_default_interceptors(Registry::new(), &mut media).expect("interceptors");
    let mut settings = SettingEngine::default();
    settings.set_include_loopback_candidate(true);
    settings.set_ip_filter(Box::new(|ip| ip == IpAddr::V4(PEER_IP)));
    settings.set_network_types(vec![NetworkType::Udp4]);
    settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    let api = APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .build();
    Arc::new(
        api.new_peer_connection(RTCConfiguration::default())
            .await
            .expect("peer connection"),
    )
}

/// Only candidates on loopback addresses survive (Janus may list others).
pub(crate) fn loopback_only(sdp: &str) -> String {
    sdp.split_inclusive('\n')
        .filter(|l| {
            !l.starts_with("a=candidate:")
                || l.split_whitespace()
                    .nth(4)
                    .is_some_and(|a| a.starts_with("127."))
        })
        .collect()
}

/// The local description once all candidates are gathered (no trickle).
pub(crate) async fn gathered(pc: &RTCPeerConnection, desc: RTCSessionDescription) -> String {
    let mut done = pc.gathering_complete_promise().await;
    pc.set_local_description(desc)
        .await
        .expect("local description");
    let _ = done.recv().await;
    pc.local_description().await.expect("local description").sdp
}

/// A publisher peer sending Opus silence and VP8-looking frames.
pub(crate) struct Publisher {
    pub(crate) pc: Arc<RTCPeerConnection>,
    stop: tokio_util::sync::CancellationToken,
}

impl Publisher {
    pub(crate) async fn new(audio: bool) -> Publisher {
        let pc = peer().await;
        let stop = tokio_util::sync::CancellationToken::new();
        let mut tracks = Vec::new();
        if audio {
            tracks.push((
                RTCRtpCodecCapability {
                    mime_type: MIME_TYPE_OPUS.to_owned(),
                    clock_rate: 48000,
                    channels: 2,
                    ..Default::default()
                },
                Bytes::from_static(&[0xf8, 0xff, 0xfe]),
                Duration::from_millis(20),
            ));
        }
        tracks.push((
            RTCRtpCodecCapability {
                mime_type: MIME_TYPE_VP8.to_owned(),
                clock_rate: 90000,
                ..Default::default()
            },
            Bytes::from_static(&[
                0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x10, 0x00, 0x10, 0x00, 0x00, 0x00,
            ]),
            Duration::from_millis(33),
        ));
        for (i, (codec, payload, every)) in tracks.into_iter().enumerate() {
            let track = Arc::new(TrackLocalStaticSample::new(
                codec,
                format!("track{i}"),
                "stream".into(),
            ));
            pc.add_track(track.clone()).await.expect("add track");
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                // Bounded: a test never runs longer than this.
                for _ in 0..2000 {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tick.tick() => {}
                    }
                    let sample = Sample {
                        data: payload.clone(),
                        duration: every,
                        ..Default::default()
                    };
                    let _ = track.write_sample(&sample).await;
                }
            });
        }
        Publisher { pc, stop }
    }

    pub(crate) async fn offer(&self) -> String {
        let offer = self.pc.create_offer(None).await.expect("offer");
        gathered(&self.pc, offer).await
    }

    pub(crate) async fn answered(&self, sdp: &str) {
        let answer = RTCSessionDescription::answer(loopback_only(sdp)).expect("answer sdp");
        self.pc
            .set_remote_description(answer)
            .await
            .expect("remote answer");
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub(crate) fn kind_name(kind: RTPCodecType) -> &'static str {
    match kind {
        RTPCodecType::Audio => "audio",
        RTPCodecType::Video => "video",
        _ => "other",
    }
}

/// A subscriber peer counting RTP packets per media kind.
pub(crate) struct Subscriber {
    pub(crate) pc: Arc<RTCPeerConnection>,
    pub(crate) packets: Arc<Mutex<HashMap<&'static str, Arc<AtomicUsize>>>>,
}

impl Subscriber {
    pub(crate) async fn new() -> Subscriber {
        let pc = peer().await;
        let packets: Arc<Mutex<HashMap<&'static str, Arc<AtomicUsize>>>> = Arc::default();
        let counters = packets.clone();
        pc.on_track(Box::new(move |track, _, _| {
            let count = counters
                .lock()
                .entry(kind_name(track.kind()))
                .or_default()
                .clone();
            tokio::spawn(async move {
                while track.read_rtp().await.is_ok() {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            });
            Box::pin(async {})
        }));
        Subscriber { pc, packets }
    }

    /// Answers the SFU's offer; returns the answer SDP.
    pub(crate) async fn answer(&self, offer_sdp: &str) -> String {
        let offer = RTCSessionDescription::offer(loopback_only(offer_sdp)).expect("offer sdp");
        self.pc
            .set_remote_description(offer)
            .await
            .expect("remote offer");
        let answer = self.pc.create_answer(None).await.expect("answer");
        gathered(&self.pc, answer).await
    }

    pub(crate) fn count(&self, kind: RTPCodecType) -> usize {
        self.packets
            .lock()
            .get(kind_name(kind))
            .map(|c| c.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// Asserts that audio and video arrive (20 packets of each); `what`
    /// names the path in the failure message.
    pub(crate) async fn expect_audio_and_video(&self, what: &str) {
        let (audio, video) = (RTPCodecType::Audio, RTPCodecType::Video);
        assert!(
            self.wait_packets(&[audio, video], 20).await,
            "{what}: audio {}, video {}",
            self.count(audio),
            self.count(video)
        );
    }

    /// Waits until at least `n` packets of each kind arrived.
    pub(crate) async fn wait_packets(&self, kinds: &[RTPCodecType], n: usize) -> bool {
        tests::wait::eventually(Duration::from_secs(10), || {
            let ok = kinds.iter().all(|k| self.count(*k) >= n);
            async move { ok.then_some(()) }
        })
        .await
        .is_some()
    }
}
