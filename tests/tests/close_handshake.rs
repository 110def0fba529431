//! The WebSocket closing handshake of `/spreed` (RFC 6455 5.5.1, 7.4): a
//! client's Close is answered, and every protocol error closes with the
//! RFC's code before the connection ends. Frame by frame, with a client on
//! a bare socket that can send what WebSocket libraries refuse to.

use std::time::Duration;

use serde_json::json;
use tests::raw_ws::{Frame, RawWs, OP_BINARY, OP_CONTINUATION, OP_PING, OP_TEXT};
use tests::server::{TestServer, INTERNAL_SECRET};
use tests::talk::Talk;

const WAIT: Duration = Duration::from_secs(5);

async fn server() -> (Talk, TestServer) {
    let talk = Talk::start(tests::server::TALK_SECRET).await;
    let server = TestServer::builder().talk(&talk).start().await;
    (talk, server)
}

async fn connect(server: &TestServer) -> RawWs {
    RawWs::connect(&format!("127.0.0.1:{}", server.port), "/spreed")
        .await
        .expect("WebSocket upgrade")
}

/// Sends `frames` and expects a close frame with `code`, then the end of
/// the connection.
async fn expect_close_after(server: &TestServer, what: &str, frames: &[Frame], code: u16) {
    let mut ws = connect(server).await;
    for f in frames {
        ws.send(f).await.expect("send");
    }
    let close = ws
        .read_close(WAIT)
        .await
        .unwrap_or_else(|| panic!("{what}: no close frame"));
    assert_eq!(close.close_code(), Some(code), "{what}: {close:?}");
    assert!(
        ws.closed_within(WAIT).await,
        "{what}: connection stays open"
    );
}

fn fragment(opcode: u8, payload: &[u8], fin: bool) -> Frame {
    let mut f = Frame::new(opcode, payload);
    f.fin = fin;
    f
}

/// A client's Close is answered with its code; the server then closes TCP.
#[tokio::test]
async fn client_close_is_answered() {
    let (_talk, server) = server().await;
    for code in [1000u16, 1001, 3000, 4999] {
        expect_close_after(
            &server,
            &format!("close {code}"),
            &[Frame::close(code, b"bye")],
            code,
        )
        .await;
    }
    // Without a status code the answer has none either.
    let mut ws = connect(&server).await;
    ws.send(&Frame::new(tests::raw_ws::OP_CLOSE, Vec::new()))
        .await
        .expect("send");
    let close = ws.read_close(WAIT).await.expect("close frame");
    assert!(close.payload.is_empty(), "{close:?}");
    assert!(ws.closed_within(WAIT).await);
}

/// Also after a hello: an authenticated session's connection is closed
/// the same way, and the session stays resumable as after any disconnect.
#[tokio::test]
async fn close_after_hello_is_answered() {
    let (talk, server) = server().await;
    let mut ws = connect(&server).await;
    let random = format!("{:064x}", rand::random::<u128>());
    let token = proto::checksum::internal_token(INTERNAL_SECRET.as_bytes(), &random);
    let hello = json!({"id": "1", "type": "hello", "hello": {"version": "1.0", "auth": {"type": "internal", "params": {"random": random, "token": token, "backend": talk.url()}}}});
    ws.send(&Frame::text(&hello.to_string()))
        .await
        .expect("send");
    let mut got_hello = false;
    while !got_hello {
        match ws.read(WAIT).await {
            tests::raw_ws::Read::Frame(f) if f.opcode == OP_TEXT => {
                let v: serde_json::Value = serde_json::from_slice(&f.payload).expect("JSON");
                got_hello = v["type"] == "hello";
            }
            tests::raw_ws::Read::Frame(_) => {}
            other => panic!("no hello reply: {other:?}"),
        }
    }
    ws.send(&Frame::close(1000, b"")).await.expect("send");
    let close = ws.read_close(WAIT).await.expect("close frame");
    assert_eq!(close.close_code(), Some(1000));
    assert!(ws.closed_within(WAIT).await);
}

