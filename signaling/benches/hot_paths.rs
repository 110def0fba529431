//! Micro-benchmarks of the hot paths: decoding and encoding the common
//! client messages, routing one message to a session, and fanning one
//! message out to a 100-session room.
//!
//! Run with `cargo bench -p signaling`.

use std::sync::Arc;

use config_source::ini::ProcessEnv;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use proto::client::ClientMessage;
use proto::ids::{PrivateSessionId, PublicSessionId};
use proto::server::{MessageDelivery, MessageSender, ServerBody, ServerMessage};
use signaling::backend::Backends;
use signaling::cluster::loopback::LoopbackBus;
use signaling::cluster::{BusMessage, EventBus, Subject, Subscription};
use signaling::config::Config;
use signaling::hub::session::{ClientType, NewSession, Session};
use tokio_util::sync::CancellationToken;
use transport::ws::OutboxReceiver;

const OFFER: &str = r#"{"id":"42","type":"message","message":{"recipient":{"type":"session","sessionid":"xWufz1AuelfEeTEtZG5la2NhYgkaA4LEwcD5gIAQAQg"},"data":{"to":"xWufz1AuelfEeTEtZG5la2NhYgkaA4LEwcD5gIAQAQg","type":"candidate","sid":"1234567890","roomType":"video","payload":{"candidate":{"candidate":"candidate:1 1 UDP 2122252543 192.0.2.1 49203 typ host","sdpMLineIndex":0,"sdpMid":"0"}}}}}"#;
const HELLO: &str = r#"{"id":"1","type":"hello","hello":{"version":"1.0","features":["chat-relay"],"auth":{"url":"https://cloud.example.com/ocs/v2.php/apps/spreed/api/v3/signaling/backend","params":{"userid":"alice","ticket":"0123456789abcdef"}}}}"#;

fn session(backends: &Backends, n: u64) -> (Arc<Session>, OutboxReceiver) {
    let s = Arc::new(Session::new(NewSession {
        tasks: tokio_util::task::TaskTracker::new(),
        index: n,
        public_id: PublicSessionId(format!("public-{n}")),
        private_id: PrivateSessionId(format!("private-{n}")),
        client_type: ClientType::Client,
        backend: backends.all()[0].clone(),
        backend_url: "https://cloud.example.com/".into(),
        user_id: format!("user{n}"),
        user_data: None,
        features: Vec::new(),
        virtual_owner: None,
        in_call: 0,
        flags: 0,
    }));
    let (outbox, rx) = signaling::client::new_outbox(CancellationToken::new());
    s.attach(outbox);
    (s, rx)
}

fn subscribe(bus: &LoopbackBus, subject: &Subject, s: &Arc<Session>) -> Subscription {
    let weak = Arc::downgrade(s);
    bus.subscribe(
        subject,
        Arc::new(move |m: &Arc<BusMessage>| {
            if let Some(s) = weak.upgrade() {
                s.deliver(m);
            }
        }),
    )
    .expect("subscribe")
}

fn delivery(data: &str) -> ServerMessage {
    ServerMessage::new(ServerBody::Message {
        message: MessageDelivery {
            sender: Some(MessageSender {
                kind: "room".into(),
                sessionid: PublicSessionId("sender".into()),
                userid: "alice".into(),
            }),
            recipient: Some(proto::client::RecipientWire {
                kind: "room".into(),
                sessionid: None,
                userid: None,
            }),
            data: serde_json::value::RawValue::from_string(data.to_owned()).expect("raw"),
        },
    })
}

fn benches(c: &mut Criterion) {
    c.bench_function("decode session message", |b| {
        b.iter(|| ClientMessage::decode(std::hint::black_box(OFFER.as_bytes())))
    });
    c.bench_function("decode hello", |b| {
        b.iter(|| ClientMessage::decode(std::hint::black_box(HELLO.as_bytes())))
    });
    let msg = delivery(r#"{"type":"offer","sid":"1","payload":{"sdp":"v=0 ..."}}"#);
    c.bench_function("encode message delivery", |b| {
        b.iter(|| std::hint::black_box(&msg).to_json())
    });

    let config = Config::from_ini_str(
        "[sessions]\nhashkey = 0123456789abcdef0123456789abcdef\n[backend]\nbackends = nc\n[nc]\nurls = https://cloud.example.com/\nsecret = s\n",
        &ProcessEnv,
    )
    .expect("config");
    let backends = Backends::new(&config.backend);
    let bus = LoopbackBus::new();

    // One message through the bus to one session and out of its outbox.
    let (target, mut rx) = session(&backends, 1);
    let subject = Subject::Session(target.public_id.clone());
    let _sub = subscribe(&bus, &subject, &target);
    c.bench_function("route message to a session", |b| {
        b.iter_batched(
            || Arc::new(BusMessage::new(msg.clone())),
            |m| {
                bus.publish(&subject, m).expect("publish");
                rx.rx.try_recv().expect("delivered")
            },
            BatchSize::SmallInput,
        )
    });

    // One message fanned out to a 100-session room.
    let room = Subject::Room {
        backend: backends.all()[0].id.clone(),
        compat: false,
        room: "room".into(),
    };
    let members: Vec<_> = (100..200).map(|n| session(&backends, n)).collect();
    let _subs: Vec<_> = members
        .iter()
        .map(|(s, _)| subscribe(&bus, &room, s))
        .collect();
    let (_sessions, mut receivers): (Vec<Arc<Session>>, Vec<OutboxReceiver>) =
        members.into_iter().unzip();
    c.bench_function("fan out to a 100-session room", |b| {
        b.iter_batched(
            || Arc::new(BusMessage::new(msg.clone())),
            |m| {
                bus.publish(&room, m).expect("publish");
                for rx in receivers.iter_mut() {
                    rx.rx.try_recv().expect("delivered");
                }
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(hot_paths, benches);
criterion_main!(hot_paths);
