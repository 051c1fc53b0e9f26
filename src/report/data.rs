//! Reading a results directory back: `summary.json`, `timeseries.csv`, `latency.csv` and
//! `incidents.csv` of `sim run --out`, or `results.csv` of `sim sweep --out`.
//!
//! It owns the file formats as read (tolerantly: unknown fields and columns are ignored, so
//! later additions do not break old reports); metric names belong to [`crate::metric`]. It
//! must not know how anything is drawn or judged.

use crate::metric::Metric;
use crate::metrics::StrategySummary;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Why a results directory or file could not be used. Everything but [`ReportError::Draw`] and
/// [`ReportError::Write`] is bad input (exit code 2 at the CLI).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: cannot read: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}:{line}: field \"{field}\": {message}")]
    Field { path: String, line: u64, field: String, message: String },
    #[error(
        "{0}: neither summary.json (from `sim run --out`) nor results.csv (from `sim sweep --out`) found"
    )]
    NotAResultsDir(String),
    /// Two inputs that cannot be compared (different scenarios, missing strategies or points).
    #[error("{0}")]
    Mismatch(String),
    /// A `--threshold` or threshold-file entry that does not parse.
    #[error("{0}")]
    Threshold(String),
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("plot {plot}: {message}")]
    Draw { plot: String, message: String },
}

impl ReportError {
    /// Whether the error is the user's input (exit 2) rather than a failure to produce output.
    pub fn is_input_error(&self) -> bool {
        !matches!(self, ReportError::Draw { .. } | ReportError::Write { .. })
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

fn read_text(path: &Path) -> Result<String, ReportError> {
    std::fs::read_to_string(path).map_err(|source| ReportError::Read { path: display(path), source })
}

/// The content of a `summary.json`, typed: the same [`StrategySummary`] `sim run` wrote, so a
/// field of the wrong type is an error naming its line, and metrics are read through the
/// catalogue ([`Metric::value`]).
#[derive(Clone, Debug)]
pub struct Summary {
    pub path: PathBuf,
    pub scenario: String,
    pub seed: u64,
    pub trace: String,
    pub strategies: Vec<StrategySummary>,
}

/// `summary.json` as written by [`crate::report::RunSummary`].
#[derive(Deserialize)]
struct SummaryFile {
    scenario: String,
    seed: u64,
    #[serde(default)]
    trace: String,
    strategies: Vec<StrategySummary>,
}

impl Summary {
    pub fn load(path: &Path) -> Result<Summary, ReportError> {
        let text = read_text(path)?;
        Summary::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Summary, ReportError> {
        let file: SummaryFile = serde_json::from_str(text).map_err(|e| {
            let what = if e.is_syntax() || e.is_eof() { "not valid JSON" } else { "not a routesim summary" };
            // serde_json ends its message with "at line L column C": lead with the line instead.
            let message = e.to_string();
            let message = message.split(" at line ").next().unwrap_or(&message).to_string();
            ReportError::Field { path: display(path), line: e.line() as u64, field: what.into(), message }
        })?;
        for (i, s) in file.strategies.iter().enumerate() {
            if file.strategies[..i].iter().any(|x| x.name == s.name) {
                return Err(ReportError::Parse {
                    path: display(path),
                    message: format!("strategies[{i}].name: duplicate strategy \"{}\"", s.name),
                });
            }
        }
        Ok(Summary {
            path: path.to_path_buf(),
            scenario: file.scenario,
            seed: file.seed,
            trace: file.trace,
            strategies: file.strategies,
        })
    }

    pub fn strategy(&self, name: &str) -> Option<&StrategySummary> {
        self.strategies.iter().find(|s| s.name == name)
    }
}

/// A CSV file read whole, with its header (`results.csv`, `timeseries.csv`…).
#[derive(Clone, Debug)]
pub struct Table {
    pub path: PathBuf,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn load(path: &Path) -> Result<Table, ReportError> {
        let text = read_text(path)?;
        Table::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Table, ReportError> {
        let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(text.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| ReportError::Parse { path: display(path), message: format!("bad CSV header: {e}") })?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        let mut rows = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let record = record.map_err(|e| ReportError::Parse {
                path: display(path),
                message: format!("line {}: {e}", i + 2),
            })?;
            rows.push(record.iter().map(|f| f.trim().to_string()).collect());
        }
        Ok(Table { path: path.to_path_buf(), header, rows })
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// The column's index, or an error naming the file and the column.
    pub fn require(&self, name: &str) -> Result<usize, ReportError> {
        self.column(name).ok_or_else(|| ReportError::Parse {
            path: display(&self.path),
            message: format!("missing column \"{name}\""),
        })
    }

    /// Row `row`'s field `column` as a finite number; errors name file, line and field.
    pub fn number(&self, row: usize, column: usize) -> Result<f64, ReportError> {
        let text = &self.rows[row][column];
        match text.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(x),
            _ => Err(ReportError::Field {
                path: display(&self.path),
                line: row as u64 + 2,
                // Header names are echoed: control characters escaped, length elided.
                field: crate::trace::elide(&self.header[column]).trim_matches('"').to_string(),
                message: format!("expected a finite number, got {}", crate::trace::elide(text)),
            }),
        }
    }
}

/// One row of `timeseries.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct MinuteRow {
    pub strategy: String,
    pub minute: u64,
    pub deployment: String,
    pub attempts: f64,
    pub attempts_429: f64,
    pub successes: f64,
}

/// One point of a TTFT CDF from `latency.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyRow {
    pub strategy: String,
    pub class: String,
    pub quantile: f64,
    pub ttft_ms: f64,
}

/// One incident window from `incidents.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct Incident {
    pub deployment: String,
    pub start_s: f64,
    pub end_s: f64,
}

