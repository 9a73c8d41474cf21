//! fnhost: a function host for out-of-process language workers.
//!
//! [`Host::start`] binds the HTTP API and the `FunctionRpc` gRPC endpoint on
//! loopback, launches the app's worker processes and serves invocations;
//! [`HostHandle`] invokes, cancels and reports status from Rust code.

pub mod admin_key;
pub mod catalog;
pub mod config;
pub mod data_dir;
mod dispatcher;
pub mod events;
#[doc(hidden)]
pub mod fuzzing;
mod grpc;
mod host;
pub mod http;
mod ids;
pub mod init;
pub mod invocation;
pub mod keys;
mod listen;
pub mod metrics;
pub mod notify;
pub mod otel;
mod peer;
mod process;
mod registry;
pub mod status;
pub mod timers;
pub mod trace;

pub use host::{
    EventStoreLocation, Host, HostHandle, HostOptions, PendingInvocation, ScfCredentials,
    StartError,
};
pub use ids::{InvocationId, RequestId, WorkerId};
pub use invocation::{
    CancelDelivery, CancelReason, CancelResponse, InvocationInput, InvocationResult, InvokeError,
    LogLine, Outcome,
};
