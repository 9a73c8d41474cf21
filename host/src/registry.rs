//! The functions the host can invoke: configured ones (host-indexed, from
//! `function.json`) and those a worker reported itself (worker-indexed).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fnhost_proto::rpc::{binding_info, BindingInfo, FunctionLoadRequest, RpcFunctionMetadata};

use crate::config::{AppConfig, Binding, Direction, FunctionConfig};

/// One invokable function.
#[derive(Debug, Clone)]
pub(crate) struct FunctionEntry {
    pub config: Arc<FunctionConfig>,
    /// The id the protocol uses for this function (stable for the host's life).
    pub function_id: String,
    pub timeout: Duration,
}

#[derive(Debug, Default)]
pub(crate) struct Registry {
    by_name: HashMap<Arc<str>, FunctionEntry>,
    /// Lower-cased names: Azure matches function names case-insensitively.
    by_lower: HashMap<String, Arc<str>>,
    name_by_id: HashMap<String, Arc<str>>,
    default_timeout: Duration,
    language: String,
    hidden: std::collections::HashSet<String>,
}

impl Registry {
    pub(crate) fn from_config(app: &AppConfig) -> Self {
        let mut r = Self {
            default_timeout: app.host.function_timeout,
            language: app.worker.language.clone(),
            ..Self::default()
        };
        for f in &app.functions {
            r.insert(f.clone(), uuid::Uuid::new_v4().to_string());
        }
        // Hooks the app names but does not declare in function.json are
        // loaded like functions, and hidden from the invoke APIs.
        let lc = &app.host.lifecycle;
        for hook in [&lc.initializer, &lc.pre_stop].into_iter().flatten() {
            if r.by_name.contains_key(hook.function.as_str()) {
                continue;
            }
            let config = FunctionConfig {
                name: hook.function.clone(),
                directory: app.app_dir.clone(),
                script_file: None,
                entry_point: String::new(),
                bindings: vec![Binding {
                    name: "context".into(),
                    binding_type: "lifecycleTrigger".into(),
                    direction: Direction::In,
                    properties: Default::default(),
                    methods: None,
                }],
                raw_bindings: vec![],
                timeout: Some(hook.timeout),
                disabled: false,
                properties: Default::default(),
            };
            r.insert(config, uuid::Uuid::new_v4().to_string());
            r.hidden.insert(hook.function.clone());
        }
        r
    }

    /// True for hook functions that exist only for the lifecycle.
    pub(crate) fn is_hidden(&self, name: &str) -> bool {
        self.hidden.contains(name)
    }

    fn insert(&mut self, config: FunctionConfig, function_id: String) {
        let name: Arc<str> = Arc::from(config.name.as_str());
        let timeout = config.timeout.unwrap_or(self.default_timeout);
        self.name_by_id.insert(function_id.clone(), name.clone());
        self.by_lower
            .insert(name.to_ascii_lowercase(), name.clone());
        self.by_name.insert(
            name,
            FunctionEntry {
                config: Arc::new(config),
                function_id,
                timeout,
            },
        );
    }

    pub(crate) fn get(&self, name: &str) -> Option<&FunctionEntry> {
        match self.by_name.get(name) {
            Some(e) => Some(e),
            None => self.by_name.get(self.name(name)?.as_ref()),
        }
    }

    /// The interned name as configured (cheap to clone into every
    /// invocation), for `name` in any case.
    pub(crate) fn name(&self, name: &str) -> Option<Arc<str>> {
        match self.by_name.get_key_value(name) {
            Some((k, _)) => Some(k.clone()),
            None => self.by_lower.get(&name.to_ascii_lowercase()).cloned(),
        }
    }

    pub(crate) fn timeout(&self, name: &str) -> Duration {
        self.get(name).map_or(self.default_timeout, |e| e.timeout)
    }

