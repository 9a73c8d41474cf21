//! Each target, run briefly: its corpus and regressions replayed, then
//! mutated for a bounded time from a fixed seed. `FNHOST_FUZZ_SECONDS`,
//! `FNHOST_FUZZ_ITERATIONS` and `FNHOST_FUZZ_SEED` lengthen or vary a run.

use std::time::Duration;

use fnhost_fuzz::engine::{fuzz, Budget};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn run(name: &str) {
    let target = fnhost_fuzz::target(name).expect("a target");
    let budget = Budget {
        iterations: env_or("FNHOST_FUZZ_ITERATIONS", 100_000),
        time: Duration::from_secs(env_or("FNHOST_FUZZ_SECONDS", 8)),
        // The same seed every run, so that a failure in CI repeats.
        seed: env_or("FNHOST_FUZZ_SEED", 0x5eed),
        crash_dir: std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashes"),
        progress: None,
    };
    match fuzz(target, &fnhost_fuzz::corpus_dir(), &budget) {
        Ok(report) => {
            println!("{report}");
            assert!(report.seeds > 0, "{name} has no seed corpus");
        }
        Err(crash) => panic!("{crash}"),
    }
}

#[test]
fn dispatcher() {
    run("dispatcher");
}

#[test]
fn host_json() {
    run("host_json");
}

#[test]
fn function_json() {
    run("function_json");
}

#[test]
fn worker_config() {
    run("worker_config");
}

#[test]
fn routes() {
    run("routes");
}

#[test]
fn list_query() {
    run("list_query");
}

#[test]
fn tc3() {
    run("tc3");
}

#[test]
fn scf() {
    run("scf");
}

#[test]
fn every_target_has_a_test() {
    let names: Vec<&str> = fnhost_fuzz::TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        [
            "dispatcher",
            "host_json",
            "function_json",
            "worker_config",
            "routes",
            "list_query",
            "tc3",
            "scf"
        ]
    );
}
