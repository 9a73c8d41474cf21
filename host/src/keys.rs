//! Function and host keys for HTTP `authLevel`, as Azure Functions defines
//! them, kept in `<data-dir>/keys.json` (0600) beside the admin key.
//!
//! - `anonymous`: no key.
//! - `function` (the default): a key of that function, a host key, or the
//!   admin key.
//! - `admin` (and `system`): the admin key only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

/// File name of the key store inside the data directory.
pub const KEYS_FILE: &str = "keys.json";

/// The name of the key generated for the host and for each HTTP function.
pub const DEFAULT_KEY_NAME: &str = "default";

/// Who may call an HTTP-triggered function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthLevel {
    /// Anyone.
    Anonymous,
    /// A key of the function, a host key, or the admin key.
    Function,
    /// The admin key only (`admin`; also `system`, which has no system
    /// keys of its own here).
    Admin,
}

impl AuthLevel {
    /// Parses `authLevel` (case-insensitive); `None` for an unknown value.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "anonymous" => Some(Self::Anonymous),
            "function" => Some(Self::Function),
            "admin" | "system" => Some(Self::Admin),
            _ => None,
        }
    }

    /// The name as written in `function.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anonymous => "anonymous",
            Self::Function => "function",
            Self::Admin => "admin",
        }
    }
}

/// A key management request that cannot be carried out.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key name is not usable.
    #[error("key name {0:?} is invalid: use 1-64 letters, digits, '-' or '_'")]
    InvalidName(String),
    /// The key value is not usable.
    #[error("key value is invalid: {0}")]
    InvalidValue(&'static str),
    /// The name is the admin key's.
    #[error(
        "\"master\" is the admin key; set it with --admin-key-file, FNHOST_ADMIN_KEY or admin.key"
    )]
    Reserved,
    /// No such key.
    #[error("no key named {0:?}")]
    NotFound(String),
    /// The store could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Whose keys: the host's or one function's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Host keys: valid for every `function`-level function.
    Host,
    /// Keys of one function (its configured name).
    Function(String),
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Keys {
    #[serde(default)]
    host: BTreeMap<String, String>,
    #[serde(default)]
    functions: BTreeMap<String, BTreeMap<String, String>>,
}

/// The admin key and the stored function and host keys.
pub struct KeyStore {
    admin: String,
    path: Option<PathBuf>,
    keys: RwLock<Keys>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyStore(<redacted>)")
    }
}

