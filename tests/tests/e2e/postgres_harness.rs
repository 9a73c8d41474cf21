//! The PostgreSQL test harness itself: a server of its own per test, on a
//! Unix socket, that keeps committed rows across a restart and leaves
//! nothing behind. Skips with a message where PostgreSQL is not installed.

use std::process::{Command, Stdio};

use fnhost_e2e::postgres::Postgres;

/// A started server, or `None` with a skip message naming why.
pub(super) fn postgres(test: &str) -> Option<Postgres> {
    match Postgres::available() {
        Ok(_) => Some(Postgres::start().expect("starting the test postgres")),
        Err(why) => {
            eprintln!("skipping {test}: {why}");
            None
        }
    }
}

#[test]
fn a_committed_row_survives_a_restart_and_drop_removes_the_cluster() {
    let Some(mut pg) = postgres("a_committed_row_survives_a_restart_and_drop_removes_the_cluster")
    else {
        return;
    };
    let db_url = pg.create_database("harness").unwrap();
    assert!(db_url.contains("/harness?host="), "{db_url}");
    pg.psql_in(
        "harness",
        "CREATE TABLE events (id bigint PRIMARY KEY, body text NOT NULL)",
    )
    .unwrap();
    pg.psql_in("harness", "INSERT INTO events VALUES (1, 'hello')")
        .unwrap();
    assert_eq!(
        pg.psql_in("harness", "SELECT id, body FROM events")
            .unwrap(),
        "1|hello"
    );

    let first = pg.pid().expect("running");
    pg.restart().unwrap();
    assert_ne!(pg.pid().expect("running again"), first);
    assert_eq!(
        pg.psql_in("harness", "SELECT id, body FROM events")
            .unwrap(),
        "1|hello"
    );
    // No TCP listener: only the socket in our own directory.
    assert_eq!(pg.psql("SHOW listen_addresses").unwrap(), "");
    assert_eq!(pg.psql("SHOW fsync").unwrap(), "on");

    let data = pg.data_dir();
    assert!(data.join("PG_VERSION").is_file());
    drop(pg);
    assert!(!data.exists(), "{} is left behind", data.display());
    assert!(!fnhost_e2e::process_running(first.into()));
}

/// graphile-worker's add and completion rates on a harness server (the
/// peer for the event store's benchmark; `tests/pg-peer/bench.js`). Not a
/// test: run it by hand with `-- --ignored --nocapture`.
#[test]
#[ignore = "a benchmark; needs npm for tests/pg-peer"]
fn graphile_worker_peer_bench() {
    let Some(pg) = postgres("graphile_worker_peer_bench") else {
        return;
    };
    let peer = fnhost_e2e::repo_root().join("tests/pg-peer");
    let setup = Command::new("bash")
        .arg(peer.join("setup.sh"))
        .status()
        .unwrap();
    assert!(setup.success(), "tests/pg-peer/setup.sh failed");
    let url = pg.create_database("peer").unwrap();
    let out = Command::new("node")
        .arg(peer.join("bench.js"))
        .arg(&url)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "bench.js failed ({})", out.status);
    let line = String::from_utf8(out.stdout).unwrap();
    let figures: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    println!("graphile-worker on {url}: {figures}");
}