    /// Names of the invokable functions (hooks excluded).
    pub(crate) fn names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.by_name
            .keys()
            .filter(|n| !self.hidden.contains(n.as_ref()))
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = &FunctionEntry> {
        self.by_name.values()
    }

    /// Adds a function a worker indexed itself (built by
    /// [`function_from_metadata`]) under the worker's own function id.
    pub(crate) fn insert_indexed(&mut self, config: FunctionConfig, function_id: &str) {
        let id = if function_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            function_id.to_string()
        };
        self.insert(config, id);
    }

    /// The `FunctionLoadRequest` for `entry`.
    pub(crate) fn load_request(&self, entry: &FunctionEntry) -> FunctionLoadRequest {
        let f = &entry.config;
        let bindings = f
            .bindings
            .iter()
            .map(|b| {
                let info = BindingInfo {
                    r#type: b.binding_type.clone(),
                    direction: match b.direction {
                        Direction::In => binding_info::Direction::In,
                        Direction::Out => binding_info::Direction::Out,
                        Direction::InOut => binding_info::Direction::Inout,
                    } as i32,
                    data_type: binding_info::DataType::Undefined as i32,
                    properties: b.properties.clone().into_iter().collect(),
                };
                (b.name.clone(), info)
            })
            .collect();
        FunctionLoadRequest {
            function_id: entry.function_id.clone(),
            metadata: Some(RpcFunctionMetadata {
                name: f.name.clone(),
                directory: f.directory.display().to_string(),
                script_file: f
                    .script_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                entry_point: f.entry_point.clone(),
                bindings,
                language: self.language.clone(),
                raw_bindings: f.raw_bindings.clone(),
                function_id: entry.function_id.clone(),
                properties: f.properties.clone().into_iter().collect(),
                ..RpcFunctionMetadata::default()
            }),
            managed_dependency_enabled: false,
        }
    }
}