/// Close codes a peer may not send, and malformed close frames: 1002.
#[tokio::test]
async fn bad_close_frames_get_1002() {
    let (_talk, server) = server().await;
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
        expect_close_after(
            &server,
            &format!("close {code}"),
            &[Frame::close(code, b"")],
            1002,
        )
        .await;
    }
    expect_close_after(
        &server,
        "one-byte close payload",
        &[Frame::new(tests::raw_ws::OP_CLOSE, vec![3])],
        1002,
    )
    .await;
}

/// Text that is not UTF-8, in a message or a close reason: 1007.
#[tokio::test]
async fn invalid_utf8_gets_1007() {
    let (_talk, server) = server().await;
    expect_close_after(
        &server,
        "text frame",
        &[Frame::new(OP_TEXT, vec![b'{', 0xC3, 0x28, b'}'])],
        1007,
    )
    .await;
    expect_close_after(
        &server,
        "fragmented text",
        &[
            fragment(OP_TEXT, &[b'"', 0xE2, 0x82], false),
            fragment(OP_CONTINUATION, &[0x28, b'"'], true),
        ],
        1007,
    )
    .await;
    expect_close_after(
        &server,
        "close reason",
        &[Frame::close(1000, &[0xFF, 0xFE])],
        1007,
    )
    .await;
}

/// Framing violations: 1002.
#[tokio::test]
async fn protocol_violations_get_1002() {
    let (_talk, server) = server().await;
    let mut rsv1 = Frame::text("{}");
    rsv1.rsv = 4;
    let mut rsv3 = Frame::new(OP_PING, b"x".to_vec());
    rsv3.rsv = 1;
    let mut unmasked = Frame::text("{}");
    unmasked.masked = false;
    let cases: Vec<(&str, Vec<Frame>)> = vec![
        ("reserved bit 1", vec![rsv1]),
        ("reserved bit 3 on a ping", vec![rsv3]),
        ("unmasked frame", vec![unmasked]),
        (
            "continuation without a start",
            vec![fragment(OP_CONTINUATION, b"x", true)],
        ),
        (
            "new message inside a fragmented one",
            vec![fragment(OP_TEXT, b"{", false), Frame::text("{}")],
        ),
        (
            "binary inside a fragmented text",
            vec![
                fragment(OP_TEXT, b"{", false),
                Frame::new(OP_BINARY, b"x".to_vec()),
            ],
        ),
        ("reserved data opcode", vec![Frame::new(0x3, b"x".to_vec())]),
        ("reserved control opcode", vec![Frame::new(0xB, Vec::new())]),
        ("fragmented ping", vec![fragment(OP_PING, b"x", false)]),
        (
            "ping over 125 bytes",
            vec![Frame::new(OP_PING, vec![b'x'; 126])],
        ),
    ];
    for (what, frames) in cases {
        expect_close_after(&server, what, &frames, 1002).await;
    }
}

/// A message over 64 KiB: 1009, also when it arrives in fragments.
#[tokio::test]
async fn oversized_messages_get_1009() {
    let (_talk, server) = server().await;
    let big = "x".repeat(70 * 1024);
    expect_close_after(&server, "one frame", &[Frame::text(&big)], 1009).await;
    let part = vec![b'x'; 40 * 1024];
    expect_close_after(
        &server,
        "fragments",
        &[
            fragment(OP_TEXT, &part, false),
            fragment(OP_CONTINUATION, &part, true),
        ],
        1009,
    )
    .await;
}

/// Errors are counted by close code.
#[tokio::test]
async fn protocol_errors_are_counted() {
    let (_talk, server) = server().await;
    expect_close_after(
        &server,
        "continuation without a start",
        &[fragment(OP_CONTINUATION, b"x", true)],
        1002,
    )
    .await;
    let counted = server
        .metric("signaling_client_protocol_errors_total{code=\"1002\"}")
        .await;
    assert_eq!(counted, 1.0);
}
