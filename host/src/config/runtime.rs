//! Which worker runs the app, and the environment it gets: the app's own
//! `worker.config.json` when it has one, else the folder of a Core
//! Tools-style workers directory named by `FUNCTIONS_WORKER_RUNTIME`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::local_settings::{self, LocalSettings};
use super::worker::{ConfigSource, WorkerLaunchConfig};
use super::ConfigError;

/// The selecting setting, as Azure names it.
pub const RUNTIME_SETTING: &str = "FUNCTIONS_WORKER_RUNTIME";
/// The version setting, as Azure names it.
pub const VERSION_SETTING: &str = "FUNCTIONS_WORKER_RUNTIME_VERSION";
/// Azure's environment name (`Development` locally).
pub const ENVIRONMENT_SETTING: &str = "AZURE_FUNCTIONS_ENVIRONMENT";
/// The app folder, as Azure's workers read it (Python's decorator model
/// imports `function_app` from it).
pub const SCRIPT_ROOT_SETTING: &str = "AzureWebJobsScriptRoot";

/// How an app is read beyond its own folder: what `fnhost start` knows from
/// its flags and environment.
#[derive(Clone, Default)]
pub struct LoadOptions {
    /// A Core Tools-style workers directory: `<dir>/<runtime>/worker.config.json`.
    pub workers_dir: Option<PathBuf>,
    /// The host's environment. It names `FUNCTIONS_WORKER_RUNTIME` (and its
    /// version, `AZURE_FUNCTIONS_ENVIRONMENT`) ahead of `local.settings.json`,
    /// and a variable it defines is not overridden by `local.settings.json`,
    /// as in Core Tools. Only looked at, never stored.
    pub environment: BTreeMap<String, String>,
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("workers_dir", &self.workers_dir)
            .field(
                "environment",
                &format_args!("{} variables", self.environment.len()),
            )
            .finish()
    }
}

/// A setting from the host's environment, else from `local.settings.json`.
fn setting<'a>(opts: &'a LoadOptions, settings: &'a LocalSettings, name: &str) -> Option<&'a str> {
    opts.environment
        .get(name)
        .map(String::as_str)
        .or_else(|| settings.get(name))
        .filter(|v| !v.is_empty())
}

/// The worker of the app at `app_dir` (absolute), with its environment.
pub(crate) fn load_worker(
    app_dir: &Path,
    opts: &LoadOptions,
    settings: &LocalSettings,
) -> Result<WorkerLaunchConfig, ConfigError> {
    let runtime = setting(opts, settings, RUNTIME_SETTING);
    let version = setting(opts, settings, VERSION_SETTING);
    let app_file = app_dir.join("worker.config.json");
    let (mut cfg, version) = if app_file.exists() {
        if let Some(dir) = &opts.workers_dir {
            tracing::info!(
                "the app has its own worker.config.json; the workers directory {} is not used",
                dir.display()
            );
        }
        WorkerLaunchConfig::load_from(&app_file, ConfigSource::App, version)?
    } else if let Some(dir) = &opts.workers_dir {
        let file = workers_dir_config(app_dir, dir, runtime)?;
        WorkerLaunchConfig::load_from(&file, ConfigSource::WorkersDir, version)?
    } else {
        return Err(ConfigError::file(
            &app_file,
            "is missing: give the app a worker.config.json, or name a Core Tools-style \
             workers directory (--workers-dir or FNHOST_WORKERS_DIR) and set \
             FUNCTIONS_WORKER_RUNTIME",
        ));
    };
    if let Some(r) = runtime {
        if !r.eq_ignore_ascii_case(&cfg.language) {
            tracing::warn!(
                "FUNCTIONS_WORKER_RUNTIME is \"{r}\" but the worker's language is \"{}\"",
                cfg.language
            );
        }
    }
    let mut env = std::mem::take(&mut cfg.environment);
    for (name, value) in settings.iter() {
        if opts.environment.contains_key(name) {
            continue; // Core Tools: the environment wins over local settings
        }
        if crate::process::is_withheld(name) {
            tracing::warn!(
                "{} Values.{name} is not passed to workers: the host withholds it",
                local_settings::FILE_NAME
            );
            continue;
        }
        env.insert(name.to_string(), value.to_string());
    }
    env.insert(
        SCRIPT_ROOT_SETTING.to_string(),
        app_dir.display().to_string(),
    );
    env.insert(
        RUNTIME_SETTING.to_string(),
        runtime.unwrap_or(&cfg.language).to_string(),
    );
    if let Some(v) = version {
        env.insert(VERSION_SETTING.to_string(), v);
    }
    env.insert(
        ENVIRONMENT_SETTING.to_string(),
        setting(opts, settings, ENVIRONMENT_SETTING)
            .unwrap_or("Development")
            .to_string(),
    );
    cfg.environment = env;
    Ok(cfg)
}

