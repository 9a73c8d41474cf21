//! The `http` section of `host.json`: limits of the HTTP listener.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::{in_range, positive_timespan, typed, ConfigError};

/// How many connections the HTTP listener holds and how long a client may
/// take to send a request's headers.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    /// `http.headerReadTimeout`: a connection that has not sent a complete
    /// request head this long after it opened (or after the previous
    /// response) is closed.
    pub header_read_timeout: Duration,
    /// `http.maxConnections`: open connections; at the cap the host stops
    /// accepting and new connections wait in the kernel's backlog.
    pub max_connections: usize,
    /// `http.bodyReadTimeout`: a request whose body has not fully arrived
    /// this long after its head did fails with 408, so a body trickled in
    /// cannot hold a connection.
    pub body_read_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 512,
            body_read_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Section {
    header_read_timeout: Option<String>,
    max_connections: Option<u64>,
    body_read_timeout: Option<String>,
}

impl HttpConfig {
    pub(crate) fn from_value(
        path: &Path,
        value: Option<&serde_json::Value>,
    ) -> Result<Self, ConfigError> {
        let section: Section = match value {
            Some(v) => typed(path, "http", v)?,
            None => Section::default(),
        };
        let mut cfg = Self::default();
        if let Some(t) = &section.header_read_timeout {
            cfg.header_read_timeout = positive_timespan(path, "http.headerReadTimeout", t)?;
        }
        if let Some(t) = &section.body_read_timeout {
            cfg.body_read_timeout = positive_timespan(path, "http.bodyReadTimeout", t)?;
        }
        if let Some(n) = section.max_connections {
            cfg.max_connections = in_range(path, "http.maxConnections", n, 1, 100_000)? as usize;
        }
        Ok(cfg)
    }
}
