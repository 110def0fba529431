//! A scripted `/spreed` client.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::server::{TestServer, INTERNAL_SECRET};
use crate::talk::{Talk, User};
use crate::wait::STEP;

pub struct TestClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Public session id after a successful hello.
    pub session_id: String,
    pub resume_id: String,
}

/// What ended a read.
#[derive(Debug)]
pub enum Closed {
    Frame(Option<CloseFrame>),
    Eof,
}

impl Closed {
    /// The close code, if a close frame with one arrived.
    pub fn code(&self) -> Option<u16> {
        match self {
            Closed::Frame(Some(f)) => Some(u16::from(f.code)),
            _ => None,
        }
    }
}

/// A client connected to `server` and authenticated as Talk user `u`.
pub async fn user(server: &TestServer, talk: &Talk, u: &User) -> TestClient {
    let (mut c, _) = TestClient::connect(server).await;
    c.hello_v1(talk, Some(u)).await;
    c
}

impl TestClient {
    /// Connects and consumes the `welcome` message, which is returned.
    pub async fn connect(server: &TestServer) -> (TestClient, Value) {
        Self::connect_url(&server.ws_url()).await
    }

    /// As [`TestClient::connect`], to a `ws://` URL.
    pub async fn connect_url(url: &str) -> (TestClient, Value) {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connect");
        let mut c = TestClient {
            ws,
            next_id: 1,
            session_id: String::new(),
            resume_id: String::new(),
        };
        let welcome = c.recv().await;
        assert_eq!(
            welcome["type"], "welcome",
            "first message must be welcome: {welcome}"
        );
        (c, welcome)
    }

    /// Connects as if through a reverse proxy that saw the client at
    /// `ip` (`X-Real-IP`; loopback is a trusted proxy by default).
    /// Returns the client and its `welcome`.
    pub async fn connect_as(server: &TestServer, ip: &str) -> (TestClient, Value) {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = server.ws_url().into_client_request().expect("request");
        request
            .headers_mut()
            .insert("X-Real-IP", ip.parse().expect("header value"));
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("websocket connect");
        let mut c = TestClient {
            ws,
            next_id: 1,
            session_id: String::new(),
            resume_id: String::new(),
        };
        let welcome = c.recv().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        (c, welcome)
    }

    /// Connects without expecting `welcome` (servers older than that
    /// message, like Debian's reference 0.4.1).
    pub async fn connect_no_welcome(server: &TestServer) -> TestClient {
        let (ws, _) = tokio_tungstenite::connect_async(server.ws_url())
            .await
            .expect("websocket connect");
        TestClient {
            ws,
            next_id: 1,
            session_id: String::new(),
            resume_id: String::new(),
        }
    }

    pub fn next_id(&mut self) -> String {
        self.next_id += 1;
        format!("req-{}", self.next_id)
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    pub async fn send_binary(&mut self, data: Vec<u8>) {
        self.ws
            .send(Message::Binary(data.into()))
            .await
            .expect("send");
    }

    pub async fn send(&mut self, v: &Value) {
        self.send_raw(&v.to_string()).await;
    }

    /// Sends `{"id", "type": kind, kind: payload}` and returns the id.
    pub async fn request(&mut self, kind: &str, payload: Value) -> String {
        let id = self.next_id();
        self.send(&json!({"id": id, "type": kind, kind: payload}))
            .await;
        id
    }

    /// The next JSON message, or `Err` if the connection closed. Also
    /// checks that our own protocol types decode it.
    pub async fn try_recv_within(&mut self, timeout: Duration) -> Result<Option<Value>, Closed> {
        loop {
            let next = match tokio::time::timeout(timeout, self.ws.next()).await {
                Err(_) => return Ok(None),
                Ok(n) => n,
            };
            match next {
                None | Some(Err(_)) => return Err(Closed::Eof),
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).expect("server sent invalid JSON");
                    if let Err(e) = serde_json::from_str::<proto::server::ServerMessage>(&t) {
                        panic!("server message does not match the protocol types: {e}: {t}");
                    }
                    return Ok(Some(v));
                }
                Some(Ok(Message::Close(frame))) => return Err(Closed::Frame(frame)),
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next message; panics on timeout or close.
    pub async fn recv(&mut self) -> Value {
        match self.try_recv_within(STEP).await {
            Ok(Some(v)) => v,
            Ok(None) => panic!("no message within {STEP:?}"),
            Err(c) => panic!("connection closed: {c:?}"),
        }
    }

    /// Asserts nothing arrives within `d`.
    pub async fn expect_silence(&mut self, d: Duration) {
        match self.try_recv_within(d).await {
            Ok(None) => {}
            Ok(Some(v)) => panic!("unexpected message: {v}"),
            Err(c) => panic!("unexpected close: {c:?}"),
        }
    }

    /// Waits for the connection to close and returns the close frame.
    pub async fn expect_closed(&mut self) -> Closed {
        self.expect_closed_within(STEP).await
    }

    /// As [`TestClient::expect_closed`], waiting up to `within`.
    pub async fn expect_closed_within(&mut self, within: Duration) -> Closed {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.try_recv_within(left).await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("connection not closed within {within:?}"),
                Err(c) => return c,
            }
        }
    }

