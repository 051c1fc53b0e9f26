//! The regression gate: compares two `summary.json` (strategy by strategy) or two sweep
//! `results.csv` (point by point) against per-metric thresholds.
//!
//! Every gated metric is "higher is worse" (429 rates, latencies, cost). A threshold is the
//! increase allowed over the baseline, relative (`+10%`) or absolute (`+0.005`); runs are
//! deterministic, so an unchanged model gives zero deltas and thresholds can be tight. It owns
//! thresholds and verdicts; it must not know how results were produced or drawn.

use super::data::{lookup_metric, summary_metric, MetricLookup, ReportError, Summary, SweepResults};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The increase over the baseline a metric may show before it is a regression.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Threshold {
    /// A fraction of the baseline (`+10%` is 0.10). A zero baseline allows no increase.
    Relative(f64),
    /// In the metric's own unit (`+0.005` on a rate is half a percentage point).
    Absolute(f64),
}

impl Threshold {
    /// The increase allowed over `baseline`.
    pub fn allowance(self, baseline: f64) -> f64 {
        match self {
            Threshold::Relative(fraction) => baseline.abs() * fraction,
            Threshold::Absolute(amount) => amount,
        }
    }
}

impl std::fmt::Display for Threshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Threshold::Relative(fraction) => write!(f, "+{}%", round(fraction * 100.0)),
            Threshold::Absolute(amount) => write!(f, "+{}", round(*amount)),
        }
    }
}

fn round(x: f64) -> f64 {
    (x * 1e9).round() / 1e9
}

/// A metric's threshold, and whether the user asked for it (a user's metric must exist; a
/// default one is skipped when neither side has it, e.g. a trace without an interactive class).
#[derive(Clone, Debug, PartialEq)]
pub struct GatedMetric {
    pub metric: String,
    pub threshold: Threshold,
    pub explicit: bool,
}

/// The defaults: request 429 rate +0.5 percentage point, interactive TTFT p95 +10%, cost +5%.
pub fn default_thresholds() -> Vec<GatedMetric> {
    [
        ("request_429_rate", Threshold::Absolute(0.005)),
        ("interactive_ttft_p95_ms", Threshold::Relative(0.10)),
        ("cost_usd", Threshold::Relative(0.05)),
    ]
    .into_iter()
    .map(|(metric, threshold)| GatedMetric { metric: metric.into(), threshold, explicit: false })
    .collect()
}

/// Parses `METRIC=VALUE` with VALUE `+10%` / `10%` (relative) or `+0.005` / `0.005` (absolute).
pub fn parse_threshold(spec: &str) -> Result<GatedMetric, ReportError> {
    let bad = |why: &str| ReportError::Threshold(format!("threshold \"{spec}\": {why}"));
    let (metric, value) =
        spec.split_once('=').ok_or_else(|| bad("expected METRIC=VALUE, e.g. cost_usd=+5%"))?;
    let metric = metric.trim();
    if metric.is_empty() {
        return Err(bad("empty metric name"));
    }
    let value = value.trim();
    let unsigned = value.strip_prefix('+').unwrap_or(value);
    let (number, relative) = match unsigned.strip_suffix('%') {
        Some(n) => (n.trim(), true),
        None => (unsigned, false),
    };
    let x: f64 = number
        .parse()
        .ok()
        .filter(|x: &f64| x.is_finite())
        .ok_or_else(|| bad("expected a number like +10% or +0.005"))?;
    if x < 0.0 {
        return Err(bad("a threshold is the increase allowed, so it cannot be negative"));
    }
    let threshold = if relative { Threshold::Relative(x / 100.0) } else { Threshold::Absolute(x) };
    Ok(GatedMetric { metric: metric.to_string(), threshold, explicit: true })
}

/// A threshold file: one `METRIC=VALUE` per line; blank lines and `#` comments are ignored.
pub fn parse_threshold_file(text: &str, path: &Path) -> Result<Vec<GatedMetric>, ReportError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let gated = parse_threshold(line)
            .map_err(|e| ReportError::Threshold(format!("{}:{}: {e}", path.display(), i + 1)))?;
        out.push(gated);
    }
    Ok(out)
}

