//! What the SFU tells a session's clients, turned into the `message`s
//! the client expects from the session it talks to (facts 4.3).

use std::sync::{Arc, Weak};

use proto::ids::PublicSessionId;
use proto::server::{MessageDelivery, MessageSender, ServerBody, ServerMessage};
use serde_json::{json, Value};
use sfu_bridge::sfu::{ClientRef, Listener, StreamType};

use crate::hub::session::Session;

/// `{"type":"message","message":{"sender":...,"data":{to, from, type,
/// roomType, payload, sid}}}` (facts 4.3 responses).
pub(super) fn sfu_message(
    id: Option<String>,
    session: &Session,
    from: &PublicSessionId,
    kind: &str,
    stream: StreamType,
    payload: Value,
    sid: &str,
) -> ServerMessage {
    let data = json!({
        "to": session.public_id,
        "from": from,
        "type": kind,
        "roomType": stream.as_str(),
        "payload": payload,
        "sid": sid,
    });
    let userid = if *from == session.public_id {
        session.effective_user_id()
    } else {
        String::new()
    };
    ServerMessage::reply(
        id,
        ServerBody::Message {
            message: MessageDelivery {
                sender: Some(MessageSender {
                    kind: "session".into(),
                    sessionid: from.clone(),
                    userid,
                }),
                recipient: None,
                data: serde_json::value::to_raw_value(&data).unwrap_or_else(|_| {
                    serde_json::value::to_raw_value(&Value::Null).unwrap_or_default()
                }),
            },
        },
    )
}

/// The listener for a new client of `session`.
pub(super) fn listener(session: &Arc<Session>) -> Arc<dyn Listener> {
    Arc::new(SessionListener {
        session: Arc::downgrade(session),
    })
}

/// What the SFU tells a session.
struct SessionListener {
    session: Weak<Session>,
}

impl Listener for SessionListener {
    fn on_update_offer(&self, client: &ClientRef, sid: &str, jsep: Value) {
        if let Some(s) = self.session.upgrade() {
            let from = PublicSessionId(client.publisher.clone());
            s.send(&sfu_message(
                None,
                &s,
                &from,
                "offer",
                client.stream,
                jsep,
                sid,
            ));
        }
    }

    fn on_ice_candidate(&self, client: &ClientRef, sid: &str, candidate: Value) {
        if let Some(s) = self.session.upgrade() {
            let from = PublicSessionId(client.publisher.clone());
            let payload = json!({"candidate": candidate});
            s.send(&sfu_message(
                None,
                &s,
                &from,
                "candidate",
                client.stream,
                payload,
                sid,
            ));
        }
    }

    fn on_closed(&self, client: &ClientRef) {
        if let Some(s) = self.session.upgrade() {
            s.media.forget(client);
        }
    }
}
