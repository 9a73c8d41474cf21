//! `<function>/function.json`: bindings, script file, entry point.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{positive_timespan, read_json, string_properties, ConfigError};

/// One function of the app.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    /// The folder name, which is the function's name.
    pub name: String,
    /// Absolute path of the function's folder.
    pub directory: PathBuf,
    /// `scriptFile`, resolved against the function's folder.
    pub script_file: Option<PathBuf>,
    /// `entryPoint` (empty when not given).
    pub entry_point: String,
    /// All bindings in file order.
    pub bindings: Vec<Binding>,
    /// The JSON text of each binding, as the protocol's `raw_bindings`.
    pub raw_bindings: Vec<String>,
    /// `functionTimeout` override for this function (an fnhost extension).
    pub timeout: Option<Duration>,
    /// `disabled`: the function is listed but cannot be invoked.
    pub disabled: bool,
    /// Properties a worker gave the function when it indexed it (such as
    /// `worker_indexed`), sent back in its `FunctionLoadRequest`.
    pub properties: std::collections::BTreeMap<String, String>,
}

/// Direction of a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Data into the function.
    In,
    /// Data out of the function.
    Out,
    /// Both.
    InOut,
}

/// One entry of `bindings`.
#[derive(Debug, Clone)]
pub struct Binding {
    /// `name` (`$return` for the return value).
    pub name: String,
    /// `type`, e.g. `httpTrigger`, `http`, `manualTrigger`.
    pub binding_type: String,
    /// `direction`.
    pub direction: Direction,
    /// Other properties as strings (`methods`, `route`, `authLevel`, ...).
    pub properties: BTreeMap<String, String>,
    /// `methods` of an HTTP trigger, lower-cased; `None` allows every method.
    pub methods: Option<Vec<String>>,
}

impl Binding {
    /// True for the trigger binding (an input whose type ends in `Trigger`).
    pub fn is_trigger(&self) -> bool {
        self.direction == Direction::In
            && self.binding_type.to_ascii_lowercase().ends_with("trigger")
    }
}

impl FunctionConfig {
    /// The trigger binding (validation guarantees exactly one).
    pub fn trigger(&self) -> &Binding {
        self.bindings
            .iter()
            .find(|b| b.is_trigger())
            .expect("validated: exactly one trigger binding")
    }

    /// Who may call it on `/api/<name>`: its trigger's `authLevel`, and
    /// `function` when absent (Azure's default).
    pub fn auth_level(&self) -> crate::keys::AuthLevel {
        self.trigger()
            .properties
            .get("authLevel")
            .and_then(|v| crate::keys::AuthLevel::parse(v))
            .unwrap_or(crate::keys::AuthLevel::Function)
    }

    /// Its HTTP route template: the trigger's `route`, else its name.
    pub fn route(&self) -> super::route::RouteTemplate {
        let text = self
            .trigger()
            .properties
            .get("route")
            .cloned()
            .unwrap_or_else(|| self.name.clone());
        // Checked when the app loaded; the name alone always parses.
        super::route::RouteTemplate::parse(&text).unwrap_or_else(|_| super::route::RouteTemplate {
            text: self.name.clone(),
            segments: vec![super::route::Segment::Literal(
                self.name.to_ascii_lowercase(),
            )],
        })
    }

    /// The trigger type when it is one nothing in fnhost fires (a queue,
    /// blob, timer... trigger): such a function runs only when invoked
    /// through the admin API.
    pub fn unfired_trigger(&self) -> Option<&str> {
        let t = self.trigger().binding_type.as_str();
        let fired = [
            "httpTrigger",
            "manualTrigger",
            "lifecycleTrigger",
            "timerTrigger",
        ]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(t));
        (!fired).then_some(t)
    }

    /// Its timer trigger: the schedule and whether it also runs at start
    /// (`runOnStartup`). `None` for other triggers.
    pub fn timer(&self) -> Option<crate::timers::TimerTrigger> {
        let t = self.trigger();
        if !t.binding_type.eq_ignore_ascii_case("timerTrigger") {
            return None;
        }
        // Checked when the function loaded.
        let schedule =
            crate::timers::schedule::Schedule::parse(t.properties.get("schedule")?).ok()?;
        Some(crate::timers::TimerTrigger {
            schedule,
            run_on_startup: t
                .properties
                .get("runOnStartup")
                .is_some_and(|v| v == "true"),
        })
    }

    /// True when the function is reachable on `/api/<name>`.
    pub fn is_http_triggered(&self) -> bool {
        self.trigger()
            .binding_type
            .eq_ignore_ascii_case("httpTrigger")
    }

    /// The HTTP output binding's name (`$return` or a named `http` out binding).
    pub fn http_output(&self) -> Option<&str> {
        self.bindings
            .iter()
            .find(|b| b.direction == Direction::Out && b.binding_type.eq_ignore_ascii_case("http"))
            .map(|b| b.name.as_str())
    }
}

