//! A real Janus 1.1 on a random loopback port, configured from the
//! templates in `deploy/janus/` (only the videoroom plugin and the
//! WebSocket transport; janus-events optional).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process::{free_port, ChildGuard};

pub struct Janus {
    /// `ws://127.0.0.1:port`, the `[mcu] url`.
    pub url: String,
    pub port: u16,
    pub process: ChildGuard,
}

/// How to start Janus.
#[derive(Default, Clone)]
pub struct JanusOptions {
    /// Where Janus sends janus-events (`ws://.../spreed`); none = off.
    pub events_url: Option<String>,
    /// The interface Janus puts into SDP and binds ICE to (`jv0` in the
    /// media namespace); none = loopback only, good for signaling tests.
    pub ice_interface: Option<String>,
    /// Restart on this port.
    pub port: Option<u16>,
}

fn template(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/janus")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

impl Janus {
    pub async fn start(opts: JanusOptions) -> Janus {
        for _ in 0..5 {
            let port = opts.port.unwrap_or_else(free_port);
            let dir = tempfile::tempdir().expect("temp dir");
            let d = dir.path().display().to_string();
            let fill = |text: String| {
                text.replace("@DIR@", &d)
                    .replace("@PORT@", &port.to_string())
                    .replace("@INTERFACE@", "127.0.0.1")
                    .replace(
                        "@ICE_ENFORCE@",
                        &opts
                            .ice_interface
                            .as_ref()
                            .map(|i| format!("ice_enforce_list = \"{i}\""))
                            .unwrap_or_default(),
                    )
                    .replace(
                        "@EVENTS@",
                        if opts.events_url.is_some() {
                            "true"
                        } else {
                            "false"
                        },
                    )
                    .replace(
                        "@WSEVH_DISABLE@",
                        if opts.events_url.is_some() {
                            ""
                        } else {
                            ",libjanus_wsevh.so"
                        },
                    )
                    .replace("@EVENTS_URL@", opts.events_url.as_deref().unwrap_or(""))
            };
            for name in [
                "janus.jcfg",
                "janus.transport.websockets.jcfg",
                "janus.plugin.videoroom.jcfg",
                "janus.eventhandler.wsevh.jcfg",
            ] {
                std::fs::write(dir.path().join(name), fill(template(name))).expect("write config");
            }
            let mut cmd = Command::new("janus");
            cmd.arg("-C")
                .arg(dir.path().join("janus.jcfg"))
                .arg("-F")
                .arg(dir.path())
                .args(["-o", "-D", "-d", "4"]);
            let mut process =
                ChildGuard::spawn("janus", cmd, dir).expect("janus is installed (scripts/test.sh)");
            let url = format!("ws://127.0.0.1:{port}");
            let ready = crate::wait::eventually(Duration::from_secs(10), || {
                let url = url.clone();
                async move {
                    let gw = sfu_bridge::janus::Gateway::connect(&url, Duration::from_secs(1))
                        .await
                        .ok()?;
                    let info = gw.info().await.ok();
                    gw.close();
                    info
                }
            })
            .await;
            if ready.is_some() {
                return Janus { url, port, process };
            }
            if process.try_exit_status().is_none() {
                panic!("janus did not become ready:\n{}", process.log_tail(40));
            }
        }
        panic!("janus could not start on a free port");
    }
}

impl Janus {
    /// The videoroom rooms Janus has, seen through a separate connection.
    pub async fn rooms(&self) -> Vec<serde_json::Value> {
        let gw = sfu_bridge::janus::Gateway::connect(&self.url, Duration::from_secs(5))
            .await
            .expect("connect to janus");
        let session = gw.create_session().await.expect("janus session");
        let (handle, _) = session
            .attach("janus.plugin.videoroom")
            .await
            .expect("videoroom handle");
        let list = handle
            .request_sync(serde_json::json!({"request": "list"}))
            .await
            .expect("list rooms");
        let _ = session.destroy().await;
        gw.close();
        list["list"].as_array().cloned().unwrap_or_default()
    }

    /// Participants in all videoroom rooms.
    pub async fn participants(&self) -> u64 {
        self.rooms()
            .await
            .iter()
            .map(|r| r["num_participants"].as_u64().unwrap_or(0))
            .sum()
    }
}
