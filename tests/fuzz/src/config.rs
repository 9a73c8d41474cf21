//! Targets `host_json`, `function_json` and `worker_config`: arbitrary
//! text as the app's configuration files. A file that parses is written
//! back in a canonical form (every value the host read, spelled the way it
//! documents) and must parse to the same configuration; its values are in
//! their documented ranges; its accessors do not panic. A file that fails
//! has a non-empty message, and the field it blames is one the file has.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fnhost::config::{AppConfig, ArgumentStyle, ConfigError, FunctionConfig, WorkerLaunchConfig};
use serde_json::{json, Map, Value};

use crate::engine::{label, Target};

const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "null",
    "true",
    "false",
    "\"\"",
    "{}",
    "[]",
    "\"00:00:00\"",
    "\"00:05:00\"",
    "\"1.00:00:00\"",
    "\"23:59:59.9999999\"",
    "\"00:00:00.5\"",
    "\"99999999999999999999:00:00\"",
    "\"0.00:00:01\"",
    "\"24:00:00\"",
];

pub const HOST_JSON: Target = Target {
    name: "host_json",
    dictionary: &[
        "\"functionTimeout\"",
        "\"workers\"",
        "\"processCount\"",
        "\"maxConcurrentInvocations\"",
        "\"maxQueueLength\"",
        "\"maxMessageBytes\"",
        "\"cancelGracePeriod\"",
        "\"terminateGracePeriod\"",
        "\"startupTimeout\"",
        "\"handshakeTimeout\"",
        "\"maxPendingConnections\"",
        "\"restartBudget\"",
        "\"maxRestarts\"",
        "\"window\"",
        "\"maxInstances\"",
        "\"idleTimeout\"",
        "\"statusInterval\"",
        "\"statusTimeout\"",
        "\"lifecycle\"",
        "\"initializer\"",
        "\"preStop\"",
        "\"function\"",
        "\"timeout\"",
        "\"maxAttempts\"",
        "\"retryBackoff\"",
        "\"asyncEvents\"",
        "\"retention\"",
        "\"maxAttempts\"",
        "\"onFailure\"",
        "\"http\"",
        "\"extensions\"",
        "\"routePrefix\"",
        "\"shutdown\"",
        "\"readinessDelay\"",
        "\"logging\"",
        "\"version\"",
        "\"2.0\"",
        "\"api/v1\"",
        "\"{id}\"",
        "\"/\"",
    ],
    max_len: 4096,
    run: run_host_json,
};

pub const FUNCTION_JSON: Target = Target {
    name: "function_json",
    dictionary: &[
        "\"bindings\"",
        "\"type\"",
        "\"direction\"",
        "\"name\"",
        "\"in\"",
        "\"out\"",
        "\"inout\"",
        "\"IN\"",
        "\"httpTrigger\"",
        "\"http\"",
        "\"timerTrigger\"",
        "\"manualTrigger\"",
        "\"queueTrigger\"",
        "\"lifecycleTrigger\"",
        "\"$return\"",
        "\"req\"",
        "\"methods\"",
        "\"get\"",
        "\"POST\"",
        "\"route\"",
        "\"items/{id:int}\"",
        "\"{*rest}\"",
        "\"{id?}\"",
        "\"authLevel\"",
        "\"anonymous\"",
        "\"function\"",
        "\"admin\"",
        "\"system\"",
        "\"schedule\"",
        "\"0 */5 * * * *\"",
        "\"* * * * * *\"",
        "\"0 0 0 29 2 *\"",
        "\"runOnStartup\"",
        "\"useMonitor\"",
        "\"scriptFile\"",
        "\"run.py\"",
        "\"missing.py\"",
        "\"entryPoint\"",
        "\"main\"",
        "\"functionTimeout\"",
        "\"disabled\"",
    ],
    max_len: 4096,
    run: run_function_json,
};