/// Loads every `*/function.json` under the app directory, sorted by name.
pub(crate) fn load_all(app_dir: &Path) -> Result<Vec<FunctionConfig>, ConfigError> {
    let entries = std::fs::read_dir(app_dir)
        .map_err(|e| ConfigError::file(app_dir, format!("cannot be listed: {e}")))?;
    let mut functions = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| ConfigError::file(app_dir, format!("cannot be listed: {e}")))?;
        let dir = entry.path();
        let file = dir.join("function.json");
        if !dir.is_dir() || !file.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        functions.push(load_one(&name, &dir, &file)?);
    }
    functions.sort_by(|a, b| a.name.cmp(&b.name));
    // Names match case-insensitively, so two folders differing in case
    // would be one function twice.
    for (i, f) in functions.iter().enumerate() {
        if let Some(other) = functions[..i]
            .iter()
            .find(|o| o.name.eq_ignore_ascii_case(&f.name))
        {
            return Err(ConfigError::file(
                &f.directory,
                format!(
                    "function '{}' differs from '{}' only in case; function names are matched case-insensitively",
                    f.name, other.name
                ),
            ));
        }
    }
    Ok(functions)
}

fn load_one(name: &str, dir: &Path, file: &Path) -> Result<FunctionConfig, ConfigError> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ConfigError::file(
            file,
            format!("function folder name \"{name}\" may hold only letters, digits, '_' and '-'"),
        ));
    }
    let value = read_json(file)?;
    let obj = value
        .as_object()
        .ok_or_else(|| ConfigError::file(file, "expected a JSON object at the top level"))?;
    let str_field = |key: &str| -> Result<Option<String>, ConfigError> {
        match obj.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ConfigError::field(file, key, "expected a string")),
        }
    };
    let script_file = str_field("scriptFile")?.map(|s| dir.join(s));
    if let Some(script) = &script_file {
        if !script.is_file() {
            return Err(ConfigError::field(
                file,
                "scriptFile",
                format!("{} does not exist", script.display()),
            ));
        }
    }
    let entry_point = str_field("entryPoint")?.unwrap_or_default();
    let timeout = str_field("functionTimeout")?
        .map(|t| positive_timespan(file, "functionTimeout", &t))
        .transpose()?;
    let disabled = match obj.get("disabled") {
        None => false,
        Some(serde_json::Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ConfigError::field(
                file,
                "disabled",
                "expected true or false",
            ))
        }
    };
    let raw = match obj.get("bindings") {
        Some(serde_json::Value::Array(items)) => items,
        None | Some(serde_json::Value::Null) => {
            return Err(ConfigError::field(
                file,
                "bindings",
                "missing: expected an array of bindings",
            ))
        }
        Some(other) => {
            return Err(ConfigError::field(
                file,
                "bindings",
                format!("must be an array of bindings, not {}", json_kind(other)),
            ))
        }
    };
    let mut bindings = Vec::with_capacity(raw.len());
    let mut raw_bindings = Vec::with_capacity(raw.len());
    for (i, b) in raw.iter().enumerate() {
        bindings.push(parse_binding(file, i, b)?);
        raw_bindings.push(b.to_string());
    }
    let triggers = bindings.iter().filter(|b| b.is_trigger()).count();
    if triggers != 1 {
        return Err(ConfigError::field(
            file,
            "bindings",
            format!("exactly one trigger binding (direction \"in\", type \"...Trigger\") is required, found {triggers}"),
        ));
    }
    for (i, b) in bindings.iter().enumerate() {
        if bindings[..i].iter().any(|o| o.name == b.name) {
            return Err(ConfigError::field(
                file,
                format!("bindings[{i}].name"),
                format!("\"{}\" is used by more than one binding", b.name),
            ));
        }
    }
    Ok(FunctionConfig {
        name: name.to_string(),
        directory: dir.to_path_buf(),
        script_file,
        entry_point,
        bindings,
        raw_bindings,
        timeout,
        disabled,
        properties: Default::default(),
    })
}

/// The JSON type of `value` with an article, for "must be X, not a string".
fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

