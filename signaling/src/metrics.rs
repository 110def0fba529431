//! Prometheus metrics with the reference's names (cluster-sfu-facts 7.5).
//! One process-wide registry; the helpers below are what the rest of the
//! server calls, so label sets stay consistent.

use std::sync::LazyLock;

use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec,
    Registry, TextEncoder,
};
use sfu_bridge::metrics::{counter, gauge};

/// Counters touched for every frame, resolved once: a labelled lookup per
/// message would cost a hash and a lock.
pub struct Hot {
    pub messages_in: IntCounter,
    pub messages_out: IntCounter,
    pub bytes_in: IntCounter,
    pub bytes_out: IntCounter,
    server_messages: Vec<(&'static str, IntCounter)>,
}

impl Hot {
    /// `signaling_server_messages_total{type}` for a client message type.
    pub fn server_message(&self, kind: &str) -> Option<&IntCounter> {
        self.server_messages
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, c)| c)
    }
}

pub struct Metrics {
    pub registry: Registry,
    pub hot: Hot,
    pub hub_rooms: IntGaugeVec,
    pub hub_sessions: IntGaugeVec,
    pub hub_sessions_total: IntCounterVec,
    pub hub_sessions_resume_total: IntCounterVec,
    pub hub_sessions_resume_failed_total: IntCounter,
    pub room_sessions: IntGaugeVec,
    pub call_sessions: IntGaugeVec,
    pub call_sessions_total: IntCounterVec,
    pub call_rooms_total: IntCounterVec,
    pub client_countries_total: IntCounterVec,
    pub backend_current: prometheus::IntGauge,
    pub backend_session_limit: IntGaugeVec,
    pub backend_client_requests_duration: prometheus::HistogramVec,
    pub http_client_pool_connections: IntGaugeVec,
    pub server_messages_total: IntCounterVec,
    pub client_rtt: Histogram,
    pub client_bytes_total: IntCounterVec,
    pub client_messages_total: IntCounterVec,
    pub backend_client_requests_total: IntCounterVec,
    pub backend_client_requests_errors_total: IntCounterVec,
    pub backend_session_limit_exceeded_total: IntCounterVec,
    pub throttle_delayed_total: IntCounterVec,
    pub throttle_bruteforce_total: IntCounterVec,
    pub client_errors_total: IntCounterVec,
    pub client_outbox_overflow_total: IntCounter,
    pub client_protocol_errors_total: IntCounterVec,
    pub session_pending_dropped_total: IntCounter,
    pub nats_publish_dropped_total: IntCounter,
    pub federation_outbox_overflow_total: IntCounter,
    pub client_rejected_draining_total: IntCounter,
    pub grpc_clients: prometheus::IntGauge,
    pub grpc_client_calls_total: IntCounterVec,
    pub grpc_server_calls_total: IntCounterVec,
}

