//! `local.settings.json`: the app settings Core Tools gives a function app
//! when it runs locally. Its `Values` become environment variables of the
//! workers; they often hold connection strings and keys, so they are never
//! logged and their `Debug` shows the names only.

use std::collections::BTreeMap;
use std::path::Path;

use super::{read_json, ConfigError};

/// The file's name in the app directory.
pub const FILE_NAME: &str = "local.settings.json";

/// `Values` of `local.settings.json` (empty when the app has none).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct LocalSettings {
    values: BTreeMap<String, String>,
}

impl std::fmt::Debug for LocalSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSettings")
            .field("values", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl LocalSettings {
    /// Reads `app_dir/local.settings.json`; an app without one has no settings.
    pub fn load(app_dir: &Path) -> Result<Self, ConfigError> {
        let path = app_dir.join(FILE_NAME);
        if !path.exists() {
            return Ok(Self::default());
        }
        let value = read_json(&path)?;
        Self::from_value(&path, &value)
    }

    /// Settings from the parsed file; other top-level keys (`Host`,
    /// `ConnectionStrings`) are Core Tools' own and ignored.
    pub(crate) fn from_value(path: &Path, value: &serde_json::Value) -> Result<Self, ConfigError> {
        let obj = value
            .as_object()
            .ok_or_else(|| ConfigError::file(path, "expected a JSON object at the top level"))?;
        match obj.get("IsEncrypted") {
            None | Some(serde_json::Value::Null) | Some(serde_json::Value::Bool(false)) => {}
            Some(serde_json::Value::Bool(true)) => {
                return Err(ConfigError::field(
                    path,
                    "IsEncrypted",
                    "encrypted settings are not supported: decrypt them with \
                     `func settings decrypt`, or set IsEncrypted to false",
                ))
            }
            Some(_) => {
                return Err(ConfigError::field(
                    path,
                    "IsEncrypted",
                    "expected true or false",
                ))
            }
        }
        let mut values = BTreeMap::new();
        match obj.get("Values") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Object(map)) => {
                for (name, v) in map {
                    // Core Tools reads Values as strings and converts
                    // numbers and booleans; anything else has no text.
                    let text = match v {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Number(n) => n.to_string(),
                        serde_json::Value::Bool(b) => b.to_string(),
                        _ => {
                            return Err(ConfigError::field(
                                path,
                                format!("Values.{name}"),
                                "expected a string",
                            ))
                        }
                    };
                    if name.is_empty() || name.contains('=') || name.contains('\0') {
                        return Err(ConfigError::field(
                            path,
                            format!("Values.{name}"),
                            "is not a valid environment variable name",
                        ));
                    }
                    if text.contains('\0') {
                        return Err(ConfigError::field(
                            path,
                            format!("Values.{name}"),
                            "must not contain a NUL character",
                        ));
                    }
                    values.insert(name.clone(), text);
                }
            }
            Some(_) => {
                return Err(ConfigError::field(
                    path,
                    "Values",
                    "expected an object of setting names to strings",
                ))
            }
        }
        Ok(Self { values })
    }

    /// The value of setting `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Every setting, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<LocalSettings, ConfigError> {
        LocalSettings::from_value(Path::new("/app/local.settings.json"), &v)
    }

    #[test]
    fn values_are_read_and_other_sections_ignored() {
        let s = parse(json!({
            "IsEncrypted": false,
            "Values": {"FUNCTIONS_WORKER_RUNTIME": "python", "COUNT": 2, "ON": true},
            "Host": {"LocalHttpPort": 7071, "CORS": "*"},
            "ConnectionStrings": {}
        }))
        .unwrap();
        assert_eq!(s.get("FUNCTIONS_WORKER_RUNTIME"), Some("python"));
        assert_eq!(s.get("COUNT"), Some("2"));
        assert_eq!(s.get("ON"), Some("true"));
        assert_eq!(parse(json!({})).unwrap(), LocalSettings::default());
    }

    #[test]
    fn debug_shows_names_never_values() {
        let s = parse(json!({"Values": {"AzureWebJobsStorage": "AccountKey=s3cret"}})).unwrap();
        let shown = format!("{s:?}");
        assert!(shown.contains("AzureWebJobsStorage"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn encrypted_settings_are_refused() {
        let err = parse(json!({"IsEncrypted": true, "Values": {"A": "x"}})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("IsEncrypted"));
        assert!(err.to_string().contains("not supported"), "{err}");
        let err = parse(json!({"IsEncrypted": "yes"})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("IsEncrypted"));
    }

    #[test]
    fn a_malformed_file_names_the_file_and_field() {
        let err = parse(json!({"Values": ["A=1"]})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("Values"));
        assert!(err.to_string().contains("local.settings.json"), "{err}");
        let err = parse(json!({"Values": {"NESTED": {"a": 1}}})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("Values.NESTED"));
        let err = parse(json!({"Values": {"A=B": "1"}})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("Values.A=B"));
        let err = parse(json!([])).unwrap_err();
        assert!(err.field.is_none());

        let dir = std::env::temp_dir().join(format!("fnhost-ls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(LocalSettings::load(&dir).unwrap(), LocalSettings::default());
        std::fs::write(dir.join(FILE_NAME), "{\"Values\": {").unwrap();
        let err = LocalSettings::load(&dir).unwrap_err().to_string();
        assert!(
            err.contains("local.settings.json") && err.contains("not valid JSON"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
