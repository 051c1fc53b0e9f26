//! The plots of `sim report`, each written as PNG and SVG with plotters.
//!
//! Text in PNGs is drawn with DejaVu Sans embedded in the binary (`assets/fonts`, Bitstream
//! Vera licence) through plotters' `ab_glyph` feature, so no system font, fontconfig or font
//! package is needed on any machine; SVGs name the generic `sans-serif` family and let the
//! viewer draw the text. Legends are drawn in a strip above the plotting area, so they never
//! cover data. This module owns the pictures; it must not know how the numbers were produced
//! (it draws what [`super::data`] read back from disk).

use super::data::{Incident, LatencyRow, MinuteRow, ReportError, RunDir, SweepResults};
use super::glyphs::TextBitMap;
use crate::metric::{Figure, Metric, Unit};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// DejaVu Sans (Bitstream Vera licence, see `assets/fonts/LICENSE-DejaVu.txt`).
static FONT_TTF: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FONT: &str = "sans-serif";

/// Parses and registers the embedded font once (plotters' registry serves text measurement
/// for SVG layout; [`TextBitMap`] draws PNG text from the returned face). A font that cannot
/// be parsed is a clear error, never blank labels or a panic.
fn ensure_font() -> Result<ab_glyph::FontRef<'static>, ReportError> {
    static FACE: std::sync::OnceLock<Option<ab_glyph::FontRef<'static>>> = std::sync::OnceLock::new();
    FACE.get_or_init(|| {
        let registered = plotters::style::register_font(FONT, FontStyle::Normal, FONT_TTF).is_ok();
        ab_glyph::FontRef::try_from_slice(FONT_TTF).ok().filter(|_| registered)
    })
    .clone()
    .ok_or_else(|| ReportError::Draw {
        plot: "(all)".into(),
        message: "the embedded font assets/fonts/DejaVuSans.ttf could not be parsed".into(),
    })
}

/// One plot written to disk.
#[derive(Clone, Debug, PartialEq)]
pub struct PlotFile {
    /// File stem (`ttft_cdf` for `ttft_cdf.png` and `ttft_cdf.svg`).
    pub stem: String,
    pub title: String,
    pub png: PathBuf,
    pub svg: PathBuf,
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Okabe–Ito colours: distinguishable with the common colour-vision deficiencies.
const PALETTE: [RGBColor; 14] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(120, 120, 120),
    RGBColor(0, 0, 0),
    // Beyond Okabe–Ito's eight: darker and lighter companions, so wide sweeps stay distinct.
    RGBColor(240, 228, 66),
    RGBColor(117, 112, 179),
    RGBColor(166, 86, 40),
    RGBColor(27, 120, 55),
    RGBColor(153, 0, 76),
    RGBColor(0, 90, 140),
];
const INCIDENT_SHADE: RGBColor = RGBColor(220, 50, 47);

/// Sweep points that lose a larger share of requests are left out of the cost/latency plane.
const LOST_SHARE_SHOWN: f64 = 0.05;

fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn font(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

/// Draws the plot twice, into the PNG and the SVG, with the same generic drawing code.
macro_rules! render {
    ($dir:expr, $stem:expr, $title:expr, $size:expr, $draw:expr) => {{
        let stem: &str = $stem;
        let png = $dir.join(format!("{stem}.png"));
        let svg = $dir.join(format!("{stem}.svg"));
        let fail = |e: Box<dyn std::error::Error>| ReportError::Draw {
            plot: stem.to_string(),
            message: e.to_string(),
        };
        {
            let root = TextBitMap::new(BitMapBackend::new(&png, $size), ensure_font()?).into_drawing_area();
            ($draw)(&root).map_err(fail)?;
            root.present().map_err(|e| fail(e.into()))?;
        }
        {
            let root = SVGBackend::new(&svg, $size).into_drawing_area();
            ($draw)(&root).map_err(fail)?;
            root.present().map_err(|e| fail(e.into()))?;
        }
        PlotFile { stem: stem.to_string(), title: $title.to_string(), png, svg }
    }};
}

/// Fills the background, writes the title and a legend strip; returns the area left for data.
fn frame<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    legend: &[(String, LegendMark)],
) -> Result<DrawingArea<DB, Shift>, Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let body = root.titled(title, font(24))?;
    if legend.is_empty() {
        return Ok(body);
    }
    let mut legend = legend.to_vec();
    if legend.len() > MAX_SHOWN {
        let more = legend.len() - (MAX_SHOWN - 1);
        legend.truncate(MAX_SHOWN - 1);
        legend.push((format!("… and {more} more"), LegendMark::Shade(WHITE)));
    }
    let rows = legend_rows(&legend, body.dim_in_pixel().0);
    let (strip, rest) = body.split_vertically(rows.len() as u32 * 24 + 8);
    for (r, row) in rows.iter().enumerate() {
        let width: i32 = row.iter().map(|(label, _)| legend_item_width(label)).sum();
        let mut x = (strip.dim_in_pixel().0 as i32 - width) / 2;
        let y = r as i32 * 24 + 12;
        for (label, mark) in row {
            match mark {
                LegendMark::Box(c) => {
                    strip.draw(&Rectangle::new([(x, y - 7), (x + 18, y + 7)], c.filled()))?
                }
                LegendMark::Line(c) => {
                    strip.draw(&PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3)))?
                }
                LegendMark::Shade(c) => {
                    strip.draw(&Rectangle::new([(x, y - 7), (x + 18, y + 7)], c.mix(0.18).filled()))?
                }
                LegendMark::Dot(c) => strip.draw(&Circle::new((x + 9, y), 5, c.filled()))?,
            }
            strip.draw(&Text::new(
                label.clone(),
                (x + 24, y),
                font(15).pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
            x += legend_item_width(label);
        }
    }
    Ok(rest)
}

