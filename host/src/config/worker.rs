//! `worker.config.json`: how to launch the app's language worker.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

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

/// How to start one worker process.
#[derive(Debug, Clone)]
pub struct WorkerLaunchConfig {
    /// `description.language`, for status and logs.
    pub language: String,
    /// `description.defaultExecutablePath`, resolved.
    pub executable: PathBuf,
    /// `description.arguments`: before the worker path.
    pub arguments: Vec<String>,
    /// `description.defaultWorkerPath`, resolved, when given.
    pub worker_path: Option<PathBuf>,
    /// `description.workerArguments`: after the protocol arguments.
    pub worker_arguments: Vec<String>,
    /// `description.argumentStyle`.
    pub argument_style: ArgumentStyle,
    /// `description.environment`: extra variables for the worker process.
    pub environment: BTreeMap<String, String>,
    /// Directory of `worker.config.json` (the worker's directory).
    pub directory: PathBuf,
    /// `description.extensions`: the script files the worker loads (`.py`,
    /// `.js`...). A worker that declares them loads each function's
    /// `scriptFile`, so a default is found and checked at start.
    pub extensions: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    description: Description,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
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
    extensions: Vec<String>,
}

impl WorkerLaunchConfig {
    /// Reads and validates `worker.config.json`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let value = read_json(path)?;
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
        let executable = resolve_executable(&directory, &d.default_executable_path)
            .map_err(|m| ConfigError::field(path, "description.defaultExecutablePath", m))?;
        let worker_path = match d.default_worker_path {
            Some(p) if !p.is_empty() => {
                let full = directory.join(&p);
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
            None | Some("classic") => ArgumentStyle::Classic,
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
        Ok(Self {
            language: d.language,
            executable,
            arguments: d.arguments,
            worker_path,
            worker_arguments: d.worker_arguments,
            argument_style,
            environment: d.environment,
            directory,
            extensions: d.extensions,
        })
    }
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
