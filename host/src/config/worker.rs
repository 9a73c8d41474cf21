//! `worker.config.json`: how to launch a language worker. Read either from
//! the app (fnhost's own convention, strict about unknown keys so a typo is
//! caught) or from a Core Tools-style workers directory (as Azure ships it:
//! keys fnhost does not use are ignored).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::expand::{split_words, Placeholders};
use super::{read_json, typed, ConfigError};

/// Which launch-argument set the worker understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArgumentStyle {
    /// `--host --port --workerId --requestId --grpcMaxMessageLength`:
    /// understood by every published worker, including older ones.
    #[default]
    Classic,
    /// `--functions-uri --functions-worker-id --functions-request-id
    /// --functions-grpc-max-message-length` in addition to the classic set.
    Both,
    /// Only the `--functions-*` set.
    Functions,
}

impl ArgumentStyle {
    /// The set a worker gets when its config names none: Azure's Node
    /// worker refuses the classic set, every other published worker
    /// (Python's among them) takes it.
    pub fn default_for(language: &str) -> Self {
        if language.eq_ignore_ascii_case("node") {
            Self::Functions
        } else {
            Self::Classic
        }
    }
}

/// How to start one worker process.
#[derive(Clone)]
pub struct WorkerLaunchConfig {
    /// `description.language`, for status and logs.
    pub language: String,
    /// `description.defaultExecutablePath`, expanded and resolved.
    pub executable: PathBuf,
    /// `description.arguments`, each entry split into words: before the
    /// worker path.
    pub arguments: Vec<String>,
    /// `description.defaultWorkerPath`, expanded and resolved, when given.
    pub worker_path: Option<PathBuf>,
    /// `description.workerArguments`, split into words: after the protocol
    /// arguments.
    pub worker_arguments: Vec<String>,
    /// `description.argumentStyle`, else [`ArgumentStyle::default_for`] the language.
    pub argument_style: ArgumentStyle,
    /// Variables the host sets for the worker process on top of what it
    /// inherits: `description.environment`, then `local.settings.json`
    /// `Values` and the Azure Functions variables (see
    /// [`super::AppConfig::load_with`]). Values may be secrets: `Debug`
    /// shows the names only.
    pub environment: BTreeMap<String, String>,
    /// Directory of `worker.config.json` (the worker's directory).
    pub directory: PathBuf,
    /// `description.extensions`: the script files the worker loads (`.py`,
    /// `.js`...). A worker that declares them loads each function's
    /// `scriptFile`, so a default is found and checked at start.
    pub extensions: Vec<String>,
    /// `description.workerIndexing` is `"true"`: the Azure host asks such a
    /// worker for its functions (`FunctionsMetadataRequest`).
    pub worker_indexing: bool,
}

impl std::fmt::Debug for WorkerLaunchConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerLaunchConfig")
            .field("language", &self.language)
            .field("executable", &self.executable)
            .field("arguments", &self.arguments)
            .field("worker_path", &self.worker_path)
            .field("worker_arguments", &self.worker_arguments)
            .field("argument_style", &self.argument_style)
            .field("environment", &self.environment.keys().collect::<Vec<_>>())
            .field("directory", &self.directory)
            .field("worker_indexing", &self.worker_indexing)
            .finish()
    }
}

/// Where a `worker.config.json` comes from, which decides how strict its
/// reading is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// The app's own `worker.config.json`: an unknown key is an error.
    App,
    /// `<workers dir>/<language>/worker.config.json`, as Core Tools ships
    /// it: unknown keys are ignored.
    WorkersDir,
}

/// Top-level keys of a `worker.config.json` (Core Tools' `processOptions`
/// included: fnhost reads its limits from `host.json`).
const KNOWN_TOP: &[&str] = &["description", "processOptions"];

/// `description` keys fnhost reads or knows to ignore.
const KNOWN_DESCRIPTION: &[&str] = &[
    "language",
    "defaultExecutablePath",
    "defaultWorkerPath",
    "arguments",
    "workerArguments",
    "argumentStyle",
    "environment",
    "extensions",
    "defaultRuntimeVersion",
    "supportedRuntimeVersions",
    "supportedOperatingSystems",
    "supportedArchitectures",
    "workerIndexing",
];

#[derive(Deserialize)]
struct File {
    description: Description,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Description {
    language: String,
    default_executable_path: String,
    #[serde(default)]
    default_worker_path: Option<String>,
    #[serde(default)]
    arguments: Vec<String>,
    #[serde(default)]
    worker_arguments: Vec<String>,
    #[serde(default)]
    argument_style: Option<String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    default_runtime_version: Option<String>,
    #[serde(default)]
    supported_runtime_versions: Option<Vec<String>>,
    #[serde(default)]
    worker_indexing: Option<serde_json::Value>,
    #[serde(default)]
    extensions: Vec<String>,
}

impl WorkerLaunchConfig {
    /// Reads and validates the app's own `worker.config.json`, with no
    /// runtime version named (see [`WorkerLaunchConfig::load_from`]).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_from(path, ConfigSource::App, None).map(|(cfg, _)| cfg)
    }

