//! What a session does with a bus message: the per-receiver rules of
//! facts 1.15 (own messages, call recipients, hidden names, join and
//! leave bookkeeping, flags) and virtual sessions' relaying to their
//! owner.

use super::*;

impl Session {
    /// Delivers a bus message after the per-receiver rules of facts 1.15.
    pub fn deliver(&self, bus: &Arc<BusMessage>) -> Delivered {
        let Some(message) = bus.message() else {
            return Delivered::No;
        };
        if let Some(v) = &self.virtual_owner {
            return self.deliver_for_virtual(v, message);
        }
        let mut frames: Option<Vec<ServerMessage>> = None;
        let mut outcome = Delivered::Yes;
        {
            let mut s = self.state.lock();
            if s.closed {
                return Delivered::No;
            }
            let hide_names = s.permissions.has(Permission::HideDisplayNames);
            match &message.body {
                ServerBody::Message { message: m } | ServerBody::Control { control: m } => {
                    if m.sender
                        .as_ref()
                        .is_some_and(|snd| snd.sessionid == self.public_id)
                    {
                        return Delivered::No;
                    }
                    let to_call = m.recipient.as_ref().is_some_and(|r| r.kind == "call");
                    if to_call
                        && !s
                            .room
                            .as_ref()
                            .is_some_and(|j| j.room.is_in_call(&self.public_id))
                    {
                        return Delivered::No;
                    }
                    if hide_names
                        && matches!(message.body, ServerBody::Message { .. })
                        && filter::is_nick_changed(&m.data)
                    {
                        return Delivered::No;
                    }
                }
                ServerBody::Event { event } => {
                    if matches!(event, Event::Room(_) | Event::Participants(_)) {
                        match &s.room {
                            Some(j) if bus.send_time_us >= j.join_time_us => {}
                            _ => return Delivered::No,
                        }
                    }
                    match event {
                        Event::Room(RoomEvent::Join { join }) => {
                            let mut fresh: Vec<JoinEntry> = join
                                .iter()
                                .filter(|e| s.seen.insert(e.sessionid.clone()))
                                .cloned()
                                .collect();
                            if fresh.is_empty() {
                                return Delivered::No;
                            }
                            if hide_names {
                                fresh.iter_mut().for_each(filter::hide_display_name);
                            }
                            if fresh.len() != join.len() || hide_names {
                                frames = Some(vec![event_message(Event::Room(RoomEvent::Join {
                                    join: fresh,
                                }))]);
                            }
                        }
                        Event::Room(RoomEvent::Leave { leave }) => {
                            let known: Vec<_> = leave
                                .iter()
                                .filter(|id| s.seen.remove(*id))
                                .cloned()
                                .collect();
                            if known.is_empty() {
                                return Delivered::No;
                            }
                            if known.len() != leave.len() {
                                frames = Some(vec![event_message(Event::Room(RoomEvent::Leave {
                                    leave: known,
                                }))]);
                            }
                        }
                        Event::Room(RoomEvent::Message { message: m }) => {
                            let relay = self.has_feature(proto::features::CLIENT_CHAT_RELAY);
                            if let Some(datas) = filter::chat_relay(&m.data, relay, hide_names) {
                                frames = Some(
                                    datas
                                        .into_iter()
                                        .map(|data| {
                                            event_message(Event::Room(RoomEvent::Message {
                                                message: proto::event::RoomEventMessage {
                                                    roomid: m.roomid.clone(),
                                                    data,
                                                },
                                            }))
                                        })
                                        .collect(),
                                );
                            }
                        }
                        Event::Participants(ParticipantsEvent::Flags { flags })
                            if s.seen_flags.insert(flags.sessionid.clone(), flags.flags)
                                == Some(flags.flags) =>
                        {
                            return Delivered::No;
                        }
                        Event::Roomlist(RoomlistEvent::Disinvite { disinvite })
                            if s.room
                                .as_ref()
                                .is_some_and(|j| j.room.id.as_str() == disinvite.roomid) =>
                        {
                            outcome = Delivered::CloseAfter;
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        let chat_refresh = is_chat_refresh(message);
        match frames {
            None => self.send_frame(bus.json(), chat_refresh),
            Some(list) => {
                for m in list {
                    self.send_frame(Arc::from(m.to_json()), chat_refresh);
                }
            }
        }
        outcome
    }

    /// Messages to a virtual session go to its owner, addressed with the
    /// id the owner chose (facts 5.4).
    fn deliver_for_virtual(&self, v: &VirtualOwner, message: &ServerMessage) -> Delivered {
        let Some(owner) = v.owner.upgrade() else {
            return Delivered::No;
        };
        let (m, control) = match &message.body {
            ServerBody::Message { message: m } => (m, false),
            ServerBody::Control { control: m } => (m, true),
            _ => return Delivered::No,
        };
        if m.sender
            .as_ref()
            .is_some_and(|snd| snd.sessionid == self.public_id)
        {
            return Delivered::No;
        }
        let mut m = m.clone();
        m.recipient = Some(proto::client::RecipientWire {
            kind: "session".into(),
            sessionid: Some(v.client_id.clone()),
            userid: (!self.user_id.is_empty()).then(|| self.user_id.clone()),
        });
        let body = if control {
            ServerBody::Control { control: m }
        } else {
            ServerBody::Message { message: m }
        };
        owner.send(&ServerMessage::new(body));
        Delivered::Yes
    }
}
