//! The admin key: given by the operator, or generated once and kept in the
//! data directory, readable by the owner only.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// File name of the stored key inside the data directory.
pub const KEY_FILE: &str = "admin.key";

/// Where the key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// Read from the data directory.
    Stored(PathBuf),
    /// Generated now and stored there (print it once).
    Generated(PathBuf),
}

/// Loads the stored key or generates and stores a new one (mode 0600).
pub fn load_or_generate(data_dir: &Path) -> std::io::Result<(String, KeySource)> {
    let path = data_dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => {
            let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "admin key file is readable by others (mode {mode:o}); tightening to 0600");
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            }
            return Ok((text.trim().to_string(), KeySource::Stored(path)));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(data_dir)?;
    let key = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(key.as_bytes())?;
    file.write_all(b"\n")?;
    Ok((key, KeySource::Generated(path)))
}

/// Reads an operator-provided key file (`--admin-key-file`): the first
/// line, trimmed. A file other users can read is used, with a warning.
pub fn read_key_file(path: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    let key = text.lines().next().unwrap_or_default().trim().to_string();
    if key.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the file holds no key (its first line is empty)",
        ));
    }
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "admin key file is readable by other users (mode {mode:o}); chmod 600 it");
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_with_owner_only_permissions() {
        let dir = std::env::temp_dir().join(format!("fnhost-key-{}", uuid::Uuid::new_v4()));
        let (k1, s1) = load_or_generate(&dir).unwrap();
        assert!(matches!(s1, KeySource::Generated(_)));
        assert_eq!(k1.len(), 64);
        let mode = std::fs::metadata(dir.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let (k2, s2) = load_or_generate(&dir).unwrap();
        assert_eq!(k1, k2);
        assert!(matches!(s2, KeySource::Stored(_)));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
