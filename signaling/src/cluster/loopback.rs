//! In-process bus for a single node (`[nats] url = nats://loopback`).
//! Delivery is synchronous in `publish`, so a publisher's messages reach
//! every subscriber in publish order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use super::bus::{BusError, BusMessage, BusSink, EventBus, Subject, Subscription};

#[derive(Default)]
struct State {
    subscribers: HashMap<Subject, Vec<(u64, BusSink)>>,
}

#[derive(Default)]
pub struct LoopbackBus {
    state: Arc<Mutex<State>>,
    next_id: AtomicU64,
}

impl LoopbackBus {
    pub fn new() -> Self {
        Self::default()
    }

    #[cfg(test)]
    fn subject_count(&self) -> usize {
        self.state.lock().subscribers.len()
    }
}

struct Unsubscribe {
    state: Weak<Mutex<State>>,
    subject: Subject,
    id: u64,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        if let Some(state) = self.state.upgrade() {
            let mut state = state.lock();
            if let Some(list) = state.subscribers.get_mut(&self.subject) {
                list.retain(|(id, _)| *id != self.id);
                if list.is_empty() {
                    state.subscribers.remove(&self.subject);
                }
            }
        }
    }
}

impl EventBus for LoopbackBus {
    fn publish(&self, subject: &Subject, msg: Arc<BusMessage>) -> Result<(), BusError> {
        // Copy the sinks out so no lock is held while they run.
        let sinks: Vec<BusSink> = match self.state.lock().subscribers.get(subject) {
            Some(list) => list.iter().map(|(_, s)| s.clone()).collect(),
            None => return Ok(()),
        };
        for sink in sinks {
            sink(&msg);
        }
        Ok(())
    }

    fn subscribe(&self, subject: &Subject, sink: BusSink) -> Result<Subscription, BusError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.state
            .lock()
            .subscribers
            .entry(subject.clone())
            .or_default()
            .push((id, sink));
        Ok(Subscription::new(Unsubscribe {
            state: Arc::downgrade(&self.state),
            subject: subject.clone(),
            id,
        }))
    }

    fn barrier(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        // Delivery is synchronous: everything is in place already.
        Box::pin(std::future::ready(()))
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "urls": ["nats://loopback"],
            "connected": true,
            "serverurl": "nats://loopback",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::server::{ServerBody, ServerMessage};

    fn msg(n: u32) -> Arc<BusMessage> {
        Arc::new(BusMessage::new(ServerMessage::new(ServerBody::Bye {
            bye: Some(proto::server::ByeMessage {
                reason: n.to_string(),
            }),
        })))
    }

    #[test]
    fn delivers_in_order_and_unsubscribes_on_drop() {
        let bus = LoopbackBus::new();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let subject = Subject::Session("s1".into());
        let sub = bus
            .subscribe(
                &subject,
                Arc::new(move |m: &Arc<BusMessage>| g.lock().push(m.json().to_string())),
            )
            .unwrap();
        for n in 0..3 {
            bus.publish(&subject, msg(n)).unwrap();
        }
        bus.publish(&Subject::Session("other".into()), msg(9))
            .unwrap();
        assert_eq!(got.lock().len(), 3);
        assert!(got.lock()[0].contains("\"0\"") && got.lock()[2].contains("\"2\""));
        drop(sub);
        assert_eq!(bus.subject_count(), 0);
        bus.publish(&subject, msg(4)).unwrap();
        assert_eq!(got.lock().len(), 3);
    }
}
