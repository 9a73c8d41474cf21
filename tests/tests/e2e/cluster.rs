//! Several hosts sharing asynchronous invocations on one PostgreSQL
//! database: the work spreads, a killed or paused owner's events are
//! rescued and fenced, terminates reach the owner, idempotency holds across
//! hosts. Each test starts its own server (skipping with a message where
//! PostgreSQL is not installed) and real `fnhost` processes.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fnhost_e2e::postgres::Postgres;
use fnhost_e2e::{binary, start_host, wait_until, Api, HostProcess, TempDir, TestApp, ADMIN_KEY};
use serde_json::{json, Value};

use super::async_events::{event, logs, terminate};
use super::postgres_harness::postgres;

mod store;
mod timers;

/// Heartbeats and polls fast. A host is dead after 10 s: a loaded machine
/// can delay a heartbeat by seconds, and only the rescue tests want a
/// short dead time ([`quick_rescue`]).
fn cluster_host_json() -> Value {
    json!({
        "asyncEvents": {
            "hostHeartbeat": "00:00:00.250",
            "hostDeadAfter": "00:00:10",
            "pollInterval": "00:00:00.050",
            "maxRetryAttempts": 2,
            "retryBackoff": "00:00:00.050"
        },
        "workers": {"cancelGracePeriod": "00:00:01"}
    })
}

/// [`cluster_host_json`] with a host dead after 2 s, so rescues happen
/// within a test's patience.
fn quick_rescue() -> Value {
    let mut v = cluster_host_json();
    v["asyncEvents"]["hostDeadAfter"] = json!("00:00:02");
    v
}

/// One `fnhost` process on the shared database.
struct Node {
    process: HostProcess,
    api: Api,
    log: PathBuf,
    id: String,
}

impl Node {
    fn pid(&self) -> u32 {
        self.process.0.id()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill {sig} {}", self.pid());
    }
}

/// The database and the hosts' shared app; each node gets its own data
/// directory and log file.
struct Setup {
    pg: Postgres,
    url: String,
    app: TestApp,
    dirs: TempDir,
}

impl Setup {
    fn new(test: &str) -> Option<Self> {
        Self::with_host_json(test, cluster_host_json())
    }

    fn with_host_json(test: &str, host_json: Value) -> Option<Self> {
        Self::with_app(test, TestApp::sample(host_json))
    }

    fn with_app(test: &str, app: TestApp) -> Option<Self> {
        let pg = postgres(test)?;
        let url = pg.create_database("fnhost").unwrap();
        let dirs = TempDir::new("fnhost-cluster").unwrap();
        Some(Self { pg, url, app, dirs })
    }

    async fn node(&self, name: &str) -> Node {
        let log = self.dirs.path().join(format!("{name}.log"));
        let mut cmd = Command::new(binary("fnhost"));
        cmd.env("FNHOST_ADMIN_KEY", ADMIN_KEY)
            .env("FNHOST_LOG", "info")
            .env("FNHOST_EVENT_STORE", &self.url)
            .env("FNHOST_SCF_SECRET_ID", super::scf::SECRET_ID)
            .env("FNHOST_SCF_SECRET_KEY", super::scf::SECRET_KEY);
        let data_dir = self.dirs.path().join(name);
        let data_dir = data_dir.to_str().unwrap();
        let stderr = Stdio::from(File::create(&log).unwrap());
        let (process, addr, _) = start_host(cmd, self.app.dir(), &["--data-dir", data_dir], stderr);
        let api = Api::new(addr);
        let status = api.status().await.unwrap();
        let id = status["cluster"]["hostId"]
            .as_str()
            .unwrap_or_else(|| panic!("a host on a shared store reports its id: {status}"))
            .to_string();
        Node {
            process,
            api,
            log,
            id,
        }
    }

    fn sql(&self, query: &str) -> String {
        self.pg.psql_in("fnhost", query).unwrap()
    }