pub const WORKER_CONFIG: Target = Target {
    name: "worker_config",
    dictionary: &[
        "\"description\"",
        "\"language\"",
        "\"defaultExecutablePath\"",
        "\"defaultWorkerPath\"",
        "\"arguments\"",
        "\"workerArguments\"",
        "\"argumentStyle\"",
        "\"classic\"",
        "\"both\"",
        "\"functions\"",
        "\"environment\"",
        "\"extensions\"",
        "\"defaultRuntimeVersion\"",
        "\"supportedRuntimeVersions\"",
        "\"supportedOperatingSystems\"",
        "\"supportedArchitectures\"",
        "\"workerIndexing\"",
        "\"processOptions\"",
        "\"python\"",
        "\"node\"",
        "\"rust\"",
        "\"/bin/true\"",
        "\"true\"",
        "\"bin/run\"",
        "\"worker.py\"",
        "\"{os}\"",
        "\"{architecture}\"",
        "\"%FUNCTIONS_WORKER_RUNTIME_VERSION%\"",
        "\"3.11\"",
        "\"-X no_debug_ranges\"",
        "\"'a b'\"",
        "\"\\\"q\\\"\"",
        "\"\\\\\"",
        "\".py\"",
    ],
    max_len: 4096,
    run: run_worker_config,
};

/// `d` as `host.json` spells a time span.
pub fn timespan(d: Duration) -> String {
    let s = d.as_secs();
    let mut text = format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
    if d.subsec_nanos() > 0 {
        text.push_str(&format!(".{:09}", d.subsec_nanos()));
    }
    text
}

/// The JSON of `input`, when it is JSON; a label otherwise.
fn json_of(input: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(input).map_err(|_| "not-utf8".to_string())?;
    serde_json::from_str(text).map_err(|_| "not-json".to_string())
}

