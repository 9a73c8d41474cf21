//! The `lifecycle` section of `host.json`: instance hooks.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::{in_range, positive_timespan, typed, ConfigError};

/// One hook: which function runs it and how long it may take.
#[derive(Debug, Clone, PartialEq)]
pub struct HookConfig {
    /// The function the worker registered for the hook.
    pub function: String,
    /// Limit of one run.
    pub timeout: Duration,
    /// Runs before the instance gives up (initializer only).
    pub max_attempts: u32,
    /// Wait before the next run (initializer only); doubles per attempt.
    pub retry_backoff: Duration,
}

/// Instance hooks; either may be absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LifecycleConfig {
    /// `lifecycle.initializer`: runs once per instance before its first invocation.
    pub initializer: Option<HookConfig>,
    /// `lifecycle.preStop`: runs before an instance is destroyed for a planned reason.
    pub pre_stop: Option<HookConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HookSection {
    function: Option<String>,
    timeout: Option<String>,
    max_attempts: Option<u32>,
    retry_backoff: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Section {
    initializer: Option<HookSection>,
    pre_stop: Option<HookSection>,
}

fn hook(
    path: &Path,
    name: &str,
    default_fn: &str,
    s: HookSection,
) -> Result<HookConfig, ConfigError> {
    let field = |f: &str| format!("lifecycle.{name}.{f}");
    let function = s.function.unwrap_or_else(|| default_fn.to_string());
    if function.is_empty() {
        return Err(ConfigError::field(
            path,
            field("function"),
            "must not be empty",
        ));
    }
    let timeout = match &s.timeout {
        Some(t) => positive_timespan(path, &field("timeout"), t)?,
        None => Duration::from_secs(30),
    };
    let max_attempts = in_range(
        path,
        &field("maxAttempts"),
        u64::from(s.max_attempts.unwrap_or(3)),
        1,
        100,
    )? as u32;
    let retry_backoff = match &s.retry_backoff {
        Some(t) => positive_timespan(path, &field("retryBackoff"), t)?,
        None => Duration::from_millis(200),
    };
    Ok(HookConfig {
        function,
        timeout,
        max_attempts,
        retry_backoff,
    })
}

impl LifecycleConfig {
    pub(crate) fn from_value(
        path: &Path,
        value: Option<&serde_json::Value>,
    ) -> Result<Self, ConfigError> {
        let Some(value) = value else {
            return Ok(Self::default());
        };
        let s: Section = typed(path, "lifecycle", value)?;
        Ok(Self {
            initializer: s
                .initializer
                .map(|h| hook(path, "initializer", "initializer", h))
                .transpose()?,
            pre_stop: s
                .pre_stop
                .map(|h| hook(path, "preStop", "preStop", h))
                .transpose()?,
        })
    }
}
