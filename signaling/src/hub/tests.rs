//! The hub in process, on the loopback bus, without connections: who gets
//! a message, in which order, and how Nextcloud's notifications become
//! client events. Sessions are registered directly and stay detached, so
//! what they would send is read from their queues.

use std::sync::Arc;

use proto::ids::{PrivateSessionId, PublicSessionId, RoomId, RoomSessionId};
use proto::server::ServerMessage;
use serde_json::{json, Value};

use super::session::{ClientType, Joined, NewSession, Session, SubjectKind};
use super::Hub;
use crate::cluster::bus::now_us;
use crate::cluster::{BusMessage, Subject};
use crate::config::Config;

async fn hub() -> Hub {
    let config = Config::from_ini_str(
        "[sessions]\nhashkey = 0123456789abcdef0123456789abcdef\n\
         [backend]\nbackends = nc\n[nc]\nurls = https://nc.example/\nsecret = s\n\
         [nats]\nurl = nats://loopback\n",
        &config_source::ini::ProcessEnv,
    )
    .unwrap();
    let bus = Arc::new(crate::cluster::loopback::LoopbackBus::new());
    Hub::new(&config, bus).unwrap()
}

/// A detached client session of `user`, subscribed to its subjects.
async fn session(hub: &Hub, id: &str, user: &str) -> Arc<Session> {
    let backend = hub.backends().all()[0].clone();
    let s = Arc::new(Session::new(NewSession {
        tasks: hub.tasks().clone(),
        index: hub.next_session_index(),
        public_id: PublicSessionId(id.into()),
        private_id: PrivateSessionId(format!("private-{id}")),
        client_type: ClientType::Client,
        backend,
        backend_url: "https://nc.example/".into(),
        user_id: user.into(),
        user_data: None,
        features: Vec::new(),
        virtual_owner: None,
        in_call: 0,
        flags: 0,
    }));
    hub.inner.sessions.register(&s, 0).unwrap();
    super::handle::hello::subscribe_session(hub, &s);
    hub.inner.bus.barrier().await;
    s
}

/// Puts `s` into `room` as a join would, without asking Nextcloud.
async fn join(hub: &Hub, s: &Arc<Session>, room: &str, talk_id: &str) {
    let backend = s.backend.clone();
    let (room, _) = hub.join_local_room(s, &backend, &RoomId(room.into()), None);
    let sink = hub.session_sink(s, SubjectKind::Room);
    let sub = hub.inner.bus.subscribe(&room.subject(), sink).unwrap();
    let talk_id = RoomSessionId(talk_id.into());
    hub.claim_room_session(s, &talk_id);
    s.set_room(Joined::new(room, talk_id, now_us(), None, sub));
    hub.inner.bus.barrier().await;
}

fn message(from: &str, recipient: Value, data: Value) -> BusMessage {
    let m: ServerMessage = serde_json::from_value(json!({
        "type": "message",
        "message": {"sender": {"type": "session", "sessionid": from}, "recipient": recipient, "data": data}
    }))
    .unwrap();
    BusMessage::new(m)
}

fn data_of(frames: &[String]) -> Vec<Value> {
    frames
        .iter()
        .map(|f| serde_json::from_str::<Value>(f).unwrap()["message"]["data"].clone())
        .collect()
}

#[tokio::test]
async fn a_user_message_reaches_the_users_other_sessions_not_the_sender() {
    let hub = hub().await;
    let a1 = session(&hub, "a1", "alice").await;
    let a2 = session(&hub, "a2", "alice").await;
    let b = session(&hub, "b", "bob").await;
    let to_alice = Subject::User {
        backend: a1.backend.id.clone(),
        compat: false,
        user: "alice".into(),
    };
    hub.publish(
        &to_alice,
        message(
            "a1",
            json!({"type": "user", "userid": "alice"}),
            json!("hi"),
        ),
    );
    hub.inner.bus.barrier().await;
    assert!(
        a1.pending_frames().is_empty(),
        "the sender got its own message"
    );
    assert_eq!(data_of(&a2.pending_frames()), vec![json!("hi")]);
    assert!(b.pending_frames().is_empty());
}

