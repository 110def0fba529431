//! Federation (facts 6): a local session joins a room hosted by another
//! signaling server. The local server dials the remote `/spreed` as a
//! federation client, says hello with the token from the remote Nextcloud,
//! joins the remote room, and relays everything between the client and the
//! remote with the rewrites of [`rewrite`]. Interrupted connections are
//! resumed with backoff.

pub mod dial;
pub mod rewrite;

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::metrics::METRICS;
use futures_util::StreamExt;
use parking_lot::Mutex;
use proto::error::{ErrorCode, WireError};
use proto::server::{ServerBody, ServerMessage};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::hub::session::Session;
use dial::RemoteSocket;
use rewrite::Ids;
use transport::ws::writer::Writer;
use transport::ws::{Outbox, CLOSE_NORMAL, PING_PERIOD, PONG_WAIT, WRITE_WAIT};

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(8);
const QUEUE: usize = 256;

/// Where a federated session is connected to.
#[derive(Debug, Clone)]
pub struct Target {
    /// Remote signaling base URL, ending in `/`.
    pub signaling: String,
    /// Remote Nextcloud URL.
    pub url: String,
    pub token: String,
    pub local_room: String,
    pub remote_room: String,
    /// Talk session id without the `federated|` prefix.
    pub room_session: String,
}

#[derive(Default)]
struct State {
    tx: Option<Outbox>,
    remote_id: Option<String>,
    resume_id: Option<String>,
    /// The client's `room` request id, until the remote answered it.
    join_id: Option<String>,
    /// Whether the room join must (again) be sent after hello.
    join_pending: bool,
    hello_done: bool,
    closing_on_leave: bool,
    queue: Vec<String>,
}

pub struct Federation {
    session: Weak<Session>,
    target: Mutex<Target>,
    features: Vec<String>,
    local_cloud: String,
    timeout: Duration,
    skip_verify: bool,
    state: Mutex<State>,
    cancel: CancellationToken,
}

/// How one connection ended.
enum Ended {
    /// On purpose (bye, leave, fatal hello error): do not reconnect.
    Closed,
    Lost,
}

pub struct FederationSettings {
    pub timeout: Duration,
    pub skip_verify: bool,
}

impl Federation {
    /// Starts the federation task on an already dialed socket.
    pub fn start(
        session: &Arc<Session>,
        target: Target,
        join_id: Option<String>,
        socket: RemoteSocket,
        settings: &FederationSettings,
        tasks: &tokio_util::task::TaskTracker,
        shutdown: &CancellationToken,
    ) -> Arc<Federation> {
        let fed = Arc::new(Federation {
            session: Arc::downgrade(session),
            features: session.features.clone(),
            local_cloud: rewrite::cloud_suffix(&session.backend_url),
            target: Mutex::new(target),
            timeout: settings.timeout,
            skip_verify: settings.skip_verify,
            state: Mutex::new(State {
                join_id,
                join_pending: true,
                ..Default::default()
            }),
            cancel: shutdown.child_token(),
        });
        tasks.spawn(fed.clone().run(socket));
        fed
    }

    /// The local room id and Talk session id to ping Nextcloud with.
    pub fn ping_target(&self) -> (String, String) {
        let t = self.target.lock();
        (t.local_room.clone(), t.room_session.clone())
    }

    pub fn same_remote(&self, url: &str, signaling: &str) -> bool {
        let t = self.target.lock();
        t.url == url && t.signaling == signaling
    }

    /// Joins another room on the same remote over this connection.
    pub fn rejoin(&self, target: Target, join_id: Option<String>) {
        *self.target.lock() = target;
        let mut s = self.state.lock();
        s.join_id = join_id;
        s.closing_on_leave = false;
        if s.hello_done {
            drop(s);
            self.send_join();
        } else {
            s.join_pending = true;
        }
    }

    fn ids(&self) -> Option<Ids> {
        let session = self.session.upgrade()?;
        let t = self.target.lock();
        let remote_id = self.state.lock().remote_id.clone()?;
        Some(Ids {
            local_id: session.public_id.0.clone(),
            remote_id,
            local_room: t.local_room.clone(),
            remote_room: t.remote_room.clone(),
            local_cloud: self.local_cloud.clone(),
            remote_cloud: rewrite::cloud_suffix(&t.url),
        })
    }

    fn send_raw(&self, text: String) -> bool {
        let tx = self.state.lock().tx.clone();
        tx.is_some_and(|tx| tx.send_text(text.into()))
    }