/// `<dir>/<runtime>/worker.config.json`, or an error naming what is missing.
fn workers_dir_config(
    app_dir: &Path,
    dir: &Path,
    runtime: Option<&str>,
) -> Result<PathBuf, ConfigError> {
    let dir = dir.canonicalize().map_err(|e| {
        ConfigError::file(dir, format!("the workers directory cannot be opened: {e}"))
    })?;
    let available = || {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("worker.config.json").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        if names.is_empty() {
            "it has no <runtime>/worker.config.json at all".to_string()
        } else {
            format!("it has {}", names.join(", "))
        }
    };
    let Some(runtime) = runtime else {
        return Err(ConfigError::field(
            &app_dir.join(local_settings::FILE_NAME),
            format!("Values.{RUNTIME_SETTING}"),
            format!(
                "a workers directory ({}) is given but no runtime is named: set \
                 {RUNTIME_SETTING} in local.settings.json Values or in the environment \
                 ({})",
                dir.display(),
                available()
            ),
        ));
    };
    if runtime.contains(['/', '\\']) || runtime == "." || runtime == ".." {
        return Err(ConfigError::file(
            &dir,
            format!("{RUNTIME_SETTING} \"{runtime}\" is not a runtime name"),
        ));
    }
    let file = dir.join(runtime).join("worker.config.json");
    if !file.is_file() {
        return Err(ConfigError::file(
            &dir,
            format!(
                "{RUNTIME_SETTING} is \"{runtime}\" but the workers directory has no \
                 {runtime}/worker.config.json ({})",
                available()
            ),
        ));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::super::expand::Placeholders;
    use super::*;
    use serde_json::json;

    /// A temporary folder holding `app/` and `workers/`, removed on drop.
    struct Fixture(PathBuf);

    impl Fixture {
        fn new() -> Self {
            let root = std::env::temp_dir().join(format!("fnhost-rt-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(root.join("app")).unwrap();
            std::fs::create_dir_all(root.join("workers")).unwrap();
            Self(root.canonicalize().unwrap())
        }
        fn app(&self) -> PathBuf {
            self.0.join("app")
        }
        fn workers(&self) -> PathBuf {
            self.0.join("workers")
        }
        fn write(&self, rel: &str, v: &serde_json::Value) {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, serde_json::to_vec(v).unwrap()).unwrap();
        }
        /// A Core Tools-style Python worker: the shipped config's keys and
        /// its `<version>/<os>/<arch>/worker.py` layout.
        fn python_worker(&self) {
            self.write(
                "workers/python/worker.config.json",
                &json!({"description": {
                    "language": "python",
                    "defaultRuntimeVersion": "3.11",
                    "supportedOperatingSystems": ["LINUX", "OSX", "WINDOWS"],
                    "supportedRuntimeVersions": ["3.10", "3.11", "3.12"],
                    "supportedArchitectures": ["X64", "X86", "Arm64"],
                    "extensions": [".py"],
                    "defaultExecutablePath": "sh",
                    "defaultWorkerPath": "%FUNCTIONS_WORKER_RUNTIME_VERSION%/{os}/{architecture}/worker.py",
                    "arguments": ["-X no_debug_ranges"],
                    "workerIndexing": "true",
                    "futureKey": {"anything": 1}
                }, "processOptions": {"initializationTimeout": "00:02:00"}}),
            );
            let p = Placeholders::this_machine(None);
            for v in ["3.11", "3.12"] {
                let dir = self
                    .workers()
                    .join(format!("python/{v}/{}/{}", p.os, p.architecture));
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join("worker.py"), "").unwrap();
            }
        }
        fn settings(&self, values: serde_json::Value) {
            self.write(
                "app/local.settings.json",
                &json!({"IsEncrypted": false, "Values": values}),
            );
        }
        fn load(&self, env: &[(&str, &str)]) -> Result<WorkerLaunchConfig, ConfigError> {
            let opts = LoadOptions {
                workers_dir: Some(self.workers()),
                environment: env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            };
            let settings = LocalSettings::load(&self.app())?;
            load_worker(&self.app(), &opts, &settings)
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_runtime_named_in_local_settings_picks_the_workers_dir_folder() {
        let f = Fixture::new();
        f.python_worker();
        f.settings(json!({"FUNCTIONS_WORKER_RUNTIME": "python", "MY_SETTING": "v"}));
        let cfg = f.load(&[]).unwrap();
        let p = Placeholders::this_machine(None);
        assert_eq!(cfg.directory, f.workers().join("python"));
        assert_eq!(
            cfg.worker_path.unwrap(),
            f.workers()
                .join(format!("python/3.11/{}/{}/worker.py", p.os, p.architecture))
        );
        assert_eq!(cfg.arguments, ["-X", "no_debug_ranges"]);
        assert_eq!(cfg.argument_style, crate::config::ArgumentStyle::Classic);
        assert!(cfg.worker_indexing);
        let env = &cfg.environment;
        assert_eq!(env["MY_SETTING"], "v");
        assert_eq!(env[RUNTIME_SETTING], "python");
        assert_eq!(env[VERSION_SETTING], "3.11");
        assert_eq!(env[ENVIRONMENT_SETTING], "Development");
        assert_eq!(env[SCRIPT_ROOT_SETTING], f.app().display().to_string());
    }

    #[test]
    fn the_environment_names_the_runtime_and_wins_over_local_settings() {
        let f = Fixture::new();
        f.python_worker();
        f.settings(
            json!({"FUNCTIONS_WORKER_RUNTIME": "java", "SHARED": "from-file",
                          "FUNCTIONS_WORKER_RUNTIME_VERSION": "3.10"}),
        );
        let cfg = f
            .load(&[
                ("FUNCTIONS_WORKER_RUNTIME", "python"),
                ("FUNCTIONS_WORKER_RUNTIME_VERSION", "3.12"),
                ("AZURE_FUNCTIONS_ENVIRONMENT", "Staging"),
                ("SHARED", "from-env"),
            ])
            .unwrap();
        assert!(cfg
            .worker_path
            .unwrap()
            .to_string_lossy()
            .contains("/3.12/"));
        // Inherited from the host as it is, not overridden by the file.
        assert!(!cfg.environment.contains_key("SHARED"));
        assert_eq!(cfg.environment[VERSION_SETTING], "3.12");
        assert_eq!(cfg.environment[ENVIRONMENT_SETTING], "Staging");
    }

    #[test]
    fn a_workers_dir_without_a_named_runtime_says_what_to_set() {
        let f = Fixture::new();
        f.python_worker();
        let err = f.load(&[]).unwrap_err();
        assert_eq!(
            err.field.as_deref(),
            Some("Values.FUNCTIONS_WORKER_RUNTIME")
        );
        let text = err.to_string();
        assert!(
            text.contains("local.settings.json") && text.contains("it has python"),
            "{text}"
        );
    }

    #[test]
    fn a_runtime_without_a_folder_is_named() {
        let f = Fixture::new();
        f.python_worker();
        f.settings(json!({"FUNCTIONS_WORKER_RUNTIME": "java"}));
        let text = f.load(&[]).unwrap_err().to_string();
        assert!(
            text.contains("\"java\"") && text.contains("java/worker.config.json"),
            "{text}"
        );
        let text = f
            .load(&[("FUNCTIONS_WORKER_RUNTIME", "../app")])
            .unwrap_err()
            .to_string();
        assert!(text.contains("not a runtime name"), "{text}");
    }

    #[test]
    fn an_unsupported_or_missing_version_is_named() {
        let f = Fixture::new();
        f.python_worker();
        let err = f
            .load(&[
                ("FUNCTIONS_WORKER_RUNTIME", "python"),
                (VERSION_SETTING, "3.6"),
            ])
            .unwrap_err();
        assert_eq!(
            err.field.as_deref(),
            Some("description.supportedRuntimeVersions")
        );
        let err = f
            .load(&[
                ("FUNCTIONS_WORKER_RUNTIME", "python"),
                (VERSION_SETTING, "3.10"),
            ])
            .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("description.defaultWorkerPath"));
        assert!(err.to_string().contains("3.10"), "{err}");
    }

    #[test]
    fn the_apps_own_worker_config_wins_and_stays_strict() {
        let f = Fixture::new();
        f.python_worker();
        f.settings(json!({"FUNCTIONS_WORKER_RUNTIME": "python"}));
        f.write(
            "app/worker.config.json",
            &json!({"description": {"language": "node", "defaultExecutablePath": "sh"}}),
        );
        let cfg = f.load(&[]).unwrap();
        assert_eq!(cfg.language, "node");
        assert_eq!(cfg.argument_style, crate::config::ArgumentStyle::Functions);
        assert_eq!(cfg.directory, f.app());
        assert!(!cfg.worker_indexing);

        f.write(
            "app/worker.config.json",
            &json!({"description": {"language": "node", "defaultExecutablePath": "sh",
                                    "defaultRuntimeVersion": "20", "workerIndexing": "true",
                                    "extensions": [".js"]},
                    "processOptions": {}}),
        );
        let cfg = f.load(&[]).unwrap();
        assert!(cfg.worker_indexing);
        assert_eq!(cfg.environment[VERSION_SETTING], "20");

        f.write(
            "app/worker.config.json",
            &json!({"description": {"language": "node", "defaultExecutablePath": "sh",
                                    "argumentstyle": "both"}}),
        );
        let err = f.load(&[]).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("description.argumentstyle"));
    }

    #[test]
    fn no_worker_config_and_no_workers_dir_says_what_to_give() {
        let f = Fixture::new();
        let err = load_worker(&f.app(), &LoadOptions::default(), &LocalSettings::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("worker.config.json") && err.contains("--workers-dir"),
            "{err}"
        );
    }

    #[test]
    fn withheld_variables_in_local_settings_do_not_reach_workers() {
        let f = Fixture::new();
        f.python_worker();
        f.settings(json!({"FUNCTIONS_WORKER_RUNTIME": "python",
                          "WEBSITE_INSTANCE_ID": "x", "FNHOST_ADMIN_KEY": "k"}));
        let cfg = f.load(&[]).unwrap();
        assert!(!cfg.environment.contains_key("WEBSITE_INSTANCE_ID"));
        assert!(!cfg.environment.contains_key("FNHOST_ADMIN_KEY"));
    }

    #[test]
    fn debug_of_the_launch_config_hides_setting_values() {
        let f = Fixture::new();
        f.python_worker();
        f.settings(json!({"FUNCTIONS_WORKER_RUNTIME": "python", "API_TOKEN": "s3cret-value"}));
        let shown = format!("{:?}", f.load(&[]).unwrap());
        assert!(shown.contains("API_TOKEN"), "{shown}");
        assert!(!shown.contains("s3cret-value"), "{shown}");
    }
}
