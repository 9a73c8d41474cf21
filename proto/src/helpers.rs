//! Hand-written constructors, predicates and conversions on generated types.

use std::collections::HashMap;
use std::time::Duration;

use crate::rpc::streaming_message::Content;
use crate::rpc::{
    status_result, typed_data, InvocationCancel, RpcException, RpcHttp, RpcLog, StartStream,
    StatusResult, StreamingMessage, TypedData, WorkerTerminate,
};

/// Capability a worker advertises when it acts on `InvocationCancel`.
pub const CAP_HANDLES_INVOCATION_CANCEL: &str = "HandlesInvocationCancelMessage";
/// Capability a worker advertises when it answers `WorkerStatusRequest`.
pub const CAP_WORKER_STATUS: &str = "WorkerStatus";
/// Capability a worker advertises when it indexes its own functions
/// (answers `FunctionsMetadataRequest`).
pub const CAP_WORKER_INDEXING: &str = "WorkerIndexing";

/// Capability a worker advertises when it reads an HTTP request's body from
/// `RpcHttp.body` only: the host then leaves `rawBody` out and sends the
/// body once.
pub const CAP_RPC_HTTP_BODY_ONLY: &str = "RpcHttpBodyOnly";

/// Capability a worker advertises when it runs its own HTTP server for
/// HTTP triggers (HTTP streaming): the value is its base URI, to which the
/// host forwards each HTTP trigger request with `x-ms-invocation-id`.
pub const CAP_HTTP_URI: &str = "HttpUri";
/// Capability a worker advertises (with `HttpUri`) when it wants an HTTP
/// trigger's route values as trigger metadata too.
pub const CAP_REQUIRES_ROUTE_PARAMETERS: &str = "RequiresRouteParameters";

/// Trigger metadata key of an invocation's deadline: `TypedData.json` of a
/// number, the Unix milliseconds (UTC) at which the host's function timeout
/// fires. The protocol has no field for it; workers that do not know the key
/// ignore it. (JSON, not `int`: the published Python worker decodes every
/// metadata value and has no `int` kind.)
pub const META_DEADLINE: &str = "FnhostDeadline";
/// Trigger metadata key of an invocation's attempt: `TypedData.json` of a
/// number, 1 for
/// the first run of an async event (and for every synchronous invocation),
/// 2 for its first retry, and so on.
pub const META_ATTEMPT: &str = "FnhostAttempt";

/// The fully qualified gRPC path published workers call.
pub const EVENT_STREAM_PATH: &str = "/AzureFunctionsRpcMessages.FunctionRpc/EventStream";

/// A capability counts as present when its value is non-empty.
pub fn has_capability(capabilities: &HashMap<String, String>, key: &str) -> bool {
    capabilities.get(key).is_some_and(|v| !v.is_empty())
}

/// Converts a std duration to the protobuf well-known type, saturating.
pub fn duration_to_proto(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// Converts a protobuf duration to a std one; negative values become zero.
pub fn duration_from_proto(d: &prost_types::Duration) -> Duration {
    if d.seconds < 0 || (d.seconds == 0 && d.nanos <= 0) {
        return Duration::ZERO;
    }
    Duration::new(d.seconds as u64, d.nanos.max(0) as u32)
}

impl StreamingMessage {
    /// A message with the given content and an empty `request_id`.
    pub fn from_content(content: Content) -> Self {
        Self {
            request_id: String::new(),
            content: Some(content),
        }
    }

    /// Sets `request_id` (published workers stamp theirs on every message).
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = request_id.into();
        self
    }

    /// `StartStream{worker_id}`: the first message a worker sends.
    pub fn start_stream(worker_id: impl Into<String>) -> Self {
        Self::from_content(Content::StartStream(StartStream {
            worker_id: worker_id.into(),
        }))
    }

    /// `InvocationCancel{invocation_id, grace_period}`, without a reason.
    pub fn invocation_cancel(invocation_id: impl Into<String>, grace: Duration) -> Self {
        Self::invocation_cancel_because(invocation_id, grace, "")
    }

    /// `InvocationCancel{invocation_id, grace_period, reason}` (`reason` is
    /// fnhost's extension field).
    pub fn invocation_cancel_because(
        invocation_id: impl Into<String>,
        grace: Duration,
        reason: impl Into<String>,
    ) -> Self {
        Self::from_content(Content::InvocationCancel(InvocationCancel {
            invocation_id: invocation_id.into(),
            grace_period: Some(duration_to_proto(grace)),
            reason: reason.into(),
        }))
    }

    /// `WorkerTerminate{grace_period}`.
    pub fn worker_terminate(grace: Duration) -> Self {
        Self::from_content(Content::WorkerTerminate(WorkerTerminate {
            grace_period: Some(duration_to_proto(grace)),
        }))
    }

    /// `RpcLog` wrapped in a message.
    pub fn rpc_log(log: RpcLog) -> Self {
        Self::from_content(Content::RpcLog(log))
    }

    /// A short name of the content for log lines ("invocation_response", ...).
    pub fn kind(&self) -> &'static str {
        self.content.as_ref().map_or("empty", content_kind)
    }
}

