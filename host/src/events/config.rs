//! The `asyncEvents` section of `host.json`.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{in_range, positive_timespan, typed, ConfigError};

/// Retention, retries and concurrency of asynchronous invocations.
#[derive(Debug, Clone, PartialEq)]
pub struct AsyncConfig {
    /// `retention`: how long ended events are kept (default 72 h).
    pub retention: Duration,
    /// `pruneInterval`: how often ended events past retention are deleted.
    pub prune_interval: Duration,
    /// `maxRetryAttempts`: retries after the first attempt (0–8, default 2).
    pub max_retries: u32,
    /// `maxEventAge`: no attempt starts once an event is older (default 6 h).
    pub max_event_age: Duration,
    /// `retryBackoff`: wait before the first retry; doubles per retry, at most 5 min.
    pub retry_backoff: Duration,
    /// `onFailure`: a function that receives each event that failed for good.
    pub on_failure: Option<String>,
    /// `maxConcurrency`: async events running at once (default 64).
    pub max_concurrency: usize,
    /// `queueMemoryLimit`: queued events held in memory (default 10,000);
    /// more wait only in the store and are loaded in order as room frees.
    pub queue_memory_limit: usize,
    /// `hostHeartbeat`: with a shared store, how often a host heartbeats,
    /// reads terminates recorded for it, and tries a rescue pass
    /// (default 3 s).
    pub host_heartbeat: Duration,
    /// `hostDeadAfter`: with a shared store, a host whose last heartbeat
    /// is older is dead, and its events are rescued (default 30 s; at
    /// least three heartbeats).
    pub host_dead_after: Duration,
    /// `pollInterval`: with a shared store, how often an idle host looks
    /// for ready events accepted by its peers (default 250 ms, with up to
    /// as much again of random jitter).
    pub poll_interval: Duration,
}

impl Default for AsyncConfig {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(72 * 3600),
            prune_interval: Duration::from_secs(60),
            max_retries: 2,
            max_event_age: Duration::from_secs(6 * 3600),
            retry_backoff: Duration::from_secs(1),
            on_failure: None,
            max_concurrency: 64,
            queue_memory_limit: 10_000,
            host_heartbeat: Duration::from_secs(3),
            host_dead_after: Duration::from_secs(30),
            poll_interval: Duration::from_millis(250),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Section {
    retention: Option<String>,
    prune_interval: Option<String>,
    max_retry_attempts: Option<u32>,
    max_event_age: Option<String>,
    retry_backoff: Option<String>,
    on_failure: Option<String>,
    max_concurrency: Option<u32>,
    queue_memory_limit: Option<u32>,
    host_heartbeat: Option<String>,
    host_dead_after: Option<String>,
    poll_interval: Option<String>,
}

impl AsyncConfig {
    /// Reads `asyncEvents` from a parsed `host.json`.
    pub(crate) fn from_value(
        path: &Path,
        value: Option<&serde_json::Value>,
    ) -> Result<Self, ConfigError> {
        let Some(value) = value else {
            return Ok(Self::default());
        };
        let s: Section = typed(path, "asyncEvents", value)?;
        let mut c = Self::default();
        if let Some(t) = &s.retention {
            c.retention = positive_timespan(path, "asyncEvents.retention", t)?;
            c.prune_interval = (c.retention / 4).min(Duration::from_secs(60));
        }
        if let Some(t) = &s.prune_interval {
            c.prune_interval = positive_timespan(path, "asyncEvents.pruneInterval", t)?;
        }
        if let Some(n) = s.max_retry_attempts {
            c.max_retries =
                in_range(path, "asyncEvents.maxRetryAttempts", u64::from(n), 0, 8)? as u32;
        }
        if let Some(t) = &s.max_event_age {
            c.max_event_age = positive_timespan(path, "asyncEvents.maxEventAge", t)?;
        }
        if let Some(t) = &s.retry_backoff {
            c.retry_backoff = positive_timespan(path, "asyncEvents.retryBackoff", t)?;
        }
        if let Some(n) = s.max_concurrency {
            c.max_concurrency =
                in_range(path, "asyncEvents.maxConcurrency", u64::from(n), 1, 100_000)? as usize;
        }
        if let Some(n) = s.queue_memory_limit {
            c.queue_memory_limit = in_range(
                path,
                "asyncEvents.queueMemoryLimit",
                u64::from(n),
                1,
                1_000_000,
            )? as usize;
        }
        if let Some(t) = &s.host_heartbeat {
            c.host_heartbeat = positive_timespan(path, "asyncEvents.hostHeartbeat", t)?;
        }
        if let Some(t) = &s.host_dead_after {
            c.host_dead_after = positive_timespan(path, "asyncEvents.hostDeadAfter", t)?;
        }
        if let Some(t) = &s.poll_interval {
            c.poll_interval = positive_timespan(path, "asyncEvents.pollInterval", t)?;
        }
        if c.host_dead_after < c.host_heartbeat * 3 {
            return Err(ConfigError::field(
                path,
                "asyncEvents.hostDeadAfter",
                format!(
                    "{:?} must be at least three heartbeats (hostHeartbeat is {:?}), \
                     or a host that misses one heartbeat is presumed dead",
                    c.host_dead_after, c.host_heartbeat
                ),
            ));
        }
        c.on_failure = s.on_failure.filter(|f| !f.is_empty());
        Ok(c)
    }

    /// Wait before retry number `retry` (1-based): doubling, at most 5 minutes.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32 << retry.saturating_sub(1).min(16);
        self.retry_backoff
            .saturating_mul(factor)
            .min(Duration::from_secs(300))
    }
}
