//! The OCS envelope (facts 2.3).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OcsMeta {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub statuscode: i64,
    #[serde(default)]
    pub message: String,
}

impl OcsMeta {
    pub fn ok() -> Self {
        OcsMeta {
            status: "ok".into(),
            statuscode: 200,
            message: "OK".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OcsBody<T> {
    pub meta: OcsMeta,
    pub data: Option<T>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OcsEnvelope<T> {
    pub ocs: Option<OcsBody<T>>,
}

impl<T> OcsEnvelope<T> {
    pub fn ok(data: T) -> Self {
        OcsEnvelope {
            ocs: Some(OcsBody {
                meta: OcsMeta::ok(),
                data: Some(data),
            }),
        }
    }
}

/// Why an OCS response could not be used. The `Display` texts are the
/// upstream ones, which reach clients as `internal_error` messages.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OcsError {
    #[error("unsupported_content_type")]
    UnsupportedContentType,
    #[error("incomplete OCS response")]
    Incomplete,
    #[error("throttled OCS response")]
    Throttled,
    #[error("could not decode OCS response: {0}")]
    Decode(String),
}

/// Unwraps the `data` of an OCS response body. `content_type` is the
/// response's `Content-Type` header; the HTTP status is deliberately not
/// looked at (facts 2.3).
pub fn decode_ocs<T: serde::de::DeserializeOwned>(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<T, OcsError> {
    if !content_type.is_some_and(|ct| ct.starts_with("application/json")) {
        return Err(OcsError::UnsupportedContentType);
    }
    let env: OcsEnvelope<Box<serde_json::value::RawValue>> =
        serde_json::from_slice(body).map_err(|e| OcsError::Decode(e.to_string()))?;
    let ocs = env.ocs.ok_or(OcsError::Incomplete)?;
    if ocs.meta.statuscode == 429 {
        return Err(OcsError::Throttled);
    }
    let data = ocs.data.ok_or(OcsError::Incomplete)?;
    let raw = data.get();
    if raw.is_empty() || raw == "null" || raw == "[]" || raw == "{}" {
        return Err(OcsError::Incomplete);
    }
    serde_json::from_str(raw).map_err(|e| OcsError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_rules() {
        let ct = Some("application/json; charset=utf-8");
        let ok =
            br#"{"ocs":{"meta":{"status":"ok","statuscode":200,"message":"OK"},"data":{"a":1}}}"#;
        let v: serde_json::Value = decode_ocs(ct, ok).unwrap();
        assert_eq!(v["a"], 1);
        assert_eq!(
            decode_ocs::<serde_json::Value>(Some("text/html"), ok).unwrap_err(),
            OcsError::UnsupportedContentType
        );
        assert_eq!(
            decode_ocs::<serde_json::Value>(None, ok).unwrap_err(),
            OcsError::UnsupportedContentType
        );
        assert_eq!(
            decode_ocs::<serde_json::Value>(ct, br#"{"foo":1}"#).unwrap_err(),
            OcsError::Incomplete
        );
        assert_eq!(
            decode_ocs::<serde_json::Value>(
                ct,
                br#"{"ocs":{"meta":{"statuscode":200},"data":[]}}"#
            )
            .unwrap_err(),
            OcsError::Incomplete
        );
        let throttled = br#"{"ocs":{"meta":{"status":"failure","statuscode":429},"data":{"a":1}}}"#;
        assert_eq!(
            decode_ocs::<serde_json::Value>(ct, throttled).unwrap_err(),
            OcsError::Throttled
        );
        assert!(matches!(
            decode_ocs::<serde_json::Value>(ct, b"garbage"),
            Err(OcsError::Decode(_))
        ));
    }
}
