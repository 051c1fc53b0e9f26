//! What a sweep leaves on disk and how it becomes `results.csv`: the manifest
//! (`sweep.json`), one file per finished point (`points/NNNNNN.json`, written to a temporary
//! name and renamed, so a killed run never leaves half a point), the table of means and 95%
//! confidence intervals with Pareto flags, and the objective/constraint search over it.
//!
//! `results.csv` is always assembled from the point files, in point order, so its bytes do not
//! depend on thread count, completion order, interruption or sharding. It must not know how a
//! point is simulated.

use super::stats::{estimate, pareto_front, Estimate};
use super::SweepError;
use crate::metric::{self, Figure, Metric};
use crate::metrics::StrategySummary;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Metric names (canonical, as in the header) for a trace with these classes (sorted by name,
/// as in the summary): the catalogue's sweep columns.
pub fn metric_names(class_names: &[String]) -> Vec<String> {
    Metric::sweep_columns(class_names).iter().map(Metric::to_string).collect()
}

/// The values of `metrics` in one strategy's summary; NaN where undefined (see
/// [`Metric::value`]: a class with no requests, latency when nothing succeeded).
pub fn metric_values(summary: &StrategySummary, metrics: &[Metric]) -> Vec<f64> {
    metrics.iter().map(|m| m.value(summary).unwrap_or(f64::NAN)).collect()
}

/// The manifest's metric names as metrics; a name the catalogue does not know means the
/// manifest was written by another version or edited.
pub fn parse_metrics(manifest: &Manifest, dir: &Path) -> Result<Vec<Metric>, SweepError> {
    manifest
        .metrics
        .iter()
        .map(|name| {
            Metric::parse(name)
                .map_err(|e| SweepError::Input(format!("{}: {e}", Manifest::path(dir).display())))
        })
        .collect()
}

/// `sweep.json`: identifies the sweep a results directory belongs to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Digest of the sweep file, the scenario file and the trace.
    pub fingerprint: String,
    pub points: usize,
    pub replications: u32,
    pub axes: Vec<String>,
    pub metrics: Vec<String>,
}

impl Manifest {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("sweep.json")
    }

    pub fn read(dir: &Path) -> Result<Option<Manifest>, SweepError> {
        let path = Manifest::path(dir);
        match std::fs::read_to_string(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SweepError::io(&path, e)),
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| SweepError::Input(format!("{}: not a sweep manifest: {e}", path.display()))),
        }
    }

    /// Writes the manifest, or checks that the one already there is the same sweep.
    pub fn write_or_check(&self, dir: &Path) -> Result<(), SweepError> {
        match Manifest::read(dir)? {
            Some(existing) if existing == *self => Ok(()),
            Some(existing) => Err(SweepError::Input(format!(
                "{}: holds results of another sweep (fingerprint {} vs {}); use another --out or remove it",
                dir.display(),
                existing.fingerprint,
                self.fingerprint
            ))),
            None => {
                let text = serde_json::to_string_pretty(self).expect("manifest serialises");
                write_atomically(&Manifest::path(dir), (text + "\n").as_bytes())
            }
        }
    }
}

/// One (strategy, replication) run of a point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub strategy: String,
    pub replication: u32,
    pub seed: u64,
    /// Aligned with the manifest's `metrics`; `None` where undefined (JSON has no NaN).
    pub values: Vec<Option<f64>>,
}

/// `points/NNNNNN.json`: every run of one point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PointRecord {
    pub fingerprint: String,
    pub index: usize,
    /// `(axis, value)` in axis order.
    pub coordinates: Vec<(String, String)>,
    /// By strategy (scenario order), then replication.
    pub runs: Vec<RunRecord>,
    /// Checksum of the content above ([`PointRecord::content_checksum`]): a point file edited
    /// or damaged since it was written does not match it.
    #[serde(default)]
    pub checksum: String,
}

/// What is on disk for one point.
#[derive(Debug)]
pub enum PointFile {
    Missing,
    Valid(PointRecord),
    /// Unreadable, of another sweep, or not matching its checksum: why.
    Damaged(String),
}

