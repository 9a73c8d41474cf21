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

    /// Adds a function a worker indexed itself, unless `function.json`
    /// already defines one of that name (configuration wins).
    pub(crate) fn add_worker_indexed(
        &mut self,
        meta: &RpcFunctionMetadata,
        app_dir: &std::path::Path,
    ) -> Option<String> {
        if meta.name.is_empty() || self.by_name.contains_key(meta.name.as_str()) {
            return None;
        }
        let mut bindings: Vec<Binding> = meta
            .bindings
            .iter()
            .map(|(name, b)| Binding {
                name: name.clone(),
                binding_type: b.r#type.clone(),
                direction: match binding_info::Direction::try_from(b.direction) {
                    Ok(binding_info::Direction::Out) => Direction::Out,
                    Ok(binding_info::Direction::Inout) => Direction::InOut,
                    _ => Direction::In,
                },
                properties: b.properties.clone().into_iter().collect(),
                methods: None,
            })
            .collect();
        if !bindings.iter().any(Binding::is_trigger) {
            bindings.push(Binding {
                name: "input".into(),
                binding_type: "manualTrigger".into(),
                direction: Direction::In,
                properties: Default::default(),
                methods: None,
            });
        }
        bindings.sort_by(|a, b| a.name.cmp(&b.name));
        let id = if meta.function_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            meta.function_id.clone()
        };
        let config = FunctionConfig {
            name: meta.name.clone(),
            directory: app_dir.join(&meta.name),
            script_file: None,
            entry_point: meta.entry_point.clone(),
            raw_bindings: meta.raw_bindings.clone(),
            bindings,
            timeout: None,
            disabled: false,
        };
        self.insert(config, id);
        Some(meta.name.clone())
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
                ..RpcFunctionMetadata::default()
            }),
            managed_dependency_enabled: false,
        }
    }
}