/// A short, stable name for a message content variant.
pub fn content_kind(content: &Content) -> &'static str {
    match content {
        Content::StartStream(_) => "start_stream",
        Content::WorkerInitRequest(_) => "worker_init_request",
        Content::WorkerInitResponse(_) => "worker_init_response",
        Content::WorkerHeartbeat(_) => "worker_heartbeat",
        Content::WorkerTerminate(_) => "worker_terminate",
        Content::WorkerStatusRequest(_) => "worker_status_request",
        Content::WorkerStatusResponse(_) => "worker_status_response",
        Content::FileChangeEventRequest(_) => "file_change_event_request",
        Content::WorkerActionResponse(_) => "worker_action_response",
        Content::FunctionLoadRequest(_) => "function_load_request",
        Content::FunctionLoadResponse(_) => "function_load_response",
        Content::InvocationRequest(_) => "invocation_request",
        Content::InvocationResponse(_) => "invocation_response",
        Content::InvocationCancel(_) => "invocation_cancel",
        Content::RpcLog(_) => "rpc_log",
        Content::FunctionEnvironmentReloadRequest(_) => "function_environment_reload_request",
        Content::FunctionEnvironmentReloadResponse(_) => "function_environment_reload_response",
        Content::CloseSharedMemoryResourcesRequest(_) => "close_shared_memory_resources_request",
        Content::CloseSharedMemoryResourcesResponse(_) => "close_shared_memory_resources_response",
        Content::FunctionsMetadataRequest(_) => "functions_metadata_request",
        Content::FunctionMetadataResponse(_) => "function_metadata_response",
        Content::FunctionLoadRequestCollection(_) => "function_load_request_collection",
        Content::FunctionLoadResponseCollection(_) => "function_load_response_collection",
        Content::WorkerWarmupRequest(_) => "worker_warmup_request",
        Content::WorkerWarmupResponse(_) => "worker_warmup_response",
    }
}

impl StatusResult {
    /// `Success` with nothing else set.
    pub fn success() -> Self {
        Self {
            status: status_result::Status::Success as i32,
            ..Self::default()
        }
    }

    /// `Cancelled` with nothing else set.
    pub fn cancelled() -> Self {
        Self {
            status: status_result::Status::Cancelled as i32,
            ..Self::default()
        }
    }

    /// `Failure` carrying an exception with the given message.
    pub fn failure(message: impl Into<String>) -> Self {
        Self {
            status: status_result::Status::Failure as i32,
            exception: Some(RpcException {
                message: message.into(),
                ..RpcException::default()
            }),
            ..Self::default()
        }
    }

    /// The decoded status; unknown numbers read as `Failure` (the proto3 default).
    pub fn status_kind(&self) -> status_result::Status {
        status_result::Status::try_from(self.status).unwrap_or(status_result::Status::Failure)
    }

    /// True when the status is `Success`.
    pub fn is_success(&self) -> bool {
        self.status_kind() == status_result::Status::Success
    }