pub fn point_path(dir: &Path, index: usize) -> PathBuf {
    dir.join("points").join(format!("{index:06}.json"))
}

impl PointRecord {
    /// Writes `points/NNNNNN.json` (atomically) with its checksum.
    pub fn write(&self, dir: &Path) -> Result<(), SweepError> {
        let record = PointRecord { checksum: self.content_checksum(), ..self.clone() };
        let text = serde_json::to_string(&record).expect("point record serialises");
        write_atomically(&point_path(dir, self.index), (text + "\n").as_bytes())
    }

    /// FNV-1a (64-bit) of the record's JSON with an empty checksum field: the same for the
    /// record read back, different after any change of a value.
    pub fn content_checksum(&self) -> String {
        let body = serde_json::to_string(&PointRecord { checksum: String::new(), ..self.clone() })
            .expect("point record serialises");
        format!("fnv1a64:{:016x}", crate::rng::fnv1a64(body.as_bytes()))
    }

    /// Reads and checks one point file against the manifest and its checksum.
    pub fn read(dir: &Path, index: usize, manifest: &Manifest) -> Result<PointFile, SweepError> {
        let path = point_path(dir, index);
        let bytes = match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PointFile::Missing),
            Err(e) => return Err(SweepError::io(&path, e)),
            Ok(bytes) => bytes,
        };
        let damaged = |why: String| Ok(PointFile::Damaged(why));
        let record: PointRecord = match serde_json::from_slice(&bytes) {
            Ok(r) => r,
            Err(e) => return damaged(format!("unreadable ({e})")),
        };
        if record.fingerprint != manifest.fingerprint || record.index != index {
            return damaged("belongs to another sweep".into());
        }
        if record.runs.iter().any(|r| r.values.len() != manifest.metrics.len()) {
            return damaged("wrong number of metrics".into());
        }
        if record.checksum != record.content_checksum() {
            return damaged("content does not match its checksum (edited or damaged)".into());
        }
        Ok(PointFile::Valid(record))
    }

    /// The point from the first directory that has it, checked against the manifest and its
    /// checksum (a damaged file is an error here: `sim sweep` on its directory recomputes it).
    pub fn find(
        dirs: &[PathBuf],
        index: usize,
        manifest: &Manifest,
    ) -> Result<Option<PointRecord>, SweepError> {
        for dir in dirs {
            match PointRecord::read(dir, index, manifest)? {
                PointFile::Missing => continue,
                PointFile::Valid(record) => return Ok(Some(record)),
                PointFile::Damaged(why) => {
                    return Err(SweepError::Input(format!("{}: {why}", point_path(dir, index).display())))
                }
            }
        }
        Ok(None)
    }
}

/// Removes the temporary files a killed run left in `dir` and `dir/points` (see
/// [`write_atomically`]); returns how many.
pub fn remove_temporary_files(dir: &Path) -> Result<usize, SweepError> {
    let mut removed = 0;
    for d in [dir.to_path_buf(), dir.join("points")] {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".tmp") {
                std::fs::remove_file(entry.path()).map_err(|e| SweepError::io(&entry.path(), e))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Writes to a temporary file in the same directory, then renames: readers see the whole
/// file or nothing.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SweepError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| SweepError::io(dir, e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&temp, bytes).map_err(|e| SweepError::io(&temp, e))?;
    std::fs::rename(&temp, path).map_err(|e| SweepError::io(path, e))
}

/// One row of `results.csv`: a (point, strategy) with every metric's estimate.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub point: usize,
    pub coordinates: Vec<String>,
    pub strategy: String,
    pub replications: usize,
    /// Aligned with the manifest's `metrics`.
    pub estimates: Vec<Estimate>,
    pub pareto: bool,
}

