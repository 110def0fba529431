//! A real `nats-server` on a random loopback port.

use std::process::Command;
use std::time::Duration;

use crate::process::ChildGuard;

pub struct NatsServer {
    pub url: String,
    pub process: ChildGuard,
}

impl NatsServer {
    /// Starts nats-server on a random port; panics with its log if it does
    /// not come up.
    pub async fn start() -> NatsServer {
        Self::start_port("-1").await
    }

    /// Starts nats-server on `port` (to restart one where it was).
    pub async fn start_on(port: u16) -> NatsServer {
        Self::start_port(&port.to_string()).await
    }

    async fn start_port(port: &str) -> NatsServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = Command::new("nats-server");
        cmd.args([
            "-a",
            "127.0.0.1",
            "-p",
            port,
            "-m",
            "-1",
            "--ports_file_dir",
        ])
        .arg(dir.path());
        let process = ChildGuard::spawn("nats-server", cmd, dir)
            .expect("nats-server is installed (scripts/test.sh installs it)");
        let pid = process.pid().unwrap_or(0);
        let ports = process.dir.path().join(format!("nats-server_{pid}.ports"));
        let url = crate::wait::eventually(Duration::from_secs(10), || {
            let text = std::fs::read_to_string(&ports).ok();
            async move {
                let v: serde_json::Value = serde_json::from_str(&text?).ok()?;
                v["nats"][0].as_str().map(str::to_owned)
            }
        })
        .await
        .unwrap_or_else(|| panic!("nats-server did not start:\n{}", process.log_tail(20)));
        NatsServer { url, process }
    }
}
