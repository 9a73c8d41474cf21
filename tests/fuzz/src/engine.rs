//! A small mutational fuzzer that runs inside `cargo test` on stable Rust:
//! no coverage instrumentation, so it is guided by what the target reports
//! instead (each distinct outcome label keeps the input that first produced
//! it in the pool of inputs to mutate). Inputs are bytes; structured targets
//! read them as text (scripts, JSON, query strings) so that the seed corpora
//! stay readable and dictionary tokens make useful mutations.
//!
//! A run first replays every file of `corpus/<target>/` and
//! `corpus/<target>/regressions/`, then mutates for a fixed number of
//! iterations (deterministic for a seed) or until its time is up. The first
//! panic stops the run: the input is shrunk, written out, and reported.

use std::cell::Cell;
use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

/// A fuzz target: a name, tokens worth inserting, and the function that
/// runs one input, asserts its invariants (by panicking) and labels what
/// happened.
pub struct Target {
    pub name: &'static str,
    pub dictionary: &'static [&'static str],
    /// Inputs longer than this are cut.
    pub max_len: usize,
    pub run: fn(&[u8]) -> String,
}

/// How long a run goes on, and where it writes what fails.
#[derive(Debug, Clone)]
pub struct Budget {
    pub iterations: u64,
    pub time: Duration,
    pub seed: u64,
    /// Failing inputs are written here, under the target's name.
    pub crash_dir: PathBuf,
    /// Print progress every this often (long runs).
    pub progress: Option<Duration>,
}

/// What a run did.
#[derive(Debug)]
pub struct Report {
    pub target: &'static str,
    pub execs: u64,
    pub elapsed: Duration,
    /// Distinct outcome labels seen: this engine's stand-in for coverage.
    pub outcomes: usize,
    pub pool: usize,
    pub seeds: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        write!(
            f,
            "fuzz {}: {} execs in {secs:.1} s ({:.0}/s), {} seeds, {} distinct outcomes, pool {}",
            self.target,
            self.execs,
            self.execs as f64 / secs.max(1e-9),
            self.seeds,
            self.outcomes,
            self.pool
        )
    }
}

/// A failing input.
#[derive(Debug)]
pub struct Crash {
    pub message: String,
    pub input: Vec<u8>,
    pub saved: Option<PathBuf>,
}

impl std::fmt::Display for Crash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.message)?;
        writeln!(
            f,
            "input ({} bytes): {}",
            self.input.len(),
            escape(&self.input)
        )?;
        if let Some(p) = &self.saved {
            write!(
                f,
                "saved as {}; copy it into corpus/<target>/regressions/ to keep it as a regression test",
                p.display()
            )?;
        }
        Ok(())
    }
}

/// splitmix64: small, fast, and good enough to pick mutations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// In `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Numbers that break parsers: limits, their neighbours, overflows.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "64",
    "65",
    "100",
    "101",
    "255",
    "65536",
    "2147483647",
    "2147483648",
    "-2147483649",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999",
    "1e308",
    "1e309",
    "-0",
    "0.5",
    "00",
];

const BYTES: &[u8] = b"\0\x7f\xff\"'{}[],:/\\%.?*()-+=&;\n\r\t 0123456789aAzZ\xc3\xa9";

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Panics are expected while shrinking: say nothing of them then, on this
/// thread only (other tests run beside it).
fn install_quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                default(info);
            }
        }));
    });
}

fn run_one(target: &Target, input: &[u8]) -> Result<String, String> {
    panic::catch_unwind(AssertUnwindSafe(|| (target.run)(input))).map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without a message".into())
    })
}

/// The corpus files of `target`: seeds, then regressions (crashes found
/// before), in name order.
pub fn corpus(dir: &Path, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in [dir.join(target), dir.join(target).join("regressions")] {
        let Ok(entries) = std::fs::read_dir(&sub) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for f in files {
            if let Ok(bytes) = std::fs::read(&f) {
                out.push((f, bytes));
            }
        }
    }
    out
}

/// Runs `target` within `budget`, starting from the files in `corpus_dir`.
pub fn fuzz(target: &Target, corpus_dir: &Path, budget: &Budget) -> Result<Report, Crash> {
    install_quiet_hook();
    let started = Instant::now();
    let seeds = corpus(corpus_dir, target.name);
    let mut outcomes = HashSet::new();
    let mut pool: Vec<Vec<u8>> = Vec::new();
    let mut execs = 0u64;
    for (path, input) in &seeds {
        execs += 1;
        match run_one(target, input) {
            Ok(label) => {
                outcomes.insert(label);
            }
            Err(message) => {
                return Err(Crash {
                    message: format!("corpus file {} fails: {message}", path.display()),
                    input: input.clone(),
                    saved: None,
                })
            }
        }
        pool.push(input.clone());
    }
    if pool.is_empty() {
        pool.push(Vec::new());
    }
    let mut rng = Rng::new(budget.seed);
    let mut last_progress = Instant::now();
    for _ in 0..budget.iterations {
        if started.elapsed() >= budget.time {
            break;
        }
        let mut input = pool[rng.below(pool.len())].clone();
        let other = &pool[rng.below(pool.len())];
        for _ in 0..=rng.below(4) {
            mutate(&mut input, other, target.dictionary, &mut rng);
        }
        input.truncate(target.max_len);
        execs += 1;
        match run_one(target, &input) {
            Ok(label) => {
                if pool.len() < 4096 && outcomes.insert(label) {
                    pool.push(input);
                }
            }
            Err(message) => {
                let input = shrink(target, input, &message);
                let saved = save(&budget.crash_dir, target.name, &input);
                return Err(Crash {
                    message: format!("{} panicked: {message}", target.name),
                    input,
                    saved,
                });
            }
        }
        if let Some(every) = budget.progress {
            if last_progress.elapsed() >= every {
                last_progress = Instant::now();
                let report = Report {
                    target: target.name,
                    execs,
                    elapsed: started.elapsed(),
                    outcomes: outcomes.len(),
                    pool: pool.len(),
                    seeds: seeds.len(),
                };
                println!("{report}");
            }
        }
    }
    Ok(Report {
        target: target.name,
        execs,
        elapsed: started.elapsed(),
        outcomes: outcomes.len(),
        pool: pool.len(),
        seeds: seeds.len(),
    })
}

