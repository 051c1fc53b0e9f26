//! The sweep file and its points: which base scenario, which axes of overrides (by dotted path),
//! how axes combine (cartesian product or zipped), how many replications; and how one point's
//! overrides turn the base scenario's TOML into a validated [`Scenario`].
//!
//! Overrides are applied to the scenario's TOML table *before* validation, so every point goes
//! through exactly the checks `sim run` applies, and an unknown path or a value of the wrong
//! type is reported with the path named. Three paths are handled by the sweep itself:
//! `trace.rate_multiplier` (arrivals and think times divided by it, see [`scale_request`]),
//! `limits.FIELD` (the field set in every deployment's `limits`; `limits.burst_s = 10` is
//! shorthand for `limits.burst = "10s"`) and `strategy` (run only the named strategy).
//! It must not know how points are run or reported.

use super::SweepError;
use crate::rng::{hash_bytes, hash_str, mix64};
use crate::scenario::Scenario;
use crate::time::{Duration, Instant};
use crate::trace::Request;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// At most this many points in one sweep (the product of the axes' lengths, or the common
/// length of zipped axes). Every point is set up and validated before any runs, and each one
/// runs every strategy `replications` times: a hundred thousand points is already days of
/// simulation. More is refused naming the sweep file's `[axes]` line, before any work.
pub const MAX_POINTS: usize = 100_000;

/// The sweep file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SweepFile {
    /// Base scenario, relative to the sweep file.
    scenario: PathBuf,
    /// Sweep seed; defaults to the scenario's seed.
    seed: Option<u64>,
    /// Seeds per point.
    #[serde(default = "default_replications")]
    replications: u32,
    /// `"product"` (every combination) or `"zip"` (the i-th value of every axis together).
    #[serde(default)]
    combine: Combine,
    /// Dotted path → list of values. Nested tables are flattened into dotted paths.
    axes: toml::Table,
}

fn default_replications() -> u32 {
    5
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    #[default]
    Product,
    Zip,
}

/// One axis: a dotted path and the values it takes.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    /// As the user would write it: `deployments."anthropic/sonnet".limits.rpm`.
    pub name: String,
    pub segments: Vec<String>,
    pub values: Vec<toml::Value>,
    /// Where the sweep file writes its values.
    pub line: Option<usize>,
}

impl Axis {
    /// Whether this axis sets the scenario key `path` (`deployments."a".limits.rpm`) or a key
    /// inside it; `limits.F` sets `limits.F` of every deployment (`burst_s` sets `burst`).
    fn sets(&self, path: &str) -> bool {
        let within = |prefix: &str| {
            path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with(['.', '[']))
        };
        match self.segments.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["limits", field] => {
                let field = if *field == "burst_s" { "burst" } else { field };
                path.starts_with("deployments.") && path.ends_with(&format!(".limits.{field}"))
            }
            _ => within(&self.name),
        }
    }
}

/// One point of the grid: its index and the value of every axis.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub index: usize,
    /// Index into each axis's values, in axis order.
    pub value_indices: Vec<usize>,
}

/// What a point runs: the validated scenario plus the sweep-side transforms.
#[derive(Debug)]
pub struct PointSetup {
    pub scenario: Scenario,
    /// Arrivals and think times are divided by this (1 = the trace as recorded).
    pub rate_multiplier: f64,
    /// Indices into `scenario.strategies` to run, in scenario order.
    pub strategies: Vec<usize>,
}

/// A loaded, validated sweep.
#[derive(Debug)]
pub struct Plan {
    pub file: PathBuf,
    pub seed: u64,
    pub replications: u32,
    pub combine: Combine,
    pub axes: Vec<Axis>,
    pub scenario_path: PathBuf,
    /// The base scenario as written (for the lines of errors a point's overrides cause).
    scenario_text: String,
    pub scenario_table: toml::Table,
    /// The base scenario, validated without overrides.
    pub base: Scenario,
    /// Stable digest of the sweep file, the scenario file and the trace bytes: a results
    /// directory written by another sweep is refused rather than mixed in.
    pub fingerprint: String,
    point_count: usize,
}

/// A sweep-file error `file: key.path: what` given the line of its key path (`file:line: …`).
fn with_line(file: &Path, text: &str, error: SweepError) -> SweepError {
    if let SweepError::Input(message) = &error {
        let prefix = format!("{}: ", file.display());
        if let Some(rest) = message.strip_prefix(&prefix) {
            if let Some(line) = crate::toml_lines::line_of_message(text, rest) {
                return SweepError::Input(format!("{}:{line}: {rest}", file.display()));
            }
        }
    }
    error
}

