//! End-to-end tests: a real host (library or binary), real worker
//! processes, real sockets on 127.0.0.1.

mod async_events;
mod binary;
mod cancel;
mod cluster;
mod console;
mod deploy_files;
mod faults;
mod http_stream;
mod invoke;
mod languages;
mod lifecycle;
mod limits;
mod metrics;
mod node_package;
mod node_sdk;
mod openapi;
mod otlp;
mod postgres_harness;
mod published_python;
mod python_package;
mod python_sdk;
mod rogue;
mod routes;
mod rust_package;
mod scf;
mod security;
mod timers;
mod timers_interop;
mod traces;
mod workers_dir;