fn mutate(input: &mut Vec<u8>, other: &[u8], dictionary: &[&str], rng: &mut Rng) {
    let len = input.len();
    let at = |rng: &mut Rng| rng.below(len + 1);
    let span = |rng: &mut Rng, from: usize| {
        let max = (len - from).min(if rng.chance(4) { 64 } else { 8 });
        rng.below(max + 1)
    };
    let token = |rng: &mut Rng| -> Vec<u8> {
        match rng.below(3) {
            0 if !dictionary.is_empty() => dictionary[rng.below(dictionary.len())].into(),
            1 => NUMBERS[rng.below(NUMBERS.len())].into(),
            _ => vec![BYTES[rng.below(BYTES.len())]],
        }
    };
    match rng.below(10) {
        0 if len > 0 => {
            let i = rng.below(len);
            input[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            input[i] = BYTES[rng.below(BYTES.len())];
        }
        2 | 3 => {
            let i = at(rng);
            let t = token(rng);
            input.splice(i..i, t);
        }
        4 => {
            let i = at(rng);
            let n = span(rng, i);
            let t = token(rng);
            input.splice(i..i + n, t);
        }
        5 => {
            let i = at(rng);
            let n = span(rng, i);
            input.drain(i..i + n);
        }
        6 => {
            let i = at(rng);
            let n = span(rng, i);
            let copy = input[i..i + n].to_vec();
            let j = rng.below(input.len() + 1);
            input.splice(j..j, copy);
        }
        7 if !other.is_empty() => {
            // Splice a piece of another pool entry in.
            let from = rng.below(other.len());
            let n = rng.below((other.len() - from).min(64) + 1);
            let i = at(rng);
            input.splice(i..i, other[from..from + n].iter().copied());
        }
        8 => {
            // A run of digits becomes an interesting number.
            let digits: Vec<usize> = (0..len).filter(|&i| input[i].is_ascii_digit()).collect();
            if let Some(&start) = digits.get(rng.below(digits.len().max(1))) {
                let end = (start..len)
                    .find(|&i| !input[i].is_ascii_digit())
                    .unwrap_or(len);
                let n = NUMBERS[rng.below(NUMBERS.len())];
                input.splice(start..end, n.bytes());
            }
        }
        _ if len > 0 => {
            let i = rng.below(len);
            input[i] = if input[i].is_ascii_lowercase() {
                input[i].to_ascii_uppercase()
            } else {
                input[i].to_ascii_lowercase()
            };
        }
        _ => input.extend(token(rng)),
    }
}

/// Removes pieces of `input` while it still fails (bounded effort).
fn shrink(target: &Target, mut input: Vec<u8>, message: &str) -> Vec<u8> {
    let started = Instant::now();
    QUIET.with(|q| q.set(true));
    // Only a failure like the first counts: the same message head.
    let head: String = message.chars().take(40).collect();
    let mut chunk = input.len().div_ceil(2).max(1);
    while chunk > 0 && started.elapsed() < Duration::from_secs(10) {
        let mut i = 0;
        let mut removed = false;
        while i < input.len() && started.elapsed() < Duration::from_secs(10) {
            let end = (i + chunk).min(input.len());
            let mut candidate = input.clone();
            candidate.drain(i..end);
            match run_one(target, &candidate) {
                Err(m) if m.starts_with(&head) => {
                    input = candidate;
                    removed = true;
                }
                _ => i += chunk,
            }
        }
        if !removed {
            chunk /= 2;
        }
    }
    QUIET.with(|q| q.set(false));
    input
}

fn save(dir: &Path, target: &str, input: &[u8]) -> Option<PathBuf> {
    // FNV-1a names the file after its content.
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join(format!("crash-{hash:016x}"));
    std::fs::write(&path, input).ok()?;
    Some(path)
}

/// `input` as printable text, escapes for the rest.
pub fn escape(input: &[u8]) -> String {
    let shown: String = input
        .iter()
        .take(2000)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if input.len() > 2000 {
        format!("{shown}... ({} more bytes)", input.len() - 2000)
    } else {
        shown
    }
}

/// A coarse label for an error message: digits and quoted text removed,
/// so that one kind of error is one outcome whatever values it names.
pub fn label(prefix: &str, message: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 64);
    out.push_str(prefix);
    let mut quoted = false;
    for c in message.chars().take(200) {
        match c {
            '"' | '`' => quoted = !quoted,
            _ if quoted => {}
            '0'..='9' => {}
            c => out.push(c),
        }
    }
    out
}
