//! The proxy's metrics (`signaling_proxy_*`, cluster facts 7.5); the
//! Janus side adds `signaling_mcu_*` from `sfu-bridge`.

use std::sync::LazyLock;

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

pub struct ProxyMetrics {
    pub registry: Registry,
    pub sessions: IntGauge,
    pub sessions_total: IntCounter,
    pub sessions_resumed_total: IntCounter,
    pub publishers: IntGaugeVec,
    pub publishers_total: IntCounterVec,
    pub subscribers: IntGaugeVec,
    pub subscribers_total: IntCounterVec,
    pub command_messages_total: IntCounterVec,
    pub payload_messages_total: IntCounterVec,
    pub token_errors_total: IntCounterVec,
    pub load: IntGauge,
    pub outbox_overflow_total: IntCounter,
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> T {
    let _ = r.register(Box::new(c.clone()));
    c
}

pub static METRICS: LazyLock<ProxyMetrics> = LazyLock::new(|| {
    let r = Registry::new();
    // process_cpu_seconds_total, process_resident_memory_bytes, open fds...
    let _ = r.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ));
    let gauge = |n: &str, h: &str| {
        reg(
            &r,
            IntGauge::new(n, h).unwrap_or_else(|e| unreachable!("{n}: {e}")),
        )
    };
    let counter = |n: &str, h: &str| {
        reg(
            &r,
            IntCounter::new(n, h).unwrap_or_else(|e| unreachable!("{n}: {e}")),
        )
    };
    let gauge_vec = |n: &str, h: &str, l: &[&str]| {
        reg(
            &r,
            IntGaugeVec::new(Opts::new(n, h), l).unwrap_or_else(|e| unreachable!("{n}: {e}")),
        )
    };
    let counter_vec = |n: &str, h: &str, l: &[&str]| {
        reg(
            &r,
            IntCounterVec::new(Opts::new(n, h), l).unwrap_or_else(|e| unreachable!("{n}: {e}")),
        )
    };
    ProxyMetrics {
        sessions: gauge(
            "signaling_proxy_sessions",
            "The current number of proxy sessions",
        ),
        sessions_total: counter(
            "signaling_proxy_sessions_total",
            "The total number of created proxy sessions",
        ),
        sessions_resumed_total: counter(
            "signaling_proxy_sessions_resumed_total",
            "The total number of resumed proxy sessions",
        ),
        publishers: gauge_vec(
            "signaling_proxy_publishers",
            "The current number of publishers",
            &["type"],
        ),
        publishers_total: counter_vec(
            "signaling_proxy_publishers_total",
            "The total number of created publishers",
            &["type"],
        ),
        subscribers: gauge_vec(
            "signaling_proxy_subscribers",
            "The current number of subscribers",
            &["type"],
        ),
        subscribers_total: counter_vec(
            "signaling_proxy_subscribers_total",
            "The total number of created subscribers",
            &["type"],
        ),
        command_messages_total: counter_vec(
            "signaling_proxy_command_messages_total",
            "The total number of command messages",
            &["type"],
        ),
        payload_messages_total: counter_vec(
            "signaling_proxy_payload_messages_total",
            "The total number of payload messages",
            &["type"],
        ),
        token_errors_total: counter_vec(
            "signaling_proxy_token_errors_total",
            "The total number of token errors",
            &["reason"],
        ),
        load: gauge(
            "signaling_proxy_load",
            "The current load of the signaling proxy",
        ),
        outbox_overflow_total: counter(
            "signaling_proxy_outbox_overflow_total",
            "Signaling server connections closed because they did not read their messages",
        ),
        registry: r,
    }
});

/// Proxy and SFU metrics in the text format.
pub fn render() -> String {
    let mut families = METRICS.registry.gather();
    families.extend(sfu_bridge::metrics::METRICS.registry.gather());
    TextEncoder::new()
        .encode_to_string(&families)
        .unwrap_or_default()
}