/// Reads every point (in index order) from `dirs` and computes the rows with Pareto flags.
pub fn assemble(manifest: &Manifest, dirs: &[PathBuf]) -> Result<Vec<Row>, SweepError> {
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for index in 0..manifest.points {
        let Some(record) = PointRecord::find(dirs, index, manifest)? else {
            missing.push(index);
            continue;
        };
        let mut strategies: Vec<&str> = Vec::new();
        for run in &record.runs {
            if !strategies.contains(&run.strategy.as_str()) {
                strategies.push(&run.strategy);
            }
        }
        for strategy in strategies {
            let runs: Vec<&RunRecord> = record.runs.iter().filter(|r| r.strategy == strategy).collect();
            let estimates = (0..manifest.metrics.len())
                .map(|m| estimate(&runs.iter().map(|r| r.values[m].unwrap_or(f64::NAN)).collect::<Vec<_>>()))
                .collect();
            rows.push(Row {
                point: index,
                coordinates: record.coordinates.iter().map(|(_, v)| v.clone()).collect(),
                strategy: strategy.to_string(),
                replications: runs.len(),
                estimates,
                pareto: false,
            });
        }
    }
    if !missing.is_empty() {
        let shown: Vec<String> = missing.iter().take(10).map(usize::to_string).collect();
        return Err(SweepError::Input(format!(
            "{} of {} points are missing (e.g. {}); run the missing shards or rerun the sweep to finish them",
            missing.len(),
            manifest.points,
            shown.join(", ")
        )));
    }
    let objectives: Vec<usize> = pareto_metrics(manifest);
    // An undefined objective (no successful request, so no latency) counts as the worst.
    let worst_if_undefined = |x: f64| if x.is_nan() { f64::INFINITY } else { x };
    let vectors: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| objectives.iter().map(|&m| worst_if_undefined(r.estimates[m].mean)).collect())
        .collect();
    for (row, on_front) in rows.iter_mut().zip(pareto_front(&vectors)) {
        row.pareto = on_front;
    }
    Ok(rows)
}