/// A function from a worker's `RpcFunctionMetadata`: its bindings from
/// `raw_bindings` (the binding objects as function.json has them: trigger
/// type, `route`, `methods`, `authLevel`), checked as function.json's are;
/// from the `bindings` map when a worker sends no raw form.
pub(crate) fn function_from_metadata(
    meta: &RpcFunctionMetadata,
    app_dir: &std::path::Path,
) -> Result<FunctionConfig, String> {
    if meta.name.is_empty()
        || !meta
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "function name {:?} may hold only letters, digits, '_' and '-'",
            meta.name
        ));
    }
    let origin = std::path::PathBuf::from(format!("<worker-indexed function {}>", meta.name));
    let mut bindings: Vec<Binding> = Vec::new();
    if meta.raw_bindings.is_empty() {
        for (name, b) in &meta.bindings {
            bindings.push(Binding {
                name: name.clone(),
                binding_type: b.r#type.clone(),
                direction: match binding_info::Direction::try_from(b.direction) {
                    Ok(binding_info::Direction::Out) => Direction::Out,
                    Ok(binding_info::Direction::Inout) => Direction::InOut,
                    _ => Direction::In,
                },
                methods: b.properties.get("methods").map(|m| {
                    m.split(',')
                        .map(|x| x.trim().trim_matches(['[', ']', '"']).to_ascii_lowercase())
                        .filter(|x| !x.is_empty())
                        .collect()
                }),
                properties: b.properties.clone().into_iter().collect(),
            });
        }
        bindings.sort_by(|a, b| a.name.cmp(&b.name));
    } else {
        for (i, raw) in meta.raw_bindings.iter().enumerate() {
            let value: serde_json::Value = serde_json::from_str(raw)
                .map_err(|e| format!("raw_bindings[{i}] is not JSON: {e}"))?;
            bindings
                .push(crate::config::parse_binding(&origin, i, &value).map_err(|e| e.to_string())?);
        }
    }
    if !bindings.iter().any(Binding::is_trigger) {
        bindings.push(Binding {
            name: "input".into(),
            binding_type: "manualTrigger".into(),
            direction: Direction::In,
            properties: Default::default(),
            methods: None,
        });
    }
    let triggers = bindings.iter().filter(|b| b.is_trigger()).count();
    if triggers != 1 {
        return Err(format!(
            "exactly one trigger binding is required, found {triggers}"
        ));
    }
    let directory = if meta.directory.is_empty() {
        app_dir.to_path_buf()
    } else {
        std::path::PathBuf::from(&meta.directory)
    };
    Ok(FunctionConfig {
        name: meta.name.clone(),
        directory,
        script_file: (!meta.script_file.is_empty())
            .then(|| std::path::PathBuf::from(&meta.script_file)),
        entry_point: meta.entry_point.clone(),
        raw_bindings: meta.raw_bindings.clone(),
        bindings,
        timeout: None,
        disabled: false,
        properties: meta.properties.clone().into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, raw: &[&str]) -> RpcFunctionMetadata {
        RpcFunctionMetadata {
            name: name.into(),
            function_id: format!("{name}-id"),
            raw_bindings: raw.iter().map(|s| s.to_string()).collect(),
            properties: [("worker_indexed".to_string(), "True".to_string())].into(),
            ..RpcFunctionMetadata::default()
        }
    }

    #[test]
    fn raw_bindings_give_the_trigger_route_methods_and_auth_level() {
        let m = meta(
            "item",
            &[
                r#"{"type":"httpTrigger","direction":"in","name":"req","methods":["GET"],"authLevel":"ANONYMOUS","route":"items/{id:int}"}"#,
                r#"{"type":"http","direction":"out","name":"$return"}"#,
            ],
        );
        let f = function_from_metadata(&m, std::path::Path::new("/app")).unwrap();
        assert!(f.is_http_triggered());
        assert_eq!(
            f.trigger().methods.as_deref(),
            Some(&["get".to_string()][..])
        );
        assert_eq!(f.auth_level(), crate::keys::AuthLevel::Anonymous);
        assert_eq!(f.route().text, "items/{id:int}");
        assert_eq!(f.properties["worker_indexed"], "True");
        assert_eq!(f.unfired_trigger(), None);
        let queue = meta(
            "q",
            &[r#"{"type":"queueTrigger","direction":"in","name":"msg","queueName":"jobs"}"#],
        );
        let q = function_from_metadata(&queue, std::path::Path::new("/app")).unwrap();
        assert_eq!(q.unfired_trigger(), Some("queueTrigger"));
        assert!(crate::config::unfired_warning("q", "queueTrigger")
            .contains("/admin/functions/q/invoke"));
    }

    #[test]
    fn bad_worker_metadata_is_refused_naming_the_problem() {
        let bad_route = meta(
            "x",
            &[r#"{"type":"httpTrigger","direction":"in","name":"req","route":"{id:regex(a)}"}"#],
        );
        let e = function_from_metadata(&bad_route, std::path::Path::new("/app")).unwrap_err();
        assert!(e.contains("route") && e.contains("regex"), "{e}");
        let bad_level = meta(
            "y",
            &[r#"{"type":"httpTrigger","direction":"in","name":"req","authLevel":"everyone"}"#],
        );
        let e = function_from_metadata(&bad_level, std::path::Path::new("/app")).unwrap_err();
        assert!(e.contains("authLevel"), "{e}");
        let not_json = meta("z", &["{nope"]);
        let e = function_from_metadata(&not_json, std::path::Path::new("/app")).unwrap_err();
        assert!(e.contains("raw_bindings[0] is not JSON"), "{e}");
        let two = meta(
            "w",
            &[
                r#"{"type":"httpTrigger","direction":"in","name":"a"}"#,
                r#"{"type":"queueTrigger","direction":"in","name":"b"}"#,
            ],
        );
        assert!(function_from_metadata(&two, std::path::Path::new("/app")).is_err());
        assert!(
            function_from_metadata(&meta("bad name", &[]), std::path::Path::new("/app")).is_err()
        );
    }
}
