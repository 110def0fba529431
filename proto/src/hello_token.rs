//! Hello v2 tokens (facts 1.5.4): JWTs signed by Nextcloud with RS*, ES* or
//! EdDSA and verified with the key Nextcloud publishes in its capabilities
//! (`config.signaling["hello-v2-token-key"]`).
//!
//! Verification is done here rather than with a generic JWT crate so that
//! every failure maps onto exactly the error code the reference sends
//! (`invalid_token`, `token_expired`, `token_not_valid_yet`), signatures are
//! checked before time claims, and ES512 and raw-base64 Ed25519 keys work.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::Deserialize;

use crate::error::ErrorCode;
use crate::RawJson;

/// Clock skew tolerated on `iat`, `nbf` and `exp`.
pub const LEEWAY_SECS: i64 = 60;

/// A public key that can verify hello tokens.
#[derive(Clone)]
pub enum TokenKey {
    Rsa(rsa::RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(Box<p521::ecdsa::VerifyingKey>),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            TokenKey::Rsa(_) => "RSA",
            TokenKey::P256(_) => "P-256",
            TokenKey::P384(_) => "P-384",
            TokenKey::P521(_) => "P-521",
            TokenKey::Ed25519(_) => "Ed25519",
        };
        write!(f, "TokenKey({kind})")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("not a PEM block")]
    NotPem,
    #[error("invalid base64 in key")]
    Base64,
    #[error("raw Ed25519 key must be 32 bytes")]
    Ed25519Length,
    #[error("unsupported or malformed public key")]
    Unsupported,
}

fn pem_der(pem: &str) -> Result<Vec<u8>, KeyError> {
    let mut body = String::new();
    let mut inside = false;
    for line in pem.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN ") {
            inside = true;
            continue;
        }
        if line.starts_with("-----END ") {
            if inside {
                return STANDARD
                    .decode(body.as_bytes())
                    .map_err(|_| KeyError::Base64);
            }
            break;
        }
        if inside && !line.contains(':') {
            body.push_str(line);
        }
    }
    Err(KeyError::NotPem)
}

impl TokenKey {
    /// Parses the capabilities value: raw standard-base64 Ed25519 key, or a
    /// PEM public key (PKIX, PKCS#1 RSA). The PEM label is not checked.
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        let s = s.trim();
        if !s.starts_with("-----BEGIN ") {
            let raw = STANDARD
                .decode(s.as_bytes())
                .map_err(|_| KeyError::Base64)?;
            let bytes: [u8; 32] = raw.try_into().map_err(|_| KeyError::Ed25519Length)?;
            return ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                .map(TokenKey::Ed25519)
                .map_err(|_| KeyError::Unsupported);
        }
        let der = pem_der(s)?;
        Self::from_der(&der)
    }

    fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        use ed25519_dalek::pkcs8::DecodePublicKey as _;
        use rsa::pkcs1::DecodeRsaPublicKey as _;
        if let Ok(k) = rsa::RsaPublicKey::from_public_key_der(der) {
            return Ok(TokenKey::Rsa(k));
        }
        if let Ok(k) = rsa::RsaPublicKey::from_pkcs1_der(der) {
            return Ok(TokenKey::Rsa(k));
        }
        if let Ok(k) = p256::PublicKey::from_public_key_der(der) {
            return Ok(TokenKey::P256(k.into()));
        }
        if let Ok(k) = p384::PublicKey::from_public_key_der(der) {
            return Ok(TokenKey::P384(k.into()));
        }
        if let Ok(k) = p521::PublicKey::from_public_key_der(der) {
            let vk = p521::ecdsa::VerifyingKey::from_affine(*k.as_affine())
                .map_err(|_| KeyError::Unsupported)?;
            return Ok(TokenKey::P521(Box::new(vk)));
        }
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_der(der) {
            return Ok(TokenKey::Ed25519(k));
        }
        Err(KeyError::Unsupported)
    }
}

/// The claims a verified hello token provides.
#[derive(Debug)]
pub struct HelloClaims {
    /// `sub`: the user id; empty for anonymous users.
    pub subject: String,
    /// `userdata`: arbitrary JSON shown to other participants.
    pub userdata: Option<RawJson>,
    pub issuer: Option<String>,
}

/// Why a token was refused; [`TokenError::code`] gives the wire code.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("signing algorithm {0:?} is not allowed")]
    Algorithm(String),
    #[error("signature verification failed")]
    Signature,
    #[error("token is expired")]
    Expired,
    #[error("token is not valid yet")]
    NotValidYet,
}

