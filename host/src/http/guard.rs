//! Cancels an invocation when the HTTP request that waits for it is dropped.

use crate::host::HostHandle;
use crate::invocation::{CancelReason, InvocationId};

/// Armed while a request waits for its invocation. Hyper drops the request
/// future when the client disconnects; the drop sends the cancel.
pub(crate) struct CancelOnDrop {
    host: HostHandle,
    id: Option<InvocationId>,
    reason: CancelReason,
}

impl CancelOnDrop {
    pub(crate) fn new(host: HostHandle, id: InvocationId, reason: CancelReason) -> Self {
        Self {
            host,
            id: Some(id),
            reason,
        }
    }

    /// The invocation ended; nothing to cancel.
    pub(crate) fn disarm(&mut self) {
        self.id = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            tracing::info!(invocation = %id, "HTTP client went away; cancelling its invocation");
            self.host.cancel_detached(id, self.reason);
        }
    }
}
