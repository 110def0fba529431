//! One WebSocket to the Janus API (cluster facts 5.1): requests carry a
//! per-connection transaction counter and wait for their reply; frames
//! without a transaction are events of a handle (`sender`) and go to that
//! handle's queue. When the socket closes, every pending request fails
//! with [`JanusError::Disconnected`], every handle gets
//! [`HandleEvent::Disconnected`], and [`Gateway::closed`] fires.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use transport::ws::writer::Writer;
use transport::ws::{Outbox, CLOSE_NORMAL};

use super::error::{codes, JanusError};

/// WebSocket ping period towards Janus.
const PING_PERIOD: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What Janus tells a handle without being asked.
#[derive(Debug, Clone, PartialEq)]
pub enum HandleEvent {
    /// A plugin event (`plugindata.data`) with an optional JSEP.
    Plugin {
        data: Value,
        jsep: Option<Value>,
    },
    WebrtcUp,
    Media {
        kind: String,
        receiving: bool,
    },
    SlowLink {
        uplink: bool,
        lost: i64,
    },
    Hangup {
        reason: String,
    },
    /// `trickle` from Janus: a candidate, or `None` when gathering
    /// completed.
    Trickle(Option<Value>),
    Detached,
    /// The connection to Janus is gone; the handle is dead.
    Disconnected,
}

/// How a request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    /// The first reply (`success`, `ack`, `server_info`).
    First,
    /// `ack` is only a receipt; the answer is the `event` after it.
    Event,
}

struct Pending {
    reply: Reply,
    tx: oneshot::Sender<Result<Value, JanusError>>,
}

/// Events of one handle waiting for its task.
const HANDLE_EVENTS: usize = 1024;

struct Shared {
    out: Outbox,
    next_transaction: AtomicU64,
    pending: Mutex<HashMap<String, Pending>>,
    handles: Mutex<HashMap<u64, mpsc::Sender<HandleEvent>>>,
    closed: CancellationToken,
    timeout: Duration,
    /// The reader and the writer.
    tasks: TaskTracker,
}

/// A connection to Janus; cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
}

impl Gateway {
    /// Connects to `url` with the `janus-protocol` subprotocol. Each
    /// request waits at most `timeout` for its reply.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Gateway, JanusError> {
        let mut request = url
            .into_client_request()
            .map_err(|e| JanusError::Connect(e.to_string()))?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("janus-protocol"),
        );
        // `true`: TCP_NODELAY; every request is a small frame awaiting a reply.
        let connect = tokio_tungstenite::connect_async_with_config(request, None, true);
        let (ws, _) = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| JanusError::Connect("timed out".into()))?
            .map_err(|e| JanusError::Connect(e.to_string()))?;
        let (sink, mut stream) = ws.split();
        let closed = CancellationToken::new();
        let (out, out_rx) = crate::outbox::peer_outbox("janus", closed.clone());
        let shared = Arc::new(Shared {
            out,
            next_transaction: AtomicU64::new(1),
            pending: Mutex::default(),
            handles: Mutex::default(),
            closed,
            timeout,
            tasks: TaskTracker::new(),
        });
        // The shared writer: pings, a write deadline, and the close frame;
        // when it ends it cancels `closed`, which stops the reader.
        let writer = Writer {
            ping_period: Some(PING_PERIOD),
            ..Writer::default()
        };
        shared.tasks.spawn(writer.run(sink, out_rx));
        let reader = shared.clone();
        shared.tasks.spawn(async move {
            loop {
                let next = tokio::select! {
                    _ = reader.closed.cancelled() => break,
                    m = stream.next() => m,
                };
                match next {
                    Some(Ok(Message::Text(text))) => reader.dispatch(text.as_str()),
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "reading from janus failed");
                        break;
                    }
                }
            }
            reader.shut_down();
        });
        Ok(Gateway { shared })
    }

    /// Fires when the connection is gone.
    pub fn closed(&self) -> CancellationToken {
        self.shared.closed.clone()
    }

    /// Waits until the reader and the writer have ended (after
    /// [`Gateway::close`] or a lost connection).
    pub async fn stopped(&self) {
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
    }

    pub fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled()
    }

    /// Closes the connection.
    pub fn close(&self) {
        // Closed at once (requests fail with `Disconnected`); the writer
        // still sends the close frame.
        self.shared.out.abort(CLOSE_NORMAL, "");
    }

    async fn call(&self, mut req: Map<String, Value>, reply: Reply) -> Result<Value, JanusError> {
        let s = &self.shared;
        if s.closed.is_cancelled() {
            return Err(JanusError::Disconnected);
        }
        let transaction = s
            .next_transaction
            .fetch_add(1, Ordering::Relaxed)
            .to_string();
        req.insert("transaction".into(), Value::String(transaction.clone()));
        let (tx, rx) = oneshot::channel();
        s.pending
            .lock()
            .insert(transaction.clone(), Pending { reply, tx });
        let text = Value::Object(req).to_string();
        if !s.out.send_text(text.into()) {
            s.pending.lock().remove(&transaction);
            return Err(JanusError::Disconnected);
        }
        match tokio::time::timeout(s.timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(JanusError::Disconnected),
            Err(_) => {
                s.pending.lock().remove(&transaction);
                Err(JanusError::Timeout)
            }
        }
    }

    /// `info`: what the server is and has.
    pub async fn info(&self) -> Result<Value, JanusError> {
        let reply = self.call(verb("info"), Reply::First).await?;
        expect_kind(&reply, "server_info")?;
        Ok(reply)
    }

    /// `create`: a new Janus session.
    pub async fn create_session(&self) -> Result<JanusSession, JanusError> {
        let reply = self.call(verb("create"), Reply::First).await?;
        Ok(JanusSession {
            gateway: self.clone(),
            id: reply_id(&reply)?,
        })
    }
}

