//! `/healthz` and `/readyz` for the server and the proxy.
//!
//! Liveness says only that the process answers HTTP: a dependency that is
//! down must not make Kubernetes restart every node at once. Readiness
//! says whether new clients should be sent here: every dependency the
//! configuration names is usable and the process is not draining.
//!
//! Both answer JSON without addresses or secrets, so they are not behind
//! `[stats] allowed_ips` (kubelets probe from the node's address).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

/// The state of one dependency.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    /// Why it is not usable, or what it is when it is.
    pub detail: String,
}

impl Check {
    pub fn ok(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            ok: true,
            detail: detail.into(),
        }
    }

    pub fn failed(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            ok: false,
            detail: detail.into(),
        }
    }
}

/// Everything `/readyz` reports.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    pub draining: bool,
    pub checks: Vec<Check>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        !self.draining && self.checks.iter().all(|c| c.ok)
    }

    fn status(&self) -> &'static str {
        if self.draining {
            "draining"
        } else if self.is_ready() {
            "ready"
        } else {
            "not ready"
        }
    }

    pub fn to_json(&self) -> Value {
        let checks: Map<String, Value> = self
            .checks
            .iter()
            .map(|c| (c.name.to_owned(), json!({"ok": c.ok, "detail": c.detail})))
            .collect();
        json!({"status": self.status(), "draining": self.draining, "checks": checks})
    }

    /// 200 when ready, 503 otherwise; the body says why.
    pub fn into_response(self) -> Response {
        let code = if self.is_ready() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        json_response(code, &self.to_json())
    }
}

/// `/healthz`: 200 while the process serves HTTP, draining or not.
pub fn liveness(draining: bool) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"status": "ok", "draining": draining}),
    )
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    (
        code,
        [
            (header::CONTENT_TYPE, "application/json; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        format!("{body}\n"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_check_passes_and_not_draining() {
        let mut r = Readiness {
            draining: false,
            checks: vec![Check::ok("nats", "connected"), Check::ok("sfu", "janus")],
        };
        assert!(r.is_ready());
        assert_eq!(r.to_json()["status"], "ready");
        r.checks.push(Check::failed("etcd", "no connection"));
        assert!(!r.is_ready());
        assert_eq!(r.to_json()["status"], "not ready");
        assert_eq!(r.to_json()["checks"]["etcd"]["ok"], false);
        r.checks.pop();
        r.draining = true;
        assert!(!r.is_ready());
        assert_eq!(r.to_json()["status"], "draining");
    }
}
