//! This node's subscribers, by subject: what both bus implementations
//! deliver to. Sinks run without the registry's lock held, so a sink may
//! publish or subscribe in turn.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::bus::{BusMessage, BusSink};

pub struct Sinks<K> {
    by_subject: Mutex<HashMap<K, Vec<(u64, BusSink)>>>,
    next_id: AtomicU64,
}

impl<K> Default for Sinks<K> {
    fn default() -> Self {
        Sinks {
            by_subject: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        }
    }
}

impl<K: Hash + Eq + Clone> Sinks<K> {
    /// Adds `sink`; returns its id and whether it is the subject's first.
    pub fn add(&self, subject: &K, sink: BusSink) -> (u64, bool) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut map = self.by_subject.lock();
        let list = map.entry(subject.clone()).or_default();
        list.push((id, sink));
        (id, list.len() == 1)
    }

    /// Removes sink `id`; returns whether the subject has none left.
    pub fn remove(&self, subject: &K, id: u64) -> bool {
        let mut map = self.by_subject.lock();
        let Some(list) = map.get_mut(subject) else {
            return false;
        };
        list.retain(|(i, _)| *i != id);
        if list.is_empty() {
            map.remove(subject);
            return true;
        }
        false
    }

    pub fn contains<Q>(&self, subject: &Q) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.by_subject.lock().contains_key(subject)
    }

    /// Calls every sink of `subject` with `msg`.
    pub fn deliver<Q>(&self, subject: &Q, msg: &Arc<BusMessage>)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // Copied out so no lock is held while they run.
        let targets: Vec<BusSink> = match self.by_subject.lock().get(subject) {
            Some(list) => list.iter().map(|(_, s)| s.clone()).collect(),
            None => return,
        };
        for sink in targets {
            sink(msg);
        }
    }

    #[cfg(test)]
    pub fn subject_count(&self) -> usize {
        self.by_subject.lock().len()
    }
}
