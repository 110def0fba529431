//! TURN REST credentials (`GET /turn/credentials`, the reference's answer
//! to draft-uberti-behave-turn-rest): Janus asks with `[turn] apikey` and
//! gets a username valid for a day and its HMAC-SHA1 password under the
//! secret it shares with the TURN server (coturn's `use-auth-secret`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::config::TurnConfig;

/// How long credentials are valid (the reference's fixed 24 h).
pub const VALIDITY: Duration = Duration::from_secs(24 * 60 * 60);
/// Length of the username made up when the caller sends none.
const RANDOM_USERNAME: usize = 32;

/// The JSON answer.
#[derive(Debug, Serialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub ttl: u64,
    pub uris: Vec<String>,
}

/// Why a request is refused, with the reference's status and text.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// 400: `service` is not `turn` or no key was sent.
    BadRequest,
    /// 403: wrong key.
    Forbidden,
    /// 404: no `[turn] servers`.
    NoServers,
}

impl Refused {
    pub fn status(&self) -> u16 {
        match self {
            Refused::BadRequest => 400,
            Refused::Forbidden => 403,
            Refused::NoServers => 404,
        }
    }

    pub fn text(&self) -> &'static str {
        match self {
            Refused::BadRequest => "Invalid service and/or key sent.\n",
            Refused::Forbidden => "Not allowed to access this service.\n",
            Refused::NoServers => "No TURN servers available.\n",
        }
    }
}

/// `username:password` for `username`, expiring `valid` after `now`.
pub fn credentials_at(
    username: &str,
    secret: &[u8],
    now: SystemTime,
    valid: Duration,
) -> (String, String) {
    let expires = now
        .checked_add(valid)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let username = format!("{expires}:{username}");
    // HMAC accepts keys of any length.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|e| unreachable!("HMAC key of any length: {e}"));
    mac.update(username.as_bytes());
    let password = STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

/// Answers a request with query parameters `service`, `username` and
/// `key` (or `api`, which Janus sends).
pub fn answer(
    config: &TurnConfig,
    service: Option<&str>,
    username: Option<&str>,
    key: Option<&str>,
) -> Result<Credentials, Refused> {
    let key = key.filter(|k| !k.is_empty()).ok_or(Refused::BadRequest)?;
    if service != Some("turn") {
        return Err(Refused::BadRequest);
    }
    let expected = config.api_key.expose().as_bytes();
    if expected.is_empty() || !bool::from(expected.ct_eq(key.as_bytes())) {
        return Err(Refused::Forbidden);
    }
    if config.servers.is_empty() {
        return Err(Refused::NoServers);
    }
    let username = match username.filter(|u| !u.is_empty()) {
        Some(u) => u.to_owned(),
        None => {
            use rand::distributions::{Alphanumeric, DistString};
            Alphanumeric.sample_string(&mut rand::thread_rng(), RANDOM_USERNAME)
        }
    };
    let (username, password) = credentials_at(
        &username,
        config.secret.expose().as_bytes(),
        SystemTime::now(),
        VALIDITY,
    );
    Ok(Credentials {
        username,
        password,
        ttl: VALIDITY.as_secs(),
        uris: config.servers.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn config() -> TurnConfig {
        TurnConfig {
            api_key: Secret::new("the-api-key"),
            secret: Secret::new("the-turn-secret"),
            servers: vec!["turn:turn.example:3478?transport=udp".into()],
        }
    }

    /// The value coturn computes for `use-auth-secret`: base64 of
    /// HMAC-SHA1(secret, "<expiry>:<user>"), checked against `openssl`'s
    /// `echo -n 1700086400:alice | openssl dgst -sha1 -hmac the-turn-secret -binary | base64`.
    #[test]
    fn password_is_coturns_hmac() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let (user, password) = credentials_at("alice", b"the-turn-secret", now, VALIDITY);
        assert_eq!(user, "1700086400:alice");
        assert_eq!(password, "enqpML6KQ/03OMM+PpXLJSaZzfk=");
    }

    #[test]
    fn refusals() {
        let c = config();
        let ask = |s, k| answer(&c, s, Some("u"), k).map(|_| ());
        assert_eq!(ask(Some("turn"), None), Err(Refused::BadRequest));
        assert_eq!(
            ask(Some("stun"), Some("the-api-key")),
            Err(Refused::BadRequest)
        );
        assert_eq!(ask(Some("turn"), Some("wrong")), Err(Refused::Forbidden));
        let empty = TurnConfig {
            servers: Vec::new(),
            ..config()
        };
        assert_eq!(
            answer(&empty, Some("turn"), None, Some("the-api-key")).map(|_| ()),
            Err(Refused::NoServers)
        );
        let ok = answer(&c, Some("turn"), None, Some("the-api-key")).unwrap();
        assert_eq!(ok.ttl, 86400);
        assert_eq!(ok.uris, c.servers);
        let (_, random) = ok.username.split_once(':').unwrap();
        assert_eq!(random.len(), RANDOM_USERNAME);
    }
}
