//! The web console (`/console`) in a real browser: a `fnhost start` on the
//! Rust sample app, and `node --test` in `tests/console`, which drives
//! Debian's Chromium with playwright-core against it (sign-in, a wrong
//! key, the overview, a running event filtered, opened and terminated
//! gracefully, a re-run, a synchronous invoke, the XSS check, phone width).
//!
//! Needs `/usr/bin/chromium` (`.ci/run` installs it) and the npm install
//! of `tests/console/setup.sh`; the test fails, never skips, without them.
//! Screenshots go to `tests/console/screenshots/`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fnhost_e2e::{binary, repo_root, start_host, wait_until, Api, TestApp, ADMIN_KEY};
use serde_json::json;

#[tokio::test]
async fn the_console_works_in_chromium_against_a_real_host() {
    let dir = repo_root().join("tests/console");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `bash tests/console/setup.sh`"
    );
    assert!(
        std::path::Path::new("/usr/bin/chromium").is_file(),
        "/usr/bin/chromium is missing: `apt-get install -y chromium` (as .ci/run does)"
    );
    let app = TestApp::sample(json!({
        "asyncEvents": {"maxRetryAttempts": 1, "retryBackoff": "00:00:00.050"},
        "workers": {"cancelGracePeriod": "00:00:02"}
    }));
    let mut cmd = Command::new(binary("fnhost"));
    cmd.env("FNHOST_ADMIN_KEY", ADMIN_KEY)
        .env("FNHOST_LOG", "warn");
    let (_host, addr, _) = start_host(cmd, app.dir(), &[], Stdio::inherit());
    let api = Api::new(addr);
    wait_until("a ready worker", Duration::from_secs(20), || async {
        api.status().await.is_ok_and(|s| s["state"] == "running")
    })
    .await;

    let started = Instant::now();
    let node = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .args([
                "--test",
                "--test-concurrency=1",
                "--test-reporter=spec",
                "test/",
            ])
            .current_dir(&dir)
            .env("FNHOST_CONSOLE_URL", format!("http://{addr}"))
            .env("FNHOST_CONSOLE_KEY", ADMIN_KEY)
            .status()
            .expect("node runs")
    })
    .await
    .unwrap();
    eprintln!("console browser tests took {:?}", started.elapsed());
    assert!(node.success(), "the console's browser tests failed: {node}");
}
