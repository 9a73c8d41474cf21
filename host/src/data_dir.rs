//! The host's data directory: keys, the event store, the endpoint file.
//! Private to the host's user: created 0700, its files 0600, and a
//! directory that other users can write to is refused (they could swap
//! the store or a key file under the host).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// It could not be created or inspected.
    #[error("data directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// It exists but is not a directory.
    #[error("data directory {0} exists and is not a directory")]
    NotADirectory(PathBuf),
    /// Other users can write to it.
    #[error(
        "data directory {path} is writable by other users (mode {mode:o}); \
         run `chmod 700 {path}` or choose another --data-dir"
    )]
    WritableByOthers {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// It belongs to another user, who could change it at will.
    #[error("data directory {path} belongs to uid {owner}, not to the host's uid {uid}")]
    ForeignOwner {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The host's effective uid.
        uid: u32,
    },
    /// Another host holds it: two hosts on one data directory would run
    /// the same async events and timer ticks twice.
    #[error(
        "data directory {path} is in use by another fnhost (pid {pid}); \
         give each host its own --data-dir (hosts share async events through \
         --event-store postgres://..., not a data directory)"
    )]
    InUse {
        /// The directory.
        path: PathBuf,
        /// The holder's process id, as it wrote it (`?` if unreadable).
        pid: String,
    },
}

/// This host's hold on its data directory: an exclusive `flock` on
/// `host.lock` inside it. The kernel releases it when the process ends,
/// however it ends, so a host killed with `SIGKILL` leaves nothing to
/// clean up.
#[derive(Debug)]
pub struct DataDirLock {
    _file: std::fs::File,
}

/// Takes the data directory for this host, or names the host that holds it.
pub fn lock(dir: &Path) -> Result<DataDirLock, DataDirError> {
    use std::io::{Read, Seek};
    let path = dir.join("host.lock");
    let io = |source| DataDirError::Io {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(DataDirError::InUse {
                path: dir.to_path_buf(),
                pid: if pid.is_empty() {
                    "?".into()
                } else {
                    pid.into()
                },
            });
        }
        Err(e) => return Err(io(e.into())),
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    Ok(DataDirLock { _file: file })
}

/// Creates `dir` (0700) or checks an existing one, tightening a readable
/// one to 0700. Call before anything is written into it.
pub fn prepare(dir: &Path) -> Result<(), DataDirError> {
    let io = |source| DataDirError::Io {
        path: dir.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io)?;
            // An existing umask may have narrowed it further; never wider.
            return Ok(());
        }
        Err(e) => return Err(io(e)),
        Ok(_) => {}
    }
    // Follow a symlink the operator made, but judge what it points to.
    let meta = std::fs::metadata(dir).map_err(io)?;
    if !meta.is_dir() {
        return Err(DataDirError::NotADirectory(dir.to_path_buf()));
    }
    if let Some(uid) = effective_uid() {
        if meta.uid() != uid {
            return Err(DataDirError::ForeignOwner {
                path: dir.to_path_buf(),
                owner: meta.uid(),
                uid,
            });
        }
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(DataDirError::WritableByOthers {
            path: dir.to_path_buf(),
            mode,
        });
    }
    if mode & 0o077 != 0 {
        tracing::warn!(path = %dir.display(), "data directory was readable by others (mode {mode:o}); tightening to 0700");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(())
}

/// The host's effective uid: the owner of `/proc/self` (no `unsafe` call
/// needed); `None` where `/proc` is absent.
fn effective_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// Makes an existing file owner-only (a store or key file from an older
/// host may be 0644).
pub fn make_private(path: &Path) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.mode() & 0o077 != 0 => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes `contents` to `path` atomically (a 0600 file written aside, then
/// renamed), so a reader never sees half of it and nobody else can read it.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let staged = path.with_extension(format!("tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&staged)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&staged, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&staged);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> PathBuf {
        std::env::temp_dir().join(format!("fnhost-data-{}", uuid::Uuid::new_v4()))
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o777
    }

    #[test]
    fn a_new_directory_is_owner_only() {
        let dir = temp();
        prepare(&dir).unwrap();
        assert_eq!(mode(&dir) & 0o077, 0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_readable_directory_is_tightened_and_a_writable_one_refused() {
        let dir = temp();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = prepare(&dir).unwrap_err();
        assert!(matches!(e, DataDirError::WritableByOthers { .. }), "{e}");
        assert!(e.to_string().contains("chmod 700"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn private_writes_are_0600() {
        let dir = temp();
        prepare(&dir).unwrap();
        let f = dir.join("endpoint");
        write_private(&f, b"x").unwrap();
        assert_eq!(mode(&f), 0o600);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        make_private(&f).unwrap();
        assert_eq!(mode(&f), 0o600);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
