//! `--check-config` of both binaries: every error named by section and
//! key with a non-zero exit, or the effective configuration with secrets
//! masked.

use std::process::{Command, Output};

use tests::process::target_bin;

fn check(bin: &str, text: &str) -> (Output, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.conf");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(target_bin(bin))
        .arg("--config")
        .arg(&path)
        .arg("--check-config")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

#[test]
fn server_reports_every_error() {
    let (out, _, stderr) = check(
        "signaling",
        "[http]\nlisten = 127.0.0.1:99999\nreadtimeout = soon\n\
         [app]\ndebug = maybe\n[stats]\nallowed_ips = not-a-net\n\
         [backend]\nbackends = b1\n[b1]\nurls = http://nc.example\nsecret = the-backend-secret\n",
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for expected in [
        "[http] listen: invalid address \"127.0.0.1:99999\"",
        "[http] readtimeout: not an integer",
        "[app] debug: not a boolean",
        "[stats] allowed_ips",
        // The missing hashkey comes last, after everything else was checked.
        "[sessions] hashkey: required",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected:?} missing in\n{stderr}"
        );
    }
    assert!(!stderr.contains("the-backend-secret"), "{stderr}");
}

#[test]
fn server_prints_the_configuration_with_secrets_masked() {
    let secrets = [
        "0123456789abcdef0123456789abcdef",
        "the-backend-secret",
        "the-internal-secret",
        "the-turn-secret",
        "the-turn-apikey",
        "the-geoip-license",
    ];
    let (out, stdout, stderr) = check(
        "signaling",
        &format!(
            "[http]\nlisten = 127.0.0.1:8080\n[sessions]\nhashkey = {}\n\
             [clients]\ninternalsecret = {}\n[backend]\nbackends = b1\n\
             [b1]\nurls = http://nc.example\nsecret = {}\n\
             [turn]\nsecret = {}\napikey = {}\nservers = turn:turn.example:3478\n\
             [geoip]\nlicense = {}\n[app]\nshutdowngrace = 30\n",
            secrets[0], secrets[2], secrets[1], secrets[3], secrets[4], secrets[5]
        ),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("configuration OK"), "{stderr}");
    for s in secrets {
        assert!(!stdout.contains(s), "{s} printed:\n{stdout}");
        assert!(!stderr.contains(s), "{s} printed:\n{stderr}");
    }
    assert!(stdout.contains("Secret(<redacted>)"), "{stdout}");
    assert!(stdout.contains("http://nc.example"), "{stdout}");
    assert!(stdout.contains("shutdown_grace: 30s"), "{stdout}");
}

#[test]
fn server_checks_the_files_it_names() {
    let (out, _, stderr) = check(
        "signaling",
        "[http]\nlisten = 127.0.0.1:8080\n[sessions]\nhashkey = 0123456789abcdef\n\
         [mcu]\ntype = proxy\nurl = https://proxy.example\ntoken_id = server1\n\
         token_key = /nonexistent/key.pem\n\
         [grpc]\nlisten = 127.0.0.1:9090\nservercertificate = /nonexistent/cert.pem\n",
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("[mcu] token_key: /nonexistent/key.pem"),
        "{stderr}"
    );
    assert!(
        stderr.contains("[grpc] servercertificate: /nonexistent/cert.pem"),
        "{stderr}"
    );
}

#[test]
fn proxy_reports_every_error() {
    let (out, _, stderr) = check(
        "signaling-proxy",
        "[http]\nlisten = 127.0.0.1:x\n[app]\ncountry = xyz\n",
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for expected in [
        "[http] listen: invalid address",
        "[app] country: invalid country",
        "[mcu] url: required",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected:?} missing in\n{stderr}"
        );
    }

    let (out, _, stderr) = check(
        "signaling-proxy",
        "[http]\nlisten = 127.0.0.1:9090\n[tokens]\nserver1 = /nonexistent/server1.pem\n\
         [mcu]\nurl = ws://127.0.0.1:8188\n",
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("[tokens] server1"), "{stderr}");

    let (out, stdout, stderr) = check(
        "signaling-proxy",
        "[http]\nlisten = 127.0.0.1:9090\n[mcu]\nurl = ws://127.0.0.1:8188\n",
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("ws://127.0.0.1:8188"), "{stdout}");
}

/// The proxy's etcd options in `[tokens]` are honoured with a warning.
#[test]
fn proxy_deprecated_tokens_etcd_options() {
    let (out, stdout, stderr) = check(
        "signaling-proxy",
        "[http]\nlisten = 127.0.0.1:9090\n[app]\ntokentype = etcd\n\
         [tokens]\nendpoints = http://127.0.0.1:2379\nkeyformat = /keys/%s\n\
         [mcu]\nurl = ws://127.0.0.1:8188\n",
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: [tokens] endpoints is deprecated: set it in [etcd] instead"),
        "{stderr}"
    );
    assert!(stdout.contains("http://127.0.0.1:2379"), "{stdout}");
}