/// Defaults overridden (by metric name) by `overrides`, in order: defaults first, then the new
/// metrics the user added.
pub fn merge_thresholds(overrides: Vec<GatedMetric>) -> Vec<GatedMetric> {
    let mut all = default_thresholds();
    for o in overrides {
        match all.iter_mut().find(|g| g.metric == o.metric) {
            Some(existing) => *existing = o,
            None => all.push(o),
        }
    }
    all
}

/// What a row's delta means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Lower than the baseline.
    Improved,
    /// Unchanged, or higher within the threshold.
    Ok,
    /// Higher than the baseline by more than the threshold.
    Regression,
    /// Shown for context, not gated.
    Info,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Improved => "improved",
            Verdict::Ok => "ok",
            Verdict::Regression => "REGRESSION",
            Verdict::Info => "-",
        }
    }
}

/// Judges one delta. A tiny tolerance absorbs float rounding of equal runs.
pub fn judge(baseline: f64, current: f64, threshold: Option<Threshold>) -> Verdict {
    let Some(threshold) = threshold else { return Verdict::Info };
    let delta = current - baseline;
    let tolerance = 1e-9 * baseline.abs().max(current.abs()).max(1e-9);
    if delta > threshold.allowance(baseline) + tolerance {
        Verdict::Regression
    } else if delta < -tolerance {
        Verdict::Improved
    } else {
        Verdict::Ok
    }
}

/// One line of the comparison table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The strategy (summaries) or the point's key (sweeps).
    pub subject: String,
    pub metric: String,
    pub baseline: f64,
    pub current: f64,
    pub threshold: Option<Threshold>,
    pub verdict: Verdict,
}

/// The result of a comparison.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub baseline: PathBuf,
    pub current: PathBuf,
    pub rows: Vec<Row>,
}

/// Shown beside the gated metrics of a summary, for context.
const CONTEXT_METRICS: [&str; 4] = ["attempt_429_rate", "ttft_p50_ms", "ttft_p95_ms", "e2e_p95_ms"];

/// `summary.json` or `results.csv`: a directory means the file inside it.
fn resolve(path: &Path) -> PathBuf {
    if path.is_dir() {
        let results = path.join("results.csv");
        if results.exists() {
            results
        } else {
            path.join("summary.json")
        }
    } else {
        path.to_path_buf()
    }
}