/// Everything `sim run --out` wrote. `latency.csv` and `incidents.csv` are optional (older
/// output directories lack them; the plots that need them are then skipped and say so).
#[derive(Clone, Debug)]
pub struct RunDir {
    pub summary: Summary,
    pub minutes: Vec<MinuteRow>,
    pub latency: Option<Vec<LatencyRow>>,
    pub incidents: Option<Vec<Incident>>,
}

impl RunDir {
    pub fn load(dir: &Path) -> Result<RunDir, ReportError> {
        let summary = Summary::load(&dir.join("summary.json"))?;
        let series = Table::load(&dir.join("timeseries.csv"))?;
        let [s, m, d, a, r, ok] =
            ["strategy", "minute", "deployment", "attempts", "attempts_429", "successes"]
                .map(|c| series.require(c));
        let (s, m, d, a, r, ok) = (s?, m?, d?, a?, r?, ok?);
        let mut minutes = Vec::with_capacity(series.rows.len());
        for i in 0..series.rows.len() {
            let minute = series.number(i, m)?;
            minutes.push(MinuteRow {
                strategy: series.rows[i][s].clone(),
                minute: minute.max(0.0) as u64,
                deployment: series.rows[i][d].clone(),
                attempts: series.number(i, a)?,
                attempts_429: series.number(i, r)?,
                successes: series.number(i, ok)?,
            });
        }
        let latency = optional_table(&dir.join("latency.csv"))?
            .map(|t| -> Result<Vec<LatencyRow>, ReportError> {
                let (s, c, q, v) = (
                    t.require("strategy")?,
                    t.require("class")?,
                    t.require("quantile")?,
                    t.require("ttft_ms")?,
                );
                (0..t.rows.len())
                    .map(|i| {
                        Ok(LatencyRow {
                            strategy: t.rows[i][s].clone(),
                            class: t.rows[i][c].clone(),
                            quantile: t.number(i, q)?,
                            ttft_ms: t.number(i, v)?,
                        })
                    })
                    .collect()
            })
            .transpose()?;
        let incidents = optional_table(&dir.join("incidents.csv"))?
            .map(|t| -> Result<Vec<Incident>, ReportError> {
                let (d, a, b) = (t.require("deployment")?, t.require("start_s")?, t.require("end_s")?);
                (0..t.rows.len())
                    .map(|i| {
                        Ok(Incident {
                            deployment: t.rows[i][d].clone(),
                            start_s: t.number(i, a)?,
                            end_s: t.number(i, b)?,
                        })
                    })
                    .collect()
            })
            .transpose()?;
        Ok(RunDir { summary, minutes, latency, incidents })
    }
}

