//! `payload`: SDP and candidates between a signaling server and one of
//! its session's clients on Janus.

use std::sync::Arc;

use proto::error::ErrorCode;
use proto::proxy::{codes, PayloadKind, PayloadRequest, ServerMessage};
use serde_json::Value;
use sfu_bridge::sfu::{Request, StreamSelection};

use crate::metrics::METRICS;
use crate::reply::{error_message, other_error, payload as payload_reply, unknown_client};
use crate::session::ProxySession;

pub async fn payload(
    session: &Arc<ProxySession>,
    id: Option<String>,
    p: PayloadRequest,
) -> ServerMessage {
    let client = session
        .publisher(&p.client_id)
        .or_else(|| session.subscriber(&p.client_id));
    let Some(client) = client else {
        return unknown_client(id, &p.client_id);
    };
    METRICS
        .payload_messages_total
        .with_label_values(&[p.kind.as_str()])
        .inc();
    let data = p.payload.unwrap_or(Value::Null);
    let request = match &p.kind {
        PayloadKind::Offer => Request::Offer(data),
        PayloadKind::Answer => Request::Answer(data),
        PayloadKind::Candidate => {
            Request::Candidate(data.get("candidate").cloned().unwrap_or(data))
        }
        PayloadKind::EndOfCandidates => {
            let mut reply = payload_reply("endOfCandidates", &p.client_id, Value::Null);
            if let Some(pl) = reply.payload.as_mut() {
                pl.payload = None;
            }
            reply.id = id;
            return reply;
        }
        PayloadKind::RequestOffer | PayloadKind::SendOffer => {
            Request::RequestOffer(StreamSelection::default())
        }
        PayloadKind::SelectStream => match StreamSelection::from_payload(&data) {
            Ok(sel) => Request::SelectStream(sel),
            Err(e) => return other_error(id, codes::UNSUPPORTED_PAYLOAD, &e.to_string()),
        },
        PayloadKind::Unsupported(other) => {
            return other_error(
                id,
                codes::UNSUPPORTED_PAYLOAD,
                &format!("Unsupported payload type {other}"),
            )
        }
    };
    match client.send(request, &p.sid).await {
        Ok(jsep) => {
            let mut reply =
                payload_reply(p.kind.as_str(), &p.client_id, jsep.unwrap_or(Value::Null));
            reply.id = id;
            reply
        }
        Err(e) => error_message(id, ErrorCode::ProcessingFailed, &e.to_string()),
    }
}
