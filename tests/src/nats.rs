//! A real `nats-server` on a random loopback port.

use std::process::Command;
use std::time::Duration;

use crate::process::ChildGuard;

pub struct NatsServer {
    pub url: String,
    pub process: ChildGuard,
}

impl NatsServer {
    /// Starts nats-server; panics with its log if it does not come up.
    pub async fn start() -> NatsServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = Command::new("nats-server");
        cmd.args([
            "-a",
            "127.0.0.1",
            "-p",
            "-1",
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
