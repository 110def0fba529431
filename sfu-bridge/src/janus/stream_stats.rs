//! `signaling_mcu_publisher_streams{type}` and
//! `signaling_mcu_subscriber_streams{type}`: the media a publisher sends
//! (audio, video, or screen for a screen publisher's video), as Janus
//! reports it in `media` events, and that count once more per subscriber
//! connected to the publisher.

use std::collections::{BTreeSet, HashSet};

use parking_lot::Mutex;

use crate::metrics::METRICS;
use crate::sfu::StreamType;

#[derive(Default)]
struct State {
    kinds: BTreeSet<&'static str>,
    subscribers: HashSet<u64>,
}

/// One publisher's share of the two gauges; dropping it (via
/// [`StreamStats::reset`]) takes the share back.
#[derive(Default)]
pub struct StreamStats(Mutex<State>);

/// The label of a `media` event's `type` for a publisher of `stream`.
fn label(kind: &str, stream: StreamType) -> Option<&'static str> {
    match (kind, stream) {
        ("audio", _) => Some("audio"),
        ("video", StreamType::Screen) => Some("screen"),
        ("video", StreamType::Video) => Some("video"),
        _ => None,
    }
}

impl StreamStats {
    /// A `media` event: Janus started or stopped receiving `kind`.
    pub fn media(&self, kind: &str, stream: StreamType, receiving: bool) {
        let Some(kind) = label(kind, stream) else {
            return;
        };
        let mut s = self.0.lock();
        let changed = if receiving {
            s.kinds.insert(kind)
        } else {
            s.kinds.remove(kind)
        };
        if !changed {
            return;
        }
        let subscribers = s.subscribers.len() as i64;
        let sign = if receiving { 1 } else { -1 };
        METRICS
            .publisher_streams
            .with_label_values(&[kind])
            .add(sign);
        METRICS
            .subscriber_streams
            .with_label_values(&[kind])
            .add(sign * subscribers);
    }

    pub fn add_subscriber(&self, id: u64) {
        let mut s = self.0.lock();
        if s.subscribers.insert(id) {
            for kind in &s.kinds {
                METRICS.subscriber_streams.with_label_values(&[kind]).inc();
            }
        }
    }

    pub fn remove_subscriber(&self, id: u64) {
        let mut s = self.0.lock();
        if s.subscribers.remove(&id) {
            for kind in &s.kinds {
                METRICS.subscriber_streams.with_label_values(&[kind]).dec();
            }
        }
    }

    /// The publisher is gone: its streams and their subscribers no longer
    /// count.
    pub fn reset(&self) {
        let mut s = self.0.lock();
        let subscribers = s.subscribers.len() as i64;
        for kind in std::mem::take(&mut s.kinds) {
            METRICS.publisher_streams.with_label_values(&[kind]).dec();
            METRICS
                .subscriber_streams
                .with_label_values(&[kind])
                .sub(subscribers);
        }
        s.subscribers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges(kind: &str) -> (i64, i64) {
        (
            METRICS.publisher_streams.with_label_values(&[kind]).get(),
            METRICS.subscriber_streams.with_label_values(&[kind]).get(),
        )
    }

    /// The label "screen" is used by this test alone, so the process-wide
    /// gauges start at zero here.
    #[test]
    fn counts_follow_media_and_subscribers() {
        let p = StreamStats::default();
        p.add_subscriber(1);
        p.media("video", StreamType::Screen, true);
        assert_eq!(gauges("screen"), (1, 1));
        p.media("video", StreamType::Screen, true);
        assert_eq!(gauges("screen"), (1, 1), "repeated event counted twice");
        p.add_subscriber(2);
        assert_eq!(gauges("screen"), (1, 2));
        p.remove_subscriber(1);
        p.remove_subscriber(1);
        assert_eq!(gauges("screen"), (1, 1));
        p.media("video", StreamType::Screen, false);
        assert_eq!(gauges("screen"), (0, 0));
        p.media("video", StreamType::Screen, true);
        assert_eq!(gauges("screen"), (1, 1));
        p.reset();
        assert_eq!(gauges("screen"), (0, 0));
    }
}
