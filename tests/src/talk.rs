//! A Nextcloud Talk backend emulator: what Talk's `SignalingController`
//! answers on the wire, on a loopback port.
//!
//! - `POST .../api/v{1,3}/signaling/backend` verifies the
//!   `Spreed-Signaling-Checksum` like Talk does and answers `auth`, `room`
//!   (join and `action:"leave"`), `ping` and `session` requests inside OCS
//!   envelopes, with Talk's error objects (`invalid_request`,
//!   `no_such_user`, `invalid_ticket`, `no_such_room`).
//! - `GET /ocs/v2.php/cloud/capabilities` publishes the `spreed` features
//!   and the Ed25519 `hello-v2-token-key`; [`Talk::v2_token`] mints the
//!   JWTs Talk would give clients.
//! - [`Talk::notify`] posts backend notifications to a signaling server
//!   with Talk's headers.
//!
//! Test knobs ([`Behaviour`]) make it slow or make it answer garbage.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::Signer;
use parking_lot::Mutex;
use proto::checksum;
use serde_json::{json, Value};

/// A user Talk knows; clients authenticate with `ticket`.
#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub display_name: String,
    pub ticket: String,
}

/// A conversation. `None` for `invited` means everybody may join.
#[derive(Clone, Debug)]
pub struct Room {
    pub properties: Value,
    pub permissions: Option<Vec<String>>,
    pub invited: Option<HashSet<String>>,
    /// `session.userid` in the join reply for anonymous joiners.
    pub guest_user_id: Option<String>,
}

impl Room {
    pub fn open(name: &str) -> Room {
        Room {
            properties: json!({"name": name, "type": 3, "lobby-state": 0, "read-only": 0}),
            permissions: None,
            invited: None,
            guest_user_id: None,
        }
    }

    pub fn with_permissions(mut self, p: &[&str]) -> Room {
        self.permissions = Some(p.iter().map(|s| s.to_string()).collect());
        self
    }

    pub fn invite_only(mut self, users: &[&str]) -> Room {
        self.invited = Some(users.iter().map(|s| s.to_string()).collect());
        self
    }
}

/// Misbehaviour for failure tests.
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// Sleep this long before answering backend requests.
    pub delay: Option<Duration>,
    /// Answer backend requests with an HTML page.
    pub garbage: bool,
    /// Do not advertise `signaling-v3`.
    pub no_v3: bool,
    /// Publish no hello-v2 key.
    pub no_key: bool,
    /// Answer `auth` and `room` with a reply of the wrong type.
    pub wrong_type: bool,
    /// Do not advertise `federation-v2`.
    pub no_federation: bool,
    /// Sleep this long before answering capability requests.
    pub capabilities_delay: Option<Duration>,
    /// Answer backend requests with a body of this many bytes (valid JSON
    /// padding, as a misbehaving proxy in front of Nextcloud might).
    pub huge_reply: Option<usize>,
    /// Answer capability requests with 503 and an HTML page, as Nextcloud
    /// in maintenance mode (or a gateway in front of it) does.
    pub capabilities_unavailable: bool,
}

/// One backend request the emulator received, checksum verified or not.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub body: Value,
    pub checksum_ok: bool,
}

struct State_ {
    secret: String,
    users: Mutex<HashMap<String, User>>,
    rooms: Mutex<HashMap<String, Room>>,
    requests: Mutex<Vec<Recorded>>,
    behaviour: Mutex<Behaviour>,
    key: ed25519_dalek::SigningKey,
    capability_fetches: Mutex<usize>,
    /// Requests being answered now, and the most there ever were.
    in_flight: Mutex<(usize, usize)>,
}

/// Counts a request in flight while alive.
struct InFlight<'a>(&'a State_);

impl<'a> InFlight<'a> {
    fn new(state: &'a State_) -> Self {
        let mut f = state.in_flight.lock();
        f.0 += 1;
        f.1 = f.1.max(f.0);
        InFlight(state)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.lock().0 -= 1;
    }
}

