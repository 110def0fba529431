//! Tokens between signaling servers and proxies (cluster facts 6.3): RS256
//! JWTs whose `iss` names the key, with `iat` and no `exp`; a token is
//! valid for five minutes (plus a minute of leeway) after `iat`. The
//! subject is empty for connection tokens and the publisher id for
//! tokens that allow subscribing to one publisher remotely.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

use crate::hello_token::{split, verify_signature, TokenError, TokenKey, LEEWAY_SECS};

/// How long after `iat` a token is accepted (before leeway).
pub const MAX_AGE_SECS: i64 = 5 * 60;

/// Why a proxy token was refused; [`ProxyTokenError::reason`] is the label
/// of `signaling_proxy_token_errors_total`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyTokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("signing method is not RS256/RS384/RS512")]
    UnsupportedMethod,
    #[error("no key for issuer")]
    UnknownIssuer,
    #[error("signature verification failed")]
    Signature,
    #[error("token is expired")]
    Expired,
    #[error("token is not valid yet")]
    NotValidYet,
}

impl ProxyTokenError {
    pub fn reason(&self) -> &'static str {
        match self {
            ProxyTokenError::UnsupportedMethod => "unsupported-signing-method",
            ProxyTokenError::UnknownIssuer => "unsupported-issuer",
            ProxyTokenError::Expired => "expired",
            ProxyTokenError::NotValidYet => "not-valid-yet",
            _ => "auth-failed",
        }
    }

    /// The error code the client gets.
    pub fn code(&self) -> crate::error::ErrorCode {
        use crate::error::ErrorCode;
        match self {
            ProxyTokenError::Expired => ErrorCode::TokenExpired,
            ProxyTokenError::NotValidYet => ErrorCode::TokenNotValidYet,
            _ => ErrorCode::AuthFailed,
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iss: String,
    #[serde(default)]
    sub: String,
    #[serde(default)]
    iat: Option<f64>,
}

/// What a verified token says.
#[derive(Debug, PartialEq, Eq)]
pub struct ProxyClaims {
    pub issuer: String,
    pub subject: String,
}

/// Verifies `token` with the key `key_for(issuer)` finds, at Unix time
/// `now`.
pub fn verify(
    token: &str,
    key_for: impl FnOnce(&str) -> Option<TokenKey>,
    now: i64,
) -> Result<ProxyClaims, ProxyTokenError> {
    let jwt = split(token).map_err(|_| ProxyTokenError::Malformed)?;
    if !matches!(jwt.alg.as_str(), "RS256" | "RS384" | "RS512") {
        return Err(ProxyTokenError::UnsupportedMethod);
    }
    let claims: Claims =
        serde_json::from_slice(&jwt.payload).map_err(|_| ProxyTokenError::Malformed)?;
    let key = key_for(&claims.iss).ok_or(ProxyTokenError::UnknownIssuer)?;
    if !matches!(key, TokenKey::Rsa(_)) {
        return Err(ProxyTokenError::UnsupportedMethod);
    }
    verify_signature(&jwt.alg, &key, jwt.signed, &jwt.signature).map_err(|e| match e {
        TokenError::Signature => ProxyTokenError::Signature,
        _ => ProxyTokenError::Malformed,
    })?;
    let Some(iat) = claims.iat else {
        return Err(ProxyTokenError::Malformed);
    };
    let now = now as f64;
    if iat > now + LEEWAY_SECS as f64 {
        return Err(ProxyTokenError::NotValidYet);
    }
    if iat < now - (MAX_AGE_SECS + LEEWAY_SECS) as f64 {
        return Err(ProxyTokenError::Expired);
    }
    Ok(ProxyClaims {
        issuer: claims.iss,
        subject: claims.sub,
    })
}

/// The unverified `iss` of a token, to find the key that verifies it.
pub fn issuer(token: &str) -> Option<String> {
    let jwt = split(token).ok()?;
    let claims: Claims = serde_json::from_slice(&jwt.payload).ok()?;
    Some(claims.iss)
}

/// Signs a token as a signaling server (or a proxy for remote streams)
/// does: RS256, `iss` = `token_id`, `iat` = `now`, `sub` when given.
/// An RSA private key in PEM (PKCS#1 or PKCS#8), as `token_key` names it.
pub fn read_private_key(path: &std::path::Path) -> Result<rsa::RsaPrivateKey, String> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    let pem = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    rsa::RsaPrivateKey::from_pkcs1_pem(&pem)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs8_pem(&pem))
        .map_err(|_| "not an RSA private key in PEM".to_owned())
}

pub fn sign(
    token_id: &str,
    subject: Option<&str>,
    key: &rsa::RsaPrivateKey,
    now: i64,
) -> Result<String, rsa::signature::Error> {
    use rsa::signature::{SignatureEncoding, Signer};
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let mut claims = serde_json::json!({"iss": token_id, "iat": now});
    if let Some(sub) = subject.filter(|s| !s.is_empty()) {
        claims["sub"] = sub.into();
    }
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{header}.{payload}");
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.clone());
    let sig = signer.try_sign(signed.as_bytes())?;
    Ok(format!(
        "{signed}.{}",
        URL_SAFE_NO_PAD.encode(sig.to_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (rsa::RsaPrivateKey, TokenKey) {
        let mut rng = rand::thread_rng();
        let private = rsa::RsaPrivateKey::new(&mut rng, 1024).unwrap();
        let public = TokenKey::Rsa(private.to_public_key());
        (private, public)
    }

    #[test]
    fn round_trip_and_failures() {
        let (private, public) = keys();
        let now = 1_700_000_000;
        let token = sign("server1", Some("pub-1"), &private, now).unwrap();
        let key = |iss: &str| (iss == "server1").then(|| public.clone());
        let claims = verify(&token, key, now + 10).unwrap();
        assert_eq!(claims.subject, "pub-1");
        assert_eq!(claims.issuer, "server1");

        assert_eq!(
            verify(&token, |_| None, now).unwrap_err(),
            ProxyTokenError::UnknownIssuer
        );
        assert_eq!(
            verify(&token, key, now + 7 * 60).unwrap_err(),
            ProxyTokenError::Expired
        );
        assert_eq!(
            verify(&token, key, now - 5 * 60).unwrap_err(),
            ProxyTokenError::NotValidYet
        );
        let (other, _) = keys();
        let forged = sign("server1", None, &other, now).unwrap();
        assert_eq!(
            verify(&forged, key, now).unwrap_err(),
            ProxyTokenError::Signature
        );
        let hs = format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#),
            URL_SAFE_NO_PAD.encode(br#"{"iss":"server1","iat":1}"#)
        );
        assert_eq!(
            verify(&hs, key, now).unwrap_err(),
            ProxyTokenError::UnsupportedMethod
        );
        assert_eq!(
            verify("garbage", key, now).unwrap_err(),
            ProxyTokenError::Malformed
        );
    }
}