fn is_sweep(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

/// Compares `current` against `baseline` (files or result directories, both of one kind).
pub fn compare_paths(
    baseline: &Path,
    current: &Path,
    thresholds: &[GatedMetric],
) -> Result<Comparison, ReportError> {
    let (b, c) = (resolve(baseline), resolve(current));
    let rows = match (is_sweep(&b), is_sweep(&c)) {
        (false, false) => compare_summaries(&Summary::load(&b)?, &Summary::load(&c)?, thresholds)?,
        (true, true) => compare_sweeps(&SweepResults::load(&b)?, &SweepResults::load(&c)?, thresholds)?,
        _ => {
            return Err(ReportError::Mismatch(format!(
                "cannot compare {} with {}: one is a run summary, the other a sweep's results",
                b.display(),
                c.display()
            )))
        }
    };
    Ok(Comparison { baseline: b, current: c, rows })
}

/// Strategy by strategy. Both must be the same scenario and seed with the same strategies.
pub fn compare_summaries(
    baseline: &Summary,
    current: &Summary,
    thresholds: &[GatedMetric],
) -> Result<Vec<Row>, ReportError> {
    let (bp, cp) = (baseline.path.display(), current.path.display());
    if baseline.scenario != current.scenario {
        return Err(ReportError::Mismatch(format!(
            "mismatched scenarios: baseline {bp} is \"{}\", current {cp} is \"{}\"",
            baseline.scenario, current.scenario
        )));
    }
    if baseline.seed != current.seed {
        return Err(ReportError::Mismatch(format!(
            "mismatched seeds: baseline {bp} has seed {}, current {cp} has seed {} (runs with different seeds see different luck)",
            baseline.seed, current.seed
        )));
    }
    let missing_in_current: Vec<&str> = baseline
        .strategies
        .iter()
        .filter(|s| current.strategy(&s.name).is_none())
        .map(|s| s.name.as_str())
        .collect();
    let missing_in_baseline: Vec<&str> = current
        .strategies
        .iter()
        .filter(|s| baseline.strategy(&s.name).is_none())
        .map(|s| s.name.as_str())
        .collect();
    if !missing_in_current.is_empty() || !missing_in_baseline.is_empty() {
        let mut parts = Vec::new();
        if !missing_in_current.is_empty() {
            parts.push(format!("missing from current {cp}: {}", missing_in_current.join(", ")));
        }
        if !missing_in_baseline.is_empty() {
            parts.push(format!(
                "not in baseline {bp}: {} (refresh the baseline to add a strategy)",
                missing_in_baseline.join(", ")
            ));
        }
        return Err(ReportError::Mismatch(format!("mismatched strategies: {}", parts.join("; "))));
    }
    let mut rows = Vec::new();
    for b in &baseline.strategies {
        let c = current.strategy(&b.name).expect("checked above");
        let metrics = gated_then_context(thresholds, CONTEXT_METRICS.iter().map(|m| m.to_string()));
        for (metric, gate) in metrics {
            for (side, json, path) in [("baseline", &b.json, &bp), ("current", &c.json, &cp)] {
                if let MetricLookup::NotANumber { kind, shown } = lookup_metric(json, &metric) {
                    return Err(ReportError::Mismatch(format!(
                        "metric \"{metric}\" for {}: is {kind} ({shown}) in {side} {path}, not a number",
                        b.name
                    )));
                }
            }
            let values = (summary_metric(&b.json, &metric), summary_metric(&c.json, &metric));
            if let Some((bv, cv)) = present(values, &metric, gate, &b.name, &bp.to_string(), &cp.to_string())?
            {
                let threshold = gate.map(|g| g.threshold);
                rows.push(Row {
                    subject: b.name.clone(),
                    metric,
                    baseline: bv,
                    current: cv,
                    threshold,
                    verdict: judge(bv, cv, threshold),
                });
            }
        }
    }
    Ok(rows)
}

/// Point by point, matched on the key columns (point, strategy, parameters).
pub fn compare_sweeps(
    baseline: &SweepResults,
    current: &SweepResults,
    thresholds: &[GatedMetric],
) -> Result<Vec<Row>, ReportError> {
    let (bp, cp) = (baseline.table.path.display().to_string(), current.table.path.display().to_string());
    let keys = |s: &SweepResults| (0..s.table.rows.len()).map(|i| s.row_key(i)).collect::<Vec<_>>();
    let (bk, ck) = (keys(baseline), keys(current));
    let missing: Vec<&String> = bk.iter().filter(|k| !ck.contains(k)).collect();
    let extra: Vec<&String> = ck.iter().filter(|k| !bk.contains(k)).collect();
    if !missing.is_empty() || !extra.is_empty() {
        let show = |v: &[&String]| v.iter().map(|k| format!("[{k}]")).collect::<Vec<_>>().join(" ");
        return Err(ReportError::Mismatch(format!(
            "mismatched sweep points: missing from current {cp}: {}; not in baseline {bp}: {}",
            if missing.is_empty() { "none".into() } else { show(&missing) },
            if extra.is_empty() { "none".into() } else { show(&extra) }
        )));
    }
    let mut rows = Vec::new();
    for (bi, key) in bk.iter().enumerate() {
        let ci = ck.iter().position(|k| k == key).expect("checked above");
        let context = CONTEXT_METRICS.iter().map(|m| m.to_string());
        for (metric, gate) in gated_then_context(thresholds, context) {
            let values = (baseline.mean(bi, &metric)?, current.mean(ci, &metric)?);
            if let Some((bv, cv)) = present(values, &format!("{metric}_mean"), gate, key, &bp, &cp)? {
                let threshold = gate.map(|g| g.threshold);
                rows.push(Row {
                    subject: key.clone(),
                    metric,
                    baseline: bv,
                    current: cv,
                    threshold,
                    verdict: judge(bv, cv, threshold),
                });
            }
        }
    }
    Ok(rows)
}

/// The gated metrics, then context metrics that are not gated.
fn gated_then_context(
    thresholds: &[GatedMetric],
    context: impl Iterator<Item = String>,
) -> Vec<(String, Option<&GatedMetric>)> {
    let mut out: Vec<(String, Option<&GatedMetric>)> =
        thresholds.iter().map(|g| (g.metric.clone(), Some(g))).collect();
    for m in context {
        if !out.iter().any(|(x, _)| *x == m) {
            out.push((m, None));
        }
    }
    out
}

/// Both values, or `None` when a default or context metric is absent from both sides; a
/// metric on one side only, or an explicit one on neither, is bad input.
fn present(
    values: (Option<f64>, Option<f64>),
    metric: &str,
    gate: Option<&GatedMetric>,
    subject: &str,
    baseline: &str,
    current: &str,
) -> Result<Option<(f64, f64)>, ReportError> {
    match values {
        (Some(b), Some(c)) => Ok(Some((b, c))),
        (None, None) if gate.is_some_and(|g| g.explicit) => Err(ReportError::Mismatch(format!(
            "metric \"{metric}\" not found for {subject} in baseline {baseline} nor in current {current}"
        ))),
        (None, None) => Ok(None),
        (None, Some(_)) => Err(ReportError::Mismatch(format!(
            "metric \"{metric}\" for {subject}: missing from baseline {baseline} but present in current {current}"
        ))),
        (Some(_), None) => Err(ReportError::Mismatch(format!(
            "metric \"{metric}\" for {subject}: present in baseline {baseline} but missing from current {current}"
        ))),
    }
}

impl Comparison {
    /// Gated values that moved at all (beyond float rounding), in either direction: with
    /// `--strict` these fail too, so that a behaviour change comes with a refreshed baseline.
    pub fn changed(&self) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| {
                r.threshold.is_some()
                    && judge(r.baseline, r.current, Some(Threshold::Absolute(0.0))) != Verdict::Ok
            })
            .collect()
    }

    pub fn regressions(&self) -> Vec<&Row> {
        self.rows.iter().filter(|r| r.verdict == Verdict::Regression).collect()
    }

    /// One line per regression: `fallback-chain cost_usd: 396.02 -> 420.10 (+6.08%, allowed +5%)`.
    pub fn regression_lines(&self) -> Vec<String> {
        self.regressions()
            .iter()
            .map(|r| {
                format!(
                    "{} {}: {} -> {} ({}, allowed {})",
                    r.subject,
                    r.metric,
                    number(r.baseline),
                    number(r.current),
                    delta_text(r),
                    r.threshold.map(|t| t.to_string()).unwrap_or_default()
                )
            })
            .collect()
    }

    fn cells(&self) -> Vec<[String; 7]> {
        self.rows
            .iter()
            .map(|r| {
                [
                    r.subject.clone(),
                    r.metric.clone(),
                    number(r.baseline),
                    number(r.current),
                    delta_text(r),
                    r.threshold.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
                    r.verdict.as_str().to_string(),
                ]
            })
            .collect()
    }

    const HEADER: [&'static str; 7] =
        ["subject", "metric", "baseline", "current", "delta", "threshold", "verdict"];

    /// The aligned terminal table and a closing verdict line.
    pub fn to_text(&self) -> String {
        let mut rows: Vec<[String; 7]> = vec![Self::HEADER.map(String::from)];
        rows.extend(self.cells());
        let widths: Vec<usize> =
            (0..7).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
        let mut text = String::new();
        for row in &rows {
            let line: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(c, cell)| {
                    if c < 2 {
                        format!("{cell:<w$}", w = widths[c])
                    } else {
                        format!("{cell:>w$}", w = widths[c])
                    }
                })
                .collect();
            let _ = writeln!(text, "{}", line.join("  ").trim_end());
        }
        text.push_str(&self.verdict_line());
        text.push('\n');
        text
    }

    /// A Markdown section for a pull-request comment.
    pub fn to_markdown(&self) -> String {
        let mut text = String::from("## Regression gate\n\n");
        let _ = writeln!(
            text,
            "Baseline `{}` vs current `{}`: **{}**\n",
            self.baseline.display(),
            self.current.display(),
            self.verdict_line()
        );
        let _ = writeln!(text, "| {} |", Self::HEADER.join(" | "));
        let _ = writeln!(text, "|{}", "---|".repeat(7));
        for cells in self.cells() {
            let mut cells = cells.map(|c| c.replace('|', "\\|"));
            if cells[6] == Verdict::Regression.as_str() {
                cells[6] = format!("**{}**", cells[6]);
            }
            let _ = writeln!(text, "| {} |", cells.join(" | "));
        }
        text
    }

    pub fn verdict_line(&self) -> String {
        let n = self.regressions().len();
        let gated = self.rows.iter().filter(|r| r.threshold.is_some()).count();
        match n {
            0 => format!("pass: {gated} gated values within thresholds"),
            1 => format!("FAIL: 1 regression of {gated} gated values"),
            n => format!("FAIL: {n} regressions of {gated} gated values"),
        }
    }
}

fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else if x.abs() >= 1000.0 {
        format!("{x:.1}")
    } else if x.abs() >= 1.0 {
        format!("{x:.3}")
    } else {
        format!("{x:.6}")
    }
}

fn delta_text(r: &Row) -> String {
    let delta = r.current - r.baseline;
    if delta == 0.0 {
        return "0".into();
    }
    let sign = if delta > 0.0 {
        "+"
    } else if delta < 0.0 {
        "-"
    } else {
        "±"
    };
    let relative = if r.baseline != 0.0 {
        format!(" ({sign}{:.2}%)", (delta / r.baseline).abs() * 100.0)
    } else {
        String::new()
    };
    format!("{sign}{}{relative}", number(delta.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_relative_absolute_and_reject_nonsense() {
        let g = parse_threshold("ttft_p95_ms=+10%").unwrap();
        assert_eq!((g.metric.as_str(), g.threshold), ("ttft_p95_ms", Threshold::Relative(0.10)));
        assert_eq!(parse_threshold("request_429_rate=0.005").unwrap().threshold, Threshold::Absolute(0.005));
        assert_eq!(parse_threshold(" cost_usd = 0% ").unwrap().threshold, Threshold::Relative(0.0));
        for bad in ["cost_usd", "=5%", "cost_usd=-5%", "cost_usd=abc", "cost_usd=NaN", "cost_usd=inf%"] {
            assert!(parse_threshold(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn user_thresholds_override_defaults_by_name() {
        let merged = merge_thresholds(vec![
            parse_threshold("cost_usd=+1%").unwrap(),
            parse_threshold("e2e_p95_ms=+20%").unwrap(),
        ]);
        let names: Vec<&str> = merged.iter().map(|g| g.metric.as_str()).collect();
        assert_eq!(names, ["request_429_rate", "interactive_ttft_p95_ms", "cost_usd", "e2e_p95_ms"]);
        assert_eq!(merged[2].threshold, Threshold::Relative(0.01));
        assert!(!merged[0].explicit && merged[2].explicit);
    }

    #[test]
    fn verdicts_at_the_edges_of_a_threshold() {
        let ten_percent = Some(Threshold::Relative(0.10));
        assert_eq!(judge(100.0, 110.0, ten_percent), Verdict::Ok, "exactly at the threshold passes");
        assert_eq!(judge(100.0, 110.01, ten_percent), Verdict::Regression);
        assert_eq!(judge(100.0, 99.0, ten_percent), Verdict::Improved);
        assert_eq!(judge(100.0, 100.0, ten_percent), Verdict::Ok);
        // 0.1 + 0.2 != 0.3 in binary; equal runs must not be flagged by rounding.
        assert_eq!(judge(0.3, 0.1 + 0.2, Some(Threshold::Relative(0.0))), Verdict::Ok);
        assert_eq!(judge(0.0, 0.001, Some(Threshold::Relative(0.5))), Verdict::Regression, "zero baseline");
        assert_eq!(judge(0.010, 0.0149, Some(Threshold::Absolute(0.005))), Verdict::Ok);
        assert_eq!(judge(0.010, 0.0151, Some(Threshold::Absolute(0.005))), Verdict::Regression);
        assert_eq!(judge(1.0, 50.0, None), Verdict::Info);
    }

    #[test]
    fn threshold_files_skip_comments_and_name_bad_lines() {
        let path = Path::new("gate.txt");
        let ok =
            parse_threshold_file("# gate\ncost_usd=+2%  # tight\n\nrequest_429_rate=+0.001\n", path).unwrap();
        assert_eq!(ok.len(), 2);
        let e = parse_threshold_file("cost_usd=+2%\nbogus\n", path).unwrap_err().to_string();
        assert!(e.starts_with("gate.txt:2: threshold \"bogus\""), "{e}");
    }
}
