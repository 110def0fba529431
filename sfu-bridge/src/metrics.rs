//! The SFU metrics of the reference (`signaling_mcu_*`, cluster facts 7.5),
//! in a registry of their own that the binaries expose next to theirs.

use std::sync::LazyLock;

use prometheus::{
    exponential_buckets, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

pub struct SfuMetrics {
    pub registry: Registry,
    pub publishers: IntGaugeVec,
    pub publishers_total: IntCounterVec,
    pub subscribers: IntGaugeVec,
    pub subscribers_total: IntCounterVec,
    pub nopublisher_total: IntCounterVec,
    pub messages_total: IntCounterVec,
    pub publisher_streams: IntGaugeVec,
    pub subscriber_streams: IntGaugeVec,
    pub backend_connections: IntGaugeVec,
    pub backend_load: IntGaugeVec,
    pub backend_usage: prometheus::GaugeVec,
    pub backend_bandwidth: IntGaugeVec,
    pub no_backend_available_total: IntCounterVec,
    pub bandwidth: IntGaugeVec,
    pub selected_candidate_total: IntCounterVec,
    pub peerconnection_state_total: IntCounterVec,
    pub ice_state_total: IntCounterVec,
    pub dtls_state_total: IntCounterVec,
    pub slow_link_total: IntCounterVec,
    pub media_rtt: HistogramVec,
    pub media_jitter: HistogramVec,
    pub media_codecs_total: IntCounterVec,
    pub media_nacks_total: IntCounterVec,
    pub media_retransmissions_total: IntCounterVec,
    pub media_bytes_total: IntCounterVec,
    pub media_lost_total: IntCounterVec,
    /// Connections to Janus or a proxy closed because their outgoing
    /// queue was full (the peer stopped reading).
    pub outbox_overflow_total: IntCounterVec,
}

/// A labelled counter registered in `r` (shared by the binaries' own
/// metric sets).
pub fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    let _ = r.register(Box::new(c.clone()));
    c
}

/// A labelled gauge registered in `r`.
/// A labelled gauge of fractional values registered in `r`.
pub fn float_gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::GaugeVec {
    let g = prometheus::GaugeVec::new(prometheus::Opts::new(name, help), labels)
        .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    let _ = r.register(Box::new(g.clone()));
    g
}

pub fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    let _ = r.register(Box::new(g.clone()));
    g
}

/// A labelled histogram with `count` exponential buckets from `start` to
/// `end` (Go's `ExponentialBucketsRange`) registered in `r`.
pub fn histogram(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    (start, end, count): (f64, f64, usize),
) -> HistogramVec {
    let factor = (end / start).powf(1.0 / (count as f64 - 1.0));
    let buckets = exponential_buckets(start, factor, count).unwrap_or_default();
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    let _ = r.register(Box::new(h.clone()));
    h
}

pub static METRICS: LazyLock<SfuMetrics> = LazyLock::new(|| {
    let r = Registry::new();
    SfuMetrics {
        publishers: gauge(
            &r,
            "signaling_mcu_publishers",
            "The current number of publishers",
            &["type"],
        ),
        publishers_total: counter(
            &r,
            "signaling_mcu_publishers_total",
            "The total number of created publishers",
            &["type"],
        ),
        subscribers: gauge(
            &r,
            "signaling_mcu_subscribers",
            "The current number of subscribers",
            &["type"],
        ),
        subscribers_total: counter(
            &r,
            "signaling_mcu_subscribers_total",
            "The total number of created subscribers",
            &["type"],
        ),
        nopublisher_total: counter(
            &r,
            "signaling_mcu_nopublisher_total",
            "The total number of subscribe requests where no publisher exists",
            &["type"],
        ),
        messages_total: counter(
            &r,
            "signaling_mcu_messages_total",
            "The total number of MCU messages",
            &["type"],
        ),
        publisher_streams: gauge(
            &r,
            "signaling_mcu_publisher_streams",
            "The current number of published media streams",
            &["type"],
        ),
        subscriber_streams: gauge(
            &r,
            "signaling_mcu_subscriber_streams",
            "The current number of subscribed media streams",
            &["type"],
        ),
        backend_connections: gauge(
            &r,
            "signaling_mcu_backend_connections",
            "Current number of connections to signaling proxy backends",
            &["country"],
        ),
        backend_load: gauge(
            &r,
            "signaling_mcu_backend_load",
            "Current load of signaling proxy backends",
            &["url"],
        ),
        backend_usage: float_gauge(
            &r,
            "signaling_mcu_backend_usage",
            "The current usage of signaling proxy backends in percent",
            &["url", "direction"],
        ),
        backend_bandwidth: gauge(
            &r,
            "signaling_mcu_backend_bandwidth",
            "The current bandwidth of signaling proxy backends in bytes per second",
            &["url", "direction"],
        ),
        no_backend_available_total: counter(
            &r,
            "signaling_mcu_no_backend_available_total",
            "Total number of publishing requests where no backend was available",
            &["type"],
        ),
        bandwidth: gauge(
            &r,
            "signaling_mcu_bandwidth",
            "The current bandwidth in bytes per second",
            &["direction"],
        ),
        selected_candidate_total: counter(
            &r,
            "signaling_mcu_selected_candidate_total",
            "Total number of selected candidates",
            &["origin", "type", "transport", "family"],
        ),
        peerconnection_state_total: counter(
            &r,
            "signaling_mcu_peerconnection_state_total",
            "Total number PeerConnection states",
            &["state", "reason"],
        ),
        ice_state_total: counter(
            &r,
            "signaling_mcu_ice_state_total",
            "Total number of ICE connection states",
            &["state"],
        ),
        dtls_state_total: counter(
            &r,
            "signaling_mcu_dtls_state_total",
            "Total number of DTLS connection states",
            &["state"],
        ),
        slow_link_total: counter(
            &r,
            "signaling_mcu_slow_link_total",
            "Total number of slow link events",
            &["media", "direction"],
        ),
        media_rtt: histogram(
            &r,
            "signaling_mcu_media_rtt",
            "The roundtrip time of WebRTC media in milliseconds",
            &["media"],
            (1.0, 10000.0, 25),
        ),
        media_jitter: histogram(
            &r,
            "signaling_mcu_media_jitter",
            "The jitter of WebRTC media in milliseconds",
            &["media", "origin"],
            (1.0, 2000.0, 20),
        ),
        media_codecs_total: counter(
            &r,
            "signaling_mcu_media_codecs_total",
            "The total number of codecs",
            &["media", "codec"],
        ),
        media_nacks_total: counter(
            &r,
            "signaling_mcu_media_nacks_total",
            "The total number of NACKs",
            &["media", "direction"],
        ),
        media_retransmissions_total: counter(
            &r,
            "signaling_mcu_media_retransmissions_total",
            "The total number of received retransmissions",
            &["media"],
        ),
        media_bytes_total: counter(
            &r,
            "signaling_mcu_media_bytes_total",
            "The total number of media bytes sent / received",
            &["media", "direction"],
        ),
        media_lost_total: counter(
            &r,
            "signaling_mcu_media_lost_total",
            "The total number of lost media packets",
            &["media", "origin"],
        ),
        outbox_overflow_total: counter(
            &r,
            "signaling_mcu_outbox_overflow_total",
            "Connections to Janus or a proxy closed because their outgoing queue was full",
            &["peer"],
        ),
        registry: r,
    }
});
