//! Phone dialout requested by Nextcloud (facts 3.4.10): the request goes to
//! an internal client that announced `start-dialout`, whose answer decides
//! the HTTP reply.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use parking_lot::Mutex;
use proto::client::DialoutWire;
use proto::ids::RoomId;
use proto::server::{
    DialoutRequest, DialoutRequestBody, InternalServerMessage, ServerBody, ServerMessage,
};
use proto::talk::notify::RoomNotification;
use rand::Rng;
use serde_json::json;
use tokio::sync::oneshot;

use super::Hub;
use crate::backend::Backend;

/// How long one SIP bridge has to accept a dialout.
pub const DIALOUT_WAIT: Duration = Duration::from_secs(45);

/// Dialout requests waiting for their answer, by request id.
#[derive(Default)]
pub struct PendingDialouts {
    waiting: Mutex<std::collections::HashMap<String, oneshot::Sender<DialoutWire>>>,
}

fn error_body(code: &str, message: &str) -> String {
    json!({"type": "dialout", "dialout": {"error": {"code": code, "message": message}}}).to_string()
}

fn random_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::thread_rng();
    (0..32)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

fn valid_number(n: &str) -> bool {
    n.strip_prefix('+')
        .is_some_and(|d| d.len() >= 2 && d.bytes().all(|b| b.is_ascii_digit()))
}

impl Hub {
    /// Hands an internal client's dialout message to a waiting request.
    /// Returns it back when nobody waits for it or when it must also be
    /// processed (a status).
    pub(crate) fn answer_dialout(&self, id: Option<&str>, d: DialoutWire) -> Option<DialoutWire> {
        let Some(id) = id else { return Some(d) };
        let waiter = self.inner.dialouts.waiting.lock().remove(id);
        match waiter {
            None => Some(d),
            Some(tx) => {
                if d.kind == "error" {
                    let _ = tx.send(d);
                    None
                } else {
                    let copy = d.clone();
                    let _ = tx.send(d);
                    Some(copy)
                }
            }
        }
    }

    /// Internal clients that can dial out, for `/api/v1/serverinfo`.
    pub fn dialout_info(&self) -> Vec<serde_json::Value> {
        let mut list: Vec<_> = self
            .inner
            .sessions
            .all()
            .into_iter()
            .filter(|s| s.is_internal() && s.has_feature(proto::features::CLIENT_START_DIALOUT))
            .map(|s| json!({"sessionid": s.public_id, "connected": s.is_connected(), "features": s.features}))
            .collect();
        list.sort_by(|a, b| a["sessionid"].as_str().cmp(&b["sessionid"].as_str()));
        list
    }

    /// Processes a `dialout` notification; returns HTTP status and body.
    pub async fn dialout(
        &self,
        backend: &Arc<Backend>,
        room: &RoomId,
        n: RoomNotification,
        backend_header: Option<String>,
    ) -> (StatusCode, String) {
        let d = n.dialout.unwrap_or_default();
        if d.number.is_empty() {
            return (
                StatusCode::BAD_REQUEST,
                error_body("number_missing", "No number provided"),
            );
        }
        if !valid_number(&d.number) {
            return (
                StatusCode::BAD_REQUEST,
                error_body("invalid_number", "Expected E.164 number."),
            );
        }
        if room.is_empty() || !room.as_str().bytes().all(|b| b.is_ascii_digit()) {
            return (
                StatusCode::BAD_REQUEST,
                error_body("invalid_roomid", "The room id must be numeric."),
            );
        }
        let url = backend_header
            .map(|h| if h.ends_with('/') { h } else { format!("{h}/") })
            .filter(|h| backend.urls.iter().any(|u| h.starts_with(u.as_str())))
            .or_else(|| backend.urls.first().cloned())
            .unwrap_or_default();
        let candidates: Vec<_> = self
            .inner
            .sessions
            .all()
            .into_iter()
            .filter(|s| {
                s.is_internal()
                    && s.has_feature(proto::features::CLIENT_START_DIALOUT)
                    && s.is_connected()
                    && s.room().is_none()
                    && s.backend.id == backend.id
            })
            .collect();
        if candidates.is_empty() {
            return (
                StatusCode::NOT_FOUND,
                error_body(
                    "no_client_available",
                    "No available client found to trigger dialout.",
                ),
            );
        }
        let mut first_error: Option<serde_json::Value> = None;
        for c in candidates {
            let id = random_id();
            let (tx, rx) = oneshot::channel();
            self.inner.dialouts.waiting.lock().insert(id.clone(), tx);
            let request = ServerMessage::reply(
                Some(id.clone()),
                ServerBody::Internal {
                    internal: InternalServerMessage {
                        kind: "dialout".into(),
                        dialout: Some(DialoutRequest {
                            roomid: room.0.clone(),
                            backend: url.clone(),
                            request: DialoutRequestBody {
                                number: d.number.clone(),
                                options: d.options.clone(),
                            },
                        }),
                    },
                },
            );
            let error = if !c.is_connected() {
                json!({"code": "error_notify", "message": "Could not notify about new dialout."})
            } else {
                c.send(&request);
                match tokio::time::timeout(DIALOUT_WAIT, rx).await {
                    Ok(Ok(reply)) => match (reply.kind.as_str(), reply.status, reply.error) {
                        ("status", Some(status), _) => {
                            let st: serde_json::Value =
                                serde_json::from_str(status.get()).unwrap_or_default();
                            if st["status"] == "accepted" {
                                let body =
                                    json!({"type": "dialout", "dialout": {"callid": st["callid"]}});
                                return (StatusCode::OK, body.to_string());
                            }
                            json!({"code": "unsupported_status", "message": format!("Unsupported status: {}", st["status"])})
                        }
                        ("error", _, Some(e)) => serde_json::to_value(&e).unwrap_or_default(),
                        (other, _, _) => {
                            json!({"code": "unsupported_type", "message": format!("Unsupported type: {other}")})
                        }
                    },
                    _ => {
                        json!({"code": "timeout", "message": "Timeout while waiting for dialout to start."})
                    }
                }
            };
            self.inner.dialouts.waiting.lock().remove(&id);
            first_error.get_or_insert(error);
        }
        let body =
            json!({"type": "dialout", "dialout": {"error": first_error.unwrap_or_default()}});
        (StatusCode::BAD_GATEWAY, body.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::valid_number;

    #[test]
    fn e164_numbers() {
        assert!(valid_number("+49123456"));
        assert!(valid_number("+12"));
        assert!(!valid_number("+1"));
        assert!(!valid_number("0049123"));
        assert!(!valid_number("+49 123"));
    }
}
