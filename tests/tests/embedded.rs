//! The embedded default: `signaling` without a config file runs a single
//! node with no external service, and shuts down cleanly on SIGTERM.

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use tests::process::{free_port, target_bin, ChildGuard};
use tests::wait::eventually;

/// Without `--config` the server answers on its listener, tells clients
/// that no backend is configured, and exits 0 on SIGTERM.
#[tokio::test]
async fn runs_without_config_and_stops_on_sigterm() {
    let port = free_port();
    let mut cmd = Command::new(target_bin("signaling"));
    cmd.arg("--listen").arg(format!("127.0.0.1:{port}"));
    let dir = tempfile::tempdir().unwrap();
    let mut child = ChildGuard::spawn("signaling", cmd, dir).unwrap();
    let url = format!("http://127.0.0.1:{port}/api/v1/welcome");
    let ok = eventually(Duration::from_secs(10), || {
        let f = reqwest::get(url.clone());
        async { f.await.ok().filter(|r| r.status().is_success()) }
    })
    .await;
    assert!(
        ok.is_some(),
        "server did not start:\n{}",
        child.log_tail(30)
    );
    let log = std::fs::read_to_string(child.log_path()).unwrap();
    assert!(log.contains("embedded default"), "{log}");
    assert!(log.contains("no Nextcloud backend is configured"), "{log}");

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/spreed"))
        .await
        .unwrap();
    use futures_util::{SinkExt, StreamExt};
    let mut next_text = async || loop {
        match ws.next().await.unwrap().unwrap() {
            tokio_tungstenite::tungstenite::Message::Text(t) => return t.to_string(),
            _ => continue,
        }
    };
    assert!(next_text().await.contains("\"welcome\""));
    let hello = json!({"id": "1", "type": "hello", "hello": {"version": "1.0", "auth": {"url": "https://cloud.example.com/", "params": {}}}});
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        hello.to_string().into(),
    ))
    .await
    .unwrap();
    let reply = loop {
        if let tokio_tungstenite::tungstenite::Message::Text(t) = ws.next().await.unwrap().unwrap()
        {
            break t.to_string();
        }
    };
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["error"]["code"], "invalid_backend");

    // SIGTERM: open clients get a close frame, the process exits cleanly.
    child.signal(15);
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(f))) => return f,
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("close frame on shutdown");
    assert_eq!(closed.map(|f| u16::from(f.code)), Some(1001));
    let status = eventually(Duration::from_secs(5), || {
        let s = child.try_exit_status();
        async move { s }
    })
    .await
    .expect("process exits after SIGTERM");
    assert!(status.success(), "exit status {status:?}");
}
