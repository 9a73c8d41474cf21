//! The SCF-compatible action API (`POST /`, TC3-HMAC-SHA256) driven by the
//! official Tencent Cloud Python SDK, unmodified: tests/scf-sdk/drive.py runs
//! the scenario against a real host and prints what it saw; this file checks
//! it.
//!
//! Needs the SDK's venv: run `tests/scf-sdk/setup.sh`. Without it these
//! tests fail (they do not skip).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fnhost::{Host, HostOptions, ScfCredentials};
use fnhost_e2e::{init_logs, Api, TestApp, ADMIN_KEY};
use serde_json::{json, Value};

pub(super) const SECRET_ID: &str = "AKIDfnhostE2E";
pub(super) const SECRET_KEY: &str = "fnhost-e2e-secret-key";

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scf-sdk")
}

/// The venv's interpreter; panics with the fix when setup has not run.
fn venv_python() -> PathBuf {
    let python = sdk_dir().join(".venv/bin/python");
    let stamp = sdk_dir().join(".venv/.fnhost-requirements");
    assert!(
        python.is_file() && stamp.is_file(),
        "the Tencent Cloud SCF SDK venv is missing ({} or {}): run tests/scf-sdk/setup.sh",
        python.display(),
        stamp.display()
    );
    python
}

async fn start(app: &TestApp, scf: bool) -> Host {
    let opts = HostOptions {
        scf_credentials: scf.then(|| ScfCredentials {
            secret_id: SECRET_ID.into(),
            secret_key: SECRET_KEY.into(),
        }),
        ..HostOptions::loopback(app.config(), ADMIN_KEY)
    };
    let host = Host::start(opts).await.expect("host starts");
    assert!(
        host.handle().wait_ready(1, Duration::from_secs(20)).await,
        "the worker did not become ready"
    );
    host
}

/// Runs drive.py against `host`; its JSON output.
async fn drive(host: &Host) -> Value {
    drive_at(host.http_addr()).await
}

/// Runs drive.py against the host at `addr` (with the SCF credentials
/// above and the tests' admin key); what it saw.
pub(super) async fn drive_at(addr: SocketAddr) -> Value {
    let out = tokio::process::Command::new(venv_python())
        .arg(sdk_dir().join("drive.py"))
        .args(["--endpoint", &addr.to_string()])
        .args(["--secret-id", SECRET_ID, "--secret-key", SECRET_KEY])
        .args(["--admin-key", ADMIN_KEY])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("drive.py finishes within 120 s")
        .expect("drive.py runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "drive.py failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("drive.py printed no JSON ({e}):\n{stdout}\n{stderr}"))
}

#[track_caller]
fn error_code(v: &Value) -> &str {
    v["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an SDK error, got {v}"))
}

#[track_caller]
fn error_mentions(v: &Value, code: &str, text: &str) {
    assert_eq!(error_code(v), code, "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(text),
        "{code}: {message:?} should name {text:?}"
    );
}