    /// The exception message, or the empty string.
    pub fn error_message(&self) -> &str {
        self.exception.as_ref().map_or("", |e| e.message.as_str())
    }

    /// The exception's stack trace, or the empty string.
    pub fn stack_trace(&self) -> &str {
        self.exception
            .as_ref()
            .map_or("", |e| e.stack_trace.as_str())
    }
}

impl TypedData {
    /// `TypedData.string`.
    pub fn string(s: impl Into<String>) -> Self {
        Self {
            data: Some(typed_data::Data::String(s.into())),
        }
    }

    /// `TypedData.json` (the caller guarantees the text is JSON).
    pub fn json(s: impl Into<String>) -> Self {
        Self {
            data: Some(typed_data::Data::Json(s.into())),
        }
    }

    /// `TypedData.bytes`.
    pub fn bytes(b: impl Into<Vec<u8>>) -> Self {
        Self {
            data: Some(typed_data::Data::Bytes(b.into())),
        }
    }

    /// `TypedData.http`.
    pub fn http(http: RpcHttp) -> Self {
        Self {
            data: Some(typed_data::Data::Http(Box::new(http))),
        }
    }

    /// The payload as bytes where it has a natural byte form (string, json,
    /// bytes, stream, numbers as text, HTTP body); `None` for collections.
    pub fn to_bytes(&self) -> Option<Vec<u8>> {
        match self.data.as_ref()? {
            typed_data::Data::String(s) | typed_data::Data::Json(s) => Some(s.clone().into_bytes()),
            typed_data::Data::Bytes(b) | typed_data::Data::Stream(b) => Some(b.clone()),
            typed_data::Data::Int(i) => Some(i.to_string().into_bytes()),
            typed_data::Data::Double(d) => Some(d.to_string().into_bytes()),
            typed_data::Data::Http(h) => Some(
                h.body
                    .as_ref()
                    .and_then(|b| b.to_bytes())
                    .unwrap_or_default(),
            ),
            _ => None,
        }
    }

    /// The HTTP payload, when this is `TypedData.http`.
    pub fn as_http(&self) -> Option<&RpcHttp> {
        match self.data.as_ref()? {
            typed_data::Data::Http(h) => Some(h),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn invocation_cancel_uses_the_published_field_numbers() {
        let msg = StreamingMessage::invocation_cancel("abc", Duration::from_millis(1500));
        let bytes = msg.encode_to_vec();
        // content oneof field 21, length-delimited: tag = (21 << 3) | 2 = 170 = 0xAA 0x01
        assert_eq!(&bytes[..2], &[0xAA, 0x01]);
        let decoded = StreamingMessage::decode(bytes.as_slice()).unwrap();
        match decoded.content {
            Some(Content::InvocationCancel(c)) => {
                assert_eq!(c.invocation_id, "abc");
                assert_eq!(
                    duration_from_proto(&c.grace_period.unwrap()),
                    Duration::from_millis(1500)
                );
            }
            other => panic!("unexpected content {other:?}"),
        }
    }

    #[test]
    fn start_stream_worker_id_is_field_two() {
        let bytes = StreamingMessage::start_stream("w").encode_to_vec();
        // field 20 (start_stream) = 0xA2 0x01, len 3, then field 2 (worker_id) = 0x12, len 1, 'w'
        assert_eq!(bytes, vec![0xA2, 0x01, 3, 0x12, 1, b'w']);
    }

    #[test]
    fn capability_counts_only_when_non_empty() {
        let mut caps = HashMap::new();
        caps.insert(CAP_HANDLES_INVOCATION_CANCEL.to_string(), String::new());
        assert!(!has_capability(&caps, CAP_HANDLES_INVOCATION_CANCEL));
        caps.insert(CAP_HANDLES_INVOCATION_CANCEL.to_string(), "true".into());
        assert!(has_capability(&caps, CAP_HANDLES_INVOCATION_CANCEL));
    }

    #[test]
    fn unknown_status_number_reads_as_failure() {
        let r = StatusResult {
            status: 42,
            ..StatusResult::default()
        };
        assert_eq!(r.status_kind(), status_result::Status::Failure);
    }
}
