//! Room pings (facts 2.5.3, 5.8): every 10 s Talk hears which of its
//! sessions are still connected, so it does not expire them. With Talk's
//! `session-ping-limit` the entries of all rooms are batched per URL.

use std::collections::HashMap;
use std::sync::Arc;

use proto::talk::request::{BackendRequest, PingEntry, PingRequest, BACKEND_VERSION};

use super::session::ClientType;
use super::Hub;
use crate::backend::Backend;

/// Ping period.
pub const PING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// The backend of one URL and its (room id, entry) pairs.
type UrlPings = (Arc<Backend>, Vec<(String, PingEntry)>);

impl Hub {
    /// One round of pings for every local room.
    pub(crate) fn ping_rooms(&self) {
        // (url) -> (backend, room id -> entries)
        let mut by_url: HashMap<String, UrlPings> = HashMap::new();
        for room in self.inner.rooms.all() {
            for m in room.members() {
                let Some(room_session) = m.room_session_id() else {
                    continue;
                };
                if room_session.is_empty() || m.backend_url.is_empty() {
                    continue;
                }
                let entry = match m.client_type {
                    ClientType::Client | ClientType::Federation => PingEntry {
                        userid: m.user_id.clone(),
                        sessionid: room_session.0,
                    },
                    ClientType::Virtual => PingEntry {
                        userid: m.user_id.clone(),
                        sessionid: m.public_id.0.clone(),
                    },
                    ClientType::Internal => continue,
                };
                by_url
                    .entry(m.backend_url.clone())
                    .or_insert_with(|| (m.backend.clone(), Vec::new()))
                    .1
                    .push((room.id.0.clone(), entry));
            }
        }
        // Sessions in remote rooms are pinged on their own Nextcloud with
        // the local room id (facts 6.8).
        for s in self.inner.sessions.all() {
            if let Some(f) = s.federation() {
                let (room, talk_session) = f.ping_target();
                by_url
                    .entry(s.backend_url.clone())
                    .or_insert_with(|| (s.backend.clone(), Vec::new()))
                    .1
                    .push((
                        room,
                        PingEntry {
                            userid: s.user_id.clone(),
                            sessionid: talk_session,
                        },
                    ));
            }
        }
        for (url, (backend, entries)) in by_url {
            let client = self.inner.client.clone();
            self.inner.tasks.spawn(async move {
                let limit = client
                    .capabilities
                    .get(&url)
                    .await
                    .ok()
                    .and_then(|l| l.data.and_then(|c| c.session_ping_limit()));
                let requests: Vec<PingRequest> = match limit {
                    Some(limit) => entries
                        .chunks(limit)
                        .map(|chunk| PingRequest {
                            version: BACKEND_VERSION.into(),
                            roomid: String::new(),
                            entries: chunk.iter().map(|(_, e)| e.clone()).collect(),
                        })
                        .collect(),
                    None => {
                        let mut per_room: HashMap<String, Vec<PingEntry>> = HashMap::new();
                        for (room, e) in entries {
                            per_room.entry(room).or_default().push(e);
                        }
                        per_room
                            .into_iter()
                            .map(|(roomid, entries)| PingRequest {
                                version: BACKEND_VERSION.into(),
                                roomid,
                                entries,
                            })
                            .collect()
                    }
                };
                for ping in requests {
                    let req = BackendRequest::Ping { ping };
                    if let Err(e) = client.request(&backend, &url, &req).await {
                        tracing::warn!(url, error = %e, "room ping failed");
                    }
                }
            });
        }
    }
}