/// How a legend entry is drawn.
#[derive(Clone, Copy, Debug)]
enum LegendMark {
    Box(RGBColor),
    Line(RGBColor),
    Shade(RGBColor),
    Dot(RGBColor),
}

/// Approximate width (DejaVu Sans at 15 px averages ~8.5 px per character) plus mark and gap.
fn legend_item_width(label: &str) -> i32 {
    24 + (label.chars().count() as f64 * 8.6) as i32 + 26
}

fn legend_rows(items: &[(String, LegendMark)], width_px: u32) -> Vec<Vec<(String, LegendMark)>> {
    let mut rows: Vec<Vec<(String, LegendMark)>> = vec![Vec::new()];
    let mut used = 0;
    for item in items {
        let w = legend_item_width(&item.0);
        if used + w > width_px as i32 - 40 && !rows.last().is_some_and(Vec::is_empty) {
            rows.push(Vec::new());
            used = 0;
        }
        used += w;
        rows.last_mut().expect("at least one row").push(item.clone());
    }
    rows
}

/// The distinct values in order of first appearance (a set keeps it linear in the rows,
/// whatever the number of names a file holds).
fn unique<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut out: Vec<String> = Vec::new();
    for v in values {
        if seen.insert(v) {
            out.push(v.to_string());
        }
    }
    out
}

/// At most this many panels (classes of the TTFT CDF, strategies of the 429 plot), lines
/// (strategies of the TTFT CDF) or stacked layers (deployments of the 429 plot; the rest are
/// summed into one "other" layer) in one picture, and legend entries in one legend: past a few
/// dozen they cannot be told apart, and the image (its height grows with the panels) and the
/// time to draw it stay bounded whatever a results directory names. The CSV files keep all.
pub const MAX_SHOWN: usize = 24;

/// At most this many time-bucket values in the 429 plot in all (panels × layers × buckets):
/// minutes are grouped into wider buckets so that memory, drawing time and the SVG stay
/// bounded (a few MB) whatever the number of series or the latest minute. A step is drawn
/// only where the count changes.
pub const MAX_PLOT_CELLS: u64 = 400_000;

/// "the first 24 of 60 strategies" when some are left out.
fn shown_note(shown: usize, all: usize, what: &str) -> String {
    if all > shown {
        format!(" (the first {shown} of {all} {what})")
    } else {
        String::new()
    }
}

/// A number for an axis tick or a label: `4M`, `1.5k`, `0.012`, without float noise.
pub fn compact_number(x: f64) -> String {
    let trim = |t: String| {
        if t.contains('.') {
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            t
        }
    };
    let a = x.abs();
    if a >= 1e9 {
        format!("{}G", trim(format!("{:.2}", x / 1e9)))
    } else if a >= 1e6 {
        format!("{}M", trim(format!("{:.2}", x / 1e6)))
    } else if a >= 1e4 {
        format!("{}k", trim(format!("{:.2}", x / 1e3)))
    } else if a >= 10.0 || a == 0.0 {
        trim(format!("{x:.1}"))
    } else {
        trim(format!("{x:.4}"))
    }
}

/// A tick label with as many decimals as an axis spanning `span` needs to tell its ticks
/// apart (about ten ticks per axis).
fn tick_label(x: f64, span: f64) -> String {
    let decimals = if span > 0.0 { (1.0 - span.log10().floor()).clamp(0.0, 6.0) as usize } else { 2 };
    format!("{x:.decimals$}")
}

/// Seconds with a precision that suits the magnitude (axis ticks).
fn seconds_label(s: f64) -> String {
    if s >= 10.0 {
        format!("{s:.0}")
    } else if s >= 1.0 {
        format!("{s:.1}")
    } else {
        format!("{s:.2}")
    }
}

/// Whether `x` is 1, 2 or 5 times a power of ten (within rounding): the tick labels of a log
/// axis that stay readable.
fn is_one_two_five(x: f64) -> bool {
    if x <= 0.0 {
        return false;
    }
    let mantissa = x / 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().any(|m| (mantissa - m).abs() < 1e-3 * m)
}

/// The nearest 1, 2 or 5 times a power of ten at or below (`up = false`) or above `x > 0`.
fn snap_one_two_five(x: f64, up: bool) -> f64 {
    let decade = 10f64.powf(x.log10().floor());
    let steps = [1.0, 2.0, 5.0, 10.0].map(|m| m * decade);
    if up {
        steps.into_iter().find(|s| *s >= x * (1.0 - 1e-9)).unwrap_or(10.0 * decade)
    } else {
        steps.into_iter().rev().find(|s| *s <= x * (1.0 + 1e-9)).unwrap_or(decade)
    }
}