fn optional_table(path: &Path) -> Result<Option<Table>, ReportError> {
    if path.exists() {
        Table::load(path).map(Some)
    } else {
        Ok(None)
    }
}

/// Suffixes of the per-metric statistics columns of a sweep's `results.csv`.
const STAT_SUFFIXES: [&str; 8] = ["_mean", "_ci95_lo", "_ci95_hi", "_sd", "_std", "_stderr", "_min", "_max"];
/// Columns that are neither parameters nor metrics.
const BOOKKEEPING: [&str; 5] = ["pareto", "replications", "seeds", "n", "runs"];

/// A sweep's `results.csv`: one row per (point, strategy). Assumed layout (read from the
/// header, tolerant of extra columns): metric `m` has `m_mean` and optionally `m_ci95_lo`,
/// `m_ci95_hi`; `strategy` names the strategy; every other column that is not a statistic or
/// bookkeeping (`pareto`, `replications`…) identifies the point (`point` and the swept
/// parameters).
#[derive(Clone, Debug)]
pub struct SweepResults {
    pub table: Table,
}

impl SweepResults {
    pub fn load(path: &Path) -> Result<SweepResults, ReportError> {
        SweepResults::from_table(Table::load(path)?)
    }

    pub fn load_text(text: &str, path: &Path) -> Result<SweepResults, ReportError> {
        SweepResults::from_table(Table::parse(text, path)?)
    }

    fn from_table(mut table: Table) -> Result<SweepResults, ReportError> {
        let path = table.path.clone();
        let path = path.as_path();
        // Metric columns are named by the catalogue's canonical spelling from here on
        // (`interactive_ttft_p95_ms_mean` in a hand-made file is `interactive.ttft_p95_ms`).
        for h in table.header.iter_mut() {
            if let Some(suffix) = STAT_SUFFIXES.iter().find(|s| h.ends_with(*s)) {
                if let Ok(metric) = Metric::parse(&h[..h.len() - suffix.len()]) {
                    *h = format!("{metric}{suffix}");
                }
            }
        }
        if !table.header.iter().any(|h| h.ends_with("_mean")) {
            return Err(ReportError::Parse {
                path: display(path),
                message: "no metric columns (named <metric>_mean)".into(),
            });
        }
        // Statistics must be numbers (an empty cell means "not computed", e.g. a CI of one seed).
        for (c, h) in table.header.iter().enumerate() {
            if STAT_SUFFIXES.iter().any(|s| h.ends_with(s)) {
                for r in 0..table.rows.len() {
                    if !table.rows[r][c].is_empty() {
                        table.number(r, c)?;
                    }
                }
            }
        }
        Ok(SweepResults { table })
    }

    /// Metric names, in header order (`cost_usd` for the column `cost_usd_mean`).
    pub fn metrics(&self) -> Vec<String> {
        self.table.header.iter().filter_map(|h| h.strip_suffix("_mean")).map(String::from).collect()
    }

    /// Columns that identify a row: everything but statistics and bookkeeping.
    pub fn key_columns(&self) -> Vec<usize> {
        (0..self.table.header.len())
            .filter(|&i| {
                let h = &self.table.header[i];
                !STAT_SUFFIXES.iter().any(|s| h.ends_with(s)) && !BOOKKEEPING.contains(&h.as_str())
            })
            .collect()
    }

    /// Swept parameters: key columns other than `strategy` and `point` whose values vary.
    pub fn parameters(&self) -> Vec<usize> {
        self.key_columns()
            .into_iter()
            .filter(|&i| !matches!(self.table.header[i].as_str(), "strategy" | "point"))
            .filter(|&i| {
                let first = self.table.rows.first().map(|r| &r[i]);
                self.table.rows.iter().any(|r| Some(&r[i]) != first)
            })
            .collect()
    }

