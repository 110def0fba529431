//! One receive queue over many subscriptions, in arrival order per
//! publisher.
//!
//! async-nats hands each subscription its own channel, filled by the one
//! task that reads the connection, in the order the server sent the
//! messages; NATS keeps each publisher's order on that connection. Read
//! channel by channel, a session's messages by session, user and room
//! subject would interleave arbitrarily. The reference reads all of a
//! session's subscriptions from one channel, so it keeps the order.
//!
//! [`Ordered`] restores it: every subscription wakes a shared ready list;
//! [`Ordered::drain`] empties every ready subscription and repeats until a
//! full pass finds nothing. A message that was put into its channel before
//! a drained one had woken its subscription before that one was put in, so
//! it is drained in the same batch. Sorting a batch by the publisher's
//! sequence number then gives each publisher's order.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;
use futures_util::Stream;
use parking_lot::Mutex;

#[derive(Default)]
struct Ready {
    ids: Mutex<Vec<u64>>,
    task: AtomicWaker,
}

struct SlotWaker {
    id: u64,
    ready: Arc<Ready>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.ids.lock().push(self.id);
        self.ready.task.wake();
    }
}

struct Slot<S> {
    stream: S,
    waker: Waker,
}

/// Streams read as one.
pub struct Ordered<S> {
    slots: HashMap<u64, Slot<S>>,
    ready: Arc<Ready>,
    next_id: u64,
}

impl<S> Default for Ordered<S> {
    fn default() -> Self {
        Ordered {
            slots: HashMap::new(),
            ready: Arc::default(),
            next_id: 1,
        }
    }
}

impl<S: Stream + Unpin> Ordered<S> {
    /// Adds a stream; it is read at the next drain.
    pub fn insert(&mut self, stream: S) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let waker = Waker::from(Arc::new(SlotWaker {
            id,
            ready: self.ready.clone(),
        }));
        waker.wake_by_ref();
        self.slots.insert(id, Slot { stream, waker });
        id
    }

    /// Drops a stream; what it still held is lost.
    pub fn remove(&mut self, id: u64) {
        self.slots.remove(&id);
    }

    /// Ready when some stream may have something for [`Self::drain`].
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.ready.task.register(cx.waker());
        if self.ready.ids.lock().is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }

    /// Appends what the streams hold, with the id of the stream each item
    /// came from, until a pass finds nothing or `out` holds `limit` items
    /// (then the rest waits for the next call). Streams that ended are
    /// removed.
    pub fn drain(&mut self, out: &mut Vec<(u64, S::Item)>, limit: usize) {
        loop {
            let ids = std::mem::take(&mut *self.ready.ids.lock());
            if ids.is_empty() {
                return;
            }
            for (n, id) in ids.iter().enumerate() {
                if out.len() >= limit {
                    // Not read yet: keep them ready.
                    self.ready.ids.lock().extend_from_slice(&ids[n..]);
                    return;
                }
                let Some(slot) = self.slots.get_mut(id) else {
                    continue;
                };
                let mut cx = Context::from_waker(&slot.waker);
                loop {
                    if out.len() >= limit {
                        slot.waker.wake_by_ref();
                        break;
                    }
                    match Pin::new(&mut slot.stream).poll_next(&mut cx) {
                        Poll::Ready(Some(item)) => out.push((*id, item)),
                        Poll::Ready(None) => {
                            self.slots.remove(id);
                            break;
                        }
                        Poll::Pending => break,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    struct Rx(mpsc::UnboundedReceiver<u32>);

    impl Stream for Rx {
        type Item = u32;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u32>> {
            self.0.poll_recv(cx)
        }
    }

    fn channel(o: &mut Ordered<Rx>) -> (mpsc::UnboundedSender<u32>, u64) {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = o.insert(Rx(rx));
        (tx, id)
    }

    fn sorted(o: &mut Ordered<Rx>, limit: usize) -> Vec<u32> {
        let mut out = Vec::new();
        o.drain(&mut out, limit);
        let mut items: Vec<u32> = out.into_iter().map(|(_, m)| m).collect();
        items.sort();
        items
    }

    #[test]
    fn one_drain_takes_everything_sent_before() {
        let mut o = Ordered::default();
        let (a, _) = channel(&mut o);
        let (b, _) = channel(&mut o);
        let (c, _) = channel(&mut o);
        // Put in across channels, as the NATS reader does.
        for (n, tx) in [(1, &a), (2, &b), (3, &a), (4, &c), (5, &b)] {
            tx.send(n).unwrap();
        }
        assert_eq!(sorted(&mut o, 100), vec![1, 2, 3, 4, 5]);
        assert_eq!(sorted(&mut o, 100), Vec::<u32>::new());
        b.send(6).unwrap();
        assert_eq!(sorted(&mut o, 100), vec![6]);
    }

    #[test]
    fn limit_leaves_the_rest_ready() {
        let mut o = Ordered::default();
        let (a, _) = channel(&mut o);
        let (b, _) = channel(&mut o);
        for n in 0..10 {
            a.send(n).unwrap();
            b.send(100 + n).unwrap();
        }
        let first = sorted(&mut o, 4);
        assert_eq!(first.len(), 4);
        let rest = sorted(&mut o, 100);
        assert_eq!(rest.len(), 16);
    }

    #[test]
    fn wakes_the_reader_and_drops_ended_streams() {
        let mut o = Ordered::default();
        let (a, id) = channel(&mut o);
        sorted(&mut o, 100);
        let waker = Waker::from(Arc::new(Flag));
        let mut cx = Context::from_waker(&waker);
        assert!(o.poll_ready(&mut cx).is_pending());
        a.send(1).unwrap();
        assert!(o.poll_ready(&mut cx).is_ready());
        drop(a);
        assert_eq!(sorted(&mut o, 100), vec![1]);
        assert!(!o.slots.contains_key(&id));
    }

    struct Flag;

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {}
    }
}
