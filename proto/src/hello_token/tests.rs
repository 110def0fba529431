use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const SEED_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJodHRwczovL25leHRjbG91ZC1tYXN0ZXIubG9jYWwvIiwiaWF0IjoxNjU0ODQyMDgwLCJleHAiOjE2NTQ4NDIzODAsInN1YiI6ImFkbWluIiwidXNlcmRhdGEiOnsiZGlzcGxheW5hbWUiOiJBZG1pbmlzdHJhdG9yIn19.5rV0jh89_0fG2L-BUPtciu1q49PoYkLboj33EOdD0qQeYcvE7_di2r5WXM1WmKUCOGeX3hzn6qldDMrJBNuxvQ";
const SEED_KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEIoCsNSCXyxK25zvSKRio0uiBzwub
ONq3tiGTPZo3p2Ogn6wAhhsuSxbFuUQDWMX7Tsu9fDzVdwpRHPT4y3V9cA==
-----END PUBLIC KEY-----";

/// The example token and key of seed 004 verify, with the seed's claims.
#[test]
fn seed_example_token() {
    let key = TokenKey::parse(SEED_KEY).unwrap();
    assert!(matches!(key, TokenKey::P256(_)));
    let claims = verify(SEED_TOKEN, &key, 1_654_842_100).unwrap();
    assert_eq!(claims.subject, "admin");
    assert_eq!(
        claims.userdata.unwrap().get(),
        r#"{"displayname":"Administrator"}"#
    );
    assert_eq!(
        claims.issuer.as_deref(),
        Some("https://nextcloud-master.local/")
    );
    // Long after `exp`: expired.
    assert_eq!(
        verify(SEED_TOKEN, &key, 1_700_000_000).unwrap_err(),
        TokenError::Expired
    );
    // Before `iat` minus leeway: not valid yet.
    assert_eq!(
        verify(SEED_TOKEN, &key, 1_654_842_080 - 120).unwrap_err(),
        TokenError::NotValidYet
    );
    // Within the leeway both ways.
    assert!(verify(SEED_TOKEN, &key, 1_654_842_380 + 59).is_ok());
    assert!(verify(SEED_TOKEN, &key, 1_654_842_080 - 59).is_ok());
}

