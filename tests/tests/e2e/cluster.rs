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

use super::postgres_harness::postgres;

/// Heartbeats and polls fast, and a host is dead after 2 s, so rescues
/// happen within a test's patience.
fn cluster_host_json() -> Value {
    json!({
        "asyncEvents": {
            "hostHeartbeat": "00:00:00.250",
            "hostDeadAfter": "00:00:02",
            "pollInterval": "00:00:00.050",
            "maxRetryAttempts": 2,
            "retryBackoff": "00:00:00.050"
        },
        "workers": {"cancelGracePeriod": "00:00:01"}
    })
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
        let pg = postgres(test)?;
        let url = pg.create_database("fnhost").unwrap();
        let app = TestApp::sample(cluster_host_json());
        let dirs = TempDir::new("fnhost-cluster").unwrap();
        Some(Self { pg, url, app, dirs })
    }

    async fn node(&self, name: &str) -> Node {
        let log = self.dirs.path().join(format!("{name}.log"));
        let mut cmd = Command::new(binary("fnhost"));
        cmd.env("FNHOST_ADMIN_KEY", ADMIN_KEY)
            .env("FNHOST_LOG", "info")
            .env("FNHOST_EVENT_STORE", &self.url);
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
            "SELECT request_id, function, status, attempts, COALESCE(owner_host, '') FROM fnhost_events",
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

    fn count(&self, condition: &str) -> usize {
        self.sql(&format!(
            "SELECT COUNT(*) FROM fnhost_events WHERE {condition}"
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

async fn event(api: &Api, id: &str) -> Value {
    let r = api
        .admin_get(&format!("/admin/async-events/{id}"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

async fn logs(api: &Api, id: &str) -> Vec<String> {
    let r = api
        .admin_get(&format!("/admin/async-events/{id}/logs"))
        .await
        .unwrap();
    r.json()["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap().to_string())
        .collect()
}

async fn terminate(api: &Api, id: &str, graceful: bool) -> (u16, Value) {
    let body = json!({ "graceShutdown": graceful }).to_string();
    let path = format!("/admin/async-events/{id}/terminate");
    let r = api
        .request("POST", &path, body, Some(ADMIN_KEY))
        .await
        .unwrap();
    (r.status, r.json())
}

/// Waits until every event in `ids` is RUNNING and owned by `owner`.
async fn wait_running_on(setup: &Setup, ids: &[String], owner: &str) {
    let list = ids
        .iter()
        .map(|i| format!("'{i}'"))
        .collect::<Vec<_>>()
        .join(",");
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_owners_running_events_are_rescued_by_another_host() {
    let Some(setup) = Setup::new("a_killed_owners_running_events_are_rescued") else {
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
            let list = ids.iter().map(|i| format!("'{i}'")).collect::<Vec<_>>();
            setup.count(&format!(
                "request_id IN ({}) AND status = 'FINISHED'",
                list.join(",")
            )) == ids.len()
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
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_owner_is_fenced_off_and_each_event_ends_once() {
    let Some(setup) = Setup::new("a_paused_owner_is_fenced_off") else {
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
    let list = ids
        .iter()
        .map(|i| format!("'{i}'"))
        .collect::<Vec<_>>()
        .join(",");
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

    let (status, body) = terminate(&b.api, &graceful, true).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (200, Some("done")),
        "{body}"
    );
    let (status, body) = terminate(&b.api, &forced, false).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (200, Some("done")),
        "{body}"
    );
    for (id, code) in [(&graceful, 438), (&forced, 439)] {
        wait_until(
            "the terminated event to end",
            Duration::from_secs(15),
            || async { event(&b.api, id).await["status"] == "ABORTED" },
        )
        .await;
        let e = event(&b.api, id).await;
        assert_eq!(e["statusCode"], code, "{e}");
    }
    let lines = logs(&b.api, &graceful).await;
    assert!(
        lines.contains(&"[PLATFORM] Signal received successfully.".to_string()),
        "{lines:#?}"
    );

    // With the listeners' connections cut, the heartbeat carries it.
    let late = accepted(&a.api, "sleep", r#"{"ms": 30000}"#).await;
    wait_running_on(&setup, std::slice::from_ref(&late), &a.id).await;
    let cut = setup.sql(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%'",
    );
    assert_ne!(cut, "0", "the listeners were found");
    let (status, body) = terminate(&b.api, &late, false).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (200, Some("done")),
        "{body}"
    );
    wait_until(
        "the terminated event to end",
        Duration::from_secs(15),
        || async { event(&b.api, &late).await["status"] == "ABORTED" },
    )
    .await;
    assert!(
        a.log_text().contains("control channel listener stopped"),
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
}