/// Every 1-2-5 value in `[lo, hi]`: the labelled ticks of a log axis.
fn one_two_five_between(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    // Finite decades only: an infinite bound must not loop forever.
    while decade <= hi && decade.is_finite() {
        for m in [1.0, 2.0, 5.0] {
            let v = m * decade;
            if v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9) {
                out.push(v);
            }
        }
        decade *= 10.0;
    }
    out
}

/// TTFT CDF: one panel per class, one line per strategy, log-latency axis.
fn draw_ttft_cdf<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, rows: &[LatencyRow]) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let all_strategies = unique(rows.iter().map(|r| r.strategy.as_str()));
    let all_classes: Vec<String> =
        unique(rows.iter().map(|r| r.class.as_str())).into_iter().filter(|c| c != "all").collect();
    let strategies = &all_strategies[..all_strategies.len().min(MAX_SHOWN)];
    let classes = &all_classes[..all_classes.len().min(MAX_SHOWN)];
    // Each (strategy, class) line, gathered in one pass.
    let mut lines: std::collections::HashMap<(&str, &str), Vec<&LatencyRow>> =
        std::collections::HashMap::new();
    for r in rows {
        lines.entry((r.strategy.as_str(), r.class.as_str())).or_default().push(r);
    }
    let legend: Vec<(String, LegendMark)> = strategies
        .iter()
        .enumerate()
        .map(|(i, s)| (s.clone(), LegendMark::Line(colour(i))))
        .chain(std::iter::once(("p50 / p95".to_string(), LegendMark::Line(RGBColor(170, 170, 170)))))
        .collect();
    let title = format!(
        "Time to first token by class: share of requests served within x{}{}",
        shown_note(classes.len(), all_classes.len(), "classes"),
        shown_note(strategies.len(), all_strategies.len(), "strategies")
    );
    let body = frame(root, &title, &legend)?;
    // Only finite positive latencies place the axis (an all-zero, negative or non-finite file
    // gets a default axis rather than an unbounded one).
    let positive = rows.iter().map(|r| r.ttft_ms / 1000.0).filter(|s| s.is_finite() && *s > 0.0);
    let min_positive = positive.clone().fold(f64::INFINITY, f64::min);
    let min_positive = if min_positive.is_finite() { min_positive } else { 1.0 };
    // Axis ends on 1-2-5 values so that the log axis has labelled ticks at both ends.
    let lo = snap_one_two_five(min_positive.max(1e-3) / 1.2, false);
    // At most 10¹² s: an absurd latency cannot make the tick list overflow to infinity.
    let hi = snap_one_two_five((positive.fold(0.0, f64::max).min(1e12) * 1.2).max(lo * 10.0), true);
    let columns = if classes.len() > 1 { 2 } else { 1 };
    let panel_rows = classes.len().div_ceil(columns).max(1);
    let panels = body.split_evenly((panel_rows, columns));
    for (class, panel) in classes.iter().zip(panels) {
        let mut chart = ChartBuilder::on(&panel)
            .caption(format!("class {class}"), font(19))
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(
                (lo..hi).log_scale().with_key_points(one_two_five_between(lo, hi)),
                0.0..100.0,
            )?;
        chart
            .configure_mesh()
            .x_desc("time to first token from arrival (s, log scale)")
            .y_desc("requests served (%)")
            .x_label_formatter(&|s| if is_one_two_five(*s) { seconds_label(*s) } else { String::new() })
            .y_label_formatter(&|p| format!("{p:.0}"))
            .label_style(font(14))
            .axis_desc_style(font(15))
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(225, 225, 225))
            .draw()?;
        for p in [50.0, 95.0] {
            chart
                .draw_series(LineSeries::new([(lo, p), (hi, p)], RGBColor(170, 170, 170).stroke_width(1)))?;
        }
        for (i, strategy) in strategies.iter().enumerate() {
            let points: Vec<(f64, f64)> = lines
                .get(&(strategy.as_str(), class.as_str()))
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .map(|r| ((r.ttft_ms / 1000.0).max(lo), r.quantile * 100.0))
                .collect();
            chart.draw_series(LineSeries::new(points, colour(i).stroke_width(2)))?;
        }
    }
    Ok(())
}

/// The 429 plot draws at most this many time buckets (one per minute up to about 69 days).
const MAX_PLOT_BUCKETS: u64 = 100_000;

