//! Mutation fuzzing of every wire parser in `proto` (see
//! `proto::fuzzing`): client and proxy messages, Nextcloud's requests and
//! OCS replies, server messages relayed from other servers, session ids
//! and hello tokens. Each must answer garbage with an error, never a
//! panic. Seeds are the files under `tests/corpus/<target>/`.

use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::Signer;
use proto::fuzzing::{run, run_str};

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().filter_map(|f| std::fs::read(f).ok()).collect();
    assert!(!seeds.is_empty(), "empty corpus {target}");
    seeds
}

fn fuzz_corpus(target: &str, f: impl FnMut(&[u8])) {
    let seeds = corpus(target);
    let refs: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
    run(target, &refs, f);
}

#[test]
fn fuzz_client_messages() {
    fuzz_corpus("client", |b| {
        let _ = proto::client::ClientMessage::decode(b);
    });
}

#[test]
fn fuzz_proxy_messages() {
    fuzz_corpus("proxy", |b| {
        let _ = proto::proxy::ClientMessage::decode(b);
        let _ = serde_json::from_slice::<proto::proxy::ServerMessage>(b);
    });
}

#[test]
fn fuzz_nextcloud_notifications() {
    fuzz_corpus("notify", |b| {
        let _ = serde_json::from_slice::<proto::talk::notify::RoomNotification>(b);
    });
}

#[test]
fn fuzz_ocs_replies() {
    fuzz_corpus("ocs", |b| {
        let ct = Some("application/json; charset=utf-8");
        let _ = proto::talk::ocs::decode_ocs::<proto::talk::request::BackendResponse>(ct, b);
        let _ = proto::talk::ocs::decode_ocs::<proto::talk::capabilities::CapabilitiesData>(ct, b);
    });
}

#[test]
fn fuzz_server_messages() {
    fuzz_corpus("server", |b| {
        let _ = serde_json::from_slice::<proto::server::ServerMessage>(b);
    });
}

#[test]
fn fuzz_session_ids() {
    let codec = proto::session_id::SessionIdCodec::new(
        b"0123456789abcdef0123456789abcdef",
        Some(b"0123456789abcdef"),
    )
    .expect("codec");
    let data = proto::session_id::SessionIdData {
        sid: 42,
        created: 1_700_000_000_000_000,
        backend_id: "backend-1".into(),
    };
    let public = codec.encode_public(&data);
    let private = codec.encode_private(&data);
    run_str("session_ids", &[public.as_str(), private.as_str()], |s| {
        let _ = codec.decode_public(s);
        let _ = codec.decode_private(s);
    });
}

#[test]
fn fuzz_hello_tokens() {
    let signing = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let key =
        proto::hello_token::TokenKey::parse(&STANDARD.encode(signing.verifying_key().to_bytes()))
            .expect("key");
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(
        br#"{"iss":"https://cloud.example.com/","sub":"alice","iat":1700000000,"exp":1900000000,"userdata":{"displayname":"Alice"}}"#,
    );
    let signed = format!("{header}.{claims}");
    let sig = URL_SAFE_NO_PAD.encode(signing.sign(signed.as_bytes()).to_bytes());
    let token = format!("{signed}.{sig}");
    assert!(proto::hello_token::verify(&token, &key, 1_800_000_000).is_ok());
    run_str("hello_tokens", &[&token], |t| {
        let _ = proto::hello_token::verify(t, &key, 1_800_000_000);
        let _ = proto::proxy_token::verify(t, |_| Some(key.clone()), 1_800_000_000);
    });
    run_str(
        "token_keys",
        &[
            &STANDARD.encode([1u8; 32]),
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n",
        ],
        |k| {
            let _ = proto::hello_token::TokenKey::parse(k);
        },
    );
}
