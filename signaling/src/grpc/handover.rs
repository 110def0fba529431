//! The owner's side of `RpcHandover` (ours; `hub::handover`): giving a
//! session of this draining node to the node its client reconnected to.

use proto::grpc::rpc_handover_server::RpcHandover;
use proto::grpc::{
    CommitHandoverReply, CommitHandoverRequest, PrepareHandoverReply, PrepareHandoverRequest,
};
use tonic::{Request, Response, Status};

use crate::hub::handover::HandoverError;
use crate::hub::Hub;
use crate::metrics::METRICS;

#[derive(Clone)]
pub struct HandoverService {
    pub hub: Hub,
}

fn status(e: HandoverError) -> Status {
    match e {
        HandoverError::Refused(m) => Status::failed_precondition(m),
        HandoverError::NoSuchSession => Status::not_found("no such session"),
        HandoverError::Failed(m) => Status::aborted(m),
    }
}

fn count(method: &str) {
    METRICS
        .grpc_server_calls_total
        .with_label_values(&[method])
        .inc();
}

#[tonic::async_trait]
impl RpcHandover for HandoverService {
    async fn prepare(
        &self,
        request: Request<PrepareHandoverRequest>,
    ) -> Result<Response<PrepareHandoverReply>, Status> {
        count("Prepare");
        let (snapshot, token) = self
            .hub
            .prepare_handover(&request.into_inner().resume_id)
            .map_err(status)?;
        let state = serde_json::to_string(&snapshot)
            .map_err(|e| Status::internal(format!("state: {e}")))?;
        Ok(Response::new(PrepareHandoverReply { state, token }))
    }

    async fn commit(
        &self,
        request: Request<CommitHandoverRequest>,
    ) -> Result<Response<CommitHandoverReply>, Status> {
        count("Commit");
        let req = request.into_inner();
        let frames = self
            .hub
            .commit_handover(&req.resume_id, &req.token)
            .await
            .map_err(status)?;
        Ok(Response::new(CommitHandoverReply { frames }))
    }
}
