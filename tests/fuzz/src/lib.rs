//! Fuzz targets for the parts of fnhost that read what strangers send:
//! worker messages (through the dispatcher), the app's configuration files,
//! route templates and request paths, the async-events list query, TC3
//! signatures and the SCF action API's request bodies.
//!
//! Each target is a [`engine::Target`]: a function that runs one input,
//! asserts invariants by panicking, and labels what happened. The in-house
//! [`engine`] runs them on stable Rust inside `cargo test` (briefly) and
//! from the `fnhost-fuzz` binary (for long); `libfuzzer/` runs the same
//! functions under libFuzzer with coverage guidance.

pub mod config;
pub mod dispatcher;
pub mod engine;
pub mod list_query;
pub mod routes;
pub mod scf;
pub mod tc3;

use std::path::PathBuf;

use engine::Target;

/// Every target, by name.
pub const TARGETS: &[&Target] = &[
    &dispatcher::TARGET,
    &config::HOST_JSON,
    &config::FUNCTION_JSON,
    &config::WORKER_CONFIG,
    &routes::TARGET,
    &list_query::TARGET,
    &tc3::TARGET,
    &scf::TARGET,
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().copied().find(|t| t.name == name)
}

/// `tests/fuzz/corpus`: a folder of seeds per target, and their
/// `regressions/`.
pub fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus")
}