    /// Reads and validates a `worker.config.json`. `runtime_version` is
    /// `FUNCTIONS_WORKER_RUNTIME_VERSION` when the app or the environment
    /// names it; the version in effect (it, else
    /// `description.defaultRuntimeVersion`) is returned beside the config.
    pub fn load_from(
        path: &Path,
        source: ConfigSource,
        runtime_version: Option<&str>,
    ) -> Result<(Self, Option<String>), ConfigError> {
        let value = read_json(path)?;
        if source == ConfigSource::App {
            reject_unknown_keys(path, &value)?;
        }
        let file: File = typed(path, "", &value)?;
        let d = file.description;
        let directory = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        if d.language.is_empty() {
            return Err(ConfigError::field(
                path,
                "description.language",
                "must not be empty",
            ));
        }
        let version = runtime_version
            .map(str::to_string)
            .or(d.default_runtime_version.filter(|v| !v.is_empty()));
        if let (Some(v), Some(supported)) = (&version, &d.supported_runtime_versions) {
            if !supported.iter().any(|s| s == v) {
                return Err(ConfigError::field(
                    path,
                    "description.supportedRuntimeVersions",
                    format!(
                        "FUNCTIONS_WORKER_RUNTIME_VERSION \"{v}\" is not one of the versions \
                         this worker supports ({})",
                        supported.join(", ")
                    ),
                ));
            }
        }
        let placeholders = Placeholders::this_machine(version.clone());
        let executable = placeholders
            .expand(&d.default_executable_path)
            .and_then(|p| resolve_executable(&directory, &p))
            .map_err(|m| ConfigError::field(path, "description.defaultExecutablePath", m))?;
        let worker_path = match d.default_worker_path {
            Some(p) if !p.is_empty() => {
                let expanded = placeholders
                    .expand(&p)
                    .map_err(|m| ConfigError::field(path, "description.defaultWorkerPath", m))?;
                let full = directory.join(expanded);
                if !full.exists() {
                    return Err(ConfigError::field(
                        path,
                        "description.defaultWorkerPath",
                        format!("{} does not exist", full.display()),
                    ));
                }
                Some(full)
            }
            _ => None,
        };
        let argument_style = match d.argument_style.as_deref() {
            None => ArgumentStyle::default_for(&d.language),
            Some("classic") => ArgumentStyle::Classic,
            Some("both") => ArgumentStyle::Both,
            Some("functions") => ArgumentStyle::Functions,
            Some(other) => {
                return Err(ConfigError::field(
                    path,
                    "description.argumentStyle",
                    format!("\"{other}\" is not one of \"classic\", \"both\", \"functions\""),
                ))
            }
        };
        let worker_indexing = match &d.worker_indexing {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) => s.eq_ignore_ascii_case("true"),
            Some(_) => {
                return Err(ConfigError::field(
                    path,
                    "description.workerIndexing",
                    "expected \"true\" or \"false\"",
                ))
            }
        };
        let cfg = Self {
            arguments: split_all(path, "description.arguments", &d.arguments)?,
            worker_arguments: split_all(path, "description.workerArguments", &d.worker_arguments)?,
            language: d.language,
            executable,
            worker_path,
            argument_style,
            environment: d.environment,
            directory,
            extensions: d.extensions,
            worker_indexing,
        };
        Ok((cfg, version))
    }
}

/// The app's own file is fnhost's format: a misspelt key is named rather
/// than silently ignored.
fn reject_unknown_keys(path: &Path, value: &serde_json::Value) -> Result<(), ConfigError> {
    let unknown =
        |prefix: &str, obj: &serde_json::Map<String, serde_json::Value>, known: &[&str]| {
            obj.keys().find(|k| !known.contains(&k.as_str())).map(|k| {
                ConfigError::field(
                    path,
                    format!("{prefix}{k}"),
                    format!("unknown field, expected one of {}", known.join(", ")),
                )
            })
        };
    let Some(top) = value.as_object() else {
        return Ok(()); // the typed read names the problem
    };
    if let Some(e) = unknown("", top, KNOWN_TOP) {
        return Err(e);
    }
    if let Some(desc) = top.get("description").and_then(|d| d.as_object()) {
        if let Some(e) = unknown("description.", desc, KNOWN_DESCRIPTION) {
            return Err(e);
        }
    }
    Ok(())
}

/// Each entry split the way a shell would: the Azure host joins the
/// entries into one command line, so `"-X no_debug_ranges"` is two words.
fn split_all(path: &Path, field: &str, entries: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut words = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let split =
            split_words(entry).map_err(|m| ConfigError::field(path, format!("{field}[{i}]"), m))?;
        words.extend(split);
    }
    Ok(words)
}

/// A path with a separator is relative to the config's folder; a bare name
/// is looked up on `PATH`.
fn resolve_executable(dir: &Path, text: &str) -> Result<PathBuf, String> {
    if text.is_empty() {
        return Err("must not be empty".into());
    }
    if text.contains('/') {
        let full = dir.join(text);
        return if full.is_file() {
            Ok(full)
        } else {
            Err(format!(
                "{} does not exist (build the worker first?)",
                full.display()
            ))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|p| p.join(text))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("\"{text}\" was not found on PATH"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_executable_is_named() {
        let dir = std::env::temp_dir().join(format!("fnhost-wcfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("worker.config.json");
        std::fs::write(
            &file,
            r#"{"description":{"language":"rust","defaultExecutablePath":"./nope"}}"#,
        )
        .unwrap();
        let err = WorkerLaunchConfig::load(&file).unwrap_err();
        assert_eq!(
            err.field.as_deref(),
            Some("description.defaultExecutablePath")
        );
        std::fs::write(&file, r#"{"description":{"language":"rust"}}"#).unwrap();
        let err = WorkerLaunchConfig::load(&file).unwrap_err();
        assert!(err.to_string().contains("defaultExecutablePath"), "{err}");
        std::fs::write(
            &file,
            r#"{"description":{"language":"sh","defaultExecutablePath":"sh","argumentStyle":"x"}}"#,
        )
        .unwrap();
        let err = WorkerLaunchConfig::load(&file).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("description.argumentStyle"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