fn b64(v: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn ed_token(sk: &ed25519_dalek::SigningKey, alg: &str, claims: serde_json::Value) -> String {
    use ed25519_dalek::Signer;
    let msg = format!(
        "{}.{}",
        b64(&serde_json::json!({"alg": alg, "typ": "JWT"})),
        b64(&claims)
    );
    let sig = sk.sign(msg.as_bytes());
    format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

fn ed_key() -> (ed25519_dalek::SigningKey, TokenKey) {
    let sk = ed25519_dalek::SigningKey::from_bytes(&[42u8; 32]);
    let raw = base64::engine::general_purpose::STANDARD.encode(sk.verifying_key().to_bytes());
    (sk, TokenKey::parse(&raw).unwrap())
}

/// Nextcloud publishes Ed25519 keys as raw base64: they verify EdDSA tokens.
#[test]
fn ed25519_raw_key_and_claim_rules() {
    let (sk, key) = ed_key();
    let now = 1_800_000_000i64;
    let ok = ed_token(
        &sk,
        "EdDSA",
        serde_json::json!({"iat": now, "exp": now + 300, "sub": "alice"}),
    );
    assert_eq!(verify(&ok, &key, now).unwrap().subject, "alice");

    let anon = ed_token(
        &sk,
        "EdDSA",
        serde_json::json!({"iat": now, "exp": now + 300}),
    );
    assert_eq!(verify(&anon, &key, now).unwrap().subject, "");

    let no_iat = ed_token(&sk, "EdDSA", serde_json::json!({"exp": now + 300}));
    assert_eq!(
        verify(&no_iat, &key, now).unwrap_err(),
        TokenError::NotValidYet
    );
    let no_exp = ed_token(&sk, "EdDSA", serde_json::json!({"iat": now}));
    assert_eq!(verify(&no_exp, &key, now).unwrap_err(), TokenError::Expired);
    let exp_before_iat = ed_token(
        &sk,
        "EdDSA",
        serde_json::json!({"iat": now, "exp": now - 10}),
    );
    assert_eq!(
        verify(&exp_before_iat, &key, now).unwrap_err(),
        TokenError::Expired
    );
    let nbf_future = ed_token(
        &sk,
        "EdDSA",
        serde_json::json!({"iat": now, "nbf": now + 600, "exp": now + 900}),
    );
    assert_eq!(
        verify(&nbf_future, &key, now).unwrap_err(),
        TokenError::NotValidYet
    );
}

/// A forged signature is `invalid_token` even when the token is also expired:
/// signatures are checked first.
#[test]
fn forged_tokens_are_invalid() {
    let (sk, key) = ed_key();
    let other = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let now = 1_800_000_000i64;
    let forged = ed_token(
        &other,
        "EdDSA",
        serde_json::json!({"iat": now - 9999, "exp": now - 9000}),
    );
    let err = verify(&forged, &key, now).unwrap_err();
    assert_eq!(err, TokenError::Signature);
    assert_eq!(err.code(), ErrorCode::InvalidToken);

    // Tampered payload.
    let ok = ed_token(
        &sk,
        "EdDSA",
        serde_json::json!({"iat": now, "exp": now + 5, "sub": "a"}),
    );
    let parts: Vec<&str> = ok.split('.').collect();
    let evil = b64(&serde_json::json!({"iat": now, "exp": now + 5, "sub": "admin"}));
    let tampered = format!("{}.{}.{}", parts[0], evil, parts[2]);
    assert_eq!(
        verify(&tampered, &key, now).unwrap_err(),
        TokenError::Signature
    );

    // Disallowed algorithms.
    for alg in ["HS256", "none", "PS256"] {
        let t = ed_token(&sk, alg, serde_json::json!({"iat": now, "exp": now + 5}));
        assert_eq!(
            verify(&t, &key, now).unwrap_err(),
            TokenError::Algorithm(alg.into())
        );
    }
    // Algorithm that does not fit the key.
    let t = ed_token(
        &sk,
        "ES256",
        serde_json::json!({"iat": now, "exp": now + 5}),
    );
    assert_eq!(verify(&t, &key, now).unwrap_err(), TokenError::Signature);
    // Garbage.
    for g in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
        assert!(verify(g, &key, now).is_err());
    }
}

#[test]
fn rsa_and_p384_keys_verify() {
    use rsa::pkcs8::EncodePublicKey;
    use rsa::signature::{SignatureEncoding, Signer};
    let now = 1_800_000_000i64;
    let claims = serde_json::json!({"iat": now, "exp": now + 60, "sub": "bob"});

    let mut rng = rand::thread_rng();
    let rsa_sk = rsa::RsaPrivateKey::new(&mut rng, 1024).unwrap();
    let pem = rsa_sk
        .to_public_key()
        .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap();
    let key = TokenKey::parse(&pem).unwrap();
    for (alg, sig) in [
        ("RS256", {
            let msg = format!(
                "{}.{}",
                b64(&serde_json::json!({"alg":"RS256"})),
                b64(&claims)
            );
            let s =
                rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(rsa_sk.clone()).sign(msg.as_bytes());
            (msg, s.to_vec())
        }),
        ("RS512", {
            let msg = format!(
                "{}.{}",
                b64(&serde_json::json!({"alg":"RS512"})),
                b64(&claims)
            );
            let s =
                rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(rsa_sk.clone()).sign(msg.as_bytes());
            (msg, s.to_vec())
        }),
    ] {
        let token = format!("{}.{}", sig.0, URL_SAFE_NO_PAD.encode(&sig.1));
        assert_eq!(verify(&token, &key, now).unwrap().subject, "bob", "{alg}");
    }
    // PKCS#1 "RSA PUBLIC KEY" form parses too.
    use rsa::pkcs1::EncodeRsaPublicKey;
    let pkcs1 = rsa_sk
        .to_public_key()
        .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap();
    assert!(matches!(TokenKey::parse(&pkcs1).unwrap(), TokenKey::Rsa(_)));

    let p384_sk = p384::ecdsa::SigningKey::random(&mut rng);
    let pem = p384::PublicKey::from(p384_sk.verifying_key())
        .to_public_key_pem(p384::pkcs8::LineEnding::LF)
        .unwrap();
    let key = TokenKey::parse(&pem).unwrap();
    let msg = format!(
        "{}.{}",
        b64(&serde_json::json!({"alg":"ES384"})),
        b64(&claims)
    );
    let sig: p384::ecdsa::Signature = p384_sk.sign(msg.as_bytes());
    let token = format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()));
    assert_eq!(verify(&token, &key, now).unwrap().subject, "bob");
}

#[test]
fn bad_keys() {
    assert_eq!(
        TokenKey::parse("not base64!").unwrap_err(),
        KeyError::Base64
    );
    assert_eq!(
        TokenKey::parse("AAAA").unwrap_err(),
        KeyError::Ed25519Length
    );
    assert!(TokenKey::parse("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----").is_err());
}
