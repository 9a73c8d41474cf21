//! Runs fuzz targets for long with the in-house engine:
//! `fnhost-fuzz <target>|all [--seconds N] [--iterations N] [--seed N]`.
//! Failing inputs are written under `target/fuzz-crashes/<target>/`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use fnhost_fuzz::engine::{fuzz, Budget};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(which) = args.first() else {
        let names: Vec<&str> = fnhost_fuzz::TARGETS.iter().map(|t| t.name).collect();
        eprintln!(
            "usage: fnhost-fuzz <target>|all [--seconds N] [--iterations N] [--seed N]\ntargets: {}",
            names.join(", ")
        );
        return ExitCode::from(2);
    };
    let flag = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{name} takes a number"))
            })
            .unwrap_or(default)
    };
    let budget = Budget {
        iterations: flag("--iterations", u64::MAX),
        time: Duration::from_secs(flag("--seconds", 60)),
        seed: flag("--seed", 0x5eed),
        crash_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz-crashes"),
        progress: Some(Duration::from_secs(30)),
    };
    let targets: Vec<_> = match which.as_str() {
        "all" => fnhost_fuzz::TARGETS.to_vec(),
        name => match fnhost_fuzz::target(name) {
            Some(t) => vec![t],
            None => {
                eprintln!("no target {name}");
                return ExitCode::from(2);
            }
        },
    };
    let mut failed = false;
    for t in targets {
        match fuzz(t, &fnhost_fuzz::corpus_dir(), &budget) {
            Ok(report) => println!("{report}"),
            Err(crash) => {
                eprintln!("{crash}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