/// 429s per minute, stacked by deployment, one panel per strategy; incidents shaded.
fn draw_rate_limits<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    minutes: &[MinuteRow],
    incidents: &[Incident],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let all_strategies = unique(minutes.iter().map(|r| r.strategy.as_str()));
    let strategies = &all_strategies[..all_strategies.len().min(MAX_SHOWN)];
    let strategy_index: HashMap<&str, usize> =
        strategies.iter().enumerate().map(|(i, s)| (s.as_str(), i)).collect();
    // Deployments by name; past MAX_SHOWN, those with the fewest 429s share one last layer.
    let mut totals: HashMap<&str, f64> = HashMap::new();
    for r in minutes {
        *totals.entry(r.deployment.as_str()).or_insert(0.0) += r.attempts_429;
    }
    let mut deployments: Vec<String> = totals.keys().map(|d| d.to_string()).collect();
    let mut folded = 0;
    if deployments.len() > MAX_SHOWN {
        deployments.sort_by(|a, b| totals[b.as_str()].total_cmp(&totals[a.as_str()]).then(a.cmp(b)));
        folded = deployments.len() - (MAX_SHOWN - 1);
        deployments.truncate(MAX_SHOWN - 1);
    }
    deployments.sort();
    // Every name of the file to its layer (the shared last one when folded).
    let named: HashMap<&str, usize> = deployments.iter().enumerate().map(|(i, d)| (d.as_str(), i)).collect();
    let other = deployments.len();
    let layer_index: HashMap<&str, usize> =
        totals.keys().map(|d| (*d, named.get(d).copied().unwrap_or(other))).collect();
    drop(named);
    if folded > 0 {
        deployments.push(format!("{folded} other deployments"));
    }
    let incident_deployments = unique(incidents.iter().map(|i| i.deployment.as_str()));
    let mut legend: Vec<(String, LegendMark)> =
        deployments.iter().enumerate().map(|(i, d)| (d.clone(), LegendMark::Box(colour(i)))).collect();
    for d in &incident_deployments {
        legend.push((format!("incident: {d}"), LegendMark::Shade(INCIDENT_SHADE)));
    }
    let title = format!(
        "Attempts answered 429 per minute, by deployment (stacked){}",
        shown_note(strategies.len(), all_strategies.len(), "strategies")
    );
    let body = frame(root, &title, &legend)?;
    // The axis ends with the last minute in which attempts were sent: batch results that
    // arrive hours later would otherwise squeeze the traffic into a sliver on the left.
    let last_minute = minutes
        .iter()
        .filter(|r| r.attempts > 0.0 || r.attempts_429 > 0.0)
        .map(|r| r.minute)
        .max()
        .unwrap_or(0)
        .saturating_add(1);
    let x_max = (last_minute as f64)
        .max(incidents.iter().map(|i| i.end_s / 60.0).fold(0.0, f64::max).min(last_minute as f64));
    // One bar per minute, unless the run is so long (or a minute so far out), or the series so
    // many, that minutes are grouped into buckets: at most MAX_PLOT_CELLS values in all.
    let series_count = (strategies.len() * deployments.len()).max(1) as u64;
    let max_buckets = (MAX_PLOT_CELLS / series_count).clamp(1, MAX_PLOT_BUCKETS);
    let width = last_minute.div_ceil(max_buckets).max(1);
    let buckets = usize::try_from(last_minute.div_ceil(width)).map_err(|_| "too many plot buckets")?;
    // Per strategy, per deployment layer: 429s per bucket.
    let mut series: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
    for r in minutes {
        let (Some(&s), Some(&d)) =
            (strategy_index.get(r.strategy.as_str()), layer_index.get(r.deployment.as_str()))
        else {
            continue;
        };
        let v = series.entry((s, d)).or_insert_with(|| vec![0.0; buckets]);
        if let Some(slot) = usize::try_from(r.minute / width).ok().and_then(|b| v.get_mut(b)) {
            *slot += r.attempts_429;
        }
    }
    let stacked_max = (0..strategies.len())
        .flat_map(|s| {
            let series = &series;
            let deployments = &deployments;
            (0..buckets).map(move |m| {
                (0..deployments.len()).map(|d| series.get(&(s, d)).map_or(0.0, |v| v[m])).sum::<f64>()
            })
        })
        .fold(0.0, f64::max);
    // At least 5 so that a run without 429s still gets whole-number ticks.
    let y_max = (stacked_max * 1.12).max(5.0);
    let panels = body.split_evenly((strategies.len().max(1), 1));
    for (s, (strategy, panel)) in strategies.iter().zip(panels).enumerate() {
        let mut chart = ChartBuilder::on(&panel)
            .caption(
                format!(
                    "strategy {strategy}: {} attempts answered 429",
                    minutes.iter().filter(|r| &r.strategy == strategy).map(|r| r.attempts_429).sum::<f64>()
                ),
                font(19),
            )
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_desc("time since start of trace (min)")
            .y_desc(if width == 1 {
                "429 answers per minute".to_string()
            } else {
                format!("429 answers per {width} minutes")
            })
            .x_label_formatter(&|m| tick_label(*m, x_max))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .y_labels(6)
            .label_style(font(14))
            .axis_desc_style(font(15))
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()?;
        for incident in incidents {
            let (a, b) = ((incident.start_s / 60.0).min(x_max), (incident.end_s / 60.0).min(x_max));
            chart.draw_series(std::iter::once(Rectangle::new(
                [(a, 0.0), (b, y_max)],
                INCIDENT_SHADE.mix(0.12).filled(),
            )))?;
        }
        // Cumulative sums: drawing the topmost layer first leaves each band visible.
        let mut cumulative = vec![0.0; buckets];
        let mut layers = Vec::new();
        for d in 0..deployments.len() {
            if let Some(v) = series.get(&(s, d)) {
                for (c, x) in cumulative.iter_mut().zip(v) {
                    *c += x;
                }
            }
            layers.push((d, cumulative.clone()));
        }
        for (d, layer) in layers.iter().rev() {
            let points = steps(layer, width as f64);
            chart.draw_series(AreaSeries::new(points, 0.0, colour(*d).mix(0.85)).border_style(colour(*d)))?;
        }
    }
    Ok(())
}

