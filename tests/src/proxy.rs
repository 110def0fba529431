//! The real `signaling-proxy` binary with a generated `proxy.conf`, and
//! the RSA key of a signaling server it trusts.

use std::process::Command;
use std::time::Duration;

use crate::process::{free_port, target_bin, ChildGuard};

/// The token id the test signaling server signs with.
pub const TOKEN_ID: &str = "server1";

pub struct ProxyServer {
    pub port: u16,
    pub process: ChildGuard,
    /// The private key matching `[tokens] server1`.
    pub key: rsa::RsaPrivateKey,
}

/// A signaling server's `[mcu] token_key` file for `key`, in a temporary
/// directory that lives as long as the returned guard.
pub fn write_token_key(key: &rsa::RsaPrivateKey) -> (tempfile::TempDir, std::path::PathBuf) {
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("token.key");
    let pem = key.to_pkcs8_pem(LineEnding::LF).expect("pem");
    std::fs::write(&file, pem.as_bytes()).expect("write key");
    (dir, file)
}

/// A fresh RSA key pair: the private key and its public PEM. Made by
/// `openssl` (key generation in a debug build of `rsa` takes seconds).
pub fn rsa_key() -> (rsa::RsaPrivateKey, String) {
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl genpkey failed");
    let pem = String::from_utf8(out.stdout).expect("pem");
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(&pem).expect("pkcs8 key");
    let public = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("public pem");
    (key, public)
}

impl ProxyServer {
    /// Starts a proxy in front of the Janus at `janus_url`; `extra` is
    /// appended to the config.
    pub async fn start(janus_url: &str, extra: &str) -> ProxyServer {
        Self::start_with_key(janus_url, extra, rsa_key()).await
    }

    /// As [`ProxyServer::start`], trusting `key` as `server1`.
    pub async fn start_with_key(
        janus_url: &str,
        extra: &str,
        (key, public): (rsa::RsaPrivateKey, String),
    ) -> ProxyServer {
        let bin = target_bin("signaling-proxy");
        for _ in 0..5 {
            let port = free_port();
            let dir = tempfile::tempdir().expect("temp dir");
            let pem = dir.path().join("server1.pem");
            std::fs::write(&pem, &public).expect("write key");
            let config = dir.path().join("proxy.conf");
            std::fs::write(
                &config,
                format!(
                    "[http]\nlisten = 127.0.0.1:{port}\n\n[tokens]\n{TOKEN_ID} = {}\n\n\
                     [mcu]\ntype = janus\nurl = {janus_url}\ntimeout = 2\n\n{extra}",
                    pem.display()
                ),
            )
            .expect("write config");
            let mut cmd = Command::new(&bin);
            cmd.arg("--config")
                .arg(&config)
                .env("RUST_LOG", "signaling_proxy=debug,sfu_bridge=debug,info");
            let mut process = ChildGuard::spawn("signaling-proxy", cmd, dir).expect("start proxy");
            let url = format!("http://127.0.0.1:{port}/welcome");
            let ready = crate::wait::eventually(Duration::from_secs(10), || {
                let req = reqwest::get(url.clone());
                async { req.await.ok().filter(|r| r.status().is_success()) }
            })
            .await;
            if ready.is_some() {
                return ProxyServer {
                    port,
                    process,
                    key: key.clone(),
                };
            }
            if process.try_exit_status().is_none() {
                panic!("proxy did not become ready:\n{}", process.log_tail(40));
            }
        }
        panic!("proxy could not start on a free port");
    }

    /// `http://127.0.0.1:port/`, the base URL signaling servers use.
    pub fn base_url(&self) -> String {
        self.http_url()
    }

    /// Waits (up to 20 s) until the proxy's `/stats` says its Janus is
    /// connected; panics otherwise.
    pub async fn wait_janus_connected(&self) {
        let url = format!("{}stats", self.http_url());
        let up = crate::wait::eventually(Duration::from_secs(20), || async {
            let stats: serde_json::Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
            (stats["mcu"]["connected"] == true).then_some(())
        })
        .await;
        assert!(up.is_some(), "proxy did not connect to janus");
    }

    /// A metric of this proxy, 0 when absent.
    pub async fn metric(&self, prefix: &str) -> f64 {
        crate::server::metric(&self.http_url(), prefix).await
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/proxy", self.port)
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// A connection token of the trusted signaling server.
    pub fn token(&self) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        proto::proxy_token::sign(TOKEN_ID, None, &self.key, now).expect("sign")
    }
}

/// `[mcu]` for signaling proxies at `urls` (space separated), signing
/// with the key in `key_file`.
pub fn mcu_config(urls: &str, key_file: &std::path::Path) -> String {
    format!(
        "\n[mcu]\ntype = proxy\nurl = {urls}\ntoken_id = {TOKEN_ID}\ntoken_key = {}\nproxytimeout = 5\n",
        key_file.display()
    )
}

/// Waits (up to 20 s) until `server` lists `n` proxies and is connected
/// to all of them; panics otherwise. Addresses on ::1 are left out: a
/// `localhost` URL may resolve there too, where no proxy listens.
pub async fn wait_proxies_connected(server: &crate::server::TestServer, n: usize) {
    let ready = crate::wait::eventually(Duration::from_secs(20), || async {
        let info = server.serverinfo().await;
        let proxies: Vec<_> = info["sfu"]["proxies"]
            .as_array()?
            .iter()
            .filter(|p| p["ip"] != "::1")
            .cloned()
            .collect();
        (proxies.len() == n && proxies.iter().all(|p| p["connected"] == true)).then_some(())
    })
    .await;
    assert!(
        ready.is_some(),
        "signaling server not connected to {n} proxies"
    );
}

/// The `[mcu]` (proxy at `proxy_url`, `mcu_extra` appended) and `[grpc]`
/// settings of a cluster node listening for gRPC on `own`, with every
/// node's gRPC port as targets.
pub fn cluster_node_config(
    proxy_url: &str,
    key_file: &std::path::Path,
    own: u16,
    grpc_ports: &[u16],
    mcu_extra: &str,
) -> String {
    let targets: Vec<String> = grpc_ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    format!(
        "{}{mcu_extra}[grpc]\nlisten = 127.0.0.1:{own}\ntargets = {}\n",
        mcu_config(proxy_url, key_file),
        targets.join(", ")
    )
}

/// Waits (up to 20 s) until `node` is connected to its proxy and to a
/// gRPC peer; panics otherwise.
pub async fn wait_cluster_node_ready(node: &crate::server::TestServer) {
    let ready = crate::wait::eventually(Duration::from_secs(20), || async {
        let info = node.serverinfo().await;
        (info["sfu"]["proxies"][0]["connected"] == true && info["grpc"][0]["connected"] == true)
            .then_some(())
    })
    .await;
    assert!(ready.is_some(), "node not ready");
}
