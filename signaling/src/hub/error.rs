//! Hub errors and their one mapping onto the client-visible error object
//! (facts 1.3).

use proto::error::{ErrorCode, WireError};

use crate::backend::BackendError;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// A protocol error, or an error Talk sent that is forwarded as is.
    #[error("{0}")]
    Wire(WireError),
    /// Talk could not be asked; clients see `internal_error` with the text.
    #[error("backend request failed: {0}")]
    Backend(#[from] BackendError),
}

impl From<ErrorCode> for HubError {
    fn from(code: ErrorCode) -> Self {
        HubError::Wire(WireError::new(code))
    }
}

impl From<WireError> for HubError {
    fn from(e: WireError) -> Self {
        HubError::Wire(e)
    }
}

impl HubError {
    pub fn into_wire(self) -> WireError {
        match self {
            HubError::Wire(w) => w,
            HubError::Backend(e) => {
                tracing::warn!(error = %e, "request to Nextcloud failed");
                WireError::with_message(ErrorCode::InternalError, e.to_string())
            }
        }
    }
}
