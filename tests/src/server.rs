//! Starts the real `signaling` binary with a generated `server.conf`.

use std::process::Command;
use std::time::Duration;

use crate::process::{free_port, target_bin, ChildGuard};
use crate::talk::Talk;
use crate::wait::eventually;

pub const TALK_SECRET: &str = "the-shared-secret-of-talk";
pub const INTERNAL_SECRET: &str = "the-shared-secret-for-internal-clients";

/// Builder for a test server; `start` waits until it answers.
pub struct TestServerBuilder {
    backend_url: Option<String>,
    backend_timeout: u64,
    internal_secret: Option<String>,
    extra: String,
    port: Option<u16>,
    nats: Option<String>,
    env: Vec<(String, String)>,
}

pub struct TestServer {
    pub port: u16,
    pub process: ChildGuard,
}

impl TestServer {
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder {
            backend_url: None,
            backend_timeout: 2,
            internal_secret: Some(INTERNAL_SECRET.into()),
            extra: String::new(),
            port: None,
            nats: None,
            env: Vec::new(),
        }
    }

    /// `ws://127.0.0.1:port/spreed`
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/spreed", self.port)
    }

    /// `http://127.0.0.1:port/`
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// `/api/v1/serverinfo`, or `Null` if it cannot be read.
    pub async fn serverinfo(&self) -> serde_json::Value {
        get_json(&format!("{}api/v1/serverinfo", self.http_url())).await
    }

    /// One value of `/metrics`.
    pub async fn metric(&self, line_prefix: &str) -> f64 {
        metric(&self.http_url(), line_prefix).await
    }

    /// See [`metrics_text`].
    pub async fn metrics_text(&self) -> String {
        metrics_text(&self.http_url()).await
    }

    /// See [`metric_sum`].
    pub async fn metric_sum(&self, line_prefix: &str) -> f64 {
        metric_sum(&self.http_url(), line_prefix).await
    }

    /// Waits until `count` failed backend notifications have been recorded
    /// by the brute-force throttle (each is answered only after its delay).
    pub async fn throttled_notifications(&self, count: usize) {
        let recorded = crate::wait::eventually(crate::wait::STEP, || async {
            let n = self
                .metric_sum("signaling_throttle_delayed_total{action=\"BackendRoomAuth\"")
                .await;
            (n >= count as f64).then_some(())
        })
        .await;
        assert!(recorded.is_some(), "{count} failures not recorded");
    }

    /// Rewrites `server.conf` with `edit` applied and sends SIGHUP.
    pub fn reload(&self, edit: impl FnOnce(&str) -> String) {
        let path = self.process.dir.path().join("server.conf");
        let old = std::fs::read_to_string(&path).expect("read server.conf");
        std::fs::write(&path, edit(&old)).expect("write server.conf");
        self.process.signal(1);
    }

    /// Waits until the server is connected to its Janus.
    pub async fn wait_sfu_connected(&self) {
        let ok = eventually(Duration::from_secs(20), || async {
            (self.serverinfo().await["sfu"]["janus"]["connected"] == true).then_some(())
        })
        .await;
        assert!(ok.is_some(), "server did not connect to janus");
    }
}

/// GET `url` as JSON; `Null` when that fails.
pub async fn get_json(url: &str) -> serde_json::Value {
    let resp = match reqwest::get(url).await {
        Ok(r) => r,
        Err(_) => return serde_json::Value::Null,
    };
    resp.json().await.unwrap_or(serde_json::Value::Null)
}

/// The value of the `/metrics` line of `base_url` starting with
/// `line_prefix` (name and labels and a space); 0 when absent.
pub async fn metric(base_url: &str, line_prefix: &str) -> f64 {
    metric_in(&metrics_text(base_url).await, line_prefix)
}

/// The `/metrics` page of `base_url`; empty when it cannot be read.
pub async fn metrics_text(base_url: &str) -> String {
    match reqwest::get(format!("{base_url}metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The sum of every `/metrics` line of `base_url` starting with
/// `line_prefix` (a name and the first labels): one counter across the
/// values of its other labels.
pub async fn metric_sum(base_url: &str, line_prefix: &str) -> f64 {
    metrics_text(base_url)
        .await
        .lines()
        .filter(|l| l.starts_with(line_prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// [`metric`] on text already fetched.
pub fn metric_in(text: &str, line_prefix: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

impl TestServerBuilder {
    /// Configures the emulator as the only backend.
    pub fn talk(mut self, talk: &Talk) -> Self {
        self.backend_url = Some(talk.url());
        self
    }

    pub fn backend_timeout_secs(mut self, secs: u64) -> Self {
        self.backend_timeout = secs;
        self
    }

    pub fn no_internal_secret(mut self) -> Self {
        self.internal_secret = None;
        self
    }

    /// Use this NATS server instead of the in-process bus.
    pub fn nats(mut self, url: &str) -> Self {
        self.nats = Some(url.to_owned());
        self
    }

    /// Listen on this port (to restart a server where it was).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// An environment variable of the server process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Raw INI text appended to the generated config.
    pub fn extra(mut self, ini: &str) -> Self {
        self.extra.push_str(ini);
        self
    }

    fn config(&self, port: u16) -> String {
        let mut c = format!(
            "[http]\nlisten = 127.0.0.1:{port}\n\n[sessions]\nhashkey = 0123456789abcdef0123456789abcdef\nblockkey = 0123456789abcdef\n\n[nats]\nurl = {}\n\n",
            self.nats.as_deref().unwrap_or("nats://loopback")
        );
        if let Some(s) = &self.internal_secret {
            c.push_str(&format!("[clients]\ninternalsecret = {s}\n\n"));
        }
        c.push_str(&format!("[backend]\ntimeout = {}\n", self.backend_timeout));
        if let Some(url) = &self.backend_url {
            c.push_str(&format!(
                "backends = talk\n\n[talk]\nurls = {url}\nsecret = {TALK_SECRET}\n\n"
            ));
        }
        c.push_str(&self.extra);
        c
    }

    pub async fn start(self) -> TestServer {
        let bin = target_bin("signaling");
        for _attempt in 0..5 {
            let port = self.port.unwrap_or_else(free_port);
            let dir = tempfile::tempdir().expect("temp dir");
            let config = dir.path().join("server.conf");
            std::fs::write(&config, self.config(port)).expect("write config");
            let mut cmd = Command::new(&bin);
            cmd.arg("--config")
                .arg(&config)
                .env("RUST_LOG", "signaling=debug,info")
                .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let mut process = ChildGuard::spawn("signaling", cmd, dir).expect("start signaling");
            let url = format!("http://127.0.0.1:{port}/api/v1/welcome");
            let client = reqwest::Client::new();
            let ready = eventually(Duration::from_secs(10), || {
                let req = client.get(&url).send();
                async { req.await.ok().filter(|r| r.status().is_success()) }
            })
            .await;
            if ready.is_some() {
                return TestServer { port, process };
            }
            if process.try_exit_status().is_none() {
                panic!("signaling did not become ready:\n{}", process.log_tail(40));
            }
            // Most likely the port was taken meanwhile: try another one.
        }
        panic!("signaling could not start on a free port");
    }
}

/// The usual test world as a tuple: Talk with alice and bob, the given
/// open rooms, and a server using it ([`crate::world::World`]).
pub async fn alice_and_bob(
    rooms: &[&str],
) -> (Talk, TestServer, crate::talk::User, crate::talk::User) {
    let mut b = crate::world::World::builder();
    for r in rooms {
        b = b.room(r);
    }
    let w = b.start().await;
    (w.talk, w.server, w.alice, w.bob)
}
