//! Scenario 17: what recording metrics costs on the library path. The
//! same closed loop of `HostHandle::invoke` runs with no metrics recorder
//! (every metric a no-op), then with the host's recorder installed; a
//! recorder cannot be removed once installed, so the runs without it come
//! first, in a process of their own (`--only metrics`).

use std::path::Path;

use anyhow::Result;
use fnhost_e2e::{text, TestApp, ADMIN_KEY};

use crate::harness::{closed_loop, host_json, Throughput, CALLERS, PAYLOAD};
use crate::report::Row;
use crate::Params;

/// Runs of each kind; the median counts.
const RUNS: usize = 3;

async fn library_loop(worker: &Path, p: &Params, metrics: bool) -> Result<Throughput> {
    let app = TestApp::new(worker, host_json(256));
    let opts = fnhost::HostOptions {
        metrics,
        ..fnhost::HostOptions::loopback(app.config(), ADMIN_KEY)
    };
    let host = fnhost::Host::start(opts).await?;
    anyhow::ensure!(
        host.handle()
            .wait_ready(1, std::time::Duration::from_secs(20))
            .await,
        "the worker did not become ready"
    );
    let handle = host.handle().clone();
    let result = closed_loop(CALLERS, p, move || {
        let h = handle.clone();
        async move { matches!(h.invoke("echo", text(PAYLOAD)).await, Ok(r) if r.is_success()) }
    })
    .await;
    host.shutdown().await;
    result
}

fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// Scenario 17.
pub async fn run(worker: &Path, p: &Params) -> Result<Vec<Row>> {
    let mut off = Vec::new();
    for _ in 0..RUNS {
        let t = library_loop(worker, p, false).await?;
        println!(
            "[17] metrics off: {:.0} inv/s ({} errors)",
            t.rate, t.errors
        );
        off.push(t.rate);
    }
    let mut on = Vec::new();
    for _ in 0..RUNS {
        let t = library_loop(worker, p, true).await?;
        println!("[17] metrics on: {:.0} inv/s ({} errors)", t.rate, t.errors);
        on.push(t.rate);
    }
    let (off, on) = (median(off), median(on));
    Ok(vec![Row {
        scenario: format!("17. HostHandle::invoke with metrics recorded (median of {RUNS})"),
        figure: format!("{on:.0} inv/s (without: {off:.0} inv/s)"),
        ratio: format!("{:.2}x", on / off),
        target: "within noise (≥ 0.95x)".into(),
        verdict: crate::report::verdict(on / off >= 0.95),
    }])
}