    fn send_join(&self) {
        let (room, room_session) = {
            let t = self.target.lock();
            (t.remote_room.clone(), t.room_session.clone())
        };
        let id = self.state.lock().join_id.clone();
        let mut msg = json!({"type": "room", "room": {"roomid": room, "sessionid": room_session}});
        if let Some(id) = id {
            msg["id"] = Value::String(id);
        }
        self.send_raw(msg.to_string());
    }

    /// Forwards a client message to the remote (facts 6.5).
    pub fn forward(&self, mut msg: Value) {
        if let Some(ids) = self.ids() {
            ids.outgoing(&mut msg);
        }
        let text = msg.to_string();
        let mut s = self.state.lock();
        if s.hello_done {
            if let Some(tx) = &s.tx {
                if tx.send_text(text.into()) {
                    return;
                }
            }
        }
        if s.resume_id.is_some() && s.queue.len() < QUEUE {
            s.queue.push(msg.to_string());
        }
    }

    /// Leaves the remote room; the connection closes after the answer.
    pub fn leave(&self, msg: Option<Value>) {
        self.state.lock().closing_on_leave = true;
        let msg = msg.unwrap_or_else(|| json!({"type": "room", "room": {"roomid": ""}}));
        if !self.send_raw(msg.to_string()) {
            self.close();
        }
    }

    /// Ends the federation: `bye` to the remote, no reconnect.
    pub fn close(&self) {
        self.send_raw(json!({"type": "bye", "bye": {}}).to_string());
        self.cancel.cancel();
    }

    fn to_client(&self, msg: &Value) {
        if let Some(s) = self.session.upgrade() {
            s.send_raw(msg.to_string());
        }
    }

    fn client_error(&self, error: WireError) {
        let id = self.state.lock().join_id.take();
        if let Some(s) = self.session.upgrade() {
            s.send(&ServerMessage::error(id, error));
            s.detach_federation(self);
        }
    }

