//! The out-of-process function worker protocol as Rust types.
//!
//! [`rpc`] holds the generated messages of package `AzureFunctionsRpcMessages`,
//! the tonic client ([`rpc::function_rpc_client`]) and server
//! ([`rpc::function_rpc_server`]). The nullable wrappers and claims identity
//! live in the root protobuf package and so in [`pb`] directly.
//!
//! Host and worker SDK build messages through the helpers in this crate
//! rather than spelling out `oneof` values inline.

/// Code generated from `protos/` (root protobuf package).
#[allow(missing_docs, clippy::all, clippy::pedantic, rust_2018_idioms)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/_.rs"));

    /// Package `AzureFunctionsRpcMessages`.
    #[allow(missing_docs, clippy::all, clippy::pedantic, rust_2018_idioms)]
    pub mod azure_functions_rpc_messages {
        include!(concat!(env!("OUT_DIR"), "/azure_functions_rpc_messages.rs"));
    }
}

pub use pb::azure_functions_rpc_messages as rpc;

mod helpers;
pub mod traceparent;

pub use helpers::*;