/// A step outline of per-bucket values (each flat across its bucket of `width` minutes), with
/// a point only where the value changes: a mostly-idle series costs a few points, not two per
/// bucket.
fn steps(values: &[f64], width: f64) -> Vec<(f64, f64)> {
    let mut points = Vec::new();
    let mut level: Option<f64> = None;
    for (m, v) in values.iter().enumerate() {
        let x = m as f64 * width;
        if level != Some(*v) {
            if let Some(previous) = level {
                points.push((x, previous));
            }
            points.push((x, *v));
            level = Some(*v);
        }
    }
    points.push((values.len() as f64 * width, level.unwrap_or(0.0)));
    points
}

/// Share of served attempts per deployment, one stacked bar per strategy.
fn draw_load<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, run: &RunDir) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let strategies = &run.summary.strategies;
    let mut deployments: Vec<String> = Vec::new();
    for s in strategies {
        for name in s.by_deployment.keys() {
            if !deployments.contains(name) {
                deployments.push(name.clone());
            }
        }
    }
    deployments.sort();
    let legend: Vec<(String, LegendMark)> =
        deployments.iter().enumerate().map(|(i, d)| (d.clone(), LegendMark::Box(colour(i)))).collect();
    let body = frame(root, "Load distribution: share of served attempts by deployment", &legend)?;
    let names: Vec<String> = strategies.iter().map(|s| s.name.clone()).collect();
    let mut chart = ChartBuilder::on(&body)
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        // plotters' integer ranges include their end: 0..n-1 gives n segments.
        .build_cartesian_2d((0..names.len().saturating_sub(1)).into_segmented(), 0.0..100.0)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("strategy")
        .y_desc("served attempts (%)")
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_label_formatter(&|p| format!("{p:.0}"))
        .label_style(font(15))
        .axis_desc_style(font(15))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()?;
    let bar_margin = (body.dim_in_pixel().0 / (names.len() as u32 * 2 + 2)).min(220) / 2;
    for (i, s) in strategies.iter().enumerate() {
        let mut bottom = 0.0;
        for (d, name) in deployments.iter().enumerate() {
            let share = s.by_deployment.get(name).map_or(0.0, |d| d.load_share) * 100.0;
            if share <= 0.0 {
                continue;
            }
            let mut bar = Rectangle::new(
                [(SegmentValue::Exact(i), bottom), (SegmentValue::Exact(i + 1), bottom + share)],
                colour(d).filled(),
            );
            bar.set_margin(0, 0, bar_margin, bar_margin);
            chart.draw_series(std::iter::once(bar))?;
            if share >= 3.0 {
                let label_colour =
                    if d % PALETTE.len() == 1 || d % PALETTE.len() == 4 { BLACK } else { WHITE };
                chart.draw_series(std::iter::once(Text::new(
                    format!("{share:.1}%"),
                    (SegmentValue::CenterOf(i), bottom + share / 2.0),
                    font(15).color(&label_colour).pos(Pos::new(HPos::Center, VPos::Center)),
                )))?;
            }
            bottom += share;
        }
    }
    Ok(())
}

/// A labelled point of the cost/latency plane.
#[derive(Clone, Debug, PartialEq)]
pub struct CostPoint {
    pub label: String,
    pub latency_s: f64,
    pub cost_usd: f64,
}

/// Indices of the points no other point beats on both axes (lower latency and lower cost),
/// sorted by latency.
pub fn pareto_front(points: &[CostPoint]) -> Vec<usize> {
    let vectors: Vec<Vec<f64>> = points.iter().map(|p| vec![p.latency_s, p.cost_usd]).collect();
    let on_front = crate::sweep::stats::pareto_front(&vectors);
    let mut front: Vec<usize> = (0..points.len()).filter(|&i| on_front[i]).collect();
    front.sort_by(|&a, &b| points[a].latency_s.total_cmp(&points[b].latency_s));
    front
}

fn padded(lo: f64, hi: f64) -> (f64, f64) {
    let span = (hi - lo).max(hi.abs() * 0.05).max(1e-9);
    ((lo - span * 0.15).max(0.0), hi + span * 0.15)
}