    /// The row's identity, e.g. `point=3, strategy=fallback, rpm=4000`.
    pub fn row_key(&self, row: usize) -> String {
        self.key_columns()
            .iter()
            .map(|&i| format!("{}={}", self.table.header[i], self.table.rows[row][i]))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The mean of `metric` in `row` (`None` when the column is absent).
    pub fn mean(&self, row: usize, metric: &str) -> Result<Option<f64>, ReportError> {
        self.stat(row, metric, "_mean")
    }

    /// `metric` + `suffix` in `row`; `None` when the column is absent or the cell empty.
    pub fn stat(&self, row: usize, metric: &str, suffix: &str) -> Result<Option<f64>, ReportError> {
        match self.table.column(&format!("{metric}{suffix}")) {
            Some(c) if !self.table.rows[row][c].is_empty() => self.table.number(row, c).map(Some),
            _ => Ok(None),
        }
    }
}

/// What a results directory holds.
#[derive(Clone, Debug)]
pub enum ResultsDir {
    Run(Box<RunDir>),
    Sweep(SweepResults),
}

impl ResultsDir {
    /// A sweep directory is recognised by `results.csv`, a run directory by `summary.json`.
    pub fn load(dir: &Path) -> Result<ResultsDir, ReportError> {
        if dir.join("results.csv").exists() {
            SweepResults::load(&dir.join("results.csv")).map(ResultsDir::Sweep)
        } else if dir.join("summary.json").exists() {
            RunDir::load(dir).map(|r| ResultsDir::Run(Box::new(r)))
        } else {
            Err(ReportError::NotAResultsDir(display(dir)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_reads_back_typed_and_a_wrong_type_names_its_line() {
        let good = r#"{"scenario": "s", "seed": 1, "strategies": []}"#;
        assert_eq!(Summary::parse(good, Path::new("a.json")).unwrap().strategies.len(), 0);
        let bad = "{\"scenario\": \"s\",\n \"seed\": \"one\",\n \"strategies\": []}";
        let e = Summary::parse(bad, Path::new("a.json")).unwrap_err().to_string();
        assert!(
            e.starts_with("a.json:2: field \"not a routesim summary\": invalid type: string \"one\""),
            "{e}"
        );
        let e = Summary::parse("{", Path::new("a.json")).unwrap_err().to_string();
        assert!(e.starts_with("a.json:1: field \"not valid JSON\""), "{e}");
    }

    #[test]
    fn sweep_metric_columns_take_the_canonical_spelling() {
        let text = "point,strategy,interactive_ttft_p95_ms_mean,cost_mean,foo_mean,pareto\n0,a,5,4,3,true\n";
        let sweep = SweepResults::load_text(text, Path::new("results.csv")).unwrap();
        assert_eq!(sweep.metrics(), ["interactive.ttft_p95_ms", "cost_usd", "foo"]);
    }

    #[test]
    fn sweep_columns_split_into_parameters_keys_and_metrics() {
        let text = "point,strategy,rpm,burst,cost_usd_mean,cost_usd_ci95_lo,cost_usd_ci95_hi,pareto\n\
                    0,a,100,10s,5,4,6,true\n1,a,200,10s,7,6,8,false\n";
        let sweep = SweepResults { table: Table::parse(text, Path::new("results.csv")).unwrap() };
        assert_eq!(sweep.metrics(), vec!["cost_usd"]);
        let names =
            |cols: Vec<usize>| cols.into_iter().map(|i| sweep.table.header[i].clone()).collect::<Vec<_>>();
        assert_eq!(names(sweep.key_columns()), ["point", "strategy", "rpm", "burst"]);
        assert_eq!(names(sweep.parameters()), ["rpm"], "burst does not vary");
        assert_eq!(sweep.row_key(1), "point=1, strategy=a, rpm=200, burst=10s");
        assert_eq!(sweep.stat(1, "cost_usd", "_ci95_hi").unwrap(), Some(8.0));
    }

    #[test]
    fn bad_numbers_name_file_line_and_field() {
        let t = Table::parse("a,b\n1,x\n", Path::new("t.csv")).unwrap();
        let e = t.number(0, 1).unwrap_err().to_string();
        assert_eq!(e, "t.csv:2: field \"b\": expected a finite number, got \"x\"");
        assert!(t.number(0, 0).is_ok());
    }
}
