//! The benchmark scenarios.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use rand::Rng;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use super::conn::{self, Shared, Sink, Ws};
use super::report::{self, histogram, Counters, Latency, Report};
use super::Settings;
use crate::talk::{Room, Talk, User};

/// Time allowed for messages still in flight after the sending phase.
const DRAIN: Duration = Duration::from_secs(3);

/// One connected client before the measured phase.
struct Ready {
    ws: Ws,
    session_id: String,
    resume_id: String,
}

fn room_name(index: usize, size: usize) -> String {
    format!("bench-room-{}", index / size.max(1))
}

/// Connects, says hello and optionally joins, `concurrency` at a time.
async fn setup(
    s: &Settings,
    talk: &Talk,
    users: &[User],
    rooms: Option<usize>,
) -> Result<Vec<Ready>, String> {
    let sem = Arc::new(Semaphore::new(s.concurrency.max(1)));
    let mut tasks = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let sem = sem.clone();
        let server = s.server_for(i);
        let url = talk.signaling_url();
        let (id, ticket) = (u.id.clone(), u.ticket.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.map_err(|e| e.to_string())?;
            let mut ws = conn::connect(&server).await?;
            let (session_id, resume_id) = conn::hello(&mut ws, &url, &id, &ticket).await?;
            if let Some(size) = rooms {
                conn::join(&mut ws, &room_name(i, size), &format!("talk-{i}")).await?;
            }
            Ok::<_, String>(Ready {
                ws,
                session_id,
                resume_id,
            })
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.map_err(|e| e.to_string())??);
    }
    Ok(out)
}

async fn talk_with_users(s: &Settings, rooms: usize) -> (Talk, Vec<User>) {
    let talk = Talk::start(&s.secret).await;
    let users = (0..s.clients)
        .map(|i| talk.add_user(&format!("bench{i}"), &format!("Bench {i}")))
        .collect();
    for r in 0..rooms {
        talk.add_room(&format!("bench-room-{r}"), Room::open("Bench"));
    }
    (talk, users)
}

fn sample(s: &Settings) -> Option<report::ProcSample> {
    s.pid.and_then(report::sample)
}