fn verb(name: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("janus".into(), Value::String(name.into()));
    m
}

fn expect_kind(reply: &Value, kind: &str) -> Result<(), JanusError> {
    if reply["janus"] == kind {
        Ok(())
    } else {
        Err(JanusError::Protocol(format!(
            "expected {kind}, got {reply}"
        )))
    }
}

/// `data.id` of a `success` reply.
fn reply_id(reply: &Value) -> Result<u64, JanusError> {
    expect_kind(reply, "success")?;
    reply["data"]["id"]
        .as_u64()
        .ok_or_else(|| JanusError::Protocol(format!("no id in {reply}")))
}

/// `plugindata.data`, failing on a plugin error.
fn plugin_data(reply: &Value) -> Result<Value, JanusError> {
    let data = &reply["plugindata"]["data"];
    let code = data.get("error_code").and_then(Value::as_i64);
    let reason = data.get("error").and_then(Value::as_str);
    if code.is_some() || reason.is_some() {
        return Err(JanusError::Plugin {
            code: code.filter(|c| *c != 0).unwrap_or(500),
            reason: reason.unwrap_or("unknown error").to_owned(),
        });
    }
    if data.is_null() {
        return Err(JanusError::Protocol(format!("no plugindata in {reply}")));
    }
    Ok(data.clone())
}

impl Shared {
    fn dispatch(&self, text: &str) {
        let frame: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "undecodable frame from janus");
                return;
            }
        };
        let kind = frame["janus"].as_str().unwrap_or_default().to_owned();
        if let Some(transaction) = frame["transaction"].as_str() {
            let mut pending = self.pending.lock();
            let Some(p) = pending.get(transaction) else {
                tracing::debug!(transaction, kind, "janus reply for an unknown transaction");
                return;
            };
            if kind == "ack" && p.reply == Reply::Event {
                return;
            }
            let Some(p) = pending.remove(transaction) else {
                return;
            };
            drop(pending);
            let result = if kind == "error" {
                Err(JanusError::Gateway {
                    code: frame["error"]["code"].as_i64().unwrap_or(codes::CANCELLED),
                    reason: frame["error"]["reason"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                })
            } else {
                Ok(frame)
            };
            let _ = p.tx.send(result);
            return;
        }
        let Some(sender) = frame["sender"].as_u64() else {
            // Session-level notices (`timeout`) need no routing.
            tracing::debug!(kind, "janus notice without sender");
            return;
        };
        let event = match kind.as_str() {
            "event" => HandleEvent::Plugin {
                data: frame["plugindata"]["data"].clone(),
                jsep: frame.get("jsep").cloned(),
            },
            "webrtcup" => HandleEvent::WebrtcUp,
            "media" => HandleEvent::Media {
                kind: frame["type"].as_str().unwrap_or_default().to_owned(),
                receiving: frame["receiving"].as_bool().unwrap_or(false),
            },
            "slowlink" => HandleEvent::SlowLink {
                uplink: frame["uplink"].as_bool().unwrap_or(false),
                lost: frame["lost"].as_i64().unwrap_or(0),
            },
            "hangup" => HandleEvent::Hangup {
                reason: frame["reason"].as_str().unwrap_or_default().to_owned(),
            },
            "trickle" => {
                let c = &frame["candidate"];
                if c["completed"] == true {
                    HandleEvent::Trickle(None)
                } else {
                    HandleEvent::Trickle(Some(c.clone()))
                }
            }
            "detached" => HandleEvent::Detached,
            other => {
                tracing::debug!(kind = other, "unsupported janus event ignored");
                return;
            }
        };
        let handles = self.handles.lock();
        if let Some(tx) = handles.get(&sender) {
            if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(event) {
                // Its task reads events as they come; this many waiting
                // means it is stuck, and more would only grow memory.
                tracing::warn!(sender, "janus handle events not read, event dropped");
            }
        }
    }

    fn shut_down(&self) {
        self.closed.cancel();
        for (_, p) in self.pending.lock().drain() {
            let _ = p.tx.send(Err(JanusError::Disconnected));
        }
        for (_, tx) in self.handles.lock().drain() {
            // A full queue still ends: the sender is dropped here.
            let _ = tx.try_send(HandleEvent::Disconnected);
        }
    }
}

