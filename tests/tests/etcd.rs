//! Backends from etcd (`[backend] backendtype = etcd`): added, changed and
//! removed at run time, against a real etcd.

use std::time::Duration;

use serde_json::json;
use tests::client::TestClient;
use tests::etcd::Etcd;
use tests::server::{TestServer, TALK_SECRET};
use tests::talk::Talk;
use tests::wait::eventually;

async fn hello_result(server: &TestServer, talk: &Talk) -> serde_json::Value {
    let (mut c, _) = TestClient::connect(server).await;
    let (_, v) = c
        .hello_raw(json!({"version": "2.0", "auth": {"url": talk.url(), "params": {"token": talk.v2_token("bob")}}}))
        .await;
    v
}

/// A backend put into etcd is accepted without restart; removing it makes
/// hellos fail with `invalid_backend` again.
#[tokio::test]
async fn backends_follow_etcd() {
    let etcd = Etcd::start().await;
    let talk = Talk::start(TALK_SECRET).await;
    let server = TestServer::builder()
        .extra(&format!(
            "[backend]\nbackendtype = etcd\nbackendprefix = /signaling/backend/\n[etcd]\nendpoints = {}\n",
            etcd.endpoint
        ))
        .start()
        .await;
    assert_eq!(
        hello_result(&server, &talk).await["error"]["code"],
        "invalid_backend"
    );

    let doc = json!({"urls": [talk.url()], "secret": TALK_SECRET}).to_string();
    etcd.put("/signaling/backend/one", &doc).await;
    let ok = eventually(Duration::from_secs(10), || async {
        (hello_result(&server, &talk).await["type"] == "hello").then_some(())
    })
    .await;
    assert!(ok.is_some(), "backend from etcd not used");

    etcd.delete("/signaling/backend/one").await;
    let gone = eventually(Duration::from_secs(10), || async {
        (hello_result(&server, &talk).await["error"]["code"] == "invalid_backend").then_some(())
    })
    .await;
    assert!(gone.is_some(), "removed backend still accepted");
}
