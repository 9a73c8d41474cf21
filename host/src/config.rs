//! The function app on disk: `host.json`, `<function>/function.json`,
//! `local.settings.json` and `worker.config.json` (the app's own, or one from
//! a Core Tools-style workers directory). Every error names the file and the
//! field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

mod duration;
mod expand;
mod function;
mod http;
mod lifecycle;
mod local_settings;
pub mod route;
mod runtime;
mod worker;

pub use duration::parse_timespan;
pub(crate) use function::{check_routes, parse_binding};
pub use function::{Binding, Direction, FunctionConfig};
pub use http::HttpConfig;
pub use lifecycle::{HookConfig, LifecycleConfig};
pub use local_settings::LocalSettings;
pub use runtime::LoadOptions;
pub use worker::{ArgumentStyle, ConfigSource, WorkerLaunchConfig};

/// A configuration problem: which file, which field, what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}: {}{message}", file.display(), field.as_deref().map(|f| format!("field `{f}`: ")).unwrap_or_default())]
pub struct ConfigError {
    /// The file at fault.
    pub file: PathBuf,
    /// The field at fault, as a dotted path, when one is to blame.
    pub field: Option<String>,
    /// What is wrong and, where it helps, what to do.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn field(file: &Path, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            field: Some(field.into()),
            message: message.into(),
        }
    }

    pub(crate) fn file(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            field: None,
            message: message.into(),
        }
    }
}

/// A whole function app, validated.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Absolute path of the app directory.
    pub app_dir: PathBuf,
    /// Settings from `host.json`.
    pub host: HostConfig,
    /// Functions, sorted by name.
    pub functions: Vec<FunctionConfig>,
    /// How to launch the app's language worker.
    pub worker: WorkerLaunchConfig,
    /// The time zone timer schedules are read in.
    pub time_zone: crate::timers::zone::Zone,
}

/// Host-wide settings from `host.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct HostConfig {
    /// `functionTimeout`: the default limit of one invocation.
    pub function_timeout: Duration,
    /// `workers.processCount`: worker instances to run.
    pub process_count: usize,
    /// `workers.maxConcurrentInvocations`: in-flight invocations per instance.
    pub max_concurrency_per_instance: usize,
    /// `workers.maxQueueLength`: invocations that may wait for a free slot.
    pub max_queue_length: usize,
    /// `workers.cancelGracePeriod`: how long a cancelled invocation may take to stop.
    pub cancel_grace: Duration,
    /// `workers.terminateGracePeriod`: how long a worker may take to exit on `WorkerTerminate`.
    pub terminate_grace: Duration,
    /// `workers.startupTimeout`: launch to ready (connected, initialised, loaded).
    pub startup_timeout: Duration,
    /// `workers.maxMessageBytes`: largest gRPC message either side may send.
    pub max_message_bytes: usize,
    /// `workers.handshakeTimeout`: a connection to the gRPC port must send
    /// the HTTP/2 preface and its `StartStream` within this (or within
    /// `startupTimeout`, when that is shorter); see
    /// [`HostConfig::worker_handshake_deadline`].
    pub handshake_timeout: Duration,
    /// `workers.maxPendingConnections`: connections to the gRPC port not yet
    /// admitted as a worker stream; beyond it new ones are closed at once.
    pub max_pending_connections: usize,
    /// `workers.restartBudget.maxRestarts`: crash restarts allowed per window.
    pub max_restarts: u32,
    /// `workers.restartBudget.window`.
    pub restart_window: Duration,
    /// `workers.maxInstances`: the pool grows up to this when invocations queue.
    pub max_instances: usize,
    /// `workers.idleTimeout`: an instance idle this long is retired (down to `processCount`).
    pub idle_timeout: Duration,
    /// `workers.statusInterval`: how often instances with the `WorkerStatus`
    /// capability are asked `WorkerStatusRequest`.
    pub status_interval: Duration,
    /// `workers.statusTimeout`: an instance that does not answer within it is recycled.
    pub status_timeout: Duration,
    /// `lifecycle`: initializer and pre-stop hooks.
    pub lifecycle: LifecycleConfig,
    /// `asyncEvents`: retention and retries of asynchronous invocations.
    pub async_events: crate::events::AsyncConfig,
    /// `http`: limits of the HTTP listener.
    pub http: HttpConfig,
    /// `shutdown.readinessDelay`: how long a stopping host keeps serving
    /// with `/readyz` answering 503, so a load balancer stops sending it
    /// requests before it drains (0 by default; 5 s suits Kubernetes).
    pub readiness_delay: Duration,
    /// `extensions.http.routePrefix`: the first segment(s) of every HTTP
    /// trigger route (`api` by default; may be empty).
    pub route_prefix: String,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            function_timeout: Duration::from_secs(300),
            process_count: 1,
            max_concurrency_per_instance: 100,
            max_queue_length: 1000,
            cancel_grace: Duration::from_secs(5),
            terminate_grace: Duration::from_secs(5),
            startup_timeout: Duration::from_secs(30),
            max_message_bytes: 128 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(10),
            max_pending_connections: 64,
            max_restarts: 5,
            restart_window: Duration::from_secs(60),
            max_instances: 1,
            idle_timeout: Duration::from_secs(300),
            status_interval: Duration::from_secs(10),
            status_timeout: Duration::from_secs(10),
            lifecycle: LifecycleConfig::default(),
            readiness_delay: Duration::ZERO,
            async_events: crate::events::AsyncConfig::default(),
            http: HttpConfig::default(),
            route_prefix: "api".to_string(),
        }
    }
}

