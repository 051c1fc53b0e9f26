//! Writers of a run's results (`summary.json`, `timeseries.csv`, `latency.csv`,
//! `incidents.csv`, the terminal table) and, in submodules, what is made from them afterwards:
//! plots ([`plots`]), the Markdown/HTML report ([`markdown`]), reading a results directory
//! back ([`data`]) and the baseline comparison of the CI gate ([`compare`]).
//!
//! Output is deterministic: maps are ordered, floats are rounded in the metrics layer, and
//! nothing time- or machine-dependent is written, so the same scenario and seed give the same
//! bytes. It must not know the engine loop: it reads a finished [`RunResult`].

pub mod compare;
pub mod data;
mod glyphs;
pub mod markdown;
pub mod plots;

use crate::metrics::StrategySummary;
use crate::run::RunResult;
use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

/// The content of `summary.json`.
#[derive(Debug, Serialize)]
pub struct RunSummary {
    /// Scenario name.
    pub scenario: String,
    /// Seed of every random draw.
    pub seed: u64,
    /// Trace replayed.
    pub trace: String,
    /// One entry per strategy, in scenario order.
    pub strategies: Vec<StrategySummary>,
}

impl RunSummary {
    pub fn of(result: &RunResult) -> RunSummary {
        RunSummary {
            scenario: result.scenario.clone(),
            seed: result.seed,
            trace: result.trace_path.display().to_string().replace('\\', "/"),
            strategies: result
                .strategies
                .iter()
                .map(|s| s.summary(&result.classes, &result.deployment_names))
                .collect(),
        }
    }

    pub fn to_json(&self) -> String {
        let mut text =
            serde_json::to_string_pretty(self).expect("summary serialises (no maps with non-string keys)");
        text.push('\n');
        text
    }
}

/// Writes `summary.json`, `timeseries.csv` and `latency.csv` into `dir` (created if missing).
pub fn write_outputs(result: &RunResult, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("summary.json"), RunSummary::of(result).to_json())?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("timeseries.csv"))?);
    write_timeseries(result, &mut out)?;
    out.flush()?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("latency.csv"))?);
    write_latency(result, &mut out)?;
    out.flush()
}

/// The quantile grid of `latency.csv`: every percent, plus finer steps in both tails so a CDF
/// on a log axis shows its head and its tail (p99.9 is where retries and backoff live).
pub fn latency_quantile_grid() -> Vec<f64> {
    let mut grid = vec![0.0, 0.001, 0.005];
    grid.extend((1..100).map(|p| f64::from(p) / 100.0));
    grid.extend([0.995, 0.999, 1.0]);
    grid
}

/// TTFT quantiles from the HDR histograms (values within 0.1%), per strategy and class (plus
/// `all`), on [`latency_quantile_grid`]: `strategy,class,quantile,ttft_ms`. Classes with no
/// successful request (e.g. all batched) have no rows.
pub fn write_latency<W: Write>(result: &RunResult, out: &mut W) -> std::io::Result<()> {
    let grid = latency_quantile_grid();
    writeln!(out, "strategy,class,quantile,ttft_ms")?;
    for s in &result.strategies {
        let mut sets: Vec<(&str, &crate::metrics::Latency)> = vec![("all", &s.total.ttft)];
        for (id, name) in result.classes.iter() {
            if let Some(m) = s.by_class.get(usize::from(id.0)) {
                sets.push((name, &m.ttft));
            }
        }
        for (class, latency) in sets {
            for (q, ms) in grid.iter().zip(latency.quantiles_ms(&grid)) {
                writeln!(out, "{},{},{q},{ms}", csv_field(&s.name), csv_field(class))?;
            }
        }
    }
    Ok(())
}

/// Writes `incidents.csv` (`deployment,start_s,end_s`): the incident windows of every
/// deployment (scheduled and drawn from its incident process with the run's seed) that start
/// before the run's last event; the 429 plot shades them.
pub fn write_incidents(
    result: &RunResult,
    deployments: &[crate::provider::Deployment],
    dir: &Path,
) -> std::io::Result<()> {
    let until = result.strategies.iter().map(|s| s.last_event_at).max().unwrap_or_default();
    let mut text = String::from("deployment,start_s,end_s\n");
    for (name, deployment) in result.deployment_names.iter().zip(deployments) {
        for (start, end) in crate::provider::incident_windows(deployment, result.seed, until) {
            let _ = writeln!(
                text,
                "{},{},{}",
                csv_field(name),
                start.as_millis_f64() / 1000.0,
                end.as_millis_f64() / 1000.0
            );
        }
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("incidents.csv"), text)
}

