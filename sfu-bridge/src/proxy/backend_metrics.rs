//! The `signaling_mcu_backend_*` gauges of one proxy connection, with the
//! reference's labels: connections by the proxy's country, load, usage
//! (percent of the proxy's limits) and bandwidth (bytes/s) by URL.

use proto::proxy::EventBandwidth;

use crate::metrics::METRICS;

const DIRECTIONS: [&str; 2] = ["incoming", "outgoing"];

/// The proxy said hello: one more connection in its country, its gauges
/// start at zero.
pub fn connected(url: &str, country: Option<&str>) {
    METRICS
        .backend_connections
        .with_label_values(&[country.unwrap_or("")])
        .inc();
    METRICS.backend_load.with_label_values(&[url]).set(0);
    for d in DIRECTIONS {
        METRICS.backend_usage.with_label_values(&[url, d]).set(0.0);
        METRICS
            .backend_bandwidth
            .with_label_values(&[url, d])
            .set(0);
    }
}

/// The connection is gone: its gauges go away with it.
pub fn disconnected(url: &str, country: Option<&str>) {
    METRICS
        .backend_connections
        .with_label_values(&[country.unwrap_or("")])
        .dec();
    let _ = METRICS.backend_load.remove_label_values(&[url]);
    for d in DIRECTIONS {
        let _ = METRICS.backend_usage.remove_label_values(&[url, d]);
        let _ = METRICS.backend_bandwidth.remove_label_values(&[url, d]);
    }
}

/// An `update-load` event.
pub fn load(url: &str, load: u64, bandwidth: Option<&EventBandwidth>) {
    METRICS
        .backend_load
        .with_label_values(&[url])
        .set(i64::try_from(load).unwrap_or(i64::MAX));
    let Some(bw) = bandwidth else { return };
    let bytes = |bits: Option<u64>| i64::try_from(bits.unwrap_or(0) / 8).unwrap_or(i64::MAX);
    let usage = [bw.incoming, bw.outgoing];
    let sent = [bytes(bw.received), bytes(bw.sent)];
    for (i, d) in DIRECTIONS.iter().enumerate() {
        METRICS
            .backend_usage
            .with_label_values(&[url, d])
            .set(usage[i].unwrap_or(0.0));
        METRICS
            .backend_bandwidth
            .with_label_values(&[url, d])
            .set(sent[i]);
    }
}