/// The log line for a function whose trigger fnhost does not fire.
pub(crate) fn unfired_warning(function: &str, trigger: &str) -> String {
    format!(
        "function '{function}' has a {trigger} trigger, which fnhost does not fire: \
         it runs only when invoked with POST /admin/functions/{function}/invoke (or invoke-async)"
    )
}

/// Upper bound of `workers.maxMessageBytes` (what gRPC length prefixes allow).
const MAX_MESSAGE_BYTES_LIMIT: u64 = i32::MAX as u64;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WorkersSection {
    process_count: Option<u64>,
    max_concurrent_invocations: Option<u64>,
    max_queue_length: Option<u64>,
    cancel_grace_period: Option<String>,
    terminate_grace_period: Option<String>,
    startup_timeout: Option<String>,
    max_message_bytes: Option<u64>,
    handshake_timeout: Option<String>,
    max_pending_connections: Option<u64>,
    restart_budget: Option<RestartBudgetSection>,
    max_instances: Option<u64>,
    idle_timeout: Option<String>,
    status_interval: Option<String>,
    status_timeout: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RestartBudgetSection {
    max_restarts: Option<u32>,
    window: Option<String>,
}

impl AppConfig {
    /// Reads and validates the app at `app_dir`, with no workers directory
    /// and nothing from the host's environment.
    pub fn load(app_dir: &Path) -> Result<Self, ConfigError> {
        Self::load_with(app_dir, &LoadOptions::default())
    }

    /// Reads and validates the app at `app_dir`. The worker comes from the
    /// app's own `worker.config.json` when it has one, else from
    /// `opts.workers_dir`, folder `FUNCTIONS_WORKER_RUNTIME`. Its
    /// environment gains `local.settings.json` `Values` (those the host's
    /// environment does not define), `AzureWebJobsScriptRoot`,
    /// `FUNCTIONS_WORKER_RUNTIME`, `FUNCTIONS_WORKER_RUNTIME_VERSION` (when
    /// known) and `AZURE_FUNCTIONS_ENVIRONMENT` (`Development` unless set).
    pub fn load_with(app_dir: &Path, opts: &LoadOptions) -> Result<Self, ConfigError> {
        let app_dir = app_dir.canonicalize().map_err(|e| {
            ConfigError::file(
                app_dir,
                format!("the function app directory cannot be opened: {e}"),
            )
        })?;
        let host = HostConfig::load(&app_dir.join("host.json"))?;
        let functions = function::load_all(&app_dir)?;
        let settings = LocalSettings::load(&app_dir)?;
        let worker = runtime::load_worker(&app_dir, opts, &settings)?;
        let mut functions = functions;
        // Azure's workers declare the scripts they load and load each
        // function's; fnhost's SDKs register functions by name.
        if !worker.extensions.is_empty() {
            function::default_script_files(&mut functions, &worker.language)?;
        }
        function::check_routes(&functions, &host.route_prefix)?;
        if functions.is_empty() && !worker.worker_indexing {
            return Err(ConfigError::file(
                &app_dir,
                "holds no functions: expected at least one <function>/function.json, or a worker \
                 that indexes its functions (worker.config.json \"workerIndexing\": \"true\")",
            ));
        }
        if let Some(f) = &host.async_events.on_failure {
            if !functions.iter().any(|x| &x.name == f) {
                return Err(ConfigError::field(
                    &app_dir.join("host.json"),
                    "asyncEvents.onFailure",
                    format!("no function named '{f}' in the app"),
                ));
            }
        }
        let time_zone = time_zone(&app_dir, &settings, &functions)?;
        Ok(Self {
            app_dir,
            host,
            functions,
            worker,
            time_zone,
        })
    }

    /// The function called `name`, matched case-insensitively (as Azure
    /// matches function names).
    pub fn function(&self, name: &str) -> Option<&FunctionConfig> {
        self.functions
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

/// The zone of timer schedules: `WEBSITE_TIME_ZONE`, else `TZ`, each from
/// the host's environment before `local.settings.json`; UTC without
/// either. A `WEBSITE_TIME_ZONE` that names no zone is an error; so is a
/// `TZ` that names none when a `function.json` declares a timer (`TZ` is a
/// general setting a host without timers should not be refused for: it
/// then reads UTC, with a warning).
fn time_zone(
    app_dir: &Path,
    settings: &LocalSettings,
    functions: &[FunctionConfig],
) -> Result<crate::timers::zone::Zone, ConfigError> {
    use crate::timers::zone::Zone;
    let setting = |name: &str| {
        std::env::var(name)
            .ok()
            .or_else(|| settings.get(name).map(str::to_string))
            .filter(|v| !v.trim().is_empty())
    };
    let file = app_dir.join("local.settings.json");
    if let Some(name) = setting("WEBSITE_TIME_ZONE") {
        return Zone::named(&name).map_err(|e| ConfigError::field(&file, "WEBSITE_TIME_ZONE", e));
    }
    let Some(name) = setting("TZ") else {
        return Ok(Zone::default());
    };
    // glibc's `:Area/City` and `:/path` forms: the name after the colon.
    let name = name.strip_prefix(':').unwrap_or(&name).to_string();
    let name = name
        .strip_prefix("/usr/share/zoneinfo/")
        .unwrap_or(&name)
        .to_string();
    match Zone::named(&name) {
        Ok(zone) => Ok(zone),
        Err(e) if functions.iter().any(|f| f.timer().is_some()) => {
            Err(ConfigError::field(&file, "TZ", e))
        }
        Err(e) => {
            tracing::warn!("TZ: {e}; timer schedules read UTC");
            Ok(Zone::default())
        }
    }
}

impl HostConfig {
    /// Reads `host.json`; keys this host does not use (logging, extensions)
    /// are accepted, the `workers` section is strict.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let value = read_json(path)?;
        Self::from_value(path, &value)
    }

    pub(crate) fn from_value(path: &Path, value: &serde_json::Value) -> Result<Self, ConfigError> {
        let obj = value
            .as_object()
            .ok_or_else(|| ConfigError::file(path, "expected a JSON object at the top level"))?;
        let mut cfg = Self::default();
        if let Some(prefix) = obj
            .get("extensions")
            .and_then(|e| e.get("http"))
            .and_then(|h| h.get("routePrefix"))
        {
            let text = prefix.as_str().ok_or_else(|| {
                ConfigError::field(path, "extensions.http.routePrefix", "expected a string")
            })?;
            cfg.route_prefix = route::RouteTemplate::parse(text)
                .ok()
                .filter(|t| {
                    t.segments
                        .iter()
                        .all(|s| matches!(s, route::Segment::Literal(_)))
                })
                .map(|_| text.trim_matches('/').to_string())
                .ok_or_else(|| {
                    ConfigError::field(
                        path,
                        "extensions.http.routePrefix",
                        format!("\"{text}\" must be literal path segments (no parameters)"),
                    )
                })?;
        }
        if let Some(t) = obj.get("functionTimeout") {
            let text = t.as_str().ok_or_else(|| {
                ConfigError::field(path, "functionTimeout", "expected a string \"hh:mm:ss\"")
            })?;
            cfg.function_timeout = positive_timespan(path, "functionTimeout", text)?;
        }
        let workers: WorkersSection = match obj.get("workers") {
            Some(v) => typed(path, "workers", v)?,
            None => WorkersSection::default(),
        };
        if let Some(n) = workers.process_count {
            cfg.process_count = in_range(path, "workers.processCount", n, 1, 64)? as usize;
        }
        if let Some(n) = workers.max_concurrent_invocations {
            cfg.max_concurrency_per_instance =
                in_range(path, "workers.maxConcurrentInvocations", n, 1, 100_000)? as usize;
        }
        if let Some(n) = workers.max_queue_length {
            cfg.max_queue_length =
                in_range(path, "workers.maxQueueLength", n, 0, 1_000_000)? as usize;
        }
        if let Some(n) = workers.max_message_bytes {
            cfg.max_message_bytes = in_range(
                path,
                "workers.maxMessageBytes",
                n,
                64 * 1024,
                MAX_MESSAGE_BYTES_LIMIT,
            )? as usize;
        }
        if let Some(t) = &workers.cancel_grace_period {
            cfg.cancel_grace = positive_timespan(path, "workers.cancelGracePeriod", t)?;
        }
        if let Some(t) = &workers.terminate_grace_period {
            cfg.terminate_grace = positive_timespan(path, "workers.terminateGracePeriod", t)?;
        }
        if let Some(t) = &workers.startup_timeout {
            cfg.startup_timeout = positive_timespan(path, "workers.startupTimeout", t)?;
        }
        if let Some(t) = &workers.handshake_timeout {
            cfg.handshake_timeout = positive_timespan(path, "workers.handshakeTimeout", t)?;
        }
        if let Some(n) = workers.max_pending_connections {
            cfg.max_pending_connections =
                in_range(path, "workers.maxPendingConnections", n, 1, 10_000)? as usize;
        }
        if let Some(budget) = workers.restart_budget {
            if let Some(n) = budget.max_restarts {
                cfg.max_restarts = in_range(
                    path,
                    "workers.restartBudget.maxRestarts",
                    u64::from(n),
                    0,
                    1000,
                )? as u32;
            }
            if let Some(t) = &budget.window {
                cfg.restart_window = positive_timespan(path, "workers.restartBudget.window", t)?;
            }
        }
        cfg.max_instances = cfg.process_count;
        if let Some(n) = workers.max_instances {
            cfg.max_instances = in_range(
                path,
                "workers.maxInstances",
                n,
                cfg.process_count as u64,
                64,
            )? as usize;
        }
        if let Some(t) = &workers.idle_timeout {
            cfg.idle_timeout = positive_timespan(path, "workers.idleTimeout", t)?;
        }
        if let Some(t) = &workers.status_interval {
            cfg.status_interval = positive_timespan(path, "workers.statusInterval", t)?;
        }
        if let Some(t) = &workers.status_timeout {
            cfg.status_timeout = positive_timespan(path, "workers.statusTimeout", t)?;
        }
        cfg.lifecycle = LifecycleConfig::from_value(path, obj.get("lifecycle"))?;
        cfg.async_events = crate::events::AsyncConfig::from_value(path, obj.get("asyncEvents"))?;
        cfg.http = HttpConfig::from_value(path, obj.get("http"))?;
        if let Some(shutdown) = obj.get("shutdown") {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields, rename_all = "camelCase")]
            struct Shutdown {
                readiness_delay: Option<String>,
            }
            let s: Shutdown = typed(path, "shutdown", shutdown)?;
            if let Some(t) = s.readiness_delay {
                cfg.readiness_delay = parse_timespan(&t)
                    .map_err(|e| ConfigError::field(path, "shutdown.readinessDelay", e))?;
                if cfg.readiness_delay > Duration::from_secs(300) {
                    return Err(ConfigError::field(
                        path,
                        "shutdown.readinessDelay",
                        "must be at most 00:05:00",
                    ));
                }
            }
        }
        Ok(cfg)
    }

    /// How long a new gRPC connection has to send the HTTP/2 preface and the
    /// worker's `StartStream`: a worker that cannot do it within its startup
    /// timeout is failed anyway, so holding the connection longer only
    /// helps a client that is not a worker.
    pub fn worker_handshake_deadline(&self) -> Duration {
        self.handshake_timeout.min(self.startup_timeout)
    }
}

