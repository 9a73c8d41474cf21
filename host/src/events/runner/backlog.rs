//! Events of one kind that may wait in the store only. The core keeps two:
//! queued events and retries.

use std::collections::HashSet;

use crate::ids::RequestId;

/// Events of one kind (queued, or retrying) that may wait in the store
/// only, and the read that loads them.
#[derive(Debug, Default)]
pub(super) struct Backlog {
    /// Such events exist in the store that memory does not hold.
    pub(super) in_store: bool,
    /// A read is under way: what settled meanwhile, and whether an event
    /// was left in the store meanwhile (the read may miss both).
    read: Option<Read>,
}

#[derive(Debug, Default)]
pub(super) struct Read {
    /// Events whose attempt settled while the read ran: it may hold a
    /// stale copy of them.
    pub(super) settled: HashSet<RequestId>,
    pub(super) left_in_store: bool,
}

impl Backlog {
    pub(super) fn marked() -> Self {
        Self {
            in_store: true,
            read: None,
        }
    }

    pub(super) fn can_read(&self) -> bool {
        self.in_store && self.read.is_none()
    }

    pub(super) fn begin_read(&mut self) {
        self.read = Some(Read::default());
    }

    pub(super) fn end_read(&mut self) -> Read {
        self.read.take().unwrap_or_default()
    }

    pub(super) fn leave_in_store(&mut self) {
        self.in_store = true;
        if let Some(read) = &mut self.read {
            read.left_in_store = true;
        }
    }

    pub(super) fn settled(&mut self, id: &RequestId) {
        if let Some(read) = &mut self.read {
            read.settled.insert(id.clone());
        }
    }
}