    /// `function, status, attempts, owner` of every event, by request id.
    fn events(&self) -> HashMap<String, (String, String, i64, String)> {
        let out = self.sql(
            "SELECT request_id, function, status, attempts, COALESCE(owner_host, '') FROM fnhost_all_events",
        );
        out.lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split('|').collect();
                (
                    f[0].to_string(),
                    (
                        f[1].to_string(),
                        f[2].to_string(),
                        f[3].parse().unwrap(),
                        f[4].to_string(),
                    ),
                )
            })
            .collect()
    }

    /// The kept counts (what list totals come from) agree with the events.
    fn assert_counts_match(&self) {
        let kept = self.sql(
            "SELECT function, qualifier, invoke_type, status, SUM(n) FROM fnhost_event_counts
             GROUP BY 1, 2, 3, 4 HAVING SUM(n) <> 0 ORDER BY 1, 2, 3, 4",
        );
        let real = self.sql(
            "SELECT function, qualifier, invoke_type, status, COUNT(*) FROM fnhost_all_events
             GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
        );
        assert_eq!(kept, real, "kept counts against the events");
    }

    fn count(&self, condition: &str) -> usize {
        self.sql(&format!(
            "SELECT COUNT(*) FROM fnhost_all_events WHERE {condition}"
        ))
        .trim()
        .parse()
        .unwrap()
    }
}

async fn submit(api: &Api, function: &str, body: &str, key: Option<&str>) -> (u16, Value) {
    let path = format!("/admin/functions/{function}/invoke-async");
    let mut headers = vec![("x-functions-key", ADMIN_KEY)];
    headers.extend(key.map(|k| ("idempotency-key", k)));
    let r = api
        .request_with("POST", &path, body.to_string(), &headers)
        .await
        .unwrap();
    (r.status, r.json())
}

async fn accepted(api: &Api, function: &str, body: &str) -> String {
    let (status, body) = submit(api, function, body, None).await;
    assert_eq!(status, 202, "{body}");
    body["requestId"].as_str().unwrap().to_string()
}

/// Terminates `id` through `api`, which answers `done`, and waits until
/// it is ABORTED; its record then.
async fn terminate_until_aborted(api: &Api, id: &str, graceful: bool) -> Value {
    let (status, body) = terminate(api, id, graceful).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (200, Some("done")),
        "{body}"
    );
    wait_until(
        "the terminated event to end",
        Duration::from_secs(15),
        || async { event(api, id).await["status"] == "ABORTED" },
    )
    .await;
    event(api, id).await
}