impl TokenError {
    pub fn code(&self) -> ErrorCode {
        match self {
            TokenError::Expired => ErrorCode::TokenExpired,
            TokenError::NotValidYet => ErrorCode::TokenNotValidYet,
            _ => ErrorCode::InvalidToken,
        }
    }
}

#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    alg: String,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    iat: Option<f64>,
    #[serde(default)]
    nbf: Option<f64>,
    #[serde(default)]
    exp: Option<f64>,
    #[serde(default)]
    userdata: Option<RawJson>,
}

pub(crate) fn verify_signature(
    alg: &str,
    key: &TokenKey,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), TokenError> {
    use rsa::signature::Verifier;
    let bad = |_| TokenError::Signature;
    match (alg, key) {
        ("RS256" | "RS384" | "RS512", TokenKey::Rsa(k)) => {
            let s = rsa::pkcs1v15::Signature::try_from(sig).map_err(bad)?;
            match alg {
                "RS256" => rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(k.clone())
                    .verify(msg, &s)
                    .map_err(bad),
                "RS384" => rsa::pkcs1v15::VerifyingKey::<sha2::Sha384>::new(k.clone())
                    .verify(msg, &s)
                    .map_err(bad),
                _ => rsa::pkcs1v15::VerifyingKey::<sha2::Sha512>::new(k.clone())
                    .verify(msg, &s)
                    .map_err(bad),
            }
        }
        ("ES256", TokenKey::P256(k)) => {
            let s = p256::ecdsa::Signature::from_slice(sig).map_err(bad)?;
            k.verify(msg, &s).map_err(bad)
        }
        ("ES384", TokenKey::P384(k)) => {
            let s = p384::ecdsa::Signature::from_slice(sig).map_err(bad)?;
            k.verify(msg, &s).map_err(bad)
        }
        ("ES512", TokenKey::P521(k)) => {
            let s = p521::ecdsa::Signature::from_slice(sig).map_err(bad)?;
            k.verify(msg, &s).map_err(bad)
        }
        ("EdDSA", TokenKey::Ed25519(k)) => {
            let s = ed25519_dalek::Signature::from_slice(sig).map_err(bad)?;
            k.verify_strict(msg, &s).map_err(bad)
        }
        // Algorithm and key type do not fit together.
        _ => Err(TokenError::Signature),
    }
}

/// The three parts of a compact JWT, decoded.
pub(crate) struct Jwt<'a> {
    pub alg: String,
    /// `header.payload`, what the signature covers.
    pub signed: &'a [u8],
    pub signature: Vec<u8>,
    pub payload: Vec<u8>,
}

/// Splits and decodes a JWT without verifying anything.
pub(crate) fn split(token: &str) -> Result<Jwt<'_>, TokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header: Header = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed)?;
    Ok(Jwt {
        alg: header.alg,
        signed: &token.as_bytes()[..h.len() + 1 + p.len()],
        signature: URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| TokenError::Malformed)?,
        payload: URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|_| TokenError::Malformed)?,
    })
}

/// Verifies `token` with `key` at Unix time `now` (seconds).
pub fn verify(token: &str, key: &TokenKey, now: i64) -> Result<HelloClaims, TokenError> {
    let jwt = split(token)?;
    if !matches!(
        jwt.alg.as_str(),
        "RS256" | "RS384" | "RS512" | "ES256" | "ES384" | "ES512" | "EdDSA"
    ) {
        return Err(TokenError::Algorithm(jwt.alg));
    }
    verify_signature(&jwt.alg, key, jwt.signed, &jwt.signature)?;
    let claims: Claims = serde_json::from_slice(&jwt.payload).map_err(|_| TokenError::Malformed)?;
    let now = now as f64;
    let leeway = LEEWAY_SECS as f64;
    if claims.exp.is_some_and(|exp| exp < now - leeway) {
        return Err(TokenError::Expired);
    }
    if claims.nbf.is_some_and(|nbf| nbf > now + leeway)
        || claims.iat.is_some_and(|iat| iat > now + leeway)
    {
        return Err(TokenError::NotValidYet);
    }
    let (Some(iat), exp) = (claims.iat, claims.exp) else {
        return Err(TokenError::NotValidYet);
    };
    match exp {
        None => return Err(TokenError::Expired),
        Some(exp) if exp < iat => return Err(TokenError::Expired),
        Some(_) => {}
    }
    Ok(HelloClaims {
        subject: claims.sub.unwrap_or_default(),
        userdata: claims.userdata,
        issuer: claims.iss,
    })
}

#[cfg(test)]
mod tests;
