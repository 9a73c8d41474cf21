//! The OpenAPI document (`GET /admin/openapi.json`): it lists exactly the
//! routes the host serves, plus the app's trigger routes; it needs the
//! admin key unless `--openapi-public`; and schemathesis, driven by it
//! against a live `fnhost start`, finds no host fault and no answer that
//! breaks the document.
//!
//! Needs schemathesis's venv (`tests/schemathesis/setup.sh`); the test
//! fails (not skips) without it.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use fnhost_e2e::{binary, repo_root, start_host, Api, TestApp, ADMIN_KEY};
use serde_json::{json, Value};

/// An HTTP function on a route with a typed and an optional value.
fn orders_function() -> Value {
    json!({
        "bindings": [
            {
                "type": "httpTrigger", "direction": "in", "name": "req",
                "methods": ["get", "post"], "authLevel": "function",
                "route": "orders/{id:int}/{note?}"
            },
            { "type": "http", "direction": "out", "name": "$return" }
        ]
    })
}

/// The Rust sample worker's app with only the functions a test adds.
fn bare_app() -> TestApp {
    let app = TestApp::sample(json!({}));
    for f in [
        "echo", "sleep", "request", "spin", "panic", "crash", "fail", "log", "flaky",
    ] {
        std::fs::remove_dir_all(app.dir().join(f)).expect("a default function");
    }
    app
}

/// The `(method, path)` of every operation in `doc` not tagged `triggers`,
/// and of those that are.
type Operations = BTreeSet<(String, String)>;

fn operations(doc: &Value) -> (Operations, Operations) {
    let mut fixed = BTreeSet::new();
    let mut triggers = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            let key = (method.clone(), path.clone());
            if op["tags"]
                .as_array()
                .is_some_and(|t| t.contains(&json!("triggers")))
            {
                triggers.insert(key);
            } else {
                fixed.insert(key);
            }
        }
    }
    (fixed, triggers)
}

