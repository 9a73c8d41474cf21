//! A throwaway PostgreSQL server per test: its own data directory and Unix
//! socket directory under the temp dir, no TCP listener, stopped and removed
//! on drop.
//!
//! `initdb` and `postgres` refuse to run as root, and sessions and CI run as
//! root, so there the server's files are handed to `nobody` and its
//! processes run as that user. The child is given the uid and gid by
//! `std::process::Command` itself rather than through `runuser`, which forks
//! and waits: the child we hold is then the postmaster, whose PID the fast
//! shutdown signals.

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};

/// The user the server runs as when the tests run as root.
const UNPRIVILEGED_USER: &str = "nobody";
/// The port names the socket file (`.s.PGSQL.5432`); with no TCP listener
/// and a socket directory of its own, every server can use the default.
const PORT: u16 = 5432;
/// How long a start or a fast shutdown may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(60);
/// The binaries the harness runs.
const BINARIES: [&str; 4] = ["initdb", "postgres", "pg_isready", "psql"];

/// A running PostgreSQL server owned by one test.
pub struct Postgres {
    bin: PathBuf,
    root: PathBuf,
    run_as: Option<(u32, u32)>,
    postmaster: Option<Child>,
}

impl Postgres {
    /// The directory holding `initdb`, `postgres`, `pg_isready` and `psql`
    /// (`FNHOST_PG_BIN`, else PostgreSQL 15's Debian location, else
    /// `pg_config --bindir`), or why the PostgreSQL tests must skip.
    pub fn available() -> Result<PathBuf, String> {
        let candidates: Vec<PathBuf> = match std::env::var_os("FNHOST_PG_BIN") {
            Some(dir) => vec![PathBuf::from(dir)],
            None => {
                let mut dirs = vec![PathBuf::from("/usr/lib/postgresql/15/bin")];
                if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
                    if out.status.success() {
                        let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                        dirs.push(PathBuf::from(dir));
                    }
                }
                dirs
            }
        };
        let bin = candidates
            .iter()
            .find(|dir| BINARIES.iter().all(|b| dir.join(b).is_file()))
            .cloned()
            .ok_or_else(|| {
                format!(
                    "no PostgreSQL binaries ({}) in {} (set FNHOST_PG_BIN to their directory)",
                    BINARIES.join(", "),
                    candidates
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" or ")
                )
            })?;
        if running_as_root() {
            unprivileged_ids().map_err(|e| format!("{e:#}"))?;
        }
        Ok(bin)
    }

    /// Initialises a fresh cluster in a new temp dir and starts it; returns
    /// once it accepts connections.
    pub fn start() -> Result<Self> {
        let bin = Self::available().map_err(anyhow::Error::msg)?;
        let root =
            std::env::temp_dir().join(format!("fnhost-pg-{}", &uuid::Uuid::new_v4().simple()));
        let run_as = if running_as_root() {
            Some(unprivileged_ids()?)
        } else {
            None
        };
        let mut pg = Self {
            bin,
            root,
            run_as,
            postmaster: None,
        };
        // From here on a failure drops `pg`, which removes the directory.
        for dir in [pg.root.clone(), pg.data_dir(), pg.socket_dir()] {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .with_context(|| format!("creating {}", dir.display()))?;
            if let Some((uid, gid)) = run_as {
                std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                    .with_context(|| format!("handing {} to {UNPRIVILEGED_USER}", dir.display()))?;
            }
        }
        pg.initdb()?;
        pg.spawn()?;
        Ok(pg)
    }

    /// A libpq-style URL for database `postgres` (the socket directory is
    /// the `host` query parameter; tokio-postgres and libpq both read it).
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// A libpq-style URL for database `db` on this server.
    pub fn url_for(&self, db: &str) -> String {
        format!(
            "postgresql:///{db}?host={}&port={PORT}&user=postgres",
            self.socket_dir().display()
        )
    }

    /// The same connection as `key=value` pairs, for database `db`.
    pub fn conninfo_for(&self, db: &str) -> String {
        format!(
            "host={} port={PORT} user=postgres dbname={db}",
            self.socket_dir().display()
        )
    }

    /// The directory holding the server's socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.root.join("sock")
    }

    /// The cluster's data directory (removed on drop).
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The postmaster's PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.postmaster.as_ref().map(Child::id)
    }

    /// Creates database `name` (letters, digits and `_` only), so tests
    /// sharing a server can keep apart; returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String> {
        ensure!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "database name {name:?} must be letters, digits and _"
        );
        self.psql(&format!("CREATE DATABASE \"{name}\""))?;
        Ok(self.url_for(name))
    }

    /// Runs `sql` with psql in database `postgres`; returns its unaligned,
    /// tuples-only output (`|` between columns), trimmed.
    pub fn psql(&self, sql: &str) -> Result<String> {
        self.psql_in("postgres", sql)
    }

    /// Runs `sql` with psql in database `db`.
    pub fn psql_in(&self, db: &str, sql: &str) -> Result<String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.conninfo_for(db))
            .args(["-c", sql])
            .stdin(Stdio::null())
            .output()
            .context("running psql")?;
        ensure!(
            out.status.success(),
            "psql failed ({}) on {sql:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Fast shutdown (SIGINT to the postmaster: open sessions are ended,
    /// the WAL is flushed); waits for it to exit. A no-op when stopped.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.postmaster.take() else {
            return Ok(());
        };
        let signalled = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + DEADLINE;
        while signalled.as_ref().is_ok_and(|s| s.success()) && Instant::now() < deadline {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        bail!(
            "postgres {} did not stop on SIGINT within {DEADLINE:?}; killed it\n{}",
            child.id(),
            self.log_tail()
        )
    }

    /// Stops the server and starts it again on the same data directory and
    /// socket; returns once it accepts connections.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.spawn()
    }

    /// Starts a stopped server again on its data directory and socket;
    /// returns once it accepts connections.
    pub fn start_again(&mut self) -> Result<()> {
        ensure!(self.postmaster.is_none(), "the server is running");
        self.spawn()
    }

    fn initdb(&self) -> Result<()> {
        let out = self
            .command("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .args(["--locale=C", "--no-instructions", "-D"])
            .arg(self.data_dir())
            .stdin(Stdio::null())
            .output()
            .context("running initdb")?;
        ensure!(
            out.status.success(),
            "initdb failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    fn spawn(&mut self) -> Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("opening the postgres log")?;
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-k")
            .arg(self.socket_dir())
            .args(["-p", &PORT.to_string()])
            // fsync stays on: the event store promises durability and the
            // tests that restart the server check it.
            .args(["-c", "listen_addresses=", "-c", "fsync=on"])
            .args(["-c", "max_connections=100", "-c", "shared_buffers=32MB"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting postgres")?;
        self.postmaster = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let child = self.postmaster.as_mut().expect("postmaster spawned");
            if let Some(status) = child.try_wait()? {
                self.postmaster = None;
                bail!(
                    "postgres exited ({status}) while starting\n{}",
                    self.log_tail()
                );
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .arg("-q")
                .arg("-h")
                .arg(self.socket_dir())
                .args(["-p", &PORT.to_string(), "-U", "postgres"])
                .status()
                .context("running pg_isready")?;
            if ready.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "postgres did not accept connections within {DEADLINE:?}\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `name` from the binaries directory, run as the unprivileged user when
    /// we are root, from a directory that user can enter.
    fn command(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(name));
        cmd.current_dir(&self.root);
        if let Some((uid, gid)) = self.run_as {
            // std drops root's supplementary groups when it sets the uid.
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    fn log_path(&self) -> PathBuf {
        self.root.join("postgres.log")
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!("--- {} (last lines)\n{tail}", self.log_path().display())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("stopping test postgres: {e:#}");
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Whether this process runs as root: the owner of `/proc/self` (no
/// `unsafe` call needed).
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The uid and gid of [`UNPRIVILEGED_USER`].
fn unprivileged_ids() -> Result<(u32, u32)> {
    let id = |flag: &str| -> Result<u32> {
        let out = Command::new("id")
            .args([flag, UNPRIVILEGED_USER])
            .output()
            .context("running id")?;
        ensure!(
            out.status.success(),
            "running as root and there is no user {UNPRIVILEGED_USER} to run postgres as"
        );
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
    };
    Ok((id("-u")?, id("-g")?))
}
