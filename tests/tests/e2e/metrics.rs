//! `GET /metrics`: the Prometheus text format, read back with the reference
//! client's parser (`tests/prometheus`), its counters moving as invocations
//! of each outcome end. A host process of its own, so no other test's
//! invocations are counted.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use fnhost_e2e::{binary, repo_root, start_host, wait_until, Api, TestApp, ADMIN_KEY};
use serde_json::{json, Value};

/// One sample: its name and labels, and its value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// `text` parsed by `prometheus_client.parser`; panics when it does not
/// parse.
fn parse(text: &str) -> Vec<Sample> {
    let python = repo_root().join("tests/prometheus/.venv/bin/python");
    assert!(
        python.is_file(),
        "the Prometheus parser is not set up ({} is missing): run tests/prometheus/setup.sh",
        python.display()
    );
    let mut child = Command::new(python)
        .arg(repo_root().join("tests/prometheus/parse.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the exposition does not parse: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            Sample {
                name: v["name"].as_str().unwrap().to_string(),
                labels: serde_json::from_value(v["labels"].clone()).unwrap(),
                value: v["value"].as_f64().unwrap(),
            }
        })
        .collect()
}

/// The value of the sample `name` whose labels include `labels`; 0 when
/// there is none.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

async fn scrape(api: &Api) -> Vec<Sample> {
    let r = api.request("GET", "/metrics", "", None).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type").starts_with("text/plain"),
        "{}",
        r.header("content-type")
    );
    parse(&r.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_count_each_outcome() {
    let app = TestApp::sample(json!({
        "functionTimeout": "00:00:01",
        "workers": {"cancelGracePeriod": "00:00:00.200"}
    }));
    let mut cmd = Command::new(binary("fnhost"));
    cmd.env("FNHOST_ADMIN_KEY", ADMIN_KEY)
        .env("FNHOST_LOG", "warn");
    let (host, addr, _) = start_host(cmd, app.dir(), &[], Stdio::null());
    let api = Api::new(addr);
    wait_until("a ready worker", Duration::from_secs(20), || async {
        api.request("GET", "/readyz", "", None)
            .await
            .map(|r| r.status)
            .ok()
            == Some(200)
    })
    .await;
    let before = scrape(&api).await;
    assert_eq!(value(&before, "faas_invocations_total", &[]), 0.0);
    assert!(
        value(&before, "faas_init_duration_seconds_count", &[]) >= 1.0,
        "{before:?}"
    );
    assert!(value(&before, "fnhost_worker_instances", &[("state", "ready")]) >= 1.0);

    for _ in 0..3 {
        let r = api.request("POST", "/api/echo", "hi", None).await.unwrap();
        assert_eq!(r.status, 200);
    }
    for _ in 0..2 {
        assert_eq!(api.invoke("fail", "boom").await.unwrap().status, 500);
    }
    // spin ignores its cancel: killed after the grace, for its timeout.
    let r = api.invoke("spin", "3000").await.unwrap();
    assert_ne!(r.status, 200, "{}", r.text());
    let r = api
        .request(
            "POST",
            "/admin/functions/echo/invoke-async",
            "later",
            Some(ADMIN_KEY),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["requestId"].as_str().unwrap().to_string();
    wait_until(
        "the async event to finish",
        Duration::from_secs(15),
        || async { super::async_events::event(&api, &id).await["status"] == "FINISHED" },
    )
    .await;

    let after = scrape(&api).await;
    let ok = [
        ("function", "echo"),
        ("trigger", "http"),
        ("outcome", "succeeded"),
    ];
    assert_eq!(
        value(&after, "faas_invocations_total", &ok),
        4.0,
        "3 sync + 1 async"
    );
    let failed = [("function", "fail"), ("outcome", "failed")];
    assert_eq!(value(&after, "faas_invocations_total", &failed), 2.0);
    assert_eq!(
        value(&after, "faas_errors_total", &[("function", "fail")]),
        2.0
    );
    assert_eq!(
        value(&after, "faas_timeouts_total", &[("function", "spin")]),
        1.0
    );
    assert_eq!(
        value(&after, "fnhost_cancels_total", &[("reason", "timeout")]),
        1.0
    );
    assert_eq!(
        value(&after, "fnhost_kills_total", &[("reason", "timeout")]),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "faas_invoke_duration_seconds_count",
            &[("function", "echo")]
        ),
        4.0
    );
    assert_eq!(value(&after, "fnhost_async_accepts_total", &[]), 1.0);
    assert_eq!(
        value(&after, "fnhost_async_events", &[("status", "FINISHED")]),
        1.0
    );
    assert_eq!(
        value(&after, "fnhost_async_oldest_queued_age_seconds", &[]),
        0.0
    );
    assert!(value(&after, "fnhost_store_commit_seconds_count", &[]) >= 2.0);
    assert!(value(&after, "faas_coldstarts_total", &[]) >= 1.0);
    assert_eq!(value(&after, "fnhost_queue_depth", &[]), 0.0);
    // No series is labelled with an id.
    for s in &after {
        for k in s.labels.keys() {
            assert!(
                !k.contains("id") && k != "invocation" && k != "worker",
                "{s:?}"
            );
        }
    }
    drop(host);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_require_the_admin_key() {
    let app = TestApp::sample(json!({}));
    let mut cmd = Command::new(binary("fnhost"));
    cmd.env("FNHOST_ADMIN_KEY", ADMIN_KEY)
        .env("FNHOST_LOG", "warn");
    let (host, addr, seen) = start_host(
        cmd,
        app.dir(),
        &["--metrics-key-required", "--metrics-port", "0"],
        Stdio::null(),
    );
    let metrics_addr: std::net::SocketAddr = seen
        .iter()
        .find_map(|l| l.strip_prefix("fnhost: metrics on http://"))
        .and_then(|l| l.trim_end_matches("/metrics").parse().ok())
        .unwrap_or_else(|| panic!("the metrics address is printed: {seen:?}"));
    // The key is asked for on both ports.
    for api in [Api::new(addr), Api::new(metrics_addr)] {
        let r = api.request("GET", "/metrics", "", None).await.unwrap();
        assert_eq!(r.status, 401, "{}", r.text());
        let r = api
            .request("GET", "/metrics", "", Some("wrong"))
            .await
            .unwrap();
        assert_eq!(r.status, 401, "{}", r.text());
        let r = api
            .request("GET", "/metrics", "", Some(ADMIN_KEY))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(!parse(&r.text()).is_empty());
    }
    drop(host);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_port_serves_metrics_and_nothing_else() {
    let app = TestApp::sample(json!({}));
    let mut cmd = Command::new(binary("fnhost"));
    cmd.env("FNHOST_ADMIN_KEY", ADMIN_KEY)
        .env("FNHOST_LOG", "warn");
    let (host, addr, seen) = start_host(cmd, app.dir(), &["--metrics-port", "0"], Stdio::null());
    let line = seen
        .iter()
        .find_map(|l| l.strip_prefix("fnhost: metrics on http://"))
        .unwrap_or_else(|| panic!("the metrics address is printed: {seen:?}"));
    let metrics_addr: std::net::SocketAddr = line.trim_end_matches("/metrics").parse().unwrap();
    assert_ne!(metrics_addr.port(), addr.port());
    let metrics = Api::new(metrics_addr);
    let r = metrics.request("GET", "/metrics", "", None).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!parse(&r.text()).is_empty());
    for path in ["/admin/host/status", "/api/echo", "/livez"] {
        let r = metrics
            .request("GET", path, "", Some(ADMIN_KEY))
            .await
            .unwrap();
        assert_eq!(r.status, 404, "{path} is not on the metrics port");
    }
    // Still on the API port too.
    let r = Api::new(addr)
        .request("GET", "/metrics", "", None)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    drop(host);
}
