//! In-process bus for a single node (`[nats] url = nats://loopback`).
//! Delivery is synchronous in `publish`, so a publisher's messages reach
//! every subscriber in publish order.

use std::sync::{Arc, Weak};

use super::bus::{BusError, BusMessage, BusSink, EventBus, Subject, Subscription};
use super::sinks::Sinks;

#[derive(Default)]
pub struct LoopbackBus {
    sinks: Arc<Sinks<Subject>>,
}

impl LoopbackBus {
    pub fn new() -> Self {
        Self::default()
    }

    #[cfg(test)]
    fn subject_count(&self) -> usize {
        self.sinks.subject_count()
    }
}

struct Unsubscribe {
    sinks: Weak<Sinks<Subject>>,
    subject: Subject,
    id: u64,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        if let Some(sinks) = self.sinks.upgrade() {
            sinks.remove(&self.subject, self.id);
        }
    }
}

impl EventBus for LoopbackBus {
    fn publish(&self, subject: &Subject, msg: Arc<BusMessage>) -> Result<(), BusError> {
        self.sinks.deliver(subject, &msg);
        Ok(())
    }

    fn subscribe(&self, subject: &Subject, sink: BusSink) -> Result<Subscription, BusError> {
        let (id, _) = self.sinks.add(subject, sink);
        Ok(Subscription::new(Unsubscribe {
            sinks: Arc::downgrade(&self.sinks),
            subject: subject.clone(),
            id,
        }))
    }

    fn barrier(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        // Delivery is synchronous: everything is in place already.
        Box::pin(std::future::ready(()))
    }

    fn is_single_node(&self) -> bool {
        true
    }

    fn is_connected(&self) -> bool {
        true
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
    use parking_lot::Mutex;
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
