//! `internal`: requests only internal clients may send (facts 1.13).

use std::sync::Arc;

use proto::client::InternalRequest;

use crate::hub::session::Session;
use crate::hub::{ConnCtx, Hub};

pub async fn internal(
    _hub: &Hub,
    _ctx: &ConnCtx,
    session: &Arc<Session>,
    _id: Option<String>,
    req: InternalRequest,
) {
    // Virtual sessions, in-call flags of internal clients and dialout are
    // the internal-clients work of the backend-notifications issue; until
    // it lands these requests are ignored like unknown types, without a
    // reply, and logged so operators can see them.
    let kind = match req {
        InternalRequest::AddSession(_) => "addsession",
        InternalRequest::UpdateSession(_) => "updatesession",
        InternalRequest::RemoveSession(_) => "removesession",
        InternalRequest::InCall(_) => "incall",
        InternalRequest::Dialout(_) => "dialout",
        InternalRequest::Unknown(_) => "unknown",
    };
    tracing::info!(session = %session.public_id, kind, "internal request not supported yet, ignored");
}
