//! A real `etcd` on loopback ports (components.md), with put/delete through
//! its JSON gateway.

use std::process::Command;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::process::{free_port, ChildGuard};

pub struct Etcd {
    pub endpoint: String,
    pub process: ChildGuard,
}

impl Etcd {
    pub async fn start() -> Etcd {
        for _ in 0..5 {
            let (client, peer) = (free_port(), free_port());
            let dir = tempfile::tempdir().expect("temp dir");
            let data = dir.path().join("data");
            let mut cmd = Command::new("etcd");
            cmd.arg("--name")
                .arg("t")
                .arg("--data-dir")
                .arg(&data)
                .arg("--listen-client-urls")
                .arg(format!("http://127.0.0.1:{client}"))
                .arg("--advertise-client-urls")
                .arg(format!("http://127.0.0.1:{client}"))
                .arg("--listen-peer-urls")
                .arg(format!("http://127.0.0.1:{peer}"))
                .arg("--initial-advertise-peer-urls")
                .arg(format!("http://127.0.0.1:{peer}"))
                .arg("--initial-cluster")
                .arg(format!("t=http://127.0.0.1:{peer}"))
                .arg("--initial-cluster-state")
                .arg("new")
                .arg("--initial-cluster-token")
                .arg(format!("t-{client}"))
                .args([
                    "--log-level",
                    "warn",
                    "--heartbeat-interval",
                    "10",
                    "--election-timeout",
                    "100",
                    "--unsafe-no-fsync",
                ]);
            let mut process = ChildGuard::spawn("etcd", cmd, dir)
                .expect("etcd is installed (scripts/test.sh installs it)");
            let endpoint = format!("http://127.0.0.1:{client}");
            let health = format!("{endpoint}/health");
            let ok = crate::wait::eventually(Duration::from_secs(10), || {
                let f = reqwest::get(health.clone());
                async move {
                    let text = f.await.ok()?.text().await.ok()?;
                    text.contains("\"true\"").then_some(())
                }
            })
            .await;
            if ok.is_some() {
                return Etcd { endpoint, process };
            }
            if process.try_exit_status().is_none() {
                panic!("etcd did not become healthy:\n{}", process.log_tail(20));
            }
        }
        panic!("etcd could not start on free ports");
    }

    pub async fn put(&self, key: &str, value: &str) {
        let body =
            serde_json::json!({"key": STANDARD.encode(key), "value": STANDARD.encode(value)});
        let r = reqwest::Client::new()
            .post(format!("{}/v3/kv/put", self.endpoint))
            .json(&body)
            .send()
            .await
            .expect("etcd put");
        assert!(r.status().is_success(), "etcd put failed: {}", r.status());
    }

    pub async fn delete(&self, key: &str) {
        let body = serde_json::json!({"key": STANDARD.encode(key)});
        let r = reqwest::Client::new()
            .post(format!("{}/v3/kv/deleterange", self.endpoint))
            .json(&body)
            .send()
            .await
            .expect("etcd delete");
        assert!(
            r.status().is_success(),
            "etcd delete failed: {}",
            r.status()
        );
    }
}