/// `'id1','id2',...` for an SQL `IN (...)`.
fn sql_list(ids: &[String]) -> String {
    ids.iter()
        .map(|i| format!("'{i}'"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Waits until every event in `ids` is RUNNING and owned by `owner`.
async fn wait_running_on(setup: &Setup, ids: &[String], owner: &str) {
    let list = sql_list(ids);
    let condition =
        format!("request_id IN ({list}) AND status = 'RUNNING' AND owner_host = '{owner}'");
    wait_until(
        "the events to run on the first host",
        Duration::from_secs(20),
        || async { setup.count(&condition) == ids.len() },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_accepted_across_three_hosts_all_finish_once_each_spread_over_the_hosts() {
    let Some(setup) = Setup::new("events_accepted_across_three_hosts") else {
        return;
    };
    let nodes = [
        setup.node("a").await,
        setup.node("b").await,
        setup.node("c").await,
    ];
    const EVENTS: usize = 10_000;
    const CALLERS: usize = 64;
    let t0 = Instant::now();
    let mut callers = Vec::new();
    for c in 0..CALLERS {
        let apis: Vec<Api> = nodes.iter().map(|n| n.api.clone()).collect();
        callers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in (c..EVENTS).step_by(CALLERS) {
                ids.push(accepted(&apis[i % apis.len()], "echo", &format!("event {i}")).await);
            }
            ids
        }));
    }
    let mut ids = HashSet::new();
    for c in callers {
        ids.extend(c.await.unwrap());
    }
    let accept_took = t0.elapsed();
    assert_eq!(ids.len(), EVENTS, "every accept got its own request id");
    wait_until(
        "every event to finish",
        Duration::from_secs(120),
        || async { setup.count("status = 'FINISHED'") == EVENTS },
    )
    .await;
    let took = t0.elapsed();
    let events = setup.events();
    assert_eq!(events.len(), EVENTS);
    let mut per_host: HashMap<&str, usize> = HashMap::new();
    for (id, (_, status, attempts, owner)) in &events {
        assert!(ids.contains(id), "an event nobody accepted: {id}");
        assert_eq!(status, "FINISHED", "{id}");
        assert_eq!(*attempts, 1, "{id} ran exactly once");
        *per_host.entry(owner.as_str()).or_default() += 1;
    }
    eprintln!(
        "{EVENTS} events: accepted in {accept_took:?}, all finished after {took:?}; per host {per_host:?}"
    );
    for n in &nodes {
        let ran = per_host.get(n.id.as_str()).copied().unwrap_or(0);
        assert!(
            ran > 0,
            "host {} ran none of the events: {per_host:?}",
            n.id
        );
    }
    // Any host lists every host's events.
    let r = nodes[1]
        .api
        .admin_get("/admin/async-events?status=FINISHED&limit=5")
        .await
        .unwrap();
    assert_eq!(r.json()["totalCount"], EVENTS, "{}", r.text());
    let owners: HashSet<String> = r.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["ownerHost"].as_str().unwrap().to_string())
        .collect();
    assert!(!owners.is_empty());
    setup.assert_counts_match();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_owners_running_events_are_rescued_by_another_host() {
    let Some(setup) =
        Setup::with_host_json("a_killed_owners_running_events_are_rescued", quick_rescue())
    else {
        return;
    };
    let mut a = setup.node("a").await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(accepted(&a.api, "sleep", r#"{"ms": 1500}"#).await);
    }
    wait_running_on(&setup, &ids, &a.id).await;
    let b = setup.node("b").await;
    a.process.0.kill().unwrap();
    a.process.0.wait().unwrap();
    let killed = Instant::now();
    wait_until(
        "the killed host's events to finish elsewhere",
        Duration::from_secs(30),
        || async {
            let list = sql_list(&ids);
            setup.count(&format!("request_id IN ({list}) AND status = 'FINISHED'")) == ids.len()
        },
    )
    .await;
    eprintln!(
        "rescued and finished {} events {:?} after kill -9",
        ids.len(),
        killed.elapsed()
    );
    for id in &ids {
        let e = event(&b.api, id).await;
        assert_eq!(e["status"], "FINISHED", "{e}");
        assert_eq!(e["attempts"], 2, "the lost attempt is charged: {e}");
        assert_eq!(e["ownerHost"], b.id.as_str(), "{e}");
        let lines = logs(&b.api, id).await;
        let note = format!(
            "[PLATFORM] Host {} stopped while attempt 1 was running; retrying",
            a.id
        );
        assert!(lines.contains(&note), "{lines:#?}");
    }
    // The dead host's row is gone.
    assert_eq!(
        setup.sql(&format!(
            "SELECT COUNT(*) FROM fnhost_hosts WHERE id = '{}'",
            a.id
        )),
        "0"
    );
    setup.assert_counts_match();
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_owner_is_fenced_off_and_each_event_ends_once() {
    let Some(setup) = Setup::with_host_json("a_paused_owner_is_fenced_off", quick_rescue()) else {
        return;
    };
    let a = setup.node("a").await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(accepted(&a.api, "sleep", r#"{"ms": 3000}"#).await);
    }
    wait_running_on(&setup, &ids, &a.id).await;
    let b = setup.node("b").await;
    a.signal("-STOP");
    // Presumed dead, rescued, and running again on the other host.
    let list = sql_list(&ids);
    wait_until(
        "the paused host's events to run on the other host",
        Duration::from_secs(20),
        || async {
            setup.count(&format!(
                "request_id IN ({list}) AND owner_host = '{}' AND attempts = 2",
                b.id
            )) == ids.len()
        },
    )
    .await;
    a.signal("-CONT");
    wait_until(
        "the paused host to learn it was presumed dead",
        Duration::from_secs(20),
        || async { a.log_text().contains("presumed dead") },
    )
    .await;
    wait_until("every event to finish", Duration::from_secs(30), || async {
        setup.count(&format!("request_id IN ({list}) AND status = 'FINISHED'")) == ids.len()
    })
    .await;
    // Let the paused host's own attempts end: their writes are refused.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for id in &ids {
        let e = event(&b.api, id).await;
        assert_eq!(e["status"], "FINISHED", "{e}");
        assert_eq!(e["attempts"], 2, "{e}");
        let lines = logs(&b.api, id).await;
        let ends = lines
            .iter()
            .filter(|l| l.starts_with("[PLATFORM] Invoke End"))
            .count();
        assert_eq!(ends, 1, "one attempt's end is recorded: {lines:#?}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("Host {} stopped", a.id))),
            "{lines:#?}"
        );
    }
    // The paused host registered again and serves on.
    let status = a.api.status().await.unwrap();
    assert_eq!(status["cluster"]["hostId"], a.id.as_str());
    setup.assert_counts_match();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_terminate_sent_to_another_host_reaches_the_owner_by_notification_or_heartbeat() {
    let Some(setup) = Setup::new("a_terminate_sent_to_another_host") else {
        return;
    };
    let a = setup.node("a").await;
    let graceful = accepted(&a.api, "sleep", r#"{"ms": 30000}"#).await;
    let forced = accepted(&a.api, "sleep", r#"{"ms": 30000}"#).await;
    wait_running_on(&setup, &[graceful.clone(), forced.clone()], &a.id).await;
    let b = setup.node("b").await;

    // One at a time: both run on one worker instance, which the forced
    // terminate kills.
    for (id, graceful, code) in [(&graceful, true, 438), (&forced, false, 439)] {
        let e = terminate_until_aborted(&b.api, id, graceful).await;
        assert_eq!(e["statusCode"], code, "{e}");
    }
    let lines = logs(&b.api, &graceful).await;
    assert!(
        lines.contains(&"[PLATFORM] Signal received successfully.".to_string()),
        "{lines:#?}"
    );

    // With the listeners' connections cut, the heartbeat carries it.
    // Either host may claim it now; the other one is sent the terminate.
    let late = accepted(&a.api, "sleep", r#"{"ms": 30000}"#).await;
    let owner_of = format!(
        "SELECT COALESCE(owner_host, '') FROM fnhost_events WHERE request_id = '{late}' AND status = 'RUNNING'"
    );
    wait_until("the event to run", Duration::from_secs(20), || async {
        !setup.sql(&owner_of).is_empty()
    })
    .await;
    let (owner, other) = if setup.sql(&owner_of) == a.id {
        (&a, &b)
    } else {
        (&b, &a)
    };
    let cut = setup.sql(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%'",
    );
    assert_ne!(cut, "0", "the listeners were found");
    terminate_until_aborted(&other.api, &late, false).await;
    wait_until(
        "the owner to notice its listener's connection ended",
        Duration::from_secs(5),
        || async {
            owner
                .log_text()
                .contains("control channel listener stopped")
        },
    )
    .await;
    assert!(
        owner
            .log_text()
            .contains("control channel listener stopped"),
        "the owner noticed its listener's connection ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idempotency_key_sent_to_two_hosts_gives_one_event() {
    let Some(setup) = Setup::new("an_idempotency_key_sent_to_two_hosts") else {
        return;
    };
    let a = setup.node("a").await;
    let b = setup.node("b").await;
    for k in 0..20 {
        let key = format!("key-{k}");
        let (ra, rb) = tokio::join!(
            submit(&a.api, "echo", "same body", Some(&key)),
            submit(&b.api, "echo", "same body", Some(&key)),
        );
        let ids: HashSet<&str> = [&ra.1, &rb.1]
            .iter()
            .map(|r| r["requestId"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), 1, "one event for {key}: {ra:?} {rb:?}");
        assert!(
            [ra.0, rb.0].iter().all(|s| *s == 202 || *s == 200),
            "{ra:?} {rb:?}"
        );
        let (status, body) = submit(&b.api, "echo", "another body", Some(&key)).await;
        assert_eq!(status, 409, "{body}");
    }
    assert_eq!(setup.count("true"), 20);
    setup.assert_counts_match();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn accepts_during_a_database_restart_get_503_and_every_202_finishes() {
    // A dead time longer than the outage: no host is presumed dead.
    let mut host_json = cluster_host_json();
    host_json["asyncEvents"]["hostDeadAfter"] = json!("00:00:20");
    let Some(mut setup) = Setup::with_host_json("accepts_during_a_database_restart", host_json)
    else {
        return;
    };
    let a = setup.node("a").await;
    let b = setup.node("b").await;
    let apis = [a.api.clone(), b.api.clone()];
    let submitter = tokio::spawn(async move {
        let mut answers = Vec::new();
        let until = Instant::now() + Duration::from_secs(7);
        let mut i = 0usize;
        while Instant::now() < until {
            let (status, body) = submit(&apis[i % 2], "echo", &format!("e{i}"), None).await;
            answers.push((Instant::now(), status, body));
            i += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        answers
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let down = Instant::now();
    setup.pg.stop().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    setup.pg.start_again().unwrap();
    let up = Instant::now();
    let answers = submitter.await.unwrap();
    let accepted: Vec<String> = answers
        .iter()
        .filter(|(_, s, _)| *s == 202)
        .map(|(_, _, b)| b["requestId"].as_str().unwrap().to_string())
        .collect();
    let refused = answers.iter().filter(|(_, s, _)| *s == 503).count();
    for (_, status, body) in &answers {
        assert!(
            *status == 202 || *status == 503,
            "an accept answers 202 or 503: {status} {body}"
        );
    }
    assert!(refused > 0, "accepts while the database was down got 503");
    assert!(
        answers.iter().any(|(t, s, _)| *t > up && *s == 202),
        "accepts resumed after the restart"
    );
    eprintln!(
        "{} accepted, {refused} refused with 503 over a {:?} outage",
        accepted.len(),
        up - down
    );
    let list = sql_list(&accepted);
    wait_until(
        "every accepted event to finish",
        Duration::from_secs(60),
        || async {
            setup.count(&format!("request_id IN ({list}) AND status = 'FINISHED'"))
                == accepted.len()
        },
    )
    .await;
    // Both hosts are members again.
    for n in [&a, &b] {
        let status = n.api.status().await.unwrap();
        let hosts = status["cluster"]["hosts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(hosts.len(), 2, "{status}");
    }
    setup.assert_counts_match();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_scf_api_and_the_cli_work_against_any_host() {
    let mut host_json = cluster_host_json();
    host_json["asyncEvents"]["maxRetryAttempts"] = json!(0);
    host_json["workers"]["cancelGracePeriod"] = json!("00:00:00.500");
    let Some(setup) =
        Setup::with_host_json("the_scf_api_and_the_cli_work_against_any_host", host_json)
    else {
        return;
    };
    let a = setup.node("a").await;
    let b = setup.node("b").await;
    // The official SDK's scenario against one host; its events may run on
    // either.
    let o = super::scf::drive_at(b.api.addr()).await;
    assert_eq!(o["event_final"]["Result"]["Status"], "FINISHED", "{o}");
    assert_eq!(o["forced_final"]["Result"]["Status"], "ABORTED");
    assert_eq!(o["forced_final"]["Result"]["StatusCode"], 439);
    assert_eq!(o["graceful_final"]["Result"]["Status"], "ABORTED");
    assert_eq!(o["graceful_final"]["Result"]["StatusCode"], 438);
    assert_eq!(o["list_sleep"]["TotalCount"], 2, "{}", o["list_sleep"]);

    // The CLI, pointed at the other host, sees an event it did not accept.
    let id = accepted(&b.api, "echo", "from b").await;
    wait_until("the event to finish", Duration::from_secs(15), || async {
        event(&a.api, &id).await["status"] == "FINISHED"
    })
    .await;
    let out = Command::new(binary("fnhost"))
        .env("FNHOST_ADMIN_KEY", ADMIN_KEY)
        .args(["events", "status", &id, "--json", "--url", a.api.base()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["requestId"], id.as_str(), "{v}");
    assert_eq!(v["status"], "FINISHED", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_accepting_host_claims_its_own_event_before_older_ones_of_others() {
    // One at a time, and no idle poll within the test.
    let mut host_json = cluster_host_json();
    host_json["asyncEvents"]["maxConcurrency"] = json!(1);
    host_json["asyncEvents"]["pollInterval"] = json!("00:01:00");
    let Some(setup) = Setup::with_host_json("the_accepting_host_claims_its_own_event", host_json)
    else {
        return;
    };
    let a = setup.node("a").await;
    // Older ready events that another host accepted (and then left).
    setup.sql(
        "INSERT INTO fnhost_events (request_id, function, qualifier, invoke_type, status,
             attempts, input, start_ms)
         SELECT 'other-' || i, 'echo', '$LATEST', 'api', 'QUEUED', 0, ''::bytea,
             (extract(epoch FROM now()) * 1000)::BIGINT - 60000 + i
         FROM generate_series(1, 3) AS i;
         INSERT INTO fnhost_ready (request_id, seq, ready_at, accepted_by)
         SELECT request_id, seq, start_ms, 'host-elsewhere' FROM fnhost_events;
         INSERT INTO fnhost_event_counts VALUES ('echo', '$LATEST', 'api', 'QUEUED', 3);",
    );
    let id = accepted(&a.api, "echo", "mine").await;
    wait_until("every event to finish", Duration::from_secs(20), || async {
        setup.count("status = 'FINISHED'") == 4
    })
    .await;
    // Its own started first: every other one's first line comes after its end.
    let order = setup.sql(&format!(
        "SELECT (SELECT end_ms FROM fnhost_ended WHERE request_id = '{id}')
              <= (SELECT MIN(time_ms) FROM fnhost_event_logs WHERE request_id LIKE 'other-%')"
    ));
    assert_eq!(
        order, "t",
        "an older event of another host ran before this host's own"
    );
    setup.assert_counts_match();
}