fn generate() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl KeyStore {
    /// Loads `<data_dir>/keys.json`, adding a `default` host key and a
    /// `default` key for each of `functions` that has none, and writes it
    /// back when anything was added.
    pub fn open(data_dir: &Path, admin: String, functions: &[String]) -> Result<Self, String> {
        let path = data_dir.join(KEYS_FILE);
        crate::data_dir::make_private(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut keys: Keys = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{} is not a valid key store: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Keys::default(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let mut added = false;
        if keys.host.is_empty() {
            keys.host.insert(DEFAULT_KEY_NAME.into(), generate());
            added = true;
        }
        for f in functions {
            let own = keys.functions.entry(f.clone()).or_default();
            if own.is_empty() {
                own.insert(DEFAULT_KEY_NAME.into(), generate());
                added = true;
            }
        }
        let store = Self {
            admin,
            path: Some(path),
            keys: RwLock::new(keys),
        };
        if added {
            let keys = store.read().clone();
            store.persist(&keys).map_err(|e| e.to_string())?;
        }
        Ok(store)
    }

    /// A store held in memory only (tests, embedders without a data dir).
    pub fn in_memory(admin: String) -> Self {
        Self {
            admin,
            path: None,
            keys: RwLock::new(Keys::default()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    /// True when `given` is the admin key (compared in constant time).
    pub fn is_admin(&self, given: &[u8]) -> bool {
        constant_time_eq(given, self.admin.as_bytes())
    }

    /// May a caller presenting `given` call `function` at `level`? Every
    /// candidate is compared in full, in constant time, so timing tells
    /// nothing about which keys exist.
    pub fn authorizes(&self, level: AuthLevel, function: &str, given: Option<&[u8]>) -> bool {
        if level == AuthLevel::Anonymous {
            return true;
        }
        let Some(given) = given else { return false };
        let mut ok = self.is_admin(given);
        if level == AuthLevel::Function {
            let keys = self.read();
            let own = keys
                .functions
                .get(function)
                .into_iter()
                .flat_map(|m| m.values());
            for key in keys.host.values().chain(own) {
                ok |= constant_time_eq(given, key.as_bytes());
            }
        }
        ok
    }

    /// The keys of `scope`, by name.
    pub fn list(&self, scope: &Scope) -> BTreeMap<String, String> {
        let keys = self.read();
        match scope {
            Scope::Host => keys.host.clone(),
            Scope::Function(f) => keys.functions.get(f).cloned().unwrap_or_default(),
        }
    }

    /// Sets key `name` of `scope` to `value` (generated when `None`).
    /// Returns the value and whether the key is new.
    pub fn set(
        &self,
        scope: &Scope,
        name: &str,
        value: Option<String>,
    ) -> Result<(String, bool), KeyError> {
        check_name(name)?;
        let value = match value {
            Some(v) => check_value(v)?,
            None => generate(),
        };
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        let mut next = keys.clone();
        let map = match scope {
            Scope::Host => &mut next.host,
            Scope::Function(f) => next.functions.entry(f.clone()).or_default(),
        };
        let created = map.insert(name.to_string(), value.clone()).is_none();
        self.persist(&next)?;
        *keys = next;
        Ok((value, created))
    }

    /// Removes key `name` of `scope`.
    pub fn delete(&self, scope: &Scope, name: &str) -> Result<(), KeyError> {
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        let mut next = keys.clone();
        let map = match scope {
            Scope::Host => Some(&mut next.host),
            Scope::Function(f) => next.functions.get_mut(f),
        };
        if map.and_then(|m| m.remove(name)).is_none() {
            return Err(KeyError::NotFound(name.to_string()));
        }
        self.persist(&next)?;
        *keys = next;
        Ok(())
    }

    /// Written before memory changes, so a failed write changes nothing.
    fn persist(&self, keys: &Keys) -> Result<(), KeyError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let bytes = serde_json::to_vec_pretty(keys).unwrap_or_default();
        crate::data_dir::write_private(path, &bytes).map_err(|source| KeyError::Io {
            path: path.clone(),
            source,
        })
    }
}

fn check_name(name: &str) -> Result<(), KeyError> {
    if name.eq_ignore_ascii_case("master") || name.eq_ignore_ascii_case("_master") {
        return Err(KeyError::Reserved);
    }
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(KeyError::InvalidName(name.to_string()))
    }
}

fn check_value(value: String) -> Result<String, KeyError> {
    if value.len() < 16 {
        return Err(KeyError::InvalidValue("at least 16 characters are needed"));
    }
    if value.len() > 256 {
        return Err(KeyError::InvalidValue("at most 256 characters are allowed"));
    }
    // It travels in a header and in a query string unescaped.
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
    {
        return Err(KeyError::InvalidValue(
            "use letters, digits, '-', '_', '.' or '~'",
        ));
    }
    Ok(value)
}

/// Equal, in time that depends on the lengths only.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_accept_the_keys_azure_accepts() {
        let store = KeyStore::in_memory("admin-key".into());
        let f = Scope::Function("f".into());
        store
            .set(&f, "k", Some("function-key-of-f".into()))
            .unwrap();
        store
            .set(&Scope::Host, "h", Some("host-key-for-all".into()))
            .unwrap();
        let ok = |level, function: &str, key: Option<&str>| {
            store.authorizes(level, function, key.map(str::as_bytes))
        };
        assert!(ok(AuthLevel::Anonymous, "f", None));
        assert!(!ok(AuthLevel::Function, "f", None));
        assert!(ok(AuthLevel::Function, "f", Some("function-key-of-f")));
        assert!(!ok(AuthLevel::Function, "g", Some("function-key-of-f")));
        assert!(ok(AuthLevel::Function, "g", Some("host-key-for-all")));
        assert!(ok(AuthLevel::Function, "g", Some("admin-key")));
        assert!(!ok(AuthLevel::Admin, "f", Some("host-key-for-all")));
        assert!(!ok(AuthLevel::Admin, "f", Some("function-key-of-f")));
        assert!(ok(AuthLevel::Admin, "f", Some("admin-key")));
        assert!(!ok(AuthLevel::Function, "f", Some("wrong")));
    }

    #[test]
    fn names_and_values_are_checked_and_master_is_reserved() {
        let store = KeyStore::in_memory("a".into());
        assert!(matches!(
            store.set(&Scope::Host, "master", None),
            Err(KeyError::Reserved)
        ));
        assert!(matches!(
            store.set(&Scope::Host, "a b", None),
            Err(KeyError::InvalidName(_))
        ));
        assert!(matches!(
            store.set(&Scope::Host, "k", Some("short".into())),
            Err(KeyError::InvalidValue(_))
        ));
        let (generated, created) = store.set(&Scope::Host, "k", None).unwrap();
        assert!(created && generated.len() == 64);
        assert!(matches!(
            store.delete(&Scope::Host, "nope"),
            Err(KeyError::NotFound(_))
        ));
        store.delete(&Scope::Host, "k").unwrap();
        assert!(store.list(&Scope::Host).is_empty());
    }

    #[test]
    fn the_store_is_kept_owner_only_and_reloaded() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("fnhost-keys-{}", uuid::Uuid::new_v4()));
        crate::data_dir::prepare(&dir).unwrap();
        let store = KeyStore::open(&dir, "a".into(), &["f".into()]).unwrap();
        let f = Scope::Function("f".into());
        let default = store.list(&f)[DEFAULT_KEY_NAME].clone();
        store
            .set(&f, "extra", Some("extra-key-value-1".into()))
            .unwrap();
        let mode = std::fs::metadata(dir.join(KEYS_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = KeyStore::open(&dir, "a".into(), &["f".into()]).unwrap();
        assert_eq!(again.list(&f)[DEFAULT_KEY_NAME], default);
        assert!(again.authorizes(AuthLevel::Function, "f", Some(b"extra-key-value-1")));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