/// Pareto objectives: cost, interactive TTFT p95 (overall TTFT p95 when the trace has no
/// interactive class), request 429 rate — and the share of requests that failed for any other
/// reason: without it a configuration that fails most requests cheaply (every deployment cooled
/// down, say) would sit on the front for being cheap.
fn pareto_metrics(manifest: &Manifest) -> Vec<usize> {
    let find = |metric: Metric| manifest.metrics.iter().position(|m| *m == metric.to_string());
    let latency = find(Metric::headline_latency())
        .or_else(|| find(Metric::overall(Figure::Latency(metric::Latency::Ttft, metric::Stat::P95))));
    [
        find(Metric::overall(Figure::CostUsd)),
        latency,
        find(Metric::overall(Figure::Request429Rate)),
        find(Metric::overall(Figure::FailedRate)),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// A number in the CSV: rounded to 6 decimals, shortest form; empty when undefined.
fn number(x: f64) -> String {
    if x.is_nan() {
        return String::new();
    }
    let rounded = (x * 1e6).round() / 1e6;
    if rounded == 0.0 {
        "0".into()
    } else {
        rounded.to_string()
    }
}

/// `results.csv`, byte for byte.
pub fn csv_bytes(manifest: &Manifest, rows: &[Row]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    // A `strategy` axis is shown once, in the strategy column.
    let shown: Vec<bool> = manifest.axes.iter().map(|a| a != "strategy").collect();
    let mut header: Vec<String> = vec!["point".into()];
    header.extend(manifest.axes.iter().zip(&shown).filter(|(_, s)| **s).map(|(a, _)| a.clone()));
    header.extend(["strategy".to_string(), "replications".to_string()]);
    for metric in &manifest.metrics {
        header.extend([format!("{metric}_mean"), format!("{metric}_ci95_lo"), format!("{metric}_ci95_hi")]);
    }
    header.push("pareto".into());
    writer.write_record(&header).expect("writing to memory");
    for row in rows {
        let mut record: Vec<String> = vec![row.point.to_string()];
        record.extend(row.coordinates.iter().zip(&shown).filter(|(_, s)| **s).map(|(c, _)| c.clone()));
        record.extend([row.strategy.clone(), row.replications.to_string()]);
        for e in &row.estimates {
            let (lo, hi) = e.ci95.map_or((String::new(), String::new()), |(lo, hi)| (number(lo), number(hi)));
            record.extend([number(e.mean), lo, hi]);
        }
        record.push(row.pareto.to_string());
        writer.write_record(&record).expect("writing to memory");
    }
    writer.into_inner().expect("writing to memory")
}

/// `METRIC <= NUMBER` (also `<`, `>=`, `>`), on a metric's mean.
#[derive(Clone, Debug, PartialEq)]
pub struct Constraint {
    pub metric: String,
    pub op: Comparison,
    pub bound: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    AtMost,
    Below,
    AtLeast,
    Above,
}

/// Resolves a metric name (`cost` is short for `cost_usd`) or says which names exist.
pub fn resolve_metric(name: &str, metrics: &[String]) -> Result<usize, SweepError> {
    let known = || metrics.join(", ");
    let metric = Metric::parse(name)
        .map_err(|_| SweepError::Input(format!("unknown metric {name:?}; known metrics: {}", known())))?;
    let canonical = metric.to_string();
    metrics.iter().position(|m| *m == canonical).ok_or_else(|| {
        SweepError::Input(format!(
            "metric {canonical:?} is not tabulated by sweeps; known metrics: {}",
            known()
        ))
    })
}

impl Constraint {
    pub fn parse(text: &str, metrics: &[String]) -> Result<Constraint, SweepError> {
        let bad = || {
            SweepError::Input(format!(
                "--constraint {text:?}: expected METRIC <= NUMBER (or <, >=, >), e.g. 'request_429_rate <= 0.001'"
            ))
        };
        let (op, at, width) = ["<=", ">=", "<", ">"]
            .iter()
            .find_map(|op| text.find(op).map(|at| (*op, at, op.len())))
            .ok_or_else(bad)?;
        let metric = text[..at].trim();
        let bound: f64 = text[at + width..].trim().parse().map_err(|_| bad())?;
        if !bound.is_finite() {
            return Err(bad());
        }
        let index = resolve_metric(metric, metrics)?;
        let op = match op {
            "<=" => Comparison::AtMost,
            ">=" => Comparison::AtLeast,
            "<" => Comparison::Below,
            _ => Comparison::Above,
        };
        Ok(Constraint { metric: metrics[index].clone(), op, bound })
    }

    /// How far `value` is outside the constraint, relative to the bound (0 when satisfied).
    fn violation(&self, value: f64) -> f64 {
        if value.is_nan() {
            return f64::INFINITY;
        }
        let over = match self.op {
            Comparison::AtMost if value <= self.bound => 0.0,
            Comparison::Below if value < self.bound => 0.0,
            Comparison::AtLeast if value >= self.bound => 0.0,
            Comparison::Above if value > self.bound => 0.0,
            _ => (value - self.bound).abs().max(f64::MIN_POSITIVE),
        };
        over / self.bound.abs().max(1e-9)
    }
}

/// The outcome of an objective search.
#[derive(Clone, Debug, PartialEq)]
pub enum Choice {
    /// The feasible row with the smallest objective (earliest row on ties).
    Best(usize),
    /// No row satisfies every constraint: the one with the smallest total relative violation.
    ClosestInfeasible { row: usize, violated: Vec<String> },
}

/// Minimises `objective` (a metric index) over rows whose means satisfy every constraint.
pub fn choose(
    rows: &[Row],
    metrics: &[String],
    objective: usize,
    constraints: &[Constraint],
) -> Option<Choice> {
    let index = |c: &Constraint| metrics.iter().position(|m| *m == c.metric).expect("resolved at parse");
    let violation =
        |row: &Row| constraints.iter().map(|c| c.violation(row.estimates[index(c)].mean)).sum::<f64>();
    let mut best: Option<(usize, f64)> = None;
    for (i, row) in rows.iter().enumerate() {
        let value = row.estimates[objective].mean;
        if violation(row) == 0.0 && !value.is_nan() && best.is_none_or(|(_, v)| value < v) {
            best = Some((i, value));
        }
    }
    if let Some((i, _)) = best {
        return Some(Choice::Best(i));
    }
    let (row, _) = rows.iter().enumerate().map(|(i, r)| (i, violation(r))).fold(
        None,
        |acc: Option<(usize, f64)>, (i, v)| match acc {
            Some((_, best)) if best <= v => acc,
            _ => Some((i, v)),
        },
    )?;
    let violated = constraints
        .iter()
        .filter(|c| c.violation(rows[row].estimates[index(c)].mean) > 0.0)
        .map(|c| {
            let op = match c.op {
                Comparison::AtMost => "<=",
                Comparison::Below => "<",
                Comparison::AtLeast => ">=",
                Comparison::Above => ">",
            };
            format!("{} {op} {} (is {})", c.metric, c.bound, number(rows[row].estimates[index(c)].mean))
        })
        .collect();
    Some(Choice::ClosestInfeasible { row, violated })
}

/// One line describing a row: coordinates, strategy and the headline metrics with CIs.
pub fn describe_row(manifest: &Manifest, row: &Row) -> String {
    let coordinates: Vec<String> = manifest
        .axes
        .iter()
        .zip(&row.coordinates)
        .filter(|(a, _)| *a != "strategy")
        .map(|(a, v)| format!("{a}={v}"))
        .collect();
    let mut parts =
        vec![format!("point {} ({}) strategy {}", row.point, coordinates.join(", "), row.strategy)];
    for name in ["cost_usd", "request_429_rate", "interactive.ttft_p95_ms", "ttft_p95_ms"] {
        if let Some(m) = manifest.metrics.iter().position(|x| x == name) {
            let e = &row.estimates[m];
            let ci = e.ci95.map(|(lo, hi)| format!(" [{}, {}]", number(lo), number(hi))).unwrap_or_default();
            parts.push(format!("{name} {}{ci}", number(e.mean)));
        }
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: &[f64]) -> Row {
        Row {
            point: 0,
            coordinates: vec![],
            strategy: "s".into(),
            replications: 1,
            estimates: values.iter().map(|&mean| Estimate { mean, ci95: None }).collect(),
            pareto: false,
        }
    }

    #[test]
    fn objective_picks_the_cheapest_feasible_row_or_the_closest_infeasible() {
        let metrics: Vec<String> = vec!["cost_usd".into(), "request_429_rate".into()];
        let rows = vec![row(&[10.0, 0.01]), row(&[20.0, 0.0005]), row(&[30.0, 0.0]), row(&[5.0, 0.5])];
        let c = Constraint::parse("request_429_rate <= 0.001", &metrics).unwrap();
        let cost = resolve_metric("cost", &metrics).unwrap();
        assert_eq!(choose(&rows, &metrics, cost, &[c]), Some(Choice::Best(1)));
        let strict = Constraint::parse("request_429_rate<0", &metrics).unwrap();
        let Some(Choice::ClosestInfeasible { row, violated }) = choose(&rows, &metrics, cost, &[strict])
        else {
            panic!("nothing is below 0")
        };
        assert_eq!(row, 2, "0 is the smallest violation of < 0");
        assert_eq!(violated, ["request_429_rate < 0 (is 0)"]);
        assert!(Constraint::parse("p95 <= 3", &metrics).is_err());
        assert!(Constraint::parse("cost_usd == 3", &metrics).is_err());
    }

    #[test]
    fn a_point_checksum_is_fnv1a_of_its_json_and_stays_pinned() {
        // Point files already on disk carry this checksum: its bytes must never change.
        let record = PointRecord {
            fingerprint: "f".into(),
            index: 3,
            coordinates: vec![("rate".into(), "2".into())],
            runs: vec![RunRecord {
                strategy: "s".into(),
                replication: 0,
                seed: 7,
                values: vec![Some(1.5), None],
            }],
            checksum: "ignored".into(),
        };
        assert_eq!(record.content_checksum(), "fnv1a64:bca776922816d32b");
    }

    #[test]
    fn numbers_are_rounded_and_short() {
        assert_eq!(number(0.1 + 0.2), "0.3");
        assert_eq!(number(-0.0), "0");
        assert_eq!(number(1234.5678912), "1234.567891");
        assert_eq!(number(f64::NAN), "");
    }
}