fn ids(list: &Value) -> Vec<&str> {
    list["EventList"]
        .as_array()
        .unwrap_or_else(|| panic!("no EventList in {list}"))
        .iter()
        .map(|e| e["InvokeRequestId"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn the_official_python_sdk_drives_the_scf_api() {
    init_logs();
    let app = TestApp::sample(
        json!({"workers": {"cancelGracePeriod": "00:00:00.500"}, "asyncEvents": {"maxRetryAttempts": 0}}),
    );
    let host = start(&app, true).await;
    let o = drive(&host).await;

    // Invoke Event, then GetAsyncEventStatus.
    let event = o["event_id"].as_str().unwrap();
    assert_eq!(
        o["event_final"]["Result"],
        json!({"Status": "FINISHED", "StatusCode": 200, "InvokeRequestId": event})
    );
    assert!(o["event_final"]["RequestId"].is_string());

    // Invoke RequestResponse.
    let echo = &o["sync_echo"]["Result"];
    assert_eq!(echo["InvokeResult"], 0, "{echo}");
    assert_eq!(
        serde_json::from_str::<Value>(echo["RetMsg"].as_str().unwrap()).unwrap(),
        json!({"hello": "scf"})
    );
    assert_eq!(echo["ErrMsg"], "");
    assert!(echo["FunctionRequestId"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    assert!(
        echo["Duration"].as_f64().unwrap() > 0.0 && echo["BillDuration"].as_u64().unwrap() >= 1
    );
    let logged = &o["sync_default_type"]["Result"];
    assert_eq!(
        (logged["RetMsg"].as_str(), logged["InvokeResult"].as_i64()),
        (Some("logged"), Some(0))
    );
    assert!(
        logged["Log"]
            .as_str()
            .unwrap()
            .contains("info from log function"),
        "{logged}"
    );
    assert_eq!(o["sync_no_log"]["Result"]["Log"], "");
    let failed = &o["sync_fail"]["Result"];
    assert_eq!(
        (failed["InvokeResult"].as_i64(), failed["RetMsg"].as_str()),
        (Some(1), Some(""))
    );
    assert!(
        failed["ErrMsg"]
            .as_str()
            .unwrap()
            .contains("failure requested: \"boom\""),
        "{failed}"
    );

    // TerminateAsyncEvent: forced kills (439), graceful stops the handler (438).
    assert!(
        o["forced_terminate"]["RequestId"].is_string(),
        "{}",
        o["forced_terminate"]
    );
    assert_eq!(o["forced_final"]["Result"]["Status"], "ABORTED");
    assert_eq!(o["forced_final"]["Result"]["StatusCode"], 439);
    assert!(
        o["graceful_terminate"]["error"].is_null(),
        "{}",
        o["graceful_terminate"]
    );
    assert_eq!(o["graceful_final"]["Result"]["Status"], "ABORTED");
    assert_eq!(o["graceful_final"]["Result"]["StatusCode"], 438);
    error_mentions(
        &o["terminate_again"],
        "FailedOperation.AsyncEventStatus",
        "ABORTED",
    );
    error_mentions(
        &o["terminate_unknown"],
        "ResourceNotFound.AsyncEvent",
        "no-such-event",
    );
    assert_eq!(
        error_code(&o["terminate_other_function"]),
        "ResourceNotFound.AsyncEvent"
    );
    error_mentions(
        &o["status_unknown"],
        "ResourceNotFound.AsyncEvent",
        "no-such-event",
    );

    // ListAsyncEvents.
    assert_eq!(o["running_status"]["Result"]["Status"], "RUNNING");
    assert_eq!(
        o["running_status"]["Result"]["StatusCode"], 0,
        "not ended yet"
    );
    let sleeps: Vec<&str> = o["sleep_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let all = &o["list_sleep"];
    assert_eq!(all["TotalCount"], 2, "{all}");
    assert_eq!(ids(all), sleeps, "ascending by start time");
    let first = &all["EventList"][0];
    assert_eq!(
        (
            first["InvokeType"].as_str(),
            first["Qualifier"].as_str(),
            first["Status"].as_str()
        ),
        (Some("scf"), Some("$LATEST"), Some("ABORTED"))
    );
    for key in ["StartTime", "EndTime"] {
        let t = first[key].as_str().unwrap();
        assert!(
            t.len() == 23 && &t[4..5] == "-" && &t[10..11] == " " && &t[19..20] == ".",
            "{key} {t:?} is not \"YYYY-MM-DD HH:MM:SS.fff\""
        );
    }
    assert_eq!(ids(&o["list_sleep_by_end_desc"]), [sleeps[1]]);
    assert_eq!(o["list_sleep_by_end_desc"]["TotalCount"], 2);
    assert_eq!(ids(&o["list_log_finished"]), [event]);
    assert_eq!(o["list_log_running"]["TotalCount"], 0);
    assert_eq!(
        ids(&o["list_running"]),
        [sleeps[1]],
        "only the one running then"
    );
    assert_eq!(ids(&o["list_by_id"]), [sleeps[1]]);
    assert_eq!(
        (o["list_page"]["TotalCount"].as_u64(), ids(&o["list_page"])),
        (Some(2), vec![sleeps[1]])
    );
    assert_eq!(o["list_future"]["TotalCount"], 0);
    assert_eq!(o["list_past_end"]["TotalCount"], 0);
    error_mentions(&o["list_bad_limit"], "InvalidParameterValue.Limit", "Limit");
    error_mentions(
        &o["list_bad_status"],
        "InvalidParameterValue.Status",
        "QUEUED",
    );
    error_mentions(
        &o["list_bad_time"],
        "InvalidParameterValue.StartTimeInterval",
        "yesterday",
    );
    error_mentions(&o["list_bad_order"], "InvalidParameterValue.Order", "UP");
    error_mentions(&o["list_no_function"], "MissingParameter", "FunctionName");

    // Errors.
    error_mentions(
        &o["invoke_unknown_function"],
        "ResourceNotFound.Function",
        "nope",
    );
    error_mentions(
        &o["invoke_other_namespace"],
        "ResourceNotFound.Namespace",
        "prod",
    );
    error_mentions(
        &o["invoke_other_qualifier"],
        "ResourceNotFound.Qualifier",
        "2",
    );
    error_mentions(
        &o["invoke_bad_type"],
        "InvalidParameterValue.InvocationType",
        "DryRun",
    );
    error_mentions(
        &o["invoke_bad_context"],
        "InvalidParameterValue.ClientContext",
        "JSON",
    );
    error_mentions(&o["unknown_action"], "InvalidAction", "DeleteFunction");
    error_mentions(
        &o["wrong_secret_key"],
        "AuthFailure.SignatureFailure",
        "signature",
    );
    error_mentions(
        &o["wrong_secret_id"],
        "AuthFailure.SecretIdNotFound",
        "AKIDnobody",
    );
    assert!(o["wrong_secret_key"]["error"]["requestId"].is_string());
    host.shutdown().await;
}

#[tokio::test]
async fn without_credentials_the_api_answers_with_an_scf_error() {
    init_logs();
    let app = TestApp::sample(json!({}));
    let host = start(&app, false).await;
    let api = Api::new(host.http_addr());
    let headers = [
        ("content-type", "application/json"),
        ("x-tc-action", "Invoke"),
        ("x-tc-version", "2018-04-16"),
    ];
    let r = api
        .request_with("POST", "/", r#"{"FunctionName": "echo"}"#, &headers)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), "application/json");
    let body = r.json();
    let error = &body["Response"]["Error"];
    assert!(
        error["Code"].as_str().unwrap().starts_with("AuthFailure."),
        "{body}"
    );
    assert!(
        error["Message"]
            .as_str()
            .unwrap()
            .contains("--scf-secret-id"),
        "{body}"
    );
    assert!(body["Response"]["RequestId"].is_string());

    // The trigger and admin routes are unaffected.
    assert_eq!(api.invoke("echo", "x").await.unwrap().status, 200);
    host.shutdown().await;
}

#[tokio::test]
async fn unsigned_and_stale_requests_are_refused() {
    init_logs();
    let app = TestApp::sample(json!({}));
    let host = start(&app, true).await;
    let api = Api::new(host.http_addr());
    let send = |headers: Vec<(&'static str, String)>| {
        let api = api.clone();
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = api.request_with("POST", "/", "{}", &h).await.unwrap();
            assert_eq!(r.status, 200);
            r.json()["Response"]["Error"].clone()
        }
    };
    let e = send(vec![("x-tc-action", "Invoke".into())]).await;
    assert_eq!(e["Code"], "AuthFailure.InvalidAuthorization", "{e}");
    assert!(e["Message"].as_str().unwrap().contains("Authorization"));
    let stale = "1000000000".to_string();
    let auth = format!(
        "TC3-HMAC-SHA256 Credential={SECRET_ID}/2001-09-09/scf/tc3_request, \
         SignedHeaders=content-type;host, Signature=00"
    );
    let e = send(vec![
        ("x-tc-action", "Invoke".into()),
        ("x-tc-timestamp", stale),
        ("content-type", "application/json".into()),
        ("authorization", auth),
    ])
    .await;
    assert_eq!(e["Code"], "AuthFailure.SignatureExpire", "{e}");
    host.shutdown().await;
}

/// The headers of a request signed as the official SDKs sign it: only
/// `content-type;host` are signed, so `X-TC-Action` is not covered.
fn sdk_signed(addr: SocketAddr, action: &str, body: &str, ts: i64) -> Vec<(&'static str, String)> {
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::{Digest, Sha256};
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mac = |key: &[u8], msg: &str| {
        let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
        m.update(msg.as_bytes());
        m.finalize().into_bytes().to_vec()
    };
    let host = addr.to_string();
    let date = fnhost::events::time::scf(ts * 1000)[..10].to_string();
    let canonical = format!(
        "POST\n/\n\ncontent-type:application/json\nhost:{host}\n\ncontent-type;host\n{}",
        hex(&Sha256::digest(body.as_bytes()))
    );
    let string_to_sign = format!(
        "TC3-HMAC-SHA256\n{ts}\n{date}/scf/tc3_request\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let key = mac(format!("TC3{SECRET_KEY}").as_bytes(), &date);
    let key = mac(&mac(&key, "scf"), "tc3_request");
    let signature = hex(&mac(&key, &string_to_sign));
    vec![
        ("content-type", "application/json".into()),
        ("host", host),
        ("x-tc-action", action.into()),
        ("x-tc-version", "2018-04-16".into()),
        ("x-tc-timestamp", ts.to_string()),
        (
            "authorization",
            format!(
                "TC3-HMAC-SHA256 Credential={SECRET_ID}/{date}/scf/tc3_request, \
                 SignedHeaders=content-type;host, Signature={signature}"
            ),
        ),
    ]
}

/// `headers` with `name` set to `value`.
fn with(
    headers: &[(&'static str, String)],
    name: &str,
    value: String,
) -> Vec<(&'static str, String)> {
    headers
        .iter()
        .map(|(k, v)| (*k, if *k == name { value.clone() } else { v.clone() }))
        .collect()
}

#[tokio::test]
async fn a_signature_replayed_with_another_action_is_refused() {
    init_logs();
    let app = TestApp::sample(json!({
        "workers": {"cancelGracePeriod": "00:00:00.500"},
        "asyncEvents": {"maxRetryAttempts": 0}
    }));
    let host = start(&app, true).await;
    let api = Api::new(host.http_addr());
    let r = api
        .request(
            "POST",
            "/admin/functions/sleep/invoke-async",
            "60000",
            Some(ADMIN_KEY),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["requestId"].as_str().unwrap().to_string();
    let event = format!("/admin/async-events/{id}");
    let status = || async { api.admin_get(&event).await.unwrap().json()["status"].clone() };
    fnhost_e2e::wait_until("the event running", Duration::from_secs(10), || async {
        status().await == "RUNNING"
    })
    .await;
    let send = |headers: Vec<(&'static str, String)>, body: String| {
        let api = api.clone();
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = api.request_with("POST", "/", body, &h).await.unwrap();
            assert_eq!(r.status, 200);
            r.json()["Response"].clone()
        }
    };

    // A body that is a valid request for both actions: ListAsyncEvents
    // filtered by id, and TerminateAsyncEvent of that event.
    let body = json!({"FunctionName": "sleep", "InvokeRequestId": id}).to_string();
    let now = fnhost::events::time::now_ms() / 1000;
    let list = sdk_signed(host.http_addr(), "ListAsyncEvents", &body, now);
    let listed = send(list.clone(), body.clone()).await;
    assert_eq!(ids(&listed), [id.as_str()], "{listed}");
    // An identical resend, as a client polling within the second sends it.
    let again = send(list.clone(), body.clone()).await;
    assert_eq!(ids(&again), [id.as_str()], "{again}");

    let retargeted = with(&list, "x-tc-action", "TerminateAsyncEvent".into());
    let refused = send(retargeted.clone(), body.clone()).await;
    assert_eq!(
        refused["Error"]["Code"], "AuthFailure.SignatureFailure",
        "{refused}"
    );
    assert!(
        refused["Error"]["Message"]
            .as_str()
            .unwrap()
            .contains("ListAsyncEvents"),
        "{refused}"
    );
    // The same signature with its hex upper-cased is the same signature.
    let auth = &list.iter().find(|(k, _)| *k == "authorization").unwrap().1;
    let (head, sig) = auth.rsplit_once("Signature=").unwrap();
    let upper = with(
        &retargeted,
        "authorization",
        format!("{head}Signature={}", sig.to_ascii_uppercase()),
    );
    let refused = send(upper, body.clone()).await;
    assert_eq!(
        refused["Error"]["Code"], "AuthFailure.SignatureFailure",
        "{refused}"
    );
    assert_eq!(status().await, "RUNNING", "the event was not aborted");
    // The original action is still accepted for that signature.
    assert_eq!(ids(&send(list, body.clone()).await), [id.as_str()]);

    // A TerminateAsyncEvent signed for itself (another second, so another
    // signature) with the same body does abort the event: the refusals above
    // are what kept it running.
    let terminate = sdk_signed(host.http_addr(), "TerminateAsyncEvent", &body, now - 1);
    let done = send(terminate, body.clone()).await;
    assert!(done["Error"].is_null(), "{done}");
    fnhost_e2e::wait_until("the event aborted", Duration::from_secs(10), || async {
        status().await == "ABORTED"
    })
    .await;
    host.shutdown().await;
}
