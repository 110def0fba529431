//! One benchmark client: connect, hello v1, join, and a reader task that
//! records latencies of benchmark messages.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::report::{histogram, Counters};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
pub type Sink = SplitSink<Ws, Message>;

const STEP: Duration = Duration::from_secs(30);

/// What all client tasks share.
pub struct Shared {
    pub counters: Arc<Counters>,
    /// Per client: how many more messages it may have in flight.
    pub permits: Vec<Arc<Semaphore>>,
    /// Time base of the timestamps in messages.
    pub base: Instant,
}

impl Shared {
    pub fn now_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }
}

async fn next_json(ws: &mut Ws) -> Result<Value, String> {
    loop {
        let msg = tokio::time::timeout(STEP, ws.next())
            .await
            .map_err(|_| "timeout".to_string())?
            .ok_or("connection closed")?
            .map_err(|e| e.to_string())?;
        match msg {
            Message::Text(t) => return serde_json::from_str(&t).map_err(|e| e.to_string()),
            Message::Close(f) => return Err(format!("closed by the server: {f:?}")),
            _ => {}
        }
    }
}

/// Reads until a message of `kind` (or an error) arrives.
pub async fn expect(ws: &mut Ws, kind: &str) -> Result<Value, String> {
    loop {
        let v = next_json(ws).await?;
        if v["type"] == kind {
            return Ok(v);
        }
        if v["type"] == "error" {
            return Err(v["error"]["code"].as_str().unwrap_or("error").to_owned());
        }
    }
}

/// Connects. A `welcome` (which older servers do not send) is skipped by
/// the next `expect`.
pub async fn connect(server: &str) -> Result<Ws, String> {
    // TCP_NODELAY, as browsers and the Talk apps set it: with Nagle a
    // client's message can wait for the ACK of its previous one.
    let connect = tokio_tungstenite::connect_async_with_config(server, None, true);
    let (ws, _) = tokio::time::timeout(STEP, connect)
        .await
        .map_err(|_| "connect timeout".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// Hello v1 with the emulator's ticket; returns (session id, resume id).
pub async fn hello(
    ws: &mut Ws,
    backend_url: &str,
    user: &str,
    ticket: &str,
) -> Result<(String, String), String> {
    let hello = json!({"id": "h", "type": "hello", "hello": {"version": "1.0",
        "auth": {"url": backend_url, "params": {"userid": user, "ticket": ticket}}}});
    ws.send(Message::Text(hello.to_string().into()))
        .await
        .map_err(|e| e.to_string())?;
    let v = expect(ws, "hello").await?;
    Ok((
        v["hello"]["sessionid"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        v["hello"]["resumeid"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    ))
}

pub async fn resume(ws: &mut Ws, resume_id: &str) -> Result<String, String> {
    let hello =
        json!({"id": "r", "type": "hello", "hello": {"version": "1.0", "resumeid": resume_id}});
    ws.send(Message::Text(hello.to_string().into()))
        .await
        .map_err(|e| e.to_string())?;
    let v = expect(ws, "hello").await?;
    Ok(v["hello"]["sessionid"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

pub async fn join(ws: &mut Ws, room: &str, room_session: &str) -> Result<(), String> {
    let msg =
        json!({"id": "j", "type": "room", "room": {"roomid": room, "sessionid": room_session}});
    ws.send(Message::Text(msg.to_string().into()))
        .await
        .map_err(|e| e.to_string())?;
    expect(ws, "room").await.map(|_| ())
}

#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "type")]
    kind: String,
    message: Option<IncomingMessage>,
}

#[derive(Deserialize)]
struct IncomingMessage {
    data: BenchData,
}

#[derive(Deserialize)]
struct BenchData {
    /// (sender index, send time in us since the base)
    bench: (usize, u64),
}

/// The text of a benchmark message from client `me`; `recipient` is the
/// recipient object as JSON. Built with `format!` so the load generator
/// spends little CPU of its own per message.
pub fn bench_message(recipient: &str, me: usize, now_us: u64, pad: &str) -> String {
    format!(
        r#"{{"type":"message","message":{{"recipient":{recipient},"data":{{"bench":[{me},{now_us}],"pad":"{pad}"}}}}}}"#
    )
}

/// What one received frame is to the generator.
#[derive(Debug, PartialEq)]
enum Received {
    /// A benchmark message: (sender index, send time in us).
    Bench(usize, u64),
    Error,
    Other,
}

/// Reads a frame. Benchmark messages (`{"type":"message",...` with our
/// `"bench":[sender,time]`, as both servers write them) take a scan
/// instead of a JSON parse, so the generator leaves the CPU it shares
/// with the server to the server; anything else is parsed.
fn classify(text: &str) -> Received {
    if text.starts_with(r#"{"type":"message""#) {
        if let Some(bench) = scan_bench(text) {
            return Received::Bench(bench.0, bench.1);
        }
    }
    match serde_json::from_str::<Incoming>(text) {
        Ok(Incoming {
            kind,
            message: Some(m),
        }) if kind == "message" => Received::Bench(m.data.bench.0, m.data.bench.1),
        Ok(Incoming { kind, .. }) if kind == "error" => Received::Error,
        _ => Received::Other,
    }
}

/// The two numbers after the one `"bench":[` in `text`.
fn scan_bench(text: &str) -> Option<(usize, u64)> {
    const KEY: &str = r#""bench":["#;
    let start = text.find(KEY)? + KEY.len();
    let rest = &text[start..];
    let end = rest.find(']')?;
    let (a, b) = rest[..end].split_once(',')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// Counts deliveries and latencies until the stream ends.
pub async fn read_loop(mut stream: SplitStream<Ws>, shared: Arc<Shared>) -> Histogram<u64> {
    let mut h = histogram();
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Text(text) = msg else { continue };
        match classify(&text) {
            Received::Bench(sender, sent) => {
                let _ = h.record(shared.now_us().saturating_sub(sent).max(1));
                shared.counters.delivered.fetch_add(1, Ordering::Relaxed);
                if let Some(p) = shared.permits.get(sender) {
                    p.add_permits(1);
                }
            }
            Received::Error => {
                shared.counters.errors.fetch_add(1, Ordering::Relaxed);
            }
            Received::Other => {}
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_what_the_servers_send() {
        // Our server's and the reference's delivery of a bench message.
        let ours = r#"{"type":"message","message":{"sender":{"type":"session","sessionid":"abc"},"data":{"bench":[12,3456],"pad":"xx"}}}"#;
        assert_eq!(classify(ours), Received::Bench(12, 3456));
        let spaced = r#"{"type": "message", "message": {"data": {"bench": [1, 2]}}}"#;
        assert_eq!(classify(spaced), Received::Bench(1, 2));
        let error = r#"{"type":"error","error":{"code":"no_such_session","message":"x"}}"#;
        assert_eq!(classify(error), Received::Error);
        let event = r#"{"type":"event","event":{"target":"room","type":"join"}}"#;
        assert_eq!(classify(event), Received::Other);
        let foreign = r#"{"type":"message","message":{"data":{"other":1}}}"#;
        assert_eq!(classify(foreign), Received::Other);
    }
}