pub(crate) fn parse_binding(
    file: &Path,
    i: usize,
    value: &serde_json::Value,
) -> Result<Binding, ConfigError> {
    let field = |name: &str| format!("bindings[{i}].{name}");
    let obj = value
        .as_object()
        .ok_or_else(|| ConfigError::field(file, format!("bindings[{i}]"), "expected an object"))?;
    let get_str = |key: &str| -> Result<String, ConfigError> {
        match obj.get(key) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(serde_json::Value::String(_)) => {
                Err(ConfigError::field(file, field(key), "must not be empty"))
            }
            Some(_) => Err(ConfigError::field(file, field(key), "expected a string")),
            None => Err(ConfigError::field(file, field(key), "missing")),
        }
    };
    let name = get_str("name")?;
    let binding_type = get_str("type")?;
    let direction = match get_str("direction")?.to_ascii_lowercase().as_str() {
        "in" => Direction::In,
        "out" => Direction::Out,
        "inout" => Direction::InOut,
        other => {
            return Err(ConfigError::field(
                file,
                field("direction"),
                format!("\"{other}\" is not one of \"in\", \"out\", \"inout\""),
            ))
        }
    };
    let methods = match obj.get("methods") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Array(items)) => Some(
            items
                .iter()
                .map(|m| {
                    m.as_str().map(str::to_ascii_lowercase).ok_or_else(|| {
                        ConfigError::field(file, field("methods"), "expected an array of strings")
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => {
            return Err(ConfigError::field(
                file,
                field("methods"),
                "expected an array of strings",
            ))
        }
    };
    if let Some(route) = obj.get("route") {
        let text = route
            .as_str()
            .ok_or_else(|| ConfigError::field(file, field("route"), "expected a string"))?;
        super::route::RouteTemplate::parse(text)
            .map_err(|e| ConfigError::field(file, field("route"), e))?;
    }
    if let Some(level) = obj.get("authLevel") {
        let known = level.as_str().and_then(crate::keys::AuthLevel::parse);
        if known.is_none() {
            return Err(ConfigError::field(
                file,
                field("authLevel"),
                format!("{level} is not one of \"anonymous\", \"function\", \"admin\", \"system\""),
            ));
        }
    }
    if binding_type.eq_ignore_ascii_case("timerTrigger") {
        let schedule = match obj.get("schedule") {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => {
                return Err(ConfigError::field(
                    file,
                    field("schedule"),
                    format!("must be a string, not {}", json_kind(other)),
                ))
            }
            None => return Err(ConfigError::field(file, field("schedule"), "missing")),
        };
        crate::timers::schedule::Schedule::parse(schedule)
            .map_err(|e| ConfigError::field(file, field("schedule"), e))?;
        for flag in ["runOnStartup", "useMonitor"] {
            match obj.get(flag) {
                None | Some(serde_json::Value::Bool(_)) => {}
                Some(_) => {
                    return Err(ConfigError::field(
                        file,
                        field(flag),
                        "expected true or false",
                    ))
                }
            }
        }
    }
    Ok(Binding {
        name,
        binding_type,
        direction,
        properties: string_properties(obj, &["name", "type", "direction"]),
        methods,
    })
}

/// The `scriptFile` a language's worker loads when function.json names
/// none: Python `__init__.py`; Node the package.json `main` (of the function
/// folder, else the app), else `index.js`, else the folder's only `.js`
/// file. Sent as an absolute path; a missing file is a start error, never a
/// failure at the first call. Other languages (fnhost's Rust SDK) load by
/// name and need none.
pub(crate) fn default_script_files(
    functions: &mut [FunctionConfig],
    language: &str,
) -> Result<(), ConfigError> {
    let lang = language.to_ascii_lowercase();
    if lang != "python" && lang != "node" {
        return Ok(());
    }
    for f in functions.iter_mut() {
        if f.script_file.is_some() {
            continue;
        }
        let file = f.directory.join("function.json");
        let found = if lang == "python" {
            Some(f.directory.join("__init__.py")).filter(|p| p.is_file())
        } else {
            node_entry(&f.directory)
        };
        match found {
            Some(path) => f.script_file = Some(path),
            None => {
                let wanted = if lang == "python" {
                    "__init__.py"
                } else {
                    "package.json \"main\", index.js or a single .js file"
                };
                return Err(ConfigError::field(
                    &file,
                    "scriptFile",
                    format!(
                        "not given, and the default ({wanted}) is not in {}",
                        f.directory.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn node_entry(dir: &Path) -> Option<PathBuf> {
    let from_package = |base: &Path| -> Option<PathBuf> {
        let text = std::fs::read_to_string(base.join("package.json")).ok()?;
        let value: serde_json::Value = serde_json::from_str(&text).ok()?;
        let main = base.join(value.get("main")?.as_str()?);
        main.is_file().then_some(main)
    };
    if let Some(p) = from_package(dir).or_else(|| dir.parent().and_then(from_package)) {
        return Some(p);
    }
    let index = dir.join("index.js");
    if index.is_file() {
        return Some(index);
    }
    let scripts: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "js") && p.is_file())
        .collect();
    match scripts.as_slice() {
        [only] => Some(only.clone()),
        _ => None,
    }
}

/// No two HTTP-triggered functions may serve the same route shape with an
/// overlapping method.
pub(crate) fn check_routes(functions: &[FunctionConfig], prefix: &str) -> Result<(), ConfigError> {
    let http: Vec<&FunctionConfig> = functions.iter().filter(|f| f.is_http_triggered()).collect();
    for (i, a) in http.iter().enumerate() {
        for b in &http[..i] {
            if a.route().shape() != b.route().shape() {
                continue;
            }
            let overlap = match (&a.trigger().methods, &b.trigger().methods) {
                (Some(x), Some(y)) => x.iter().find(|m| y.contains(m)).cloned(),
                (Some(x), None) | (None, Some(x)) => x.first().cloned(),
                (None, None) => Some("any method".to_string()),
            };
            if let Some(method) = overlap {
                return Err(ConfigError::field(
                    &a.directory.join("function.json"),
                    "bindings.route",
                    format!(
                        "functions '{}' and '{}' both serve {} /{}/{}",
                        b.name,
                        a.name,
                        method.to_uppercase(),
                        prefix,
                        a.route().text.trim_matches('/')
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let fdir = dir.join(name);
        std::fs::create_dir_all(&fdir).unwrap();
        let file = fdir.join("function.json");
        std::fs::write(&file, text).unwrap();
        file
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fnhost-cfg-{tag}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn reads_an_http_function() {
        let dir = temp_dir("http");
        write(
            &dir,
            "echo",
            r#"{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","methods":["GET","post"]},
                {"type":"http","direction":"out","name":"$return"}], "functionTimeout": "00:00:03"}"#,
        );
        let fns = load_all(&dir).unwrap();
        assert_eq!(fns.len(), 1);
        assert!(fns[0].is_http_triggered());
        assert_eq!(
            fns[0].trigger().methods.as_deref(),
            Some(&["get".to_string(), "post".to_string()][..])
        );
        assert_eq!(fns[0].http_output(), Some("$return"));
        assert_eq!(fns[0].timeout, Some(Duration::from_secs(3)));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn errors_name_the_file_and_the_binding_field() {
        let dir = temp_dir("bad");
        let file = write(
            &dir,
            "f",
            r#"{"bindings":[{"type":"manualTrigger","direction":"sideways","name":"x"}]}"#,
        );
        let err = load_all(&dir).unwrap_err();
        assert_eq!(err.file, file);
        assert_eq!(err.field.as_deref(), Some("bindings[0].direction"));
        write(
            &dir,
            "f",
            r#"{"bindings":[{"type":"http","direction":"out","name":"$return"}]}"#,
        );
        let err = load_all(&dir).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("bindings"));
        assert!(err.message.contains("found 0"), "{err}");
        write(&dir, "f", r#"{"scriptFile": "missing.py", "bindings":[]}"#);
        assert_eq!(
            load_all(&dir).unwrap_err().field.as_deref(),
            Some("scriptFile")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bindings_of_the_wrong_type_are_named_as_such_not_as_missing() {
        let dir = temp_dir("bindings-type");
        for (text, kind) in [
            (r#"{"bindings": "x"}"#, "a string"),
            (r#"{"bindings": {"type": "httpTrigger"}}"#, "an object"),
            (r#"{"bindings": 3}"#, "a number"),
        ] {
            write(&dir, "f", text);
            let err = load_all(&dir).unwrap_err();
            assert_eq!(err.field.as_deref(), Some("bindings"), "{text}");
            assert!(
                err.message.contains("must be an array") && err.message.contains(kind),
                "{text}: {err}"
            );
            assert!(!err.message.contains("missing"), "{text}: {err}");
        }
        for text in [r#"{}"#, r#"{"bindings": null}"#] {
            write(&dir, "f", text);
            let err = load_all(&dir).unwrap_err();
            assert!(err.message.contains("missing"), "{text}: {err}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
