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

use crate::metric::{DeploymentFigure, Figure, Latency, Metric, Stat};
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

/// A column of `sim run`'s table: its header, a figure of the whole strategy from the
/// catalogue, and how its value is shown (an undefined value is `-`).
type Column = (&'static str, Figure, fn(f64) -> String);

/// The columns after the strategy's name.
const TABLE_COLUMNS: [Column; 13] = {
    const fn ttft(stat: Stat) -> Figure {
        Figure::Latency(Latency::Ttft, stat)
    }
    [
        ("requests", Figure::Requests, count),
        ("ok", Figure::Succeeded, count),
        ("429 att", Figure::Attempt429Rate, percent),
        ("429 req", Figure::Request429Rate, percent),
        ("failed", Figure::Failed, count),
        ("batched", Figure::Batched, count),
        ("TTFT p50", ttft(Stat::P50), seconds),
        ("p95", ttft(Stat::P95), seconds),
        ("p99", ttft(Stat::P99), seconds),
        ("e2e p95", Figure::Latency(Latency::E2e, Stat::P95), seconds),
        ("cost $", Figure::CostUsd, |v| format!("{v:.2}")),
        ("$/1k req", Figure::CostPer1kRequestsUsd, |v| format!("{v:.3}")),
        ("att/req", Figure::AttemptsPerRequest, |v| format!("{v:.2}")),
    ]
};

fn count(n: f64) -> String {
    format!("{n:.0}")
}

/// The side-by-side table printed by `sim run`. Every figure is read through the metric
/// catalogue ([`crate::metric`]).
pub fn format_table(summary: &RunSummary) -> String {
    let dash = |v: Option<f64>, show: fn(f64) -> String| v.map_or_else(|| "-".to_string(), show);
    let mut header = vec!["strategy".to_string()];
    header.extend(TABLE_COLUMNS.iter().map(|(label, ..)| label.to_string()));
    let mut rows: Vec<Vec<String>> = vec![header];
    for s in &summary.strategies {
        let mut row = vec![s.name.clone()];
        row.extend(
            TABLE_COLUMNS.iter().map(|&(_, figure, show)| dash(Metric::overall(figure).value(s), show)),
        );
        rows.push(row);
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
            let of =
                |latency: Latency, stat: Stat| Metric::of_class(c, Figure::Latency(latency, stat)).value(s);
            let pair = |latency: Latency| {
                format!(
                    "{} / {}",
                    dash(of(latency, Stat::P50), seconds),
                    dash(of(latency, Stat::P95), seconds)
                )
            };
            row.push(if !s.by_class.contains_key(c) {
                "-".into()
            } else if of(Latency::Ttft, Stat::P50).is_none()
                && of(Latency::BatchCompletion, Stat::P50).is_some()
            {
                format!("batch {}", pair(Latency::BatchCompletion))
            } else {
                pair(Latency::Ttft)
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
            .filter(|(_, d)| DeploymentFigure::Attempts.value(d) > 0.0)
            .map(|(name, d)| format!("{name} {:.1}%", DeploymentFigure::LoadShare.value(d) * 100.0))
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