    async fn run(self: Arc<Self>, first: RemoteSocket) {
        let mut socket = Some(first);
        let mut backoff = BACKOFF_START;
        loop {
            let ws = match socket.take() {
                Some(ws) => ws,
                None => {
                    tokio::select! {
                        _ = self.cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    let signaling = self.target.lock().signaling.clone();
                    match dial::dial(&signaling, self.timeout, self.skip_verify).await {
                        Ok(ws) => ws,
                        Err(e) => {
                            tracing::debug!(error = %e, "federation reconnect failed");
                            continue;
                        }
                    }
                }
            };
            let reconnect = self.state.lock().remote_id.is_some();
            match self.serve(ws, reconnect, &mut backoff).await {
                Ended::Closed => break,
                Ended::Lost if self.cancel.is_cancelled() => break,
                Ended::Lost => {
                    let was_up = {
                        let mut s = self.state.lock();
                        s.tx = None;
                        std::mem::replace(&mut s.hello_done, false)
                    };
                    if was_up {
                        self.to_client(&json!({"type": "event", "event": {"target": "room", "type": "federation_interrupted"}}));
                    }
                }
            }
        }
        self.state.lock().tx = None;
        self.cancel.cancel();
    }

    fn hello_message(&self, id: &str) -> Value {
        let resume = self.state.lock().resume_id.clone();
        match resume {
            Some(r) => {
                json!({"id": id, "type": "hello", "hello": {"version": "2.0", "features": self.features, "resumeid": r}})
            }
            None => {
                let t = self.target.lock();
                json!({"id": id, "type": "hello", "hello": {"version": "2.0", "features": self.features,
                    "auth": {"type": "federation", "url": t.url, "params": {"token": t.token}}}})
            }
        }
    }

    async fn serve(&self, ws: RemoteSocket, reconnect: bool, backoff: &mut Duration) -> Ended {
        let (sink, mut stream) = ws.split();
        // A remote that does not read is disconnected (and resumed), as
        // any other peer: the shared writer and bounded outbox.
        let (tx, rx) = Outbox::with_capacity(
            CancellationToken::new(),
            METRICS.federation_outbox_overflow_total.clone(),
            QUEUE,
        );
        self.state.lock().tx = Some(tx.clone());
        let writer = Writer {
            ping_period: Some(PING_PERIOD),
            write_wait: WRITE_WAIT,
            counters: None,
        }
        .run(sink, rx);
        let mut writer = std::pin::pin!(writer);
        let mut closing = false;
        let mut got_welcome = false;
        let mut hello_id = String::new();
        let mut resuming = false;
        loop {
            let next = tokio::select! {
                _ = &mut writer => {
                    return if self.cancel.is_cancelled() {
                        Ended::Closed
                    } else {
                        Ended::Lost
                    };
                }
                // Closing: the queued bye goes out first, then the close
                // frame; reading goes on until the writer is done.
                _ = self.cancel.cancelled(), if !closing => {
                    closing = true;
                    tx.close(CLOSE_NORMAL, "");
                    continue;
                }
                n = tokio::time::timeout(PONG_WAIT, stream.next()) => n,
            };
            let text = match next {
                Ok(Some(Ok(Message::Text(t)))) => t.to_string(),
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => {
                    return if self.cancel.is_cancelled() {
                        Ended::Closed
                    } else {
                        Ended::Lost
                    };
                }
                Ok(Some(Ok(_))) => continue,
            };
            let Ok(mut msg) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            let kind = msg
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            if !got_welcome {
                got_welcome = true;
                let ok = kind == "welcome"
                    && msg
                        .pointer("/welcome/features")
                        .and_then(Value::as_array)
                        .is_some_and(|f| f.iter().any(|x| x == "federation"));
                if !ok {
                    self.client_error(WireError::new(ErrorCode::FederationUnsupported));
                    self.close();
                    return Ended::Closed;
                }
                hello_id = format!("{:08x}", rand::random::<u32>());
                resuming = self.state.lock().resume_id.is_some();
                tx.send_text(self.hello_message(&hello_id).to_string().into());
                continue;
            }
            let id = msg
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            if !hello_id.is_empty() && id == hello_id {
                match kind.as_str() {
                    "hello" => {
                        hello_id.clear();
                        *backoff = BACKOFF_START;
                        let resumed = resuming;
                        let (queued, join) = {
                            let mut s = self.state.lock();
                            s.remote_id = msg
                                .pointer("/hello/sessionid")
                                .and_then(Value::as_str)
                                .map(str::to_owned);
                            s.resume_id = msg
                                .pointer("/hello/resumeid")
                                .and_then(Value::as_str)
                                .map(str::to_owned);
                            s.hello_done = true;
                            let join = !resumed || std::mem::take(&mut s.join_pending);
                            s.join_pending = false;
                            (std::mem::take(&mut s.queue), join)
                        };
                        if reconnect {
                            if !resumed {
                                if let Some(session) = self.session.upgrade() {
                                    session.reset_seen();
                                }
                            }
                            self.to_client(&json!({"type": "event", "event": {"target": "room", "type": "federation_resumed", "resumed": resumed}}));
                        }
                        if resumed {
                            for q in queued {
                                tx.send_text(q.into());
                            }
                        }
                        if join {
                            self.send_join();
                        }
                    }
                    "error"
                        if resuming
                            && msg.pointer("/error/code").and_then(Value::as_str)
                                == Some("no_such_session") =>
                    {
                        {
                            let mut s = self.state.lock();
                            s.resume_id = None;
                            s.queue.clear();
                        }
                        resuming = false;
                        hello_id = format!("{:08x}", rand::random::<u32>());
                        tx.send_text(self.hello_message(&hello_id).to_string().into());
                    }
                    "error" => {
                        let error: WireError = serde_json::from_value(msg["error"].clone())
                            .unwrap_or_else(|_| WireError::new(ErrorCode::FederationError));
                        self.client_error(error);
                        self.close();
                        return Ended::Closed;
                    }
                    _ => {
                        hello_id = format!("{:08x}", rand::random::<u32>());
                        tx.send_text(self.hello_message(&hello_id).to_string().into());
                    }
                }
                continue;
            }
            if kind == "welcome" {
                continue;
            }
            let Some(ids) = self.ids() else { continue };
            ids.incoming(&mut msg);
            let closing = self.state.lock().closing_on_leave;
            let leave_done = closing
                && ((kind == "room"
                    && msg.pointer("/room/roomid").and_then(Value::as_str) == Some(""))
                    || (kind == "event"
                        && msg.pointer("/event/type").and_then(Value::as_str) == Some("leave")
                        && msg
                            .pointer("/event/leave")
                            .and_then(Value::as_array)
                            .is_some_and(|l| {
                                l.iter().any(|x| x.as_str() == Some(ids.local_id.as_str()))
                            })));
            if kind == "room" {
                self.state.lock().join_id = None;
            }
            self.to_client(&msg);
            if leave_done {
                if let Some(s) = self.session.upgrade() {
                    s.detach_federation(self);
                }
                self.close();
                return Ended::Closed;
            }
        }
    }
}

/// The message a failed dial sends to the client.
pub fn dial_error_message(id: Option<String>, e: &dial::DialError) -> ServerMessage {
    ServerMessage::reply(id, ServerBody::Error { error: e.to_wire() })
}