fn draw_cost<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    points: &[CostPoint],
    latency_desc: &str,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let front = pareto_front(points);
    let legend = vec![
        ("strategy / point".to_string(), LegendMark::Dot(colour(0))),
        ("Pareto front (nothing is both faster and cheaper)".to_string(), LegendMark::Line(colour(5))),
    ];
    let body = frame(root, "Cost vs interactive first-token latency (lower left is better)", &legend)?;
    let (x0, x1) = padded(
        points.iter().map(|p| p.latency_s).fold(f64::INFINITY, f64::min),
        points.iter().map(|p| p.latency_s).fold(0.0, f64::max),
    );
    let (y0, y1) = padded(
        points.iter().map(|p| p.cost_usd).fold(f64::INFINITY, f64::min),
        points.iter().map(|p| p.cost_usd).fold(0.0, f64::max),
    );
    let mut chart: ChartContext<DB, Cartesian2d<RangedCoordf64, RangedCoordf64>> = ChartBuilder::on(&body)
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .x_desc(latency_desc)
        .y_desc("cost of the trace (USD)")
        .x_label_formatter(&|s| tick_label(*s, x1 - x0))
        .y_label_formatter(&|c| tick_label(*c, y1 - y0))
        .label_style(font(14))
        .axis_desc_style(font(15))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()?;
    chart.draw_series(LineSeries::new(
        front.iter().map(|&i| (points[i].latency_s, points[i].cost_usd)),
        colour(5).stroke_width(2),
    ))?;
    for &i in &front {
        chart.draw_series(std::iter::once(Circle::new(
            (points[i].latency_s, points[i].cost_usd),
            10,
            colour(5).stroke_width(2),
        )))?;
    }
    chart
        .draw_series(points.iter().map(|p| Circle::new((p.latency_s, p.cost_usd), 6, colour(0).filled())))?;
    // One label per position: strategies with identical results share it instead of
    // overprinting each other.
    // With many points (a sweep), only the Pareto front is labelled: forty labels would hide
    // the data; the full table is in report.md.
    let label_all = points.len() <= 12;
    let mut labelled: Vec<CostPoint> = Vec::new();
    for (i, p) in points.iter().enumerate() {
        if !label_all && !front.contains(&i) {
            continue;
        }
        match labelled.iter_mut().find(|q| q.latency_s == p.latency_s && q.cost_usd == p.cost_usd) {
            Some(q) => q.label = format!("{}, {}", q.label, p.label),
            None => labelled.push(p.clone()),
        }
    }
    // Labels to the right of a point, or to its left in the right part so they stay inside;
    // a label that would overlap one already placed moves up or down a line.
    let right_quarter = x0 + (x1 - x0) * 0.6;
    let mut placed: Vec<(i32, i32, i32, i32)> = Vec::new();
    for p in &labelled {
        let text = format!("{}  (${:.2}, {:.2} s)", p.label, p.cost_usd, p.latency_s);
        let width = (text.chars().count() as f64 * 8.6) as i32;
        let (anchor, dx) = if p.latency_s > right_quarter { (HPos::Right, -14) } else { (HPos::Left, 14) };
        let (px, py) = chart.backend_coord(&(p.latency_s, p.cost_usd));
        let (left, right) = if dx < 0 { (px + dx - width, px + dx) } else { (px + dx, px + dx + width) };
        let overlaps = |dy: i32| {
            placed
                .iter()
                .any(|(l, r, t, b)| left < *r && *l < right && py + dy - 10 < *b && *t < py + dy + 10)
        };
        let dy = [0, -20, 20, -40, 40, -60, 60].into_iter().find(|dy| !overlaps(*dy)).unwrap_or(0);
        placed.push((left, right, py + dy - 10, py + dy + 10));
        chart.draw_series(std::iter::once(
            EmptyElement::at((p.latency_s, p.cost_usd))
                + Text::new(text, (dx, dy), font(15).pos(Pos::new(anchor, VPos::Center))),
        ))?;
    }
    Ok(())
}

/// (parameter value, mean, optional 95% CI as (low, high)).
type SweepPoint = (f64, f64, Option<(f64, f64)>);

/// One line (with a CI band) per group, against the swept parameter.
struct SweepLine {
    label: String,
    points: Vec<SweepPoint>,
}

fn draw_sweep_metric<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    lines: &[SweepLine],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let mut legend: Vec<(String, LegendMark)> =
        lines.iter().enumerate().map(|(i, l)| (l.label.clone(), LegendMark::Line(colour(i)))).collect();
    legend.push(("95% confidence band".into(), LegendMark::Shade(RGBColor(60, 60, 60))));
    let body = frame(root, title, &legend)?;
    let xs = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
    let ys = lines.iter().flat_map(|l| {
        l.points.iter().flat_map(|p| [Some(p.1), p.2.map(|c| c.0), p.2.map(|c| c.1)].into_iter().flatten())
    });
    let (x0, x1) = (xs.clone().fold(f64::INFINITY, f64::min), xs.fold(f64::NEG_INFINITY, f64::max));
    let (y0, y1) = padded(ys.clone().fold(f64::INFINITY, f64::min), ys.fold(f64::NEG_INFINITY, f64::max));
    let x_pad = ((x1 - x0) * 0.03).max(x1.abs() * 0.01).max(1e-9);
    let mut chart = ChartBuilder::on(&body)
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d((x0 - x_pad)..(x1 + x_pad), y0..y1)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|x| compact_number(*x))
        .y_label_formatter(&|y| compact_number(*y))
        .label_style(font(14))
        .axis_desc_style(font(15))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()?;
    for (i, line) in lines.iter().enumerate() {
        let band: Vec<(f64, f64)> = line.points.iter().filter_map(|p| p.2.map(|c| (p.0, c.1))).collect();
        let lower: Vec<(f64, f64)> =
            line.points.iter().rev().filter_map(|p| p.2.map(|c| (p.0, c.0))).collect();
        if band.len() >= 2 {
            let polygon: Vec<(f64, f64)> = band.into_iter().chain(lower).collect();
            chart.draw_series(std::iter::once(Polygon::new(polygon, colour(i).mix(0.18).filled())))?;
        }
        chart.draw_series(LineSeries::new(
            line.points.iter().map(|p| (p.0, p.1)),
            colour(i).stroke_width(2),
        ))?;
        chart.draw_series(line.points.iter().map(|p| Circle::new((p.0, p.1), 4, colour(i).filled())))?;
    }
    Ok(())
}

const SIZE_WIDE: (u32, u32) = (1200, 760);