#[tokio::test]
async fn one_senders_messages_keep_their_order_across_subjects() {
    let hub = hub().await;
    let _a = session(&hub, "a", "alice").await;
    let b = session(&hub, "b", "bob").await;
    join(&hub, &b, "room1", "tb").await;
    let room = hub
        .inner
        .rooms
        .get(&b.backend.id, &RoomId("room1".into()))
        .unwrap();
    let subjects = [
        Subject::Session(b.public_id.clone()),
        Subject::User {
            backend: b.backend.id.clone(),
            compat: false,
            user: "bob".into(),
        },
        room.subject(),
    ];
    for n in 0..90 {
        let subject = &subjects[n % 3];
        hub.publish(subject, message("a", json!({"type": "session"}), json!(n)));
    }
    hub.inner.bus.barrier().await;
    let got: Vec<Value> = data_of(&b.pending_frames());
    assert_eq!(got, (0..90).map(|n| json!(n)).collect::<Vec<_>>());
}

#[tokio::test]
async fn call_messages_reach_only_sessions_in_the_call() {
    let hub = hub().await;
    let a = session(&hub, "a", "alice").await;
    let b = session(&hub, "b", "bob").await;
    let c = session(&hub, "c", "carol").await;
    for (s, talk) in [(&a, "ta"), (&b, "tb"), (&c, "tc")] {
        join(&hub, s, "room1", talk).await;
    }
    let room = a.room().unwrap();
    assert!(room.set_in_call(&b.public_id, true));
    hub.publish(
        &room.subject(),
        message("a", json!({"type": "call"}), json!("to the call")),
    );
    hub.inner.bus.barrier().await;
    assert_eq!(data_of(&b.pending_frames()), vec![json!("to the call")]);
    assert!(c.pending_frames().is_empty(), "carol is not in the call");
}

/// An `incall` notification from Nextcloud: Talk session ids become
/// signaling session ids, `changed` is folded into `users`, unknown
/// sessions are dropped, and the call set follows.
#[tokio::test]
async fn incall_notifications_become_participant_events() {
    let hub = hub().await;
    let a = session(&hub, "a", "alice").await;
    let b = session(&hub, "b", "bob").await;
    join(&hub, &a, "room1", "ta").await;
    join(&hub, &b, "room1", "tb").await;
    let n: proto::talk::notify::RoomNotification = serde_json::from_value(json!({
        "type": "incall",
        "incall": {
            "incall": 7,
            "changed": [{"sessionId": "tb", "inCall": 7, "userId": "bob"}],
            "users": [
                {"sessionId": "ta", "inCall": 0, "userId": "alice"},
                {"sessionId": "unknown", "inCall": 1, "userId": "x"}
            ]
        }
    }))
    .unwrap();
    let backend = a.backend.clone();
    hub.room_notification(&backend, &RoomId("room1".into()), n)
        .unwrap();
    hub.inner.bus.barrier().await;
    for s in [&a, &b] {
        let frames = s.pending_frames();
        let update = frames
            .iter()
            .map(|f| serde_json::from_str::<Value>(f).unwrap())
            .find(|v| v["event"]["target"] == "participants")
            .unwrap_or_else(|| panic!("no participants event in {frames:?}"));
        let users = update["event"]["update"]["users"].as_array().unwrap();
        let ids: Vec<&str> = users
            .iter()
            .map(|u| u["sessionId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec!["a", "b"], "{update}");
        assert_eq!(users[1]["inCall"], 7);
    }
    let room = a.room().unwrap();
    assert!(room.is_in_call(&b.public_id));
    assert!(!room.is_in_call(&a.public_id));
}
