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
    /// With mutual TLS: the client used for put/delete.
    http: reqwest::Client,
}

impl Etcd {
    pub async fn start() -> Etcd {
        Self::start_with(None).await
    }

    /// etcd requiring mutual TLS with the certificates of `certs` (server
    /// certificate for 127.0.0.1, client certificates signed by its CA).
    pub async fn start_tls(certs: &crate::certs::Certs) -> Etcd {
        Self::start_with(Some(certs)).await
    }

    async fn start_with(certs: Option<&crate::certs::Certs>) -> Etcd {
        let scheme = if certs.is_some() { "https" } else { "http" };
        let http = match certs {
            None => reqwest::Client::new(),
            Some(c) => {
                let mut pem = std::fs::read(c.path("client.crt")).expect("client.crt");
                pem.extend(std::fs::read(c.path("client.key")).expect("client.key"));
                let ca = std::fs::read(c.path("ca.crt")).expect("ca.crt");
                reqwest::Client::builder()
                    .identity(reqwest::Identity::from_pem(&pem).expect("client identity"))
                    .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA"))
                    .build()
                    .expect("TLS client")
            }
        };
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
                .arg(format!("{scheme}://127.0.0.1:{client}"))
                .arg("--advertise-client-urls")
                .arg(format!("{scheme}://127.0.0.1:{client}"))
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
            if let Some(c) = certs {
                cmd.arg("--cert-file")
                    .arg(c.path("server.crt"))
                    .arg("--key-file")
                    .arg(c.path("server.key"))
                    .arg("--trusted-ca-file")
                    .arg(c.path("ca.crt"))
                    .arg("--client-cert-auth");
            }
            let mut process = ChildGuard::spawn("etcd", cmd, dir)
                .expect("etcd is installed (scripts/test.sh installs it)");
            let endpoint = format!("{scheme}://127.0.0.1:{client}");
            let health = format!("{endpoint}/health");
            let ok = crate::wait::eventually(Duration::from_secs(10), || {
                let f = http.get(health.clone()).send();
                async move {
                    let text = f.await.ok()?.text().await.ok()?;
                    text.contains("\"true\"").then_some(())
                }
            })
            .await;
            if ok.is_some() {
                return Etcd {
                    endpoint,
                    process,
                    http,
                };
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
        let r = self
            .http
            .post(format!("{}/v3/kv/put", self.endpoint))
            .json(&body)
            .send()
            .await
            .expect("etcd put");
        assert!(r.status().is_success(), "etcd put failed: {}", r.status());
    }

    pub async fn delete(&self, key: &str) {
        let body = serde_json::json!({"key": STANDARD.encode(key)});
        let r = self
            .http
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