/// The interactive TTFT p95 of each strategy (or, without an interactive class, the overall
/// p95) as seconds, and the axis description that says which.
fn cost_points_of_run(run: &RunDir) -> (Vec<CostPoint>, &'static str) {
    let has_interactive =
        run.summary.strategies.iter().all(|s| Metric::headline_latency().value(s).is_some());
    let metric = Metric::latency_axis(has_interactive);
    let desc = if has_interactive {
        "interactive TTFT p95, from arrival (s)"
    } else {
        "TTFT p95 over all classes, from arrival (s)"
    };
    let cost = Metric::overall(Figure::CostUsd);
    let points = run
        .summary
        .strategies
        .iter()
        .filter_map(|s| {
            Some(CostPoint {
                label: s.name.clone(),
                latency_s: metric.value(s)? / 1000.0,
                cost_usd: cost.value(s)?,
            })
        })
        .collect();
    (points, desc)
}

/// Writes every plot a run directory supports into `out`; returns them in report order.
pub fn plot_run(run: &RunDir, out: &Path) -> Result<Vec<PlotFile>, ReportError> {
    ensure_font()?;
    let mut files = Vec::new();
    if let Some(latency) = run.latency.as_ref().filter(|l| l.iter().any(|r| r.class != "all")) {
        let classes = unique(latency.iter().map(|r| r.class.as_str())).len().saturating_sub(1).min(MAX_SHOWN);
        let height = 160 + 380 * classes.div_ceil(2) as u32;
        files.push(render!(out, "ttft_cdf", "Time to first token by class (CDF)", (1200, height), |root| {
            draw_ttft_cdf(root, latency)
        }));
    }
    if !run.minutes.is_empty() {
        let incidents: &[Incident] = run.incidents.as_deref().unwrap_or(&[]);
        let strategies = unique(run.minutes.iter().map(|r| r.strategy.as_str())).len().min(MAX_SHOWN) as u32;
        files.push(render!(
            out,
            "rate_limits_over_time",
            "429s per minute by deployment, incidents shaded",
            (1200, 140 + 300 * strategies.max(1)),
            |root| draw_rate_limits(root, &run.minutes, incidents)
        ));
    }
    files.push(render!(out, "load_distribution", "Load distribution by deployment", (1000, 640), |root| {
        draw_load(root, run)
    }));
    let (points, desc) = cost_points_of_run(run);
    if !points.is_empty() {
        files.push(render!(out, "cost_vs_latency", "Cost vs interactive TTFT p95", SIZE_WIDE, |root| {
            draw_cost(root, &points, desc)
        }));
    }
    Ok(files)
}

/// Unit of a metric for axis labels, from the catalogue (nothing for a column it does not know).
fn unit_of(metric: &str) -> &'static str {
    match Metric::parse(metric).map(|m| m.unit()) {
        Ok(Unit::Milliseconds) => " (ms)",
        Ok(Unit::Usd) => " (USD)",
        Ok(Unit::Share) => " (fraction)",
        Ok(Unit::Count) | Err(_) => "",
    }
}