#[tokio::test]
async fn the_document_lists_exactly_the_routes_the_host_serves_and_the_apps_triggers() {
    let app = bare_app();
    app.function("echo", &orders_function());
    app.function(
        "fail",
        &json!({ "bindings": [{ "type": "manualTrigger", "direction": "in", "name": "input" }] }),
    );
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());

    // Behind the admin key by default.
    let r = api
        .request("GET", "/admin/openapi.json", "", None)
        .await
        .unwrap();
    assert_eq!(r.status, 401, "{}", r.text());
    let r = api
        .request("GET", "/admin/openapi.json", "", Some(ADMIN_KEY))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");

    // The fixed routes are the router's, no more and no fewer.
    let (fixed, triggers) = operations(&doc);
    let served: BTreeSet<(String, String)> = host
        .http_routes()
        .iter()
        .map(|(m, p)| ((*m).to_string(), (*p).to_string()))
        .collect();
    assert_eq!(
        fixed.difference(&served).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not served"
    );
    assert_eq!(
        served.difference(&fixed).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "served but not documented"
    );
    assert!(served.len() >= 20, "{served:?}");

    // The trigger routes are the app's: both forms of the optional value,
    // for the methods the function allows, with its key required.
    let want: BTreeSet<(String, String)> = [
        ("get", "/api/orders/{id}/{note}"),
        ("post", "/api/orders/{id}/{note}"),
        ("get", "/api/orders/{id}"),
        ("post", "/api/orders/{id}"),
    ]
    .iter()
    .map(|(m, p)| ((*m).to_string(), (*p).to_string()))
    .collect();
    assert_eq!(triggers, want);
    let op = &doc["paths"]["/api/orders/{id}/{note}"]["get"];
    assert_eq!(op["parameters"][0]["name"], "id");
    assert_eq!(op["parameters"][0]["schema"]["type"], "integer");
    assert_eq!(op["security"][0], json!({ "functionsKey": [] }));
    // The functions' names are the `name` parameter's values.
    assert_eq!(
        doc["components"]["parameters"]["FunctionName"]["schema"]["enum"],
        json!(["echo", "fail"])
    );
    // The trigger route the document names does serve.
    let r = api
        .request("POST", "/api/orders/7/rush", "x", Some(ADMIN_KEY))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());

    // What schemathesis found, fixed: a 405 names the allowed methods; the
    // key as `?code=` is not an unknown list parameter; times take any
    // RFC 3339 offset; bodies that must be objects are refused otherwise.
    let r = api
        .request("DELETE", "/api/orders/7", "", Some(ADMIN_KEY))
        .await
        .unwrap();
    assert_eq!(r.status, 405, "{}", r.text());
    assert_eq!(r.header("allow"), "GET, POST");
    let r = api
        .request(
            "GET",
            &format!(
                "/admin/async-events?code={ADMIN_KEY}&startTimeFrom=2026-01-01T09:00:00%2B02:00"
            ),
            "",
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    for (route, body) in [
        ("/admin/host/keys/extra", "[null]"),
        ("/admin/host/keys/extra", " "),
    ] {
        let r = api
            .request("PUT", route, body, Some(ADMIN_KEY))
            .await
            .unwrap();
        assert_eq!(r.status, 400, "{body:?}: {}", r.text());
    }
    let r = api
        .request_with(
            "POST",
            "/admin/functions/echo/invoke-async",
            String::new(),
            &[("x-functions-key", ADMIN_KEY), ("Idempotency-Key", "a b")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    host.shutdown().await;
}

/// The schemathesis app: functions that succeed on any input, so a 5xx is
/// a host fault, never a function's own outcome.
fn fuzzed_app() -> TestApp {
    let app = bare_app();
    app.function("echo", &orders_function());
    app.function("trace", &fnhost_e2e::http_function());
    app
}

fn fnhost() -> Command {
    let mut cmd = Command::new(binary("fnhost"));
    cmd.env_remove("FNHOST_ADMIN_KEY").env("FNHOST_LOG", "warn");
    cmd
}

#[tokio::test]
async fn with_openapi_public_the_document_needs_no_key_and_the_admin_routes_still_do() {
    let app = bare_app();
    app.function("echo", &fnhost_e2e::http_function());
    let (_child, addr, _) = start_host(
        fnhost(),
        app.dir(),
        &["--admin-key", ADMIN_KEY, "--openapi-public"],
        Stdio::null(),
    );
    let api = Api::new(addr);
    let r = api
        .request("GET", "/admin/openapi.json", "", None)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["openapi"], "3.1.0");
    let r = api
        .request("GET", "/admin/host/status", "", None)
        .await
        .unwrap();
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn schemathesis_finds_no_host_fault_and_no_answer_outside_the_document() {
    let venv = repo_root().join("tests/schemathesis/.venv/bin/schemathesis");
    assert!(
        venv.is_file(),
        "schemathesis is not set up ({} is missing): run tests/schemathesis/setup.sh",
        venv.display()
    );
    let app = fuzzed_app();
    let (_child, addr, _) = start_host(
        fnhost(),
        app.dir(),
        &["--admin-key", ADMIN_KEY],
        Stdio::null(),
    );
    // Run in a directory of its own: schemathesis keeps the failures it
    // found (and replays them first) in `.schemathesis/` of its working
    // directory, which must not carry over from one run to the next.
    let work = fnhost_e2e::TempDir::new("schemathesis").unwrap();
    let cwd = work.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(venv)
            .arg("--config-file")
            .arg(repo_root().join("tests/schemathesis/schemathesis.toml"))
            .arg("run")
            .arg(format!("http://{addr}/admin/openapi.json"))
            .args(["-H", &format!("x-functions-key: {ADMIN_KEY}")])
            .args(["--checks", "all"])
            // One-way: a drained host refuses all work from then on (the
            // drain itself is tested in lifecycle.rs).
            .args(["--exclude-operation-id", "drainHost"])
            .args([
                "--max-time",
                "45",
                "--seed",
                "20261203",
                "--request-timeout",
                "10",
            ])
            .args(["--workers", "1"])
            .env("NO_COLOR", "1")
            .current_dir(cwd)
            .output()
            .expect("schemathesis runs")
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It reached (nearly) every operation but drain: 26 are selected, and
    // it tested 24 of them in the runs measured.
    let selected = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no `Tested:` line in\n{report}"));
    assert!(
        selected >= 22,
        "only {selected} operations tested:\n{report}"
    );
    // The figures, for the CI log.
    for line in report
        .lines()
        .filter(|l| l.contains("generated") || l.contains("Tested:"))
    {
        eprintln!("schemathesis: {}", line.trim());
    }
}
