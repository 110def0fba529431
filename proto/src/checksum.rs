//! `Spreed-Signaling-Checksum` (facts 2.2, 3.3) and the internal-client token
//! (facts 1.5.5): both are lowercase hex HMAC-SHA256 values, compared in
//! constant time.

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

pub const HEADER_RANDOM: &str = "Spreed-Signaling-Random";
pub const HEADER_CHECKSUM: &str = "Spreed-Signaling-Checksum";
pub const HEADER_BACKEND: &str = "Spreed-Signaling-Backend";
pub const HEADER_FEATURES: &str = "X-Spreed-Signaling-Features";

/// Minimum length of the `random` of an internal hello.
pub const INTERNAL_RANDOM_MIN_LEN: usize = 32;

fn hmac_hex(secret: &[u8], parts: &[&[u8]]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any size"),
    };
    for p in parts {
        mac.update(p);
    }
    hex::encode(mac.finalize().into_bytes())
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Checksum of a backend request: HMAC-SHA256(secret, random ‖ body).
pub fn backend_checksum(secret: &[u8], random: &str, body: &[u8]) -> String {
    hmac_hex(secret, &[random.as_bytes(), body])
}

/// Verifies a backend request checksum in constant time. The header is
/// compared case-insensitively in hex, as Talk may send either case.
pub fn verify_backend_checksum(secret: &[u8], random: &str, body: &[u8], checksum: &str) -> bool {
    let expected = backend_checksum(secret, random, body);
    ct_eq(&expected, &checksum.to_ascii_lowercase())
}

/// The token an internal client sends: HMAC-SHA256(secret, random).
pub fn internal_token(secret: &[u8], random: &str) -> String {
    hmac_hex(secret, &[random.as_bytes()])
}

/// Checks an internal hello: `random` of at least 32 characters and the
/// matching token.
pub fn verify_internal_token(secret: &[u8], random: &str, token: &str) -> bool {
    random.len() >= INTERNAL_RANDOM_MIN_LEN && ct_eq(&internal_token(secret, random), token)
}

/// A fresh `Spreed-Signaling-Random`: 64 characters of the base32 alphabet,
/// like upstream.
pub fn new_random() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::thread_rng();
    (0..64)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test vector of seed 002 / facts 10.1.
    #[test]
    fn seed_checksum_vector() {
        let body = br#"{"type":"auth","auth":{"version":"1.0","params":{"hello":"world"}}}"#;
        let random = "afb6b872ab03e3376b31bf0af601067222ff7990335ca02d327071b73c0119c6";
        let sum = backend_checksum(b"MySecretValue", random, body);
        assert_eq!(
            sum,
            "3c4a69ff328299803ac2879614b707c807b4758cf19450755c60656cac46e3bc"
        );
        assert!(verify_backend_checksum(
            b"MySecretValue",
            random,
            body,
            &sum
        ));
        assert!(verify_backend_checksum(
            b"MySecretValue",
            random,
            body,
            &sum.to_uppercase()
        ));
        assert!(!verify_backend_checksum(b"OtherSecret", random, body, &sum));
        assert!(!verify_backend_checksum(
            b"MySecretValue",
            random,
            b"{}",
            &sum
        ));
        assert!(!verify_backend_checksum(b"MySecretValue", random, body, ""));
    }

    /// Test vector of facts 10.2.
    #[test]
    fn internal_token_vector() {
        let secret = b"the-shared-secret-for-internal-clients";
        let random = "0123456789abcdef0123456789abcdef";
        let token = "3169f650a52079a9efe77cc6f9af23f56cb9b53258348ae83b3e69849c78b805";
        assert_eq!(internal_token(secret, random), token);
        assert!(verify_internal_token(secret, random, token));
        assert!(!verify_internal_token(
            secret,
            "short",
            &internal_token(secret, "short")
        ));
        assert!(!verify_internal_token(b"wrong", random, token));
    }

    #[test]
    fn random_is_64_base32_chars() {
        let r = new_random();
        assert_eq!(r.len(), 64);
        assert!(r
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
        assert_ne!(r, new_random());
    }
}