pub(crate) fn read_json(path: &Path) -> Result<serde_json::Value, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::file(path, format!("cannot be read: {e}")))?;
    serde_json::from_str(&text)
        .map_err(|e| ConfigError::file(path, format!("is not valid JSON: {e}")))
}

/// Deserializes `value` strictly, naming the failing field as `prefix.path`.
pub(crate) fn typed<T: DeserializeOwned>(
    path: &Path,
    prefix: &str,
    value: &serde_json::Value,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let field = match (prefix.is_empty(), inner.as_str()) {
            (true, _) => inner.clone(),
            (false, ".") => prefix.to_string(),
            (false, _) => format!("{prefix}.{inner}"),
        };
        ConfigError::field(path, field, e.into_inner().to_string())
    })
}

pub(crate) fn positive_timespan(
    path: &Path,
    field: &str,
    text: &str,
) -> Result<Duration, ConfigError> {
    match parse_timespan(text) {
        Ok(d) if d > Duration::ZERO => Ok(d),
        Ok(_) => Err(ConfigError::field(path, field, "must be greater than zero")),
        Err(e) => Err(ConfigError::field(path, field, e)),
    }
}

pub(crate) fn in_range(
    path: &Path,
    field: &str,
    n: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(ConfigError::field(
            path,
            field,
            format!("{n} is out of range {min}..={max}"),
        ))
    }
}

