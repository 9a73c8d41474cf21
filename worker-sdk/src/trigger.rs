//! How a function is triggered, and the metadata a worker-indexing worker
//! reports for it.
//!
//! With worker indexing on, the host builds its functions from the
//! `FunctionMetadataResponse` instead of `function.json` files. Each
//! function's `raw_bindings` are the binding objects of a `function.json`,
//! serialized the way Azure's language workers send them.

use std::collections::HashMap;

use fnhost_proto::rpc::binding_info::Direction;
use fnhost_proto::rpc::{BindingInfo, RpcFunctionMetadata, StatusResult};
use serde::Serialize;

/// Who may call an HTTP-triggered function, as Azure's `authLevel` defines
/// it.
///
/// ```no_run
/// use fnhost_worker::{AuthLevel, HttpTrigger};
/// let trigger = HttpTrigger::new().auth_level(AuthLevel::Anonymous);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AuthLevel {
    /// No key needed.
    Anonymous,
    /// A function key or a host key (Azure's default).
    #[default]
    Function,
    /// The host's master key.
    Admin,
}

impl AuthLevel {
    /// The `authLevel` value as it appears in a binding: `anonymous`,
    /// `function` or `admin`.
    ///
    /// ```no_run
    /// assert_eq!(fnhost_worker::AuthLevel::Admin.as_str(), "admin");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            AuthLevel::Anonymous => "anonymous",
            AuthLevel::Function => "function",
            AuthLevel::Admin => "admin",
        }
    }
}

/// An HTTP trigger: its route template, methods and auth level.
///
/// The defaults are Azure's: no `route` (the function is served at
/// `/api/<name>`), every method, and [`AuthLevel::Function`].
///
/// ```no_run
/// use fnhost_worker::{AuthLevel, HttpTrigger};
/// let trigger = HttpTrigger::new()
///     .route("items/{id:int}")
///     .methods(["GET"])
///     .auth_level(AuthLevel::Anonymous);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpTrigger {
    route: Option<String>,
    methods: Vec<String>,
    auth_level: AuthLevel,
}

impl HttpTrigger {
    /// An HTTP trigger with Azure's defaults.
    ///
    /// ```no_run
    /// let trigger = fnhost_worker::HttpTrigger::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The route template, e.g. `items/{id:int}` (under the host's route
    /// prefix, `api` by default).
    ///
    /// ```no_run
    /// let trigger = fnhost_worker::HttpTrigger::new().route("files/{*path}");
    /// ```
    pub fn route(mut self, template: impl Into<String>) -> Self {
        self.route = Some(template.into());
        self
    }

    /// The HTTP methods the function answers (any case; sent lowercase).
    /// Without this call it answers every method.
    ///
    /// ```no_run
    /// let trigger = fnhost_worker::HttpTrigger::new().methods(["GET", "POST"]);
    /// ```
    pub fn methods<I, S>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.methods = methods
            .into_iter()
            .map(|m| m.as_ref().to_ascii_lowercase())
            .collect();
        self
    }

    /// Who may call the function.
    ///
    /// ```no_run
    /// use fnhost_worker::{AuthLevel, HttpTrigger};
    /// let trigger = HttpTrigger::new().auth_level(AuthLevel::Admin);
    /// ```
    pub fn auth_level(mut self, level: AuthLevel) -> Self {
        self.auth_level = level;
        self
    }
}

/// A timer trigger: its schedule, a six-field NCRONTAB expression (seconds
/// first, e.g. `0 */5 * * * *`) or a TimeSpan such as `00:05:00`, which the
/// host checks when it loads the function. Each tick's input is Azure's
/// `TimerInfo` JSON (`ScheduleStatus.Next` is the tick's scheduled time,
/// `IsPastDue` says it was missed while no host ran it).
///
/// ```no_run
/// let trigger = fnhost_worker::TimerTrigger::new("0 */5 * * * *").run_on_startup(true);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimerTrigger {
    schedule: String,
    run_on_startup: bool,
}

impl TimerTrigger {
    /// A timer on `schedule`.
    ///
    /// ```no_run
    /// let trigger = fnhost_worker::TimerTrigger::new("00:05:00");
    /// ```
    pub fn new(schedule: impl Into<String>) -> Self {
        Self {
            schedule: schedule.into(),
            run_on_startup: false,
        }
    }

    /// Also run once when the host starts (`runOnStartup`).
    ///
    /// ```no_run
    /// let trigger = fnhost_worker::TimerTrigger::new("0 0 * * * *").run_on_startup(true);
    /// ```
    pub fn run_on_startup(mut self, yes: bool) -> Self {
        self.run_on_startup = yes;
        self
    }
}

/// How a registered function is triggered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// `manualTrigger`: invoked through the admin and async APIs only.
    Manual,
    /// `httpTrigger` with an `http` output bound to `$return`.
    Http(HttpTrigger),
    /// `timerTrigger`, its input named `timer`.
    Timer(TimerTrigger),
}

