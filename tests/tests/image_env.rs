//! Users of the reference's container image can switch images: with
//! `--config-from-env` (our image's default) and no configuration file,
//! the server reads the reference image's environment variables, and
//! `CA_CERTIFICATES_FOLDER` adds trusted CAs as that image does.

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use tests::certs::Certs;
use tests::client::TestClient;
use tests::process::{free_port, target_bin, ChildGuard};
use tests::server::TALK_SECRET;
use tests::talk::Talk;
use tests::tls_front::TlsFront;
use tests::wait::eventually;

/// Starts the server from environment variables only; returns it and its
/// port.
async fn start(vars: &[(&str, String)]) -> (ChildGuard, u16) {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(target_bin("signaling"));
    cmd.arg("--config-from-env")
        .env("CONFIG", dir.path().join("server.conf"))
        .env("HTTP_LISTEN", format!("127.0.0.1:{port}"))
        .env("HASH_KEY", "0123456789abcdef0123456789abcdef")
        .env("BLOCK_KEY", "0123456789abcdef");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let process = ChildGuard::spawn("signaling", cmd, dir).unwrap();
    let url = format!("http://127.0.0.1:{port}/api/v1/welcome");
    let up = eventually(Duration::from_secs(10), || {
        let f = reqwest::get(url.clone());
        async move { f.await.ok().filter(|r| r.status().is_success()) }
    })
    .await;
    assert!(up.is_some(), "{}", process.log_tail(20));
    (process, port)
}

async fn hello(port: u16, backend_url: &str, talk: &Talk) -> serde_json::Value {
    let alice = talk.add_user("alice", "Alice");
    let (mut c, _) = TestClient::connect_url(&format!("ws://127.0.0.1:{port}/spreed")).await;
    let url = format!("{backend_url}ocs/v2.php/apps/spreed/api/v3/signaling/backend");
    let (_, reply) = c
        .hello_raw(json!({"version": "1.0", "auth": {"url": url, "params": {"userid": alice.id, "ticket": alice.ticket}}}))
        .await;
    reply
}

#[tokio::test]
async fn reference_image_variables() {
    let talk = Talk::start(TALK_SECRET).await;
    let (process, port) = start(&[
        ("BACKENDS", "talk".into()),
        ("BACKEND_TALK_URLS", talk.url()),
        ("BACKEND_TALK_SHARED_SECRET", TALK_SECRET.into()),
        ("INTERNAL_SHARED_SECRET_KEY", "internal".into()),
    ])
    .await;
    let reply = hello(port, &talk.url(), &talk).await;
    assert_eq!(reply["type"], "hello", "{reply}\n{}", process.log_tail(20));
    assert!(std::fs::read_to_string(process.log_path())
        .unwrap()
        .contains("built from environment variables"));
}

/// A Nextcloud behind a private CA, trusted through the folder.
#[tokio::test]
async fn ca_certificates_folder() {
    let certs = Certs::generate();
    let talk = Talk::start(TALK_SECRET).await;
    let talk_port = talk.addr.port();
    let front = TlsFront::start(&certs, talk_port).await;
    let nc = format!("https://127.0.0.1:{}/", front.port);
    let cas = tempfile::tempdir().unwrap();
    std::fs::copy(certs.path("ca.crt"), cas.path().join("internal-ca.crt")).unwrap();
    let vars = [
        ("BACKENDS", "nc".to_owned()),
        ("BACKEND_NC_URLS", nc.clone()),
        ("BACKEND_NC_SHARED_SECRET", TALK_SECRET.to_owned()),
    ];
    let (_untrusting, port) = start(&vars).await;
    assert_eq!(hello(port, &nc, &talk).await["type"], "error");
    let mut with_folder = vars.to_vec();
    with_folder.push(("CA_CERTIFICATES_FOLDER", cas.path().display().to_string()));
    let (_trusting, port) = start(&with_folder).await;
    let reply = hello(port, &nc, &talk).await;
    assert_eq!(reply["type"], "hello", "{reply}");
}

/// The images' HEALTHCHECK commands, as written in the Containerfile,
/// pass against a running server and fail once it is gone; the base
/// images are named in full (registries other than Docker's need that).
#[tokio::test]
async fn containerfile_healthcheck() {
    let file = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/container/Containerfile"),
    )
    .unwrap();
    for line in file.lines().filter(|l| l.starts_with("FROM ")) {
        let image = line.split_whitespace().nth(1).unwrap();
        assert!(
            image.starts_with("docker.io/") || !image.contains(':') && !image.contains('/'),
            "base image not fully qualified: {line}"
        );
    }
    let checks: Vec<String> = file
        .lines()
        .filter(|l| l.trim_start().starts_with("CMD [\"bash\""))
        .map(|l| {
            let json: Vec<String> =
                serde_json::from_str(l.trim_start().trim_start_matches("CMD ")).unwrap();
            json[2].clone()
        })
        .collect();
    assert_eq!(checks.len(), 2, "one HEALTHCHECK per image");
    let server_check = checks.iter().find(|c| c.contains("/8080")).unwrap();
    let talk = Talk::start(TALK_SECRET).await;
    let (mut process, port) = start(&[
        ("BACKENDS", "talk".into()),
        ("BACKEND_TALK_URLS", talk.url()),
        ("BACKEND_TALK_SHARED_SECRET", TALK_SECRET.into()),
    ])
    .await;
    let run = |cmd: &str| {
        Command::new("bash")
            .arg("-c")
            .arg(cmd.replace("/8080", &format!("/{port}")))
            .status()
            .unwrap()
            .success()
    };
    assert!(
        run(server_check),
        "healthcheck fails against a healthy server"
    );
    process.stop(Duration::from_secs(5));
    assert!(!run(server_check), "healthcheck passes without a server");
}
