//! Janus's event handler stream (`janus-events`, cluster facts 5.9): ICE,
//! DTLS and peer connection states, selected candidates, slow links and
//! media statistics become `signaling_mcu_*` metrics; per-handle bandwidth
//! feeds `signaling_mcu_bandwidth`.

use std::collections::HashMap;

use parking_lot::Mutex;
use serde_json::Value;

use crate::metrics::METRICS;

/// Why an events frame was refused (the connection is then closed).
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("empty events frame")]
    Empty,
    #[error("undecodable events frame: {0}")]
    Decode(#[from] serde_json::Error),
}

#[derive(Default)]
struct HandleStats {
    codecs: HashMap<String, String>,
    /// Last cumulative value per (media, counter).
    last: HashMap<(String, &'static str), u64>,
}

#[derive(Default)]
struct State {
    /// Per-handle counters, kept once Janus reports handle events.
    handles: HashMap<u64, HandleStats>,
    supports_handles: bool,
    /// Last bits/s (sent, received) per handle and media.
    bandwidth: HashMap<u64, HashMap<String, (u64, u64)>>,
}

/// Processes janus-events frames; shared by all event connections of one
/// SFU.
#[derive(Default)]
pub struct EventsHandler {
    state: Mutex<State>,
}

impl EventsHandler {
    /// One text frame: an event object or an array of them.
    pub fn process(&self, text: &str) -> Result<usize, EventsError> {
        if text.trim().is_empty() {
            return Err(EventsError::Empty);
        }
        let value: Value = serde_json::from_str(text)?;
        let events = match value {
            Value::Array(list) => list,
            other => vec![other],
        };
        for e in &events {
            self.event(e);
        }
        Ok(events.len())
    }

    /// Sum of the last reported bits/s over all handles: (sent, received).
    pub fn bandwidth(&self) -> (u64, u64) {
        self.state
            .lock()
            .bandwidth
            .values()
            .flat_map(|m| m.values())
            .fold((0, 0), |(s, r), (ds, dr)| (s + ds, r + dr))
    }

    /// Forgets a handle's bandwidth (its client closed).
    pub fn forget_handle(&self, handle: u64) {
        let mut s = self.state.lock();
        s.bandwidth.remove(&handle);
        s.handles.remove(&handle);
    }

    fn event(&self, e: &Value) {
        let kind = e["type"].as_i64().unwrap_or(0);
        let subtype = e["subtype"].as_i64().unwrap_or(0);
        let handle = e["handle_id"].as_u64().unwrap_or(0);
        let ev = &e["event"];
        let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        match (kind, subtype) {
            (1, _) | (8, _) | (64, _) | (128, _) | (256, _) | (4, _) => {}
            (2, _) => {
                let mut st = self.state.lock();
                match ev["name"].as_str() {
                    Some("attached") => {
                        st.supports_handles = true;
                        st.handles.entry(handle).or_default();
                    }
                    Some("detached") => {
                        st.handles.remove(&handle);
                        st.bandwidth.remove(&handle);
                    }
                    _ => {}
                }
            }
            (16, 1) => METRICS
                .ice_state_total
                .with_label_values(&[&s(&ev["ice"])])
                .inc(),
            (16, 5) => METRICS
                .dtls_state_total
                .with_label_values(&[&s(&ev["dtls"])])
                .inc(),
            (16, 6) => METRICS
                .peerconnection_state_total
                .with_label_values(&[&s(&ev["connection"]), &s(&ev["reason"])])
                .inc(),
            (16, 4) => {
                for origin in ["local", "remote"] {
                    let c = &ev["candidates"][origin];
                    if c.is_object() {
                        let family = match c["family"].as_i64() {
                            Some(6) => "ipv6",
                            _ if s(&c["family"]) == "ipv6" => "ipv6",
                            _ => "ipv4",
                        };
                        METRICS
                            .selected_candidate_total
                            .with_label_values(&[
                                origin,
                                &s(&c["type"]),
                                &s(&c["transport"]),
                                family,
                            ])
                            .inc();
                    }
                }
            }
            (16, _) => {}
            (32, 2) => {
                let direction = if ev["slow_link"] == "uplink" {
                    "outgoing"
                } else {
                    "incoming"
                };
                METRICS
                    .slow_link_total
                    .with_label_values(&[&s(&ev["media"]), direction])
                    .inc();
            }
            (32, 3) => self.media_stats(handle, ev),
            (32, _) => {}
            (other, _) => tracing::debug!(kind = other, "unsupported janus event type"),
        }
    }