    /// Reads until a message matches `pred`, skipping others.
    pub async fn recv_until(&mut self, mut pred: impl FnMut(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.try_recv_within(left).await {
                Ok(Some(v)) if pred(&v) => return v,
                Ok(Some(_)) => continue,
                Ok(None) => panic!("expected message did not arrive"),
                Err(c) => panic!("connection closed: {c:?}"),
            }
        }
    }

    /// Expects an error reply with `code` for request `id`.
    pub async fn expect_error(&mut self, id: Option<&str>, code: &str) -> Value {
        let v = self.recv().await;
        assert_eq!(v["type"], "error", "expected error {code}, got {v}");
        assert_eq!(v["error"]["code"], code, "{v}");
        match id {
            Some(id) => assert_eq!(v["id"], id, "{v}"),
            None => assert!(v.get("id").is_none(), "{v}"),
        }
        v
    }

    fn take_hello(&mut self, v: &Value) {
        assert_eq!(v["type"], "hello", "hello failed: {v}");
        self.session_id = v["hello"]["sessionid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.resume_id = v["hello"]["resumeid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
    }

    /// Sends a hello and returns the reply without checking it.
    pub async fn hello_raw(&mut self, hello: Value) -> (String, Value) {
        let id = self.request("hello", hello).await;
        let reply = self.recv().await;
        (id, reply)
    }

    /// Hello v1 as a Talk user (or a guest with `None`).
    pub async fn hello_v1(&mut self, talk: &Talk, user: Option<&User>) -> Value {
        let params = match user {
            Some(u) => json!({"userid": u.id, "ticket": u.ticket}),
            None => json!({"userid": "", "ticket": "guest"}),
        };
        let (_, v) = self
            .hello_raw(
                json!({"version": "1.0", "auth": {"url": talk.signaling_url(), "params": params}}),
            )
            .await;
        self.take_hello(&v);
        v
    }

    /// Hello v2 with a token Talk minted.
    pub async fn hello_v2(&mut self, talk: &Talk, user: &str) -> Value {
        let (_, v) = self
            .hello_raw(json!({"version": "2.0", "auth": {"type": "client", "url": talk.signaling_url(), "params": {"token": talk.v2_token(user)}}}))
            .await;
        self.take_hello(&v);
        v
    }

    /// Hello as an internal client with the test server's secret.
    pub async fn hello_internal(&mut self, talk: &Talk, features: &[&str]) -> Value {
        let random = format!("{:064x}", rand::random::<u128>());
        let token = proto::checksum::internal_token(INTERNAL_SECRET.as_bytes(), &random);
        let (_, v) = self
            .hello_raw(json!({"version": "1.0", "features": features, "auth": {"type": "internal", "params": {"random": random, "token": token, "backend": talk.url()}}}))
            .await;
        self.take_hello(&v);
        v
    }

    /// Resumes `resume_id` on this connection.
    pub async fn resume(&mut self, resume_id: &str) -> Value {
        let (_, v) = self
            .hello_raw(json!({"version": "1.0", "resumeid": resume_id}))
            .await;
        v
    }

    /// Joins `room` and returns the `room` reply (other messages that
    /// arrive before it are not expected).
    pub async fn join(&mut self, room: &str, room_session: &str) -> Value {
        let id = self
            .request("room", json!({"roomid": room, "sessionid": room_session}))
            .await;
        let v = self.recv().await;
        assert_eq!(v["id"], id, "{v}");
        v
    }

    /// Joins and consumes the own `join` event; returns the room reply.
    pub async fn join_ok(&mut self, room: &str, room_session: &str) -> Value {
        let reply = self.join(room, room_session).await;
        assert_eq!(reply["type"], "room", "join failed: {reply}");
        let me = self.session_id.clone();
        self.recv_until(|v| {
            v["type"] == "event"
                && v["event"]["type"] == "join"
                && v["event"]["join"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|e| e["sessionid"] == me.as_str()))
        })
        .await;
        reply
    }

    /// Joins and waits until the join events named all of `expect`: in a
    /// cluster the own join and the other nodes' member lists arrive by
    /// different paths, in either order.
    pub async fn join_seeing(&mut self, room: &str, talk_session: &str, expect: &[&str]) {
        let reply = self.join(room, talk_session).await;
        assert_eq!(reply["type"], "room", "{reply}");
        let mut seen: Vec<String> = Vec::new();
        while !expect.iter().all(|e| seen.iter().any(|s| s == e)) {
            let v = self.recv_until(|v| v["event"]["type"] == "join").await;
            seen.extend(
                v["event"]["join"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e["sessionid"].as_str().map(str::to_owned)),
            );
        }
    }

    pub async fn message(&mut self, recipient: Value, data: Value) {
        self.request("message", json!({"recipient": recipient, "data": data}))
            .await;
    }

    /// Closes the connection and waits for the server to answer the close
    /// frame. Our server answers only after its hub has let go of the
    /// connection, so a session is waiting for its resume once this
    /// returns.
    pub async fn close(mut self) {
        if self.ws.close(None).await.is_err() {
            return; // already closed by the server
        }
        let answered = tokio::time::timeout(STEP, async {
            while let Some(Ok(m)) = self.ws.next().await {
                if m.is_close() {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(
            matches!(answered, Ok(true)),
            "the server did not answer the close frame"
        );
    }
}