/// String-valued extra properties of a JSON object, for protocol maps.
pub(crate) fn string_properties(
    obj: &serde_json::Map<String, serde_json::Value>,
    skip: &[&str],
) -> BTreeMap<String, String> {
    obj.iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(k, v)| {
            let s = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn host(v: serde_json::Value) -> Result<HostConfig, ConfigError> {
        HostConfig::from_value(Path::new("/app/host.json"), &v)
    }

    #[test]
    fn defaults_apply_to_an_empty_host_json() {
        assert_eq!(
            host(json!({"version": "2.0"})).unwrap(),
            HostConfig::default()
        );
    }

    #[test]
    fn reads_every_worker_setting() {
        let cfg = host(json!({
            "functionTimeout": "00:00:02",
            "workers": {
                "processCount": 3, "maxConcurrentInvocations": 7, "maxQueueLength": 9,
                "cancelGracePeriod": "00:00:00.250", "terminateGracePeriod": "00:00:01",
                "restartBudget": {"maxRestarts": 2, "window": "00:00:10"}
            }
        }))
        .unwrap();
        assert_eq!(cfg.function_timeout, Duration::from_secs(2));
        assert_eq!(cfg.process_count, 3);
        assert_eq!(cfg.max_concurrency_per_instance, 7);
        assert_eq!(cfg.max_queue_length, 9);
        assert_eq!(cfg.cancel_grace, Duration::from_millis(250));
        assert_eq!(cfg.max_restarts, 2);
        assert_eq!(cfg.restart_window, Duration::from_secs(10));
    }

    #[test]
    fn a_bad_timeout_names_the_file_and_field() {
        let err = host(json!({"functionTimeout": "soon"}))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/app/host.json") && err.contains("`functionTimeout`"),
            "{err}"
        );
    }

    #[test]
    fn a_misspelt_worker_setting_names_the_field() {
        let err = host(json!({"workers": {"procesCount": 2}}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("procesCount"), "{err}");
        let err = host(json!({"workers": {"processCount": "two"}}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`workers.processCount`"), "{err}");
        let err = host(json!({"workers": {"processCount": 0}}))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`workers.processCount`") && err.contains("out of range"),
            "{err}"
        );
    }

    #[test]
    fn async_and_lifecycle_settings_are_range_checked_by_field() {
        let err = host(json!({"asyncEvents": {"maxRetryAttempts": 9}})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("asyncEvents.maxRetryAttempts"));
        let err = host(json!({"asyncEvents": {"maxConcurrency": 0}})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("asyncEvents.maxConcurrency"));
        let err = host(json!({"asyncEvents": {"queueMemoryLimit": 0}})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("asyncEvents.queueMemoryLimit"));
        let err = host(json!({"lifecycle": {"initializer": {"maxAttempts": 0}}})).unwrap_err();
        assert_eq!(
            err.field.as_deref(),
            Some("lifecycle.initializer.maxAttempts")
        );
        let err = host(json!({"lifecycle": {"preStop": {"timeout": "later"}}})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("lifecycle.preStop.timeout"));
        let err = host(json!({"shutdown": {"readinessDelay": "soon"}})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("shutdown.readinessDelay"));
        let err = host(json!({"shutdown": {"readinessDelay": "01:00:00"}})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("shutdown.readinessDelay"));
        let err = host(json!({"shutdown": {"readinesDelay": "00:00:05"}})).unwrap_err();
        assert!(err.to_string().contains("readinesDelay"), "{err}");
        let cfg = host(json!({"shutdown": {"readinessDelay": "00:00:05"}})).unwrap();
        assert_eq!(cfg.readiness_delay, Duration::from_secs(5));
        let cfg = host(json!({"workers": {"processCount": 2, "maxInstances": 4},
                              "lifecycle": {"initializer": {}}}))
        .unwrap();
        assert_eq!(cfg.max_instances, 4);
        assert_eq!(cfg.lifecycle.initializer.unwrap().function, "initializer");
        let err = host(json!({"workers": {"processCount": 3, "maxInstances": 2}})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("workers.maxInstances"));
    }

    #[test]
    fn connection_limits_are_read_and_range_checked_by_field() {
        let cfg = host(json!({
            "workers": {"handshakeTimeout": "00:00:02", "maxPendingConnections": 8},
            "http": {"headerReadTimeout": "00:00:00.500", "maxConnections": 3}
        }))
        .unwrap();
        assert_eq!(cfg.worker_handshake_deadline(), Duration::from_secs(2));
        assert_eq!(cfg.max_pending_connections, 8);
        assert_eq!(cfg.http.header_read_timeout, Duration::from_millis(500));
        assert_eq!(cfg.http.max_connections, 3);
        for (v, field) in [
            (
                json!({"workers": {"maxPendingConnections": 0}}),
                "workers.maxPendingConnections",
            ),
            (
                json!({"workers": {"handshakeTimeout": "00:00:00"}}),
                "workers.handshakeTimeout",
            ),
            (
                json!({"http": {"maxConnections": 0}}),
                "http.maxConnections",
            ),
            (
                json!({"http": {"headerReadTimeout": "soon"}}),
                "http.headerReadTimeout",
            ),
            (json!({"http": {"maxConections": 5}}), "http.maxConections"),
        ] {
            let err = host(v).unwrap_err();
            assert_eq!(err.field.as_deref(), Some(field), "{err}");
        }
    }

    #[test]
    fn the_handshake_deadline_is_the_shorter_of_handshake_and_startup_timeouts() {
        let cfg = host(json!({"workers": {"startupTimeout": "00:00:03"}})).unwrap();
        assert_eq!(cfg.worker_handshake_deadline(), Duration::from_secs(3));
        assert_eq!(
            HostConfig::default().worker_handshake_deadline(),
            Duration::from_secs(10)
        );
    }
}