/// Writes, for a sweep, each metric against the swept parameter with its CI band, and the
/// cost/latency plane with the Pareto front.
pub fn plot_sweep(sweep: &SweepResults, out: &Path) -> Result<Vec<PlotFile>, ReportError> {
    ensure_font()?;
    let t = &sweep.table;
    let parameters = sweep.parameters();
    // The x axis: the first swept parameter with numeric values; others become line groups.
    let x_column =
        parameters.iter().copied().find(|&c| (0..t.rows.len()).all(|r| t.rows[r][c].parse::<f64>().is_ok()));
    let mut files = Vec::new();
    if let Some(x) = x_column {
        let group_columns: Vec<usize> = sweep
            .key_columns()
            .into_iter()
            .filter(|&c| c != x && t.header[c] != "point")
            .filter(|c| t.header[*c] == "strategy" || parameters.contains(c))
            .collect();
        // The headline metrics when the sweep has them (a picture per column of a wide sweep
        // would bury them); otherwise every metric.
        let all = sweep.metrics();
        let wanted: Vec<String> = Metric::headline().iter().map(Metric::to_string).collect();
        let headline: Vec<String> = all.iter().filter(|m| wanted.contains(m)).cloned().collect();
        let chosen = if headline.is_empty() { all } else { headline };
        for metric in chosen {
            let mut groups: Vec<SweepLine> = Vec::new();
            for r in 0..t.rows.len() {
                let label = if group_columns.is_empty() {
                    "mean".to_string()
                } else {
                    // `strategy` by its value alone; parameters as name=value so a legend reads.
                    group_columns
                        .iter()
                        .map(|&c| {
                            if t.header[c] == "strategy" {
                                t.rows[r][c].clone()
                            } else {
                                format!(
                                    "{}={}",
                                    t.header[c].rsplit('.').next().unwrap_or(&t.header[c]),
                                    t.rows[r][c]
                                )
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let Some(mean) = sweep.mean(r, &metric)? else { continue };
                let ci = match (sweep.stat(r, &metric, "_ci95_lo")?, sweep.stat(r, &metric, "_ci95_hi")?) {
                    (Some(a), Some(b)) => Some((a, b)),
                    _ => None,
                };
                let point = (t.number(r, x)?, mean, ci);
                match groups.iter_mut().find(|g| g.label == label) {
                    Some(g) => g.points.push(point),
                    None => groups.push(SweepLine { label, points: vec![point] }),
                }
            }
            for g in &mut groups {
                g.points.sort_by(|a, b| a.0.total_cmp(&b.0));
            }
            let param = t.header[x].clone();
            let title = format!("{metric} vs {param} (mean and 95% CI)");
            let y_desc = format!("{metric}{}", unit_of(&metric));
            let stem =
                format!("sweep_{}", metric.replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_"));
            files.push(render!(out, &stem, &title, SIZE_WIDE, |root| {
                draw_sweep_metric(root, &title, &param, &y_desc, &groups)
            }));
        }
    }
    let latency_metric = [Metric::latency_axis(true), Metric::latency_axis(false)]
        .into_iter()
        .map(|m| m.to_string())
        .find(|m| t.column(&format!("{m}_mean")).is_some());
    let latency_metric = latency_metric.as_deref();
    let cost_metric = Metric::overall(Figure::CostUsd).to_string();
    let failed_metric = Metric::overall(Figure::FailedRate).to_string();
    if let (Some(latency_metric), Some(_)) = (latency_metric, t.column(&format!("{cost_metric}_mean"))) {
        let mut points = Vec::new();
        for r in 0..t.rows.len() {
            // A point where nothing succeeded has no latency: it is not placed at zero.
            let (Some(latency), Some(cost)) = (sweep.mean(r, latency_metric)?, sweep.mean(r, &cost_metric)?)
            else {
                continue;
            };
            // Nor are points that lose many requests: failing is cheap, and they would crowd
            // the front with configurations nobody would run.
            if t.column(&format!("{failed_metric}_mean")).is_some()
                && sweep.mean(r, &failed_metric)?.is_some_and(|f| f > LOST_SHARE_SHOWN)
            {
                continue;
            }
            let label = sweep
                .key_columns()
                .iter()
                .filter(|&&c| t.header[c] == "strategy" || parameters.contains(&c))
                .map(|&c| {
                    let value = &t.rows[r][c];
                    match (t.header[c].as_str(), value.parse::<f64>()) {
                        ("strategy", _) => value.clone(),
                        (name, Ok(x)) => format!("{name}={}", compact_number(x)),
                        (name, Err(_)) => format!("{name}={value}"),
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            points.push(CostPoint { label, latency_s: latency / 1000.0, cost_usd: cost });
        }
        let desc = if latency_metric.starts_with("interactive") {
            "interactive TTFT p95, mean over seeds (s)"
        } else {
            "TTFT p95, mean over seeds (s)"
        };
        files.push(render!(
            out,
            "cost_vs_latency",
            "Cost vs TTFT p95 per point and strategy (points losing more than 5% of requests left out)",
            SIZE_WIDE,
            |root| { draw_cost(root, &points, desc) }
        ));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(label: &str, latency_s: f64, cost_usd: f64) -> CostPoint {
        CostPoint { label: label.into(), latency_s, cost_usd }
    }

    #[test]
    fn pareto_front_keeps_exactly_the_undominated_points() {
        // b is beaten by a on both axes; d ties c on cost but is slower; e is the fastest.
        let points =
            [p("a", 2.0, 10.0), p("b", 3.0, 12.0), p("c", 4.0, 5.0), p("d", 5.0, 5.0), p("e", 1.0, 20.0)];
        assert_eq!(pareto_front(&points), vec![4, 0, 2]);
        assert_eq!(pareto_front(&[p("only", 1.0, 1.0)]), vec![0]);
        // Identical points do not dominate each other.
        assert_eq!(pareto_front(&[p("x", 1.0, 1.0), p("y", 1.0, 1.0)]).len(), 2);
    }

    #[test]
    fn compact_numbers_read_like_a_person_writes_them() {
        assert_eq!(compact_number(4_000_000.0), "4M");
        assert_eq!(compact_number(1_500_000.0), "1.5M");
        assert_eq!(compact_number(25_000.0), "25k");
        assert_eq!(compact_number(396.02), "396");
        assert_eq!(compact_number(0.012), "0.012");
        assert_eq!(compact_number(0.1 + 0.2), "0.3");
        assert_eq!(compact_number(0.0), "0");
        assert_eq!(compact_number(-2_000_000.0), "-2M");
    }

    #[test]
    fn log_axis_labels_only_at_one_two_five() {
        let labelled: Vec<f64> = [0.3, 0.5, 1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 20.0, 50.0]
            .into_iter()
            .filter(|x| is_one_two_five(*x))
            .collect();
        assert_eq!(labelled, [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0]);
        assert_eq!(one_two_five_between(0.5, 50.0), [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0]);
        assert_eq!(snap_one_two_five(1.6, false), 1.0);
        assert_eq!(snap_one_two_five(0.45, false), 0.2);
        assert_eq!(snap_one_two_five(21.0, true), 50.0);
        assert_eq!(snap_one_two_five(20.0, true), 20.0);
        assert_eq!(snap_one_two_five(3.0, true), 5.0);
    }

    #[test]
    fn legends_wrap_to_the_width() {
        let items: Vec<(String, LegendMark)> =
            (0..10).map(|i| (format!("deployment-{i}"), LegendMark::Box(colour(i)))).collect();
        let rows = legend_rows(&items, 600);
        assert!(rows.len() > 1);
        for row in &rows {
            let width: i32 = row.iter().map(|(l, _)| legend_item_width(l)).sum();
            assert!(width <= 560 || row.len() == 1);
        }
        assert_eq!(rows.iter().map(Vec::len).sum::<usize>(), 10);
    }
}