/// Per minute, per strategy and deployment: attempts, 429s, successes, tokens. Attempts, 429s
/// and input tokens count in the minute the attempt started; successes and output tokens in
/// the minute it ended.
pub fn write_timeseries<W: Write>(result: &RunResult, out: &mut W) -> std::io::Result<()> {
    writeln!(out, "strategy,minute,deployment,attempts,attempts_429,successes,input_tokens,output_tokens")?;
    for s in &result.strategies {
        for (minute, deployment, c) in s.minute_rows() {
            writeln!(
                out,
                "{},{},{},{},{},{},{},{}",
                csv_field(&s.name),
                minute,
                csv_field(&result.deployment_names[deployment]),
                c.attempts,
                c.attempts_429,
                c.successes,
                c.input_tokens,
                c.output_tokens
            )?;
        }
    }
    Ok(())
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn seconds(ms: f64) -> String {
    if ms == 0.0 {
        "-".into()
    } else if ms < 10_000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else {
        format!("{:.1}s", ms / 1000.0)
    }
}

fn percent(rate: f64) -> String {
    format!("{:.2}%", rate * 100.0)
}

/// The side-by-side table printed by `sim run`.
pub fn format_table(summary: &RunSummary) -> String {
    let mut rows: Vec<Vec<String>> = vec![[
        "strategy", "requests", "ok", "429 att", "429 req", "failed", "batched", "TTFT p50", "p95", "p99",
        "e2e p95", "cost $", "$/1k req", "att/req",
    ]
    .map(String::from)
    .to_vec()];
    for s in &summary.strategies {
        let o = &s.outcome;
        rows.push(vec![
            s.name.clone(),
            o.requests.to_string(),
            o.succeeded.to_string(),
            percent(o.attempt_429_rate),
            percent(o.request_429_rate),
            o.failed.to_string(),
            o.batched.to_string(),
            seconds(o.ttft_ms.p50),
            seconds(o.ttft_ms.p95),
            seconds(o.ttft_ms.p99),
            seconds(o.e2e_ms.p95),
            format!("{:.2}", o.cost_usd),
            format!("{:.3}", o.cost_per_1k_requests_usd),
            format!("{:.2}", o.attempts_per_request),
        ]);
    }
    let mut text = align(&rows);

    let classes: Vec<String> = {
        let mut all: Vec<String> =
            summary.strategies.iter().flat_map(|s| s.by_class.keys().cloned()).collect();
        all.sort();
        all.dedup();
        all
    };
    text.push_str("\nTTFT p50 / p95 by class, from arrival (batched requests: time to result)\n");
    let mut class_rows =
        vec![std::iter::once("strategy".to_string()).chain(classes.iter().cloned()).collect::<Vec<_>>()];
    for s in &summary.strategies {
        let mut row = vec![s.name.clone()];
        for c in &classes {
            row.push(match s.by_class.get(c) {
                None => "-".into(),
                Some(o) if o.ttft_ms.count == 0 && o.batch_completion_ms.count > 0 => {
                    format!(
                        "batch {} / {}",
                        seconds(o.batch_completion_ms.p50),
                        seconds(o.batch_completion_ms.p95)
                    )
                }
                Some(o) => format!("{} / {}", seconds(o.ttft_ms.p50), seconds(o.ttft_ms.p95)),
            });
        }
        class_rows.push(row);
    }
    text.push_str(&align(&class_rows));

    text.push_str("\nload share (served attempts) by deployment\n");
    for s in &summary.strategies {
        let shares: Vec<String> = s
            .by_deployment
            .iter()
            .filter(|(_, d)| d.metrics.attempts > 0)
            .map(|(name, d)| format!("{name} {:.1}%", d.load_share * 100.0))
            .collect();
        let _ = writeln!(text, "  {:<24} {}", s.name, shares.join(", "));
    }
    text
}

/// Left-aligns the first column, right-aligns the others.
fn align(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for row in rows {
        for (c, cell) in row.iter().enumerate() {
            if c == 0 {
                let _ = write!(text, "{cell:<w$}", w = widths[c]);
            } else {
                let _ = write!(text, "  {cell:>w$}", w = widths[c]);
            }
        }
        text.push('\n');
    }
    text
}