fn input(file: &Path, message: impl Into<String>) -> SweepError {
    SweepError::Input(format!("{}: {}", file.display(), message.into()))
}

impl Plan {
    /// Reads the sweep file and the base scenario, and validates every point.
    pub fn load(path: &Path) -> Result<Plan, SweepError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| input(path, format!("cannot read sweep: {e}")))?;
        let raw: SweepFile = toml::from_str(&text).map_err(|e| {
            let (line, message) = crate::toml_lines::syntax_error(&text, &e);
            let at = line.map(|l| format!(":{l}")).unwrap_or_default();
            SweepError::Input(format!("{}{at}: {message}", path.display()))
        })?;
        Plan::from_raw(path, &text, raw).map_err(|e| with_line(path, &text, e))
    }

    /// [`Plan::load`] once the sweep file is parsed; errors name its key paths.
    fn from_raw(path: &Path, text: &str, raw: SweepFile) -> Result<Plan, SweepError> {
        let text = text.to_string();
        if raw.replications == 0 {
            return Err(input(path, "replications: must be >= 1"));
        }
        let axes = axes_in_order(&text, &raw.axes).map_err(|e| input(path, e.to_string()))?;
        if axes.is_empty() {
            return Err(input(path, "axes: at least one axis is required"));
        }
        let point_count = match raw.combine {
            Combine::Product => {
                let lengths: Vec<usize> = axes.iter().map(|a| a.values.len()).collect();
                let product = lengths.iter().try_fold(1usize, |n, len| n.checked_mul(*len));
                match product {
                    Some(n) if n <= MAX_POINTS => n,
                    _ => {
                        let shown: Vec<String> = lengths.iter().take(8).map(usize::to_string).collect();
                        let more = if lengths.len() > 8 { " × …" } else { "" };
                        let count = product.map_or(format!("more than {}", usize::MAX), |n| n.to_string());
                        return Err(input(
                            path,
                            format!(
                                "axes: {count} points ({}{more} values), at most {MAX_POINTS} in one sweep; \
                                 split it into smaller sweeps or zip axes (combine = \"zip\")",
                                shown.join(" × ")
                            ),
                        ));
                    }
                }
            }
            Combine::Zip => {
                let n = axes[0].values.len();
                if let Some(a) = axes.iter().find(|a| a.values.len() != n) {
                    return Err(input(
                        path,
                        format!(
                            "axes.{}: has {} values but axes.{} has {n}; zipped axes must be equally long",
                            a.name,
                            a.values.len(),
                            axes[0].name
                        ),
                    ));
                }
                if n > MAX_POINTS {
                    return Err(input(path, format!("axes: {n} points, at most {MAX_POINTS} in one sweep")));
                }
                n
            }
        };

        let base_dir = path.parent().unwrap_or(Path::new("."));
        let scenario_path = base_dir.join(&raw.scenario);
        let scenario_text = std::fs::read_to_string(&scenario_path)
            .map_err(|e| input(path, format!("scenario: cannot read {}: {e}", scenario_path.display())))?;
        let scenario_table: toml::Table = scenario_text.parse().map_err(|e: toml::de::Error| {
            let (line, message) = crate::toml_lines::syntax_error(&scenario_text, &e);
            let at = line.map(|l| format!(":{l}")).unwrap_or_default();
            SweepError::Input(format!("{}{at}: {message}", scenario_path.display()))
        })?;
        // Validate the base first, so an error in the scenario itself carries its line.
        let base = Scenario::load(&scenario_path)?;
        let trace_bytes = std::fs::read(&base.trace.path).unwrap_or_default();
        let mut digest = hash_str(&text) ^ mix64(hash_str(&scenario_text).wrapping_add(1));
        digest = mix64(digest ^ hash_bytes(&trace_bytes));
        let plan = Plan {
            file: path.to_path_buf(),
            seed: raw.seed.unwrap_or(base.seed),
            replications: raw.replications,
            combine: raw.combine,
            axes,
            scenario_path,
            scenario_text,
            scenario_table,
            base,
            fingerprint: format!("{digest:016x}"),
            point_count,
        };
        for point in plan.points() {
            plan.setup(&point)?;
        }
        Ok(plan)
    }

    pub fn point_count(&self) -> usize {
        self.point_count
    }

    /// Every point, in index order (the last axis varies fastest).
    pub fn points(&self) -> impl Iterator<Item = Point> + '_ {
        (0..self.point_count).map(move |index| self.point(index))
    }

    pub fn point(&self, index: usize) -> Point {
        let value_indices = match self.combine {
            Combine::Zip => vec![index; self.axes.len()],
            Combine::Product => {
                let mut rest = index;
                let mut indices = vec![0; self.axes.len()];
                for (slot, axis) in indices.iter_mut().zip(&self.axes).rev() {
                    *slot = rest % axis.values.len();
                    rest /= axis.values.len();
                }
                indices
            }
        };
        Point { index, value_indices }
    }

    /// `(axis name, value as text)` for each axis of a point.
    pub fn coordinates(&self, point: &Point) -> Vec<(String, String)> {
        self.axes
            .iter()
            .zip(&point.value_indices)
            .map(|(a, &i)| (a.name.clone(), value_text(&a.values[i])))
            .collect()
    }

    /// Seed of one replication of a point: from the sweep seed and the point's coordinates
    /// (axis names and values, not its index), so adding a value to an axis leaves every other
    /// point's seeds, hence results, unchanged. The `strategy` axis is left out so strategies
    /// at the same coordinates see the same luck (common random numbers).
    pub fn seed_for(&self, point: &Point, replication: u32) -> u64 {
        let mut state = mix64(self.seed ^ 0x243f_6a88_85a3_08d3);
        for (name, value) in self.coordinates(point) {
            if name == "strategy" {
                continue;
            }
            state = mix64(state ^ hash_str(&name));
            state = mix64(state ^ hash_str(&value));
        }
        mix64(state ^ u64::from(replication).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// Applies a point's overrides to the base scenario and validates the result.
    pub fn setup(&self, point: &Point) -> Result<PointSetup, SweepError> {
        let mut table = self.scenario_table.clone();
        let mut rate_multiplier = 1.0;
        let mut strategy: Option<String> = None;
        let describe =
            || self.coordinates(point).iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join(", ");
        for (axis, &value_index) in self.axes.iter().zip(&point.value_indices) {
            let value = &axis.values[value_index];
            let fail = |m: String| input(&self.file, format!("axes.{}: {m}", axis.name));
            let segments: Vec<&str> = axis.segments.iter().map(String::as_str).collect();
            match segments.as_slice() {
                ["trace", "rate_multiplier"] => {
                    let m = number(value).filter(|m| crate::validate::is_positive(*m));
                    rate_multiplier = m.ok_or_else(|| fail(format!("expected a number > 0, got {value}")))?;
                }
                ["strategy"] => {
                    let name = value
                        .as_str()
                        .ok_or_else(|| fail(format!("expected a strategy name, got {value}")))?;
                    if !self.base.strategies.iter().any(|s| s.name == name) {
                        let known: Vec<&str> = self.base.strategies.iter().map(|s| s.name.as_str()).collect();
                        return Err(fail(format!(
                            "unknown strategy {name:?} (the scenario has: {})",
                            known.join(", ")
                        )));
                    }
                    strategy = Some(name.to_string());
                }
                ["seed"] | ["trace", "file"] => {
                    return Err(fail(
                        "cannot be swept (the trace is loaded once; use `replications` for seeds)".into(),
                    ))
                }
                ["limits", field] => {
                    let (field, value) = if *field == "burst_s" {
                        let seconds = number(value)
                            .filter(|s| crate::validate::is_positive(*s))
                            .ok_or_else(|| fail(format!("expected a number of seconds > 0, got {value}")))?;
                        ("burst", toml::Value::String(format!("{seconds}s")))
                    } else {
                        (*field, value.clone())
                    };
                    let Some(toml::Value::Table(deployments)) = table.get_mut("deployments") else {
                        return Err(fail("the scenario has no [deployments]".into()));
                    };
                    for (name, deployment) in deployments.iter_mut() {
                        let toml::Value::Table(deployment) = deployment else {
                            return Err(fail(format!("deployments.{name:?} is not a table")));
                        };
                        let path = ["limits".to_string(), field.to_string()];
                        set_path(deployment, &path, value.clone())
                            .map_err(|m| fail(format!("in deployment {name:?}: {m}")))?;
                    }
                }
                ["deployments", name, ..] => {
                    let exists = table.get("deployments").and_then(|d| d.get(*name)).is_some();
                    if !exists {
                        return Err(fail(format!("unknown deployment {name:?}")));
                    }
                    set_path(&mut table, &axis.segments, value.clone()).map_err(|e| fail(e.to_string()))?;
                }
                _ => set_path(&mut table, &axis.segments, value.clone()).map_err(|e| fail(e.to_string()))?,
            }
        }
        let base_dir = self.scenario_path.parent().unwrap_or(Path::new("."));
        let scenario = Scenario::from_value(table, &self.scenario_path, base_dir).map_err(|mut e| {
            // Point at the axis that set the refused key, else at the base scenario's line.
            let path = crate::toml_lines::path_of_message(&e.message);
            let axis = path.and_then(|p| self.axes.iter().find(|a| a.sets(p)));
            if axis.is_none() {
                e.line =
                    e.line.or_else(|| crate::toml_lines::line_of_message(&self.scenario_text, &e.message));
            }
            let at = axis.and_then(|a| a.line).map(|l| format!(":{l}")).unwrap_or_default();
            SweepError::Input(format!(
                "{}{at}: point {} ({}): {e}",
                self.file.display(),
                point.index,
                describe()
            ))
        })?;
        if scenario.trace.path != self.base.trace.path {
            return Err(input(&self.file, "axes: the trace file cannot change between points"));
        }
        let strategies = match &strategy {
            None => (0..scenario.strategies.len()).collect(),
            Some(name) => scenario.strategies.iter().position(|s| &s.name == name).into_iter().collect(),
        };
        Ok(PointSetup { scenario, rate_multiplier, strategies })
    }
}

/// A request with arrival and think time divided by `rate_multiplier`: ×2 replays the same
/// requests in half the time (open loop: twice the arrival rate; closed loop: sessions start
/// twice as often and tools answer twice as fast, while model latency is unchanged). Order is
/// preserved, since rounding a monotone map stays monotone.
pub fn scale_request(mut request: Request, rate_multiplier: f64) -> Request {
    if rate_multiplier != 1.0 {
        let scale = |micros: u64| (micros as f64 / rate_multiplier).round() as u64;
        request.arrival = Instant::from_micros(scale(request.arrival.as_micros()));
        request.think = Duration::from_micros(scale(request.think.as_micros()));
    }
    request
}

fn number(value: &toml::Value) -> Option<f64> {
    match value {
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(f) => Some(*f),
        _ => None,
    }
}

/// A value as it appears in results and seeds: strings bare, numbers in shortest form.
pub fn value_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// An override path that cannot be set in a scenario table.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SetPathError {
    /// No segments at all.
    #[error("empty path")]
    Empty,
    /// The path walks through a value that is not a table; `path` is the dotted path up to it.
    #[error("{path} is a {found}, not a table")]
    NotATable { path: String, found: &'static str },
}

/// An `[axes]` entry that is not a non-empty list of values; `axis` is its dotted path below
/// `axes`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AxisError {
    #[error("axes.{axis}: needs at least one value")]
    NoValues { axis: String },
    /// `value` is the TOML value written instead of a list.
    #[error("axes.{axis}: expected a list of values, got {found} (write [{value}] for one value)")]
    NotAList { axis: String, found: &'static str, value: String },
}

/// Sets `segments` inside `table`, creating missing tables; refuses to walk through a value
/// that is not a table.
fn set_path(table: &mut toml::Table, segments: &[String], value: toml::Value) -> Result<(), SetPathError> {
    let (last, parents) = segments.split_last().ok_or(SetPathError::Empty)?;
    let mut current = table;
    for (depth, segment) in parents.iter().enumerate() {
        let entry = current.entry(segment.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(t) => t,
            other => {
                return Err(SetPathError::NotATable {
                    path: join_path(&segments[..=depth]),
                    found: other.type_str(),
                })
            }
        };
    }
    current.insert(last.clone(), value);
    Ok(())
}

/// `["deployments", "anthropic/sonnet", "limits"]` → `deployments."anthropic/sonnet".limits`.
pub fn join_path(segments: &[String]) -> String {
    segments
        .iter()
        .map(|s| {
            if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                s.clone()
            } else {
                format!("{s:?}")
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Flattens `[axes]` into dotted paths with their values, in the order they are written in the
/// file (toml's own tables are sorted, so the order comes from a format-preserving parse).
fn axes_in_order(text: &str, axes: &toml::Table) -> Result<Vec<Axis>, AxisError> {
    let mut flat = Vec::new();
    flatten(axes, &mut Vec::new(), &mut flat)?;
    // Each axis's position is where its list of values starts in the text.
    let mut positions: Vec<(Vec<String>, usize)> = Vec::new();
    if let Ok(doc) = toml_edit::ImDocument::parse(text) {
        if let Some(item) = doc.get("axes") {
            leaf_positions(item, &mut Vec::new(), &mut positions);
        }
    }
    let position = |axis: &Axis| positions.iter().find(|(p, _)| *p == axis.segments).map(|(_, at)| *at);
    flat.sort_by_key(|axis| position(axis).unwrap_or(usize::MAX));
    for axis in &mut flat {
        axis.line = position(axis).map(|at| crate::toml_lines::line_of(text, at));
    }
    Ok(flat)
}

fn flatten(table: &toml::Table, prefix: &mut Vec<String>, out: &mut Vec<Axis>) -> Result<(), AxisError> {
    for (key, value) in table {
        prefix.push(key.clone());
        match value {
            toml::Value::Table(inner) => flatten(inner, prefix, out)?,
            toml::Value::Array(values) if !values.is_empty() => out.push(Axis {
                name: join_path(prefix),
                segments: prefix.clone(),
                values: values.clone(),
                line: None,
            }),
            toml::Value::Array(_) => return Err(AxisError::NoValues { axis: join_path(prefix) }),
            other => {
                return Err(AxisError::NotAList {
                    axis: join_path(prefix),
                    found: other.type_str(),
                    value: other.to_string(),
                })
            }
        }
        prefix.pop();
    }
    Ok(())
}

fn leaf_positions(item: &toml_edit::Item, prefix: &mut Vec<String>, out: &mut Vec<(Vec<String>, usize)>) {
    match item {
        toml_edit::Item::Table(t) => {
            for (key, child) in t.iter() {
                prefix.push(key.to_string());
                leaf_positions(child, prefix, out);
                prefix.pop();
            }
        }
        toml_edit::Item::Value(toml_edit::Value::InlineTable(t)) => {
            for (key, child) in t.iter() {
                prefix.push(key.to_string());
                leaf_positions(&toml_edit::Item::Value(child.clone()), prefix, out);
                prefix.pop();
            }
        }
        toml_edit::Item::Value(v) => out.push((prefix.clone(), v.span().map_or(usize::MAX, |s| s.start))),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_axis_sets_its_key_and_the_keys_inside_it_only() {
        let axis = |segments: &[&str]| Axis {
            name: join_path(&segments.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
            segments: segments.iter().map(|s| s.to_string()).collect(),
            values: vec![toml::Value::Integer(1)],
            line: Some(3),
        };
        let limits = axis(&["deployments", "a", "limits"]);
        assert!(limits.sets(&limits.name));
        assert!(limits.sets(&format!("{}.rpm", limits.name)));
        assert!(!limits.sets(&format!("{}x.rpm", limits.name)), "a longer key is another key");
        let burst = axis(&["limits", "burst_s"]);
        assert!(burst.sets(r#"deployments."anthropic/sonnet".limits.burst"#));
        assert!(!burst.sets(r#"deployments."anthropic/sonnet".limits.rpm"#));
        assert!(axis(&["limits", "rpm"]).sets("deployments.b.limits.rpm"));
    }

    #[test]
    fn axes_keep_the_order_they_are_written_in() {
        let text = r#"
scenario = "s.toml"
[axes]
trace.rate_multiplier = [1, 2]
limits.burst_s = [1, 10]
deployments."anthropic/sonnet".limits.rpm = [1000]
strategy = ["a"]
"#;
        let raw: SweepFile = toml::from_str(text).unwrap();
        let axes = axes_in_order(text, &raw.axes).unwrap();
        let names: Vec<&str> = axes.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "trace.rate_multiplier",
                "limits.burst_s",
                r#"deployments."anthropic/sonnet".limits.rpm"#,
                "strategy"
            ]
        );
    }

    #[test]
    fn set_path_creates_tables_and_refuses_to_walk_through_values() {
        let mut table: toml::Table = "a = 1\n[b]\nc = 2".parse().unwrap();
        set_path(&mut table, &["b".into(), "d".into(), "e".into()], toml::Value::Integer(3)).unwrap();
        assert_eq!(table["b"]["d"]["e"].as_integer(), Some(3));
        let e = set_path(&mut table, &["a".into(), "x".into()], toml::Value::Integer(3)).unwrap_err();
        assert_eq!(e.to_string(), "a is a integer, not a table");
    }

    #[test]
    fn scaling_divides_arrival_and_think_and_keeps_order() {
        let mut r = crate::trace::Request {
            id: 1,
            arrival: Instant::from_millis(1001),
            class: crate::trace::ClassId::INTERACTIVE,
            input_tokens: 1,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
            output_tokens: 1,
            max_tokens: 1,
            session: None,
            parent: None,
            think: Duration::from_millis(400),
            deadline: None,
            line: 2,
        };
        r = scale_request(r, 4.0);
        assert_eq!(r.arrival, Instant::from_micros(250_250));
        assert_eq!(r.think, Duration::from_micros(100_000));
        let times: Vec<u64> = (0..1000u64).map(|us| (us as f64 / 3.0).round() as u64).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }
}
