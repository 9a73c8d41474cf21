//! The figures' shape: latency percentiles, one table row per scenario,
//! and the two ways a group's rows are printed (plain and Markdown).

use std::time::Duration;

/// One scenario's line in a table.
pub struct Row {
    pub scenario: String,
    pub figure: String,
    pub ratio: String,
    pub target: String,
    pub verdict: &'static str,
}

/// "met" or "MISSED".
pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

/// A duration in milliseconds with three decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Latency percentiles of a sample.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub n: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Stats {
    pub fn of(mut sample: Vec<Duration>) -> Self {
        sample.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * sample.len() as f64).ceil() as usize).clamp(1, sample.len());
            sample[rank - 1]
        };
        if sample.is_empty() {
            return Self::default();
        }
        Self {
            n: sample.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: at(1.0),
        }
    }

    /// `p50 … / p99 … / max …`, each in [`ms`].
    pub fn spread(&self) -> String {
        format!(
            "p50 {} / p99 {} / max {}",
            ms(self.p50),
            ms(self.p99),
            ms(self.max)
        )
    }
}

/// The rows as aligned columns.
pub fn print_plain(rows: &[Row]) {
    let w = |f: fn(&Row) -> usize| rows.iter().map(f).max().unwrap_or(0);
    let (ws, wf, wr, wt) = (
        w(|r| r.scenario.chars().count()),
        w(|r| r.figure.chars().count()),
        w(|r| r.ratio.len()).max(5),
        w(|r| r.target.len()),
    );
    println!(
        "{:<ws$}  {:<wf$}  {:>wr$}  {:<wt$}  result",
        "scenario", "figure", "ratio", "target"
    );
    for r in rows {
        // `{:<N$}` pads by chars, so the arrow in row 4 lines up too.
        println!(
            "{:<ws$}  {:<wf$}  {:>wr$}  {:<wt$}  {}",
            r.scenario, r.figure, r.ratio, r.target, r.verdict
        );
    }
}

/// The rows as a Markdown table whose ratio column is `ratio_header`.
pub fn print_markdown(rows: &[Row], ratio_header: &str) {
    println!("| Scenario | Figure | {ratio_header} | Target | Result |");
    println!("|---|---|---:|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.scenario, r.figure, r.ratio, r.target, r.verdict
        );
    }
}
