//! Registry of the rooms that exist on this node, keyed by backend and room
//! id (facts 5.1).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use proto::ids::{BackendId, RoomId};
use proto::RawJson;

use super::room::Room;
use crate::backend::Backend;
use crate::metrics::METRICS;

#[derive(Default)]
pub struct Rooms {
    map: Mutex<HashMap<(BackendId, RoomId), Arc<Room>>>,
}

impl Rooms {
    pub fn get(&self, backend: &BackendId, id: &RoomId) -> Option<Arc<Room>> {
        self.map
            .lock()
            .get(&(backend.clone(), id.clone()))
            .filter(|r| !r.is_closed())
            .cloned()
    }

    /// The live room, created with `properties` if there is none; the flag
    /// says whether it was created. Existing rooms keep their properties
    /// (facts 1.9.3 step 7).
    pub fn get_or_create(
        &self,
        backend: &Arc<Backend>,
        id: &RoomId,
        properties: Option<RawJson>,
    ) -> (Arc<Room>, bool) {
        let mut map = self.map.lock();
        let key = (backend.id.clone(), id.clone());
        if let Some(room) = map.get(&key) {
            if !room.is_closed() {
                return (room.clone(), false);
            }
        } else {
            METRICS
                .hub_rooms
                .with_label_values(&[backend.id.as_str()])
                .inc();
        }
        let room = Arc::new(Room::new(id.clone(), backend.clone(), properties));
        map.insert(key, room.clone());
        (room, true)
    }

    /// Drops `room` from the registry once it closed.
    pub fn remove_closed(&self, room: &Arc<Room>) {
        let mut map = self.map.lock();
        let key = (room.backend.id.clone(), room.id.clone());
        if map
            .get(&key)
            .is_some_and(|r| Arc::ptr_eq(r, room) && r.is_closed())
        {
            map.remove(&key);
            METRICS
                .hub_rooms
                .with_label_values(&[room.backend.id.as_str()])
                .dec();
        }
    }

    pub fn all(&self) -> Vec<Arc<Room>> {
        self.map.lock().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