    fn media_stats(&self, handle: u64, ev: &Value) {
        let media = ev["media"].as_str().unwrap_or_default().to_owned();
        if media.is_empty() {
            return;
        }
        let num = |k: &str| ev[k].as_f64().unwrap_or(0.0);
        if num("rtt") > 0.0 {
            METRICS
                .media_rtt
                .with_label_values(&[&media])
                .observe(num("rtt"));
        }
        for (key, origin) in [("jitter-local", "local"), ("jitter-remote", "remote")] {
            if num(key) > 0.0 {
                METRICS
                    .media_jitter
                    .with_label_values(&[&media, origin])
                    .observe(num(key));
            }
        }
        let mut st = self.state.lock();
        let sent = ev["bytes-sent-lastsec"].as_u64().unwrap_or(0) * 8;
        let received = ev["bytes-received-lastsec"].as_u64().unwrap_or(0) * 8;
        st.bandwidth
            .entry(handle)
            .or_default()
            .insert(media.clone(), (sent, received));
        if !st.supports_handles {
            return;
        }
        let stats = st.handles.entry(handle).or_default();
        if let Some(codec) = ev["codec"].as_str().filter(|c| !c.is_empty()) {
            if stats.codecs.get(&media).map(String::as_str) != Some(codec) {
                stats.codecs.insert(media.clone(), codec.to_owned());
                METRICS
                    .media_codecs_total
                    .with_label_values(&[&media, codec])
                    .inc();
            }
        }
        let counters: [(&'static str, &dyn Fn(u64)); 7] = [
            ("bytes-received", &|d| {
                METRICS
                    .media_bytes_total
                    .with_label_values(&[&media, "incoming"])
                    .inc_by(d)
            }),
            ("bytes-sent", &|d| {
                METRICS
                    .media_bytes_total
                    .with_label_values(&[&media, "outgoing"])
                    .inc_by(d)
            }),
            ("nacks-received", &|d| {
                METRICS
                    .media_nacks_total
                    .with_label_values(&[&media, "incoming"])
                    .inc_by(d)
            }),
            ("nacks-sent", &|d| {
                METRICS
                    .media_nacks_total
                    .with_label_values(&[&media, "outgoing"])
                    .inc_by(d)
            }),
            ("retransmissions-received", &|d| {
                METRICS
                    .media_retransmissions_total
                    .with_label_values(&[&media])
                    .inc_by(d)
            }),
            ("lost", &|d| {
                METRICS
                    .media_lost_total
                    .with_label_values(&[&media, "local"])
                    .inc_by(d)
            }),
            ("lost-by-remote", &|d| {
                METRICS
                    .media_lost_total
                    .with_label_values(&[&media, "remote"])
                    .inc_by(d)
            }),
        ];
        for (key, add) in counters {
            let Some(now) = ev[key].as_u64() else {
                continue;
            };
            let last = stats.last.insert((media.clone(), key), now).unwrap_or(0);
            // A smaller value means the counter started again.
            let delta = if now >= last { now - last } else { now };
            if delta > 0 {
                add(delta);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_event_frames() {
        let h = EventsHandler::default();
        proto::fuzzing::run_str(
            "janus_events",
            &[
                r#"[{"type":2,"handle_id":7,"event":{"name":"attached"}},{"type":32,"subtype":3,"handle_id":7,"event":{"media":"video","codec":"vp8","bytes-received":1000,"bytes-received-lastsec":100,"bytes-sent-lastsec":50,"rtt":12,"nacks-received":1,"lost":2}}]"#,
                r#"{"type":16,"subtype":1,"session_id":1,"handle_id":2,"event":{"ice":"connected"}}"#,
                r#"{"type":64,"event":{"plugin":"janus.plugin.videoroom","data":{"event":"published","room":1,"id":2}}}"#,
            ],
            |t| {
                let _ = h.process(t);
            },
        );
    }

    #[test]
    fn frames() {
        let h = EventsHandler::default();
        assert!(h.process("").is_err());
        assert!(h.process("{nope").is_err());
        let n = h
            .process(r#"[{"type":2,"handle_id":7,"event":{"name":"attached"}},
                {"type":32,"subtype":3,"handle_id":7,"event":{"media":"audio","codec":"opus","bytes-received":1000,"bytes-received-lastsec":100,"bytes-sent-lastsec":50,"rtt":12}},
                {"type":32,"subtype":3,"handle_id":7,"event":{"media":"audio","codec":"opus","bytes-received":1500,"bytes-received-lastsec":100,"bytes-sent-lastsec":50}},
                {"type":16,"subtype":1,"event":{"ice":"connected"}}]"#)
            .unwrap();
        assert_eq!(n, 4);
        assert_eq!(h.bandwidth(), (400, 800));
        let bytes = METRICS
            .media_bytes_total
            .with_label_values(&["audio", "incoming"])
            .get();
        assert!(bytes >= 1500, "{bytes}");
        h.process(r#"{"type":2,"handle_id":7,"event":{"name":"detached"}}"#)
            .unwrap();
        assert_eq!(h.bandwidth(), (0, 0));
    }
}