/// A Janus session; kept alive by [`JanusSession::keepalive`].
#[derive(Clone)]
pub struct JanusSession {
    gateway: Gateway,
    pub id: u64,
}

impl JanusSession {
    fn request(&self, name: &str) -> Map<String, Value> {
        let mut m = verb(name);
        m.insert("session_id".into(), json!(self.id));
        m
    }

    /// Attaches a handle to `plugin`; its events arrive on the returned
    /// receiver.
    pub async fn attach(
        &self,
        plugin: &str,
    ) -> Result<(Handle, mpsc::Receiver<HandleEvent>), JanusError> {
        let mut req = self.request("attach");
        req.insert("plugin".into(), Value::String(plugin.into()));
        let reply = self.gateway.call(req, Reply::First).await?;
        let id = reply_id(&reply)?;
        let (tx, rx) = mpsc::channel(HANDLE_EVENTS);
        self.gateway.shared.handles.lock().insert(id, tx);
        Ok((
            Handle {
                session: self.clone(),
                id,
            },
            rx,
        ))
    }

    pub async fn keepalive(&self) -> Result<(), JanusError> {
        self.gateway
            .call(self.request("keepalive"), Reply::First)
            .await
            .map(|_| ())
    }

    pub async fn destroy(&self) -> Result<(), JanusError> {
        self.gateway
            .call(self.request("destroy"), Reply::First)
            .await
            .map(|_| ())
    }

    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }
}

/// A plugin handle.
#[derive(Clone)]
pub struct Handle {
    session: JanusSession,
    pub id: u64,
}

impl Handle {
    fn request(&self, name: &str) -> Map<String, Value> {
        let mut m = self.session.request(name);
        m.insert("handle_id".into(), json!(self.id));
        m
    }

    /// A synchronous plugin request: its `plugindata.data`.
    pub async fn request_sync(&self, body: Value) -> Result<Value, JanusError> {
        let mut req = self.request("message");
        req.insert("body".into(), body);
        let reply = self.session.gateway.call(req, Reply::First).await?;
        expect_kind(&reply, "success")?;
        plugin_data(&reply)
    }

    /// An asynchronous plugin request: the event's `plugindata.data` and
    /// JSEP.
    pub async fn message(
        &self,
        body: Value,
        jsep: Option<Value>,
    ) -> Result<(Value, Option<Value>), JanusError> {
        let mut req = self.request("message");
        req.insert("body".into(), body);
        if let Some(j) = jsep {
            req.insert("jsep".into(), j);
        }
        let reply = self.session.gateway.call(req, Reply::Event).await?;
        expect_kind(&reply, "event")?;
        Ok((plugin_data(&reply)?, reply.get("jsep").cloned()))
    }

    /// Trickles one candidate (the client's candidate object).
    pub async fn trickle(&self, candidate: Value) -> Result<(), JanusError> {
        let mut req = self.request("trickle");
        req.insert("candidate".into(), candidate);
        self.session
            .gateway
            .call(req, Reply::First)
            .await
            .map(|_| ())
    }

    /// Detaches; a handle Janus no longer knows counts as detached.
    pub async fn detach(&self) -> Result<(), JanusError> {
        self.session.gateway.shared.handles.lock().remove(&self.id);
        match self
            .session
            .gateway
            .call(self.request("detach"), Reply::First)
            .await
        {
            Err(JanusError::Gateway { code, .. }) if code == codes::NO_SUCH_HANDLE => Ok(()),
            r => r.map(|_| ()),
        }
    }
}