/// An error must say what is wrong, and blame a field the file has.
fn check_error(e: &ConfigError, value: &Value) -> String {
    assert!(
        !e.message.trim().is_empty(),
        "an error without a message: {e:?}"
    );
    if let Some(field) = &e.field {
        // Keys may hold `.` and `[` themselves: some key must be the field
        // or its head. A missing field is, rightly, one the file lacks.
        let names_a_key = |obj: &Map<String, Value>| {
            obj.keys().any(|k| {
                field
                    .strip_prefix(k.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
            })
        };
        if let Some(obj) = value
            .as_object()
            .filter(|_| !e.message.starts_with("missing"))
        {
            assert!(
                names_a_key(obj),
                "the error blames `{field}`, which the file does not have: {e}"
            );
        }
        assert!(e.to_string().contains(field.as_str()), "{e}");
    }
    label(
        "err:",
        &e.to_string().replace(&e.file.display().to_string(), ""),
    )
}

fn run_host_json(input: &[u8]) -> String {
    let value = match json_of(input) {
        Ok(v) => v,
        Err(label) => return label,
    };
    let cfg = match fnhost::fuzzing::host_json(&value) {
        Ok(cfg) => cfg,
        Err(e) => return check_error(&e, &value),
    };
    assert!((1..=64).contains(&cfg.process_count), "{cfg:?}");
    assert!(
        (cfg.process_count..=64).contains(&cfg.max_instances),
        "{cfg:?}"
    );
    assert!(cfg.max_concurrency_per_instance >= 1 && cfg.max_message_bytes >= 64 * 1024);
    assert!(cfg.readiness_delay <= Duration::from_secs(300));
    for d in [
        cfg.function_timeout,
        cfg.cancel_grace,
        cfg.terminate_grace,
        cfg.startup_timeout,
        cfg.handshake_timeout,
        cfg.restart_window,
        cfg.idle_timeout,
        cfg.status_interval,
        cfg.status_timeout,
    ] {
        assert!(d > Duration::ZERO, "a zero time span was accepted: {cfg:?}");
    }
    let mut canonical = json!({
        "functionTimeout": timespan(cfg.function_timeout),
        "extensions": {"http": {"routePrefix": cfg.route_prefix}},
        "workers": {
            "processCount": cfg.process_count,
            "maxConcurrentInvocations": cfg.max_concurrency_per_instance,
            "maxQueueLength": cfg.max_queue_length,
            "maxMessageBytes": cfg.max_message_bytes,
            "cancelGracePeriod": timespan(cfg.cancel_grace),
            "terminateGracePeriod": timespan(cfg.terminate_grace),
            "startupTimeout": timespan(cfg.startup_timeout),
            "handshakeTimeout": timespan(cfg.handshake_timeout),
            "maxPendingConnections": cfg.max_pending_connections,
            "restartBudget": {
                "maxRestarts": cfg.max_restarts,
                "window": timespan(cfg.restart_window),
            },
            "maxInstances": cfg.max_instances,
            "idleTimeout": timespan(cfg.idle_timeout),
            "statusInterval": timespan(cfg.status_interval),
            "statusTimeout": timespan(cfg.status_timeout),
        },
        "shutdown": {"readinessDelay": timespan(cfg.readiness_delay)},
    });
    // Sections read by their own parsers go back as they came.
    for key in ["lifecycle", "asyncEvents", "http"] {
        if let Some(v) = value.get(key) {
            canonical[key] = v.clone();
        }
    }
    match fnhost::fuzzing::host_json(&canonical) {
        Ok(again) => assert_eq!(
            again, cfg,
            "host.json written back reads otherwise: {canonical}"
        ),
        Err(e) => panic!("host.json written back is refused: {e}\n{canonical}"),
    }
    let sections: Vec<&str> = value
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    format!("ok:{}", sections.join(","))
}

/// A folder per thread (targets run side by side).
fn scratch(kind: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "fnhost-fuzz-{}-{kind}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let dir = PathBuf::from(dir.to_string_lossy().replace(['(', ')'], ""));
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    dir
}

fn load_function(dir: &Path, text: &[u8]) -> Result<AppConfig, ConfigError> {
    std::fs::write(dir.join("fn1").join("function.json"), text).expect("writes");
    AppConfig::load(dir)
}

fn run_function_json(input: &[u8]) -> String {
    let value = match json_of(input) {
        Ok(v) => v,
        Err(label) => return label,
    };
    let dir = scratch("function");
    if !dir.join("host.json").exists() {
        std::fs::create_dir_all(dir.join("fn1")).expect("a function folder");
        std::fs::write(dir.join("host.json"), "{}").expect("writes");
        std::fs::write(dir.join("fn1").join("run.py"), "").expect("writes");
        let worker =
            json!({"description": {"language": "rust", "defaultExecutablePath": "/bin/true"}});
        std::fs::write(dir.join("worker.config.json"), worker.to_string()).expect("writes");
    }
    let app = match load_function(&dir, input) {
        Ok(app) => app,
        Err(e) => return check_error(&e, &value),
    };
    assert_eq!(app.functions.len(), 1);
    let f = &app.functions[0];
    check_function(f);
    let mut canonical = Map::new();
    let bindings: Vec<Value> = f
        .raw_bindings
        .iter()
        .map(|b| serde_json::from_str(b).expect("raw bindings are JSON"))
        .collect();
    canonical.insert("bindings".into(), Value::Array(bindings));
    canonical.insert("disabled".into(), Value::Bool(f.disabled));
    if !f.entry_point.is_empty() {
        canonical.insert("entryPoint".into(), json!(f.entry_point));
    }
    if let Some(t) = f.timeout {
        canonical.insert("functionTimeout".into(), json!(timespan(t)));
    }
    if let Some(s) = &f.script_file {
        let name = s
            .strip_prefix(&f.directory)
            .expect("the script is in the function's folder");
        canonical.insert("scriptFile".into(), json!(name));
    }
    let canonical = Value::Object(canonical);
    let again = load_function(&dir, canonical.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("function.json written back is refused: {e}\n{canonical}"));
    let g = &again.functions[0];
    assert_eq!(
        (
            format!("{:?}", g.bindings),
            g.timeout,
            g.disabled,
            &g.entry_point,
            &g.script_file
        ),
        (
            format!("{:?}", f.bindings),
            f.timeout,
            f.disabled,
            &f.entry_point,
            &f.script_file
        ),
        "function.json written back reads otherwise: {canonical}"
    );
    format!(
        "ok:{}:{}:{}",
        f.trigger().binding_type.to_ascii_lowercase(),
        f.bindings.len(),
        f.http_output().is_some()
    )
}

/// What the host asks of a loaded function must not fail.
fn check_function(f: &FunctionConfig) {
    let triggers = f.bindings.iter().filter(|b| b.is_trigger()).count();
    assert_eq!(triggers, 1, "{f:?}");
    assert_eq!(f.raw_bindings.len(), f.bindings.len());
    for (i, b) in f.bindings.iter().enumerate() {
        assert!(!b.name.is_empty() && !b.binding_type.is_empty(), "{b:?}");
        assert!(!f.bindings[..i].iter().any(|o| o.name == b.name), "{f:?}");
    }
    assert!(f.timeout.is_none_or(|t| t > Duration::ZERO));
    let t = f.trigger();
    let _ = (
        f.auth_level(),
        f.unfired_trigger(),
        f.is_http_triggered(),
        f.http_output(),
    );
    let route = f.route();
    if let Some(text) = t.properties.get("route") {
        assert_eq!(
            Some(&route),
            fnhost::config::route::RouteTemplate::parse(text)
                .ok()
                .as_ref(),
            "the route was checked at load"
        );
    }
    // A timer trigger's schedule was checked at load: it must still parse.
    assert_eq!(
        f.timer().is_some(),
        t.binding_type.eq_ignore_ascii_case("timerTrigger"),
        "{t:?}"
    );
}

/// `word` quoted so that the worker config's word splitting gives it back.
fn quote(word: &str) -> String {
    if !word.contains('\'') {
        return format!("'{word}'");
    }
    let mut out = String::from("\"");
    for c in word.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn run_worker_config(input: &[u8]) -> String {
    let value = match json_of(input) {
        Ok(v) => v,
        Err(label) => return label,
    };
    let dir = scratch("worker");
    let path = dir.join("worker.config.json");
    if !dir.join("bin").exists() {
        std::fs::create_dir_all(dir.join("bin")).expect("a folder");
        std::fs::write(dir.join("bin").join("run"), "").expect("writes");
        std::fs::write(dir.join("worker.py"), "").expect("writes");
    }
    std::fs::write(&path, input).expect("writes");
    let cfg = match WorkerLaunchConfig::load(&path) {
        Ok(cfg) => cfg,
        Err(e) => {
            let field = e.field.clone().unwrap_or_default();
            // The typed read names nested fields from the top: fine as is.
            let _ = field;
            return check_error(&e, &value);
        }
    };
    assert!(!cfg.language.is_empty());
    assert!(cfg.executable.is_file(), "{cfg:?}");
    assert!(
        cfg.worker_path.as_ref().is_none_or(|p| p.exists()),
        "{cfg:?}"
    );
    let plain = |p: &Path| {
        let s = p.to_string_lossy();
        p.is_absolute() && !s.contains(['{', '%'])
    };
    if plain(&cfg.executable) && cfg.worker_path.as_deref().is_none_or(plain) {
        let style = match cfg.argument_style {
            ArgumentStyle::Classic => "classic",
            ArgumentStyle::Both => "both",
            ArgumentStyle::Functions => "functions",
        };
        let mut description = json!({
            "language": cfg.language,
            "defaultExecutablePath": cfg.executable,
            "arguments": cfg.arguments.iter().map(|w| quote(w)).collect::<Vec<_>>(),
            "workerArguments": cfg.worker_arguments.iter().map(|w| quote(w)).collect::<Vec<_>>(),
            "argumentStyle": style,
            "environment": cfg.environment,
            "extensions": cfg.extensions,
            "workerIndexing": cfg.worker_indexing,
        });
        if let Some(p) = &cfg.worker_path {
            description["defaultWorkerPath"] = json!(p);
        }
        let canonical = json!({ "description": description });
        std::fs::write(&path, canonical.to_string()).expect("writes");
        let again = WorkerLaunchConfig::load(&path).unwrap_or_else(|e| {
            panic!("worker.config.json written back is refused: {e}\n{canonical}")
        });
        assert_eq!(
            (
                &again.language,
                &again.executable,
                &again.worker_path,
                &again.arguments,
                &again.worker_arguments,
                again.argument_style,
                &again.environment,
                &again.extensions,
                again.worker_indexing,
            ),
            (
                &cfg.language,
                &cfg.executable,
                &cfg.worker_path,
                &cfg.arguments,
                &cfg.worker_arguments,
                cfg.argument_style,
                &cfg.environment,
                &cfg.extensions,
                cfg.worker_indexing,
            ),
            "worker.config.json written back reads otherwise: {canonical}"
        );
    }
    format!(
        "ok:{:?}:{}:{}:{}",
        cfg.argument_style,
        cfg.arguments.len().min(3),
        cfg.worker_path.is_some(),
        cfg.worker_indexing
    )
}

/// JSON tokens shared by the three config targets' dictionaries.
pub fn json_tokens() -> &'static [&'static str] {
    JSON_TOKENS
}