pub struct Talk {
    pub addr: SocketAddr,
    state: Arc<State_>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Talk {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn ocs(data: Value) -> Response {
    let body = json!({"ocs": {"meta": {"status": "ok", "statuscode": 200, "message": "OK"}, "data": data}});
    (
        StatusCode::OK,
        [("content-type", "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn talk_error(code: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"code": code, "message": message}})
}

impl Talk {
    /// Starts the emulator on 127.0.0.1 with the shared `secret`.
    pub async fn start(secret: &str) -> Talk {
        let mut seed = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut seed);
        let state = Arc::new(State_ {
            secret: secret.to_owned(),
            users: Mutex::default(),
            rooms: Mutex::default(),
            requests: Mutex::default(),
            behaviour: Mutex::default(),
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
            capability_fetches: Mutex::new(0),
            in_flight: Mutex::new((0, 0)),
        });
        let app = Router::new()
            .route(
                "/ocs/v2.php/apps/spreed/api/v1/signaling/backend",
                post(backend),
            )
            .route(
                "/ocs/v2.php/apps/spreed/api/v3/signaling/backend",
                post(backend),
            )
            .route("/ocs/v2.php/cloud/capabilities", get(capabilities))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind talk emulator");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Talk { addr, state, task }
    }

    /// The Nextcloud base URL (`http://127.0.0.1:port/`).
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// What Talk clients send as `auth.url`.
    pub fn signaling_url(&self) -> String {
        format!(
            "http://{}/ocs/v2.php/apps/spreed/api/v3/signaling/backend",
            self.addr
        )
    }

    pub fn add_user(&self, id: &str, display_name: &str) -> User {
        let user = User {
            id: id.to_owned(),
            display_name: display_name.to_owned(),
            ticket: format!("ticket-{id}-{}", rand::random::<u32>()),
        };
        self.state.users.lock().insert(id.to_owned(), user.clone());
        user
    }

    /// A Talk with users alice and bob and the open room `room1`, the
    /// world most tests start from.
    pub async fn start_with_room1(secret: &str) -> (Talk, User, User) {
        let talk = Talk::start(secret).await;
        let alice = talk.add_user("alice", "Alice");
        let bob = talk.add_user("bob", "Bob");
        talk.add_room("room1", Room::open("Room one"));
        (talk, alice, bob)
    }

    pub fn add_room(&self, token: &str, room: Room) {
        self.state.rooms.lock().insert(token.to_owned(), room);
    }

    pub fn set_behaviour(&self, b: Behaviour) {
        *self.state.behaviour.lock() = b;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().clone()
    }

    /// Backend requests of one `type` (`auth`, `room`, `ping`, `session`).
    pub fn requests_of(&self, kind: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.body["type"] == kind)
            .map(|r| r.body)
            .collect()
    }

    /// The most requests (backend and capabilities) answered at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.in_flight.lock().1
    }

    pub fn capability_fetches(&self) -> usize {
        *self.state.capability_fetches.lock()
    }

    /// The public key as Talk publishes it (raw, standard base64).
    pub fn public_key(&self) -> String {
        STANDARD.encode(self.state.key.verifying_key().to_bytes())
    }

    /// A hello v2 token as Talk mints it, with explicit claims.
    pub fn sign_claims(&self, claims: &Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(json!({"typ": "JWT", "alg": "EdDSA"}).to_string());
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let msg = format!("{header}.{payload}");
        let sig = self.state.key.sign(msg.as_bytes());
        format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    /// A valid hello v2 token for `user` (empty = guest).
    pub fn v2_token(&self, user: &str) -> String {
        let now = unix_now();
        let mut claims = json!({"iss": self.url(), "iat": now, "exp": now + 300});
        if !user.is_empty() {
            claims["sub"] = json!(user);
            claims["userdata"] = json!({"displayname": format!("Display {user}")});
        }
        self.sign_claims(&claims)
    }

    /// Posts a backend notification to `server` (a signaling base URL) the
    /// way Talk does; returns status and body.
    pub async fn notify(&self, server: &str, room: &str, body: &Value) -> (u16, String) {
        let body = body.to_string();
        let random = checksum::new_random();
        let sum =
            checksum::backend_checksum(self.state.secret.as_bytes(), &random, body.as_bytes());
        let resp = reqwest::Client::new()
            .post(format!("{server}api/v1/room/{room}"))
            .header("Content-Type", "application/json")
            .header(checksum::HEADER_RANDOM, random)
            .header(checksum::HEADER_CHECKSUM, sum)
            .header(checksum::HEADER_BACKEND, self.url())
            .body(body)
            .send()
            .await
            .expect("notification request");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// Tells `server` that the Talk sessions `ta` (alice) and `tb` (bob)
    /// of `room` joined its call with audio and video, as Nextcloud does
    /// when both click "join call"; panics unless accepted.
    pub async fn alice_and_bob_join_call(&self, server: &str, room: &str) {
        let entry = |s: &str, u: &str| serde_json::json!({"sessionId": s, "userId": u, "inCall": 7, "participantType": 3});
        let users = [entry("ta", "alice"), entry("tb", "bob")];
        let body = serde_json::json!({"type": "incall", "incall": {"incall": 7, "changed": users, "users": users}});
        let (status, text) = self.notify(server, room, &body).await;
        assert_eq!(status, 200, "{text}");
    }
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

async fn capabilities(State(state): State<Arc<State_>>) -> Response {
    let _counted = InFlight::new(&state);
    *state.capability_fetches.lock() += 1;
    let b = state.behaviour.lock().clone();
    if let Some(d) = b.capabilities_delay {
        tokio::time::sleep(d).await;
    }
    if b.capabilities_unavailable {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [("Content-Type", "text/html")],
            "<html><body>Maintenance mode</body></html>",
        )
            .into_response();
    }
    let mut features = vec!["audio", "video", "chat-v2"];
    if !b.no_federation {
        features.push("federation-v2");
    }
    if !b.no_v3 {
        features.push("signaling-v3");
    }
    let mut signaling = json!({"session-ping-limit": 200});
    if !b.no_key {
        signaling["hello-v2-token-key"] =
            json!(STANDARD.encode(state.key.verifying_key().to_bytes()));
    }
    ocs(json!({
        "version": {"major": 30, "minor": 0, "micro": 0, "string": "30.0.0"},
        "capabilities": {"spreed": {"features": features, "config": {"signaling": signaling}}},
    }))
}

async fn backend(
    State(state): State<Arc<State_>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let random = headers
        .get(checksum::HEADER_RANDOM)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let sum = headers
        .get(checksum::HEADER_CHECKSUM)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let checksum_ok = random.len() >= 32
        && checksum::verify_backend_checksum(state.secret.as_bytes(), random, &body, sum);
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.requests.lock().push(Recorded {
        path: uri.path().to_owned(),
        body: json.clone(),
        checksum_ok,
    });
    let _counted = InFlight::new(&state);
    let behaviour = state.behaviour.lock().clone();
    if let Some(d) = behaviour.delay {
        tokio::time::sleep(d).await;
    }
    if let Some(n) = behaviour.huge_reply {
        let padding = "x".repeat(n);
        return ocs(json!({"type": "auth", "auth": {"version": "1.0", "padding": padding}}));
    }
    if behaviour.garbage {
        return (
            StatusCode::OK,
            [("content-type", "text/html")],
            "<html>oops</html>",
        )
            .into_response();
    }
    if !checksum_ok {
        return ocs(talk_error(
            "invalid_request",
            "The request could not be authenticated.",
        ));
    }
    if behaviour.wrong_type {
        return ocs(json!({"type": "ping", "ping": {"version": "1.0"}}));
    }
    match json["type"].as_str() {
        Some("auth") => ocs(auth(&state, &json["auth"])),
        Some("room") => ocs(room(&state, &json["room"])),
        Some("ping") => ocs(
            json!({"type": "room", "room": {"version": "1.0", "roomid": json["ping"]["roomid"]}}),
        ),
        Some("session") => ocs(
            json!({"type": "session", "session": {"version": "1.0", "roomid": json["session"]["roomid"]}}),
        ),
        _ => ocs(talk_error(
            "unknown_type",
            "The given type is not supported.",
        )),
    }
}

fn auth(state: &State_, auth: &Value) -> Value {
    let params = &auth["params"];
    let user_id = params["userid"].as_str().unwrap_or("");
    if user_id.is_empty() {
        return json!({"type": "auth", "auth": {"version": "1.0"}});
    }
    let users = state.users.lock();
    let Some(user) = users.get(user_id) else {
        return talk_error("no_such_user", "The given user does not exist.");
    };
    if params["ticket"].as_str() != Some(user.ticket.as_str()) {
        return talk_error(
            "invalid_ticket",
            "The given ticket is not valid for this user.",
        );
    }
    json!({"type": "auth", "auth": {"version": "1.0", "userid": user.id, "user": {"displayname": user.display_name}}})
}

fn room(state: &State_, req: &Value) -> Value {
    let token = req["roomid"].as_str().unwrap_or("");
    let user = req["userid"].as_str().unwrap_or("");
    let rooms = state.rooms.lock();
    let Some(room) = rooms.get(token) else {
        return talk_error("no_such_room", "The user is not invited to this room.");
    };
    if req["action"] == "leave" {
        return json!({"type": "room", "room": {"version": "1.0", "roomid": token}});
    }
    if let Some(invited) = &room.invited {
        if !invited.contains(user) {
            return talk_error("no_such_room", "The user is not invited to this room.");
        }
    }
    let mut reply = json!({"type": "room", "room": {"version": "1.0", "roomid": token, "properties": room.properties}});
    if let Some(p) = &room.permissions {
        reply["room"]["permissions"] = json!(p);
    }
    if let (true, Some(guest)) = (user.is_empty(), &room.guest_user_id) {
        reply["room"]["session"] = json!({"userid": guest});
    }
    reply
}