/// Waits until `delivered` reaches `expected` or the drain time passed.
async fn drain(counters: &Counters, expected: u64) {
    let until = Instant::now() + DRAIN;
    while counters.delivered() < expected && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Messaging scenarios: `fanout` = receivers per message (1 for 1:1,
/// room size - 1 for rooms).
async fn messaging(s: &Settings, name: &str, room_size: Option<usize>) -> Result<Report, String> {
    let rooms = room_size.map(|k| s.clients.div_ceil(k)).unwrap_or(0);
    let (talk, users) = talk_with_users(s, rooms).await;
    let ready = setup(s, &talk, &users, room_size).await?;
    let fanout = room_size.map(|k| k.saturating_sub(1).max(1)).unwrap_or(1) as u32;
    let shared = Arc::new(Shared {
        counters: Arc::new(Counters::default()),
        permits: (0..ready.len())
            .map(|_| Arc::new(Semaphore::new(s.inflight * fanout as usize)))
            .collect(),
        base: Instant::now(),
    });
    let recipients: Arc<Vec<String>> = Arc::new(
        ready
            .iter()
            .map(|r| json!({"type": "session", "sessionid": r.session_id}).to_string())
            .collect(),
    );
    let room_recipient: Arc<str> = Arc::from(json!({"type": "room"}).to_string());
    // Let join events settle before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut readers = Vec::new();
    let mut sinks: Vec<Sink> = Vec::new();
    for r in ready {
        let (sink, stream) = r.ws.split();
        sinks.push(sink);
        readers.push(tokio::spawn(conn::read_loop(stream, shared.clone())));
    }
    let stop = report::tokio_util_stop::Stop::default();
    if s.progress {
        tokio::spawn(report::progress(shared.counters.clone(), stop.clone()));
    }
    let before = sample(s);
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + s.duration;
    let pad: Arc<str> = Arc::from("x".repeat(s.payload));
    let per_client_rate = s.rate.map(|r| r / s.clients.max(1) as f64);
    let mut writers = Vec::new();
    let n = sinks.len();
    for (me, mut sink) in sinks.into_iter().enumerate() {
        let shared = shared.clone();
        let recipients = recipients.clone();
        let room_recipient = room_recipient.clone();
        let pad = pad.clone();
        writers.push(tokio::spawn(async move {
            let mut interval = per_client_rate.map(|r| {
                let mut i = tokio::time::interval(Duration::from_secs_f64(1.0 / r.max(0.001)));
                i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                i
            });
            // One timer for the whole run: a new one per message would
            // cost the generator a timer-wheel insert and removal each.
            let end = tokio::time::sleep_until(deadline);
            tokio::pin!(end);
            loop {
                let ready = async {
                    match interval.as_mut() {
                        Some(i) => {
                            i.tick().await;
                            true
                        }
                        None => match shared.permits[me].acquire_many(fanout).await {
                            Ok(p) => {
                                p.forget();
                                true
                            }
                            Err(_) => false,
                        },
                    }
                };
                let go = tokio::select! {
                    _ = &mut end => false,
                    ok = ready => ok,
                };
                if !go {
                    break;
                }
                let recipient: &str = match room_size {
                    Some(_) => &room_recipient,
                    None => {
                        let mut peer = rand::thread_rng().gen_range(0..n.max(2) - 1);
                        if peer >= me {
                            peer += 1;
                        }
                        &recipients[peer.min(n - 1)]
                    }
                };
                let text = conn::bench_message(recipient, me, shared.now_us(), &pad);
                if sink.send(Message::Text(text.into())).await.is_err() {
                    shared.counters.errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                shared.counters.sent.fetch_add(1, Ordering::Relaxed);
            }
            sink
        }));
    }
    let mut sinks = Vec::new();
    for w in writers {
        if let Ok(sink) = w.await {
            sinks.push(sink);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let after = sample(s);
    let sent = shared.counters.sent();
    let delivered_in_window = shared.counters.delivered();
    let expected = sent * fanout as u64;
    drain(&shared.counters, expected).await;
    stop.fire();
    for mut sink in sinks {
        let _ = sink.close().await;
    }
    let mut h = histogram();
    for r in readers {
        if let Ok(Ok(part)) = tokio::time::timeout(Duration::from_secs(5), r).await {
            let _ = h.add(&part);
        }
    }
    let mut report = Report {
        scenario: name.into(),
        server: s.server.clone(),
        clients: s.clients,
        seconds,
        sent,
        delivered: shared.counters.delivered(),
        expected,
        errors: shared.counters.errors(),
        sent_per_sec: sent as f64 / seconds,
        delivered_per_sec: delivered_in_window as f64 / seconds,
        latency: Latency::from(&h),
        ..Default::default()
    };
    report.apply_proc(before, after);
    Ok(report)
}

pub async fn one_to_one(s: &Settings) -> Result<Report, String> {
    messaging(s, "one-to-one", None).await
}

pub async fn room(s: &Settings) -> Result<Report, String> {
    messaging(s, "room", Some(s.room_size.max(2))).await
}

type Timed = tokio::task::JoinHandle<Result<(Ws, Duration), String>>;

/// Collects the per-client latencies of a storm; returns the report and
/// the connections that made it.
async fn storm_report(
    s: &Settings,
    name: &str,
    tasks: Vec<Timed>,
    start: Instant,
) -> (Report, Vec<Ws>) {
    let mut h: Histogram<u64> = histogram();
    let mut errors = 0;
    let mut keep = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok((ws, d))) => {
                let _ = h.record(d.as_micros() as u64);
                keep.push(ws);
            }
            _ => errors += 1,
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let report = Report {
        scenario: name.into(),
        server: s.server.clone(),
        clients: s.clients,
        seconds,
        errors,
        latency: Latency::from(&h),
        ops_per_sec: Some(keep.len() as f64 / seconds),
        ..Default::default()
    };
    (report, keep)
}

/// N clients connect, hello and join as fast as `concurrency` allows.
pub async fn join_storm(s: &Settings) -> Result<Report, String> {
    let (talk, users) = talk_with_users(s, s.clients.div_ceil(s.room_size.max(1))).await;
    let before = sample(s);
    let start = Instant::now();
    let sem = Arc::new(Semaphore::new(s.concurrency.max(1)));
    let mut tasks = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let sem = sem.clone();
        let (server, url, room_size) = (s.server_for(i), talk.signaling_url(), s.room_size);
        let (id, ticket) = (u.id.clone(), u.ticket.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.map_err(|e| e.to_string())?;
            let t0 = Instant::now();
            let mut ws = conn::connect(&server).await?;
            conn::hello(&mut ws, &url, &id, &ticket).await?;
            conn::join(&mut ws, &room_name(i, room_size), &format!("talk-{i}")).await?;
            Ok::<_, String>((ws, t0.elapsed()))
        }));
    }
    let (mut report, keep) = storm_report(s, "join-storm", tasks, start).await;
    report.apply_proc(before, sample(s));
    for mut ws in keep {
        let _ = ws.close(None).await;
    }
    Ok(report)
}

/// N clients drop their sockets and resume their sessions.
pub async fn resume_storm(s: &Settings) -> Result<Report, String> {
    let (talk, users) = talk_with_users(s, 0).await;
    let ready = setup(s, &talk, &users, None).await?;
    let ids: Vec<(String, String)> = ready
        .iter()
        .map(|r| (r.session_id.clone(), r.resume_id.clone()))
        .collect();
    drop(ready);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = sample(s);
    let start = Instant::now();
    let sem = Arc::new(Semaphore::new(s.concurrency.max(1)));
    let mut tasks = Vec::new();
    for (i, (sid, rid)) in ids.into_iter().enumerate() {
        let sem = sem.clone();
        // Sessions resume on the node that holds them.
        let server = s.server_for(i);
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.map_err(|e| e.to_string())?;
            let t0 = Instant::now();
            let mut ws = conn::connect(&server).await?;
            let got = conn::resume(&mut ws, &rid).await?;
            if got != sid {
                return Err("resumed a different session".to_string());
            }
            Ok::<_, String>((ws, t0.elapsed()))
        }));
    }
    let (mut report, _keep) = storm_report(s, "resume-storm", tasks, start).await;
    report.apply_proc(before, sample(s));
    Ok(report)
}

/// N idle connections after hello: server memory per connection.
pub async fn idle(s: &Settings) -> Result<Report, String> {
    let (talk, users) = talk_with_users(s, 0).await;
    let before = sample(s);
    let start = Instant::now();
    let ready = setup(s, &talk, &users, None).await?;
    tokio::time::sleep(s.duration).await;
    let after = sample(s);
    let mut report = Report {
        scenario: "idle".into(),
        server: s.server.clone(),
        clients: ready.len(),
        seconds: start.elapsed().as_secs_f64(),
        ..Default::default()
    };
    report.apply_proc(before, after);
    if let (Some(b), Some(a)) = (before, after) {
        report.rss_bytes_per_connection =
            Some((a.rss_kib.saturating_sub(b.rss_kib) as f64 * 1024.0) / ready.len().max(1) as f64);
    }
    drop(ready);
    Ok(report)
}