/// One binding object, with its keys in the order Azure's workers write them.
#[derive(Serialize)]
struct RawBinding<'a> {
    #[serde(rename = "type")]
    binding_type: &'static str,
    direction: &'static str,
    name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    methods: Option<&'a [String]>,
    #[serde(rename = "authLevel", skip_serializing_if = "Option::is_none")]
    auth_level: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    route: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule: Option<&'a str>,
    #[serde(rename = "runOnStartup", skip_serializing_if = "Option::is_none")]
    run_on_startup: Option<bool>,
}

impl<'a> RawBinding<'a> {
    fn plain(binding_type: &'static str, direction: &'static str, name: &'static str) -> Self {
        Self {
            binding_type,
            direction,
            name,
            methods: None,
            auth_level: None,
            route: None,
            schedule: None,
            run_on_startup: None,
        }
    }

    fn direction(&self) -> Direction {
        if self.direction == "out" {
            Direction::Out
        } else {
            Direction::In
        }
    }
}

impl Trigger {
    fn bindings(&self) -> Vec<RawBinding<'_>> {
        match self {
            Trigger::Manual => vec![RawBinding::plain("manualTrigger", "in", "input")],
            Trigger::Http(http) => vec![
                RawBinding {
                    methods: (!http.methods.is_empty()).then_some(http.methods.as_slice()),
                    auth_level: Some(http.auth_level.as_str()),
                    route: http.route.as_deref(),
                    ..RawBinding::plain("httpTrigger", "in", "req")
                },
                RawBinding::plain("http", "out", "$return"),
            ],
            Trigger::Timer(timer) => vec![RawBinding {
                schedule: Some(&timer.schedule),
                run_on_startup: Some(timer.run_on_startup),
                ..RawBinding::plain("timerTrigger", "in", "timer")
            }],
        }
    }

    /// The function's entry in a `FunctionMetadataResponse`, as Azure's
    /// workers fill it: the name doubles as the stable `function_id`.
    pub(crate) fn metadata(&self, name: &str) -> RpcFunctionMetadata {
        let bindings = self.bindings();
        RpcFunctionMetadata {
            name: name.to_string(),
            function_id: name.to_string(),
            language: "rust".to_string(),
            is_proxy: false,
            raw_bindings: bindings
                .iter()
                .map(|b| serde_json::to_string(b).expect("a binding serializes"))
                .collect(),
            bindings: bindings
                .iter()
                .map(|b| {
                    let info = BindingInfo {
                        r#type: b.binding_type.to_string(),
                        direction: b.direction().into(),
                        ..BindingInfo::default()
                    };
                    (b.name.to_string(), info)
                })
                .collect(),
            properties: HashMap::from([("worker_indexed".to_string(), "True".to_string())]),
            status: Some(StatusResult::success()),
            ..RpcFunctionMetadata::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timer_trigger_has_its_schedule_in_its_raw_binding() {
        let m = Trigger::Timer(TimerTrigger::new("0 */5 * * * *").run_on_startup(true))
            .metadata("tick");
        assert_eq!(
            m.raw_bindings,
            [
                r#"{"type":"timerTrigger","direction":"in","name":"timer","schedule":"0 */5 * * * *","runOnStartup":true}"#
            ]
        );
    }

    #[test]
    fn an_http_trigger_with_a_route_has_azure_raw_bindings() {
        let trigger = Trigger::Http(
            HttpTrigger::new()
                .route("items/{id:int}")
                .methods(["GET"])
                .auth_level(AuthLevel::Anonymous),
        );
        let m = trigger.metadata("item");
        assert_eq!(
            m.raw_bindings,
            [
                r#"{"type":"httpTrigger","direction":"in","name":"req","methods":["get"],"authLevel":"anonymous","route":"items/{id:int}"}"#,
                r#"{"type":"http","direction":"out","name":"$return"}"#,
            ]
        );
        assert_eq!(m.bindings["req"].r#type, "httpTrigger");
        assert_eq!(m.bindings["req"].direction(), Direction::In);
        assert_eq!(m.bindings["$return"].r#type, "http");
        assert_eq!(m.bindings["$return"].direction(), Direction::Out);
    }

    #[test]
    fn a_default_http_trigger_names_its_auth_level_and_leaves_out_methods_and_route() {
        let m = Trigger::Http(HttpTrigger::new()).metadata("hello");
        assert_eq!(
            m.raw_bindings[0],
            r#"{"type":"httpTrigger","direction":"in","name":"req","authLevel":"function"}"#
        );
    }

    #[test]
    fn a_manual_function_has_a_manual_trigger_binding() {
        let m = Trigger::Manual.metadata("job");
        assert_eq!(
            m.raw_bindings,
            [r#"{"type":"manualTrigger","direction":"in","name":"input"}"#]
        );
        assert_eq!(m.bindings.len(), 1);
        assert_eq!(m.bindings["input"].r#type, "manualTrigger");
    }

    #[test]
    fn metadata_is_marked_worker_indexed() {
        let m = Trigger::Manual.metadata("job");
        assert_eq!(m.name, "job");
        assert_eq!(m.function_id, "job");
        assert_eq!(m.language, "rust");
        assert!(!m.is_proxy);
        assert_eq!(m.properties["worker_indexed"], "True");
        assert!(m.status.unwrap().is_success());
    }
}