/// An unlabelled counter registered in `r`.
fn plain_counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    let _ = r.register(Box::new(c.clone()));
    c
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let r = Registry::new();
    // process_cpu_seconds_total, process_resident_memory_bytes, open fds...
    let _ = r.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ));
    let resume_failed = plain_counter(
        &r,
        "signaling_hub_sessions_resume_failed_total",
        "The total number of failed session resume requests",
    );
    let overflow = plain_counter(
        &r,
        "signaling_client_outbox_overflow_total",
        "Connections closed because the client did not read its messages",
    );
    let grpc_clients = prometheus::IntGauge::new(
        "signaling_grpc_clients",
        "The current number of GRPC clients",
    )
    .unwrap_or_else(|e| unreachable!("{e}"));
    let _ = r.register(Box::new(grpc_clients.clone()));
    let rtt = Histogram::with_opts(
        HistogramOpts::new(
            "signaling_client_rtt",
            "The roundtrip time of WebSocket ping messages",
        )
        .buckets(exponential_buckets(1.0, (30000f64).powf(1.0 / 49.0), 50).unwrap_or_default()),
    )
    .unwrap_or_else(|e| unreachable!("{e}"));
    let _ = r.register(Box::new(rtt.clone()));
    let client_messages = counter(
        &r,
        "signaling_client_messages_total",
        "The total number of messages sent to or received by clients",
        &["direction"],
    );
    let client_bytes = counter(
        &r,
        "signaling_client_bytes_total",
        "The total number of bytes sent to or received by clients",
        &["direction"],
    );
    let server_messages = counter(
        &r,
        "signaling_server_messages_total",
        "The total number of signaling messages",
        &["type"],
    );
    let hot = Hot {
        messages_in: client_messages.with_label_values(&["incoming"]),
        messages_out: client_messages.with_label_values(&["outgoing"]),
        bytes_in: client_bytes.with_label_values(&["incoming"]),
        bytes_out: client_bytes.with_label_values(&["outgoing"]),
        server_messages: [
            "hello",
            "bye",
            "room",
            "message",
            "control",
            "internal",
            "transient",
            "unknown",
        ]
        .into_iter()
        .map(|k| (k, server_messages.with_label_values(&[k])))
        .collect(),
    };
    Metrics {
        hot,
        hub_rooms: gauge(
            &r,
            "signaling_hub_rooms",
            "The current number of rooms per backend",
            &["backend"],
        ),
        hub_sessions: gauge(
            &r,
            "signaling_hub_sessions",
            "The current number of sessions per backend",
            &["backend", "clienttype"],
        ),
        hub_sessions_total: counter(
            &r,
            "signaling_hub_sessions_total",
            "The total number of sessions per backend",
            &["backend", "clienttype"],
        ),
        hub_sessions_resume_total: counter(
            &r,
            "signaling_hub_sessions_resume_total",
            "The total number of resumed sessions per backend",
            &["backend", "clienttype"],
        ),
        hub_sessions_resume_failed_total: resume_failed,
        room_sessions: gauge(
            &r,
            "signaling_room_sessions",
            "The current number of sessions in a room",
            &["backend", "room", "clienttype"],
        ),
        call_sessions: gauge(
            &r,
            "signaling_call_sessions",
            "The current number of sessions in a call",
            &["backend", "room", "clienttype"],
        ),
        call_sessions_total: counter(
            &r,
            "signaling_call_sessions_total",
            "The total number of sessions in a call",
            &["backend", "clienttype"],
        ),
        call_rooms_total: counter(
            &r,
            "signaling_call_rooms_total",
            "The total number of rooms with an active call",
            &["backend"],
        ),
        client_countries_total: counter(
            &r,
            "signaling_client_countries_total",
            "The total number of connections by country",
            &["country"],
        ),
        backend_current: {
            let g = prometheus::IntGauge::new(
                "signaling_backend_current",
                "The current number of configured backends",
            )
            .unwrap_or_else(|e| unreachable!("{e}"));
            let _ = r.register(Box::new(g.clone()));
            g
        },
        backend_session_limit: gauge(
            &r,
            "signaling_backend_session_limit",
            "The session limit of a backend",
            &["backend"],
        ),
        // The reference's ExponentialBucketsRange(0.01, 30, 30).
        backend_client_requests_duration: sfu_bridge::metrics::histogram(
            &r,
            "signaling_backend_client_requests_duration",
            "The duration of backend client requests in seconds",
            &["backend"],
            (0.01, 30.0, 30),
        ),
        http_client_pool_connections: gauge(
            &r,
            "signaling_http_client_pool_connections",
            "The current number of HTTP client connections per host",
            &["host"],
        ),
        server_messages_total: server_messages,
        client_rtt: rtt,
        client_bytes_total: client_bytes,
        client_messages_total: client_messages,
        backend_client_requests_total: counter(
            &r,
            "signaling_backend_client_requests_total",
            "The total number of backend client requests",
            &["backend"],
        ),
        backend_client_requests_errors_total: counter(
            &r,
            "signaling_backend_client_requests_errors_total",
            "The total number of backend client requests that had an error",
            &["backend", "error"],
        ),
        backend_session_limit_exceeded_total: counter(
            &r,
            "signaling_backend_session_limit_exceeded_total",
            "The number of times the session limit exceeded",
            &["backend"],
        ),
        throttle_delayed_total: counter(
            &r,
            "signaling_throttle_delayed_total",
            "The total number of delayed requests",
            &["action", "delay"],
        ),
        throttle_bruteforce_total: counter(
            &r,
            "signaling_throttle_bruteforce_total",
            "The total number of rejected brute force requests",
            &["action"],
        ),
        client_errors_total: counter(
            &r,
            "signaling_client_errors_total",
            "Error replies sent to clients, by code",
            &["code"],
        ),
        client_outbox_overflow_total: overflow,
        client_protocol_errors_total: counter(
            &r,
            "signaling_client_protocol_errors_total",
            "Client connections closed for a WebSocket protocol error, by close code",
            &["code"],
        ),
        session_pending_dropped_total: plain_counter(
            &r,
            "signaling_session_pending_dropped_total",
            "Messages dropped from the full queue of a disconnected session (oldest first)",
        ),
        nats_publish_dropped_total: plain_counter(
            &r,
            "signaling_nats_publish_dropped_total",
            "Messages not published because the queue to the NATS server was full",
        ),
        federation_outbox_overflow_total: plain_counter(
            &r,
            "signaling_federation_outbox_overflow_total",
            "Federation connections closed because the remote server did not read its messages",
        ),
        client_rejected_draining_total: plain_counter(
            &r,
            "signaling_client_rejected_draining_total",
            "WebSocket connections refused with 503 because the server is draining",
        ),
        grpc_clients,
        grpc_client_calls_total: counter(
            &r,
            "signaling_grpc_client_calls_total",
            "The total number of GRPC client calls",
            &["method"],
        ),
        grpc_server_calls_total: counter(
            &r,
            "signaling_grpc_server_calls_total",
            "The total number of GRPC server calls",
            &["method"],
        ),
        registry: r,
    }
});

pub fn backend_request(backend: &str, _kind: &str, ok: bool, took: std::time::Duration) {
    METRICS
        .backend_client_requests_total
        .with_label_values(&[backend])
        .inc();
    METRICS
        .backend_client_requests_duration
        .with_label_values(&[backend])
        .observe(took.as_secs_f64());
    if !ok {
        METRICS
            .backend_client_requests_errors_total
            .with_label_values(&[backend, "unknown"])
            .inc();
    }
}

/// `signaling_backend_current` and `signaling_backend_session_limit` for
/// the backends now configured.
pub fn backends_configured(backends: &[std::sync::Arc<crate::backend::Backend>]) {
    METRICS.backend_current.set(backends.len() as i64);
    METRICS.backend_session_limit.reset();
    for b in backends.iter().filter(|b| b.session_limit > 0) {
        METRICS
            .backend_session_limit
            .with_label_values(&[b.id.as_str()])
            .set(i64::try_from(b.session_limit).unwrap_or(i64::MAX));
    }
}

/// A client's country at hello, when known (`signaling_client_countries_total`).
pub fn client_country(country: Option<&str>) {
    if let Some(c) = country.filter(|c| c.len() == 2) {
        METRICS.client_countries_total.with_label_values(&[c]).inc();
    }
}

/// The text exposition of every registered metric.
pub fn render() -> String {
    let mut families = METRICS.registry.gather();
    families.extend(sfu_bridge::metrics::METRICS.registry.gather());
    TextEncoder::new()
        .encode_to_string(&families)
        .unwrap_or_default()
}
