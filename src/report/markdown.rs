//! `report.md` (sized for a pull-request comment: the headline table, then the images by
//! relative path) and `report.html` (one self-contained file: the same table and the PNGs
//! embedded as base64 data URIs, readable offline), and [`write_report`] that makes both with
//! the plots from a results directory.
//!
//! It owns the documents' layout; it must not know how plots are drawn or numbers produced.

use super::data::{ReportError, ResultsDir, RunDir, SweepResults};
use super::plots::{plot_run, plot_sweep, PlotFile};
use crate::metric::{Figure, Latency, Metric, Stat};
use base64::Engine as _;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What `sim report` wrote.
#[derive(Clone, Debug)]
pub struct ReportFiles {
    pub markdown: PathBuf,
    pub html: PathBuf,
    pub plots: Vec<PlotFile>,
}

/// A table: header and rows of cells.
struct Headline {
    title: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    note: Option<String>,
    /// Leading columns that name things (left-aligned); the rest are numbers.
    name_columns: usize,
}

fn percent(rate: f64) -> String {
    format!("{:.2}%", rate * 100.0)
}

fn seconds(ms: f64) -> String {
    format!("{:.2}s", ms / 1000.0)
}

fn run_headline(run: &RunDir) -> Headline {
    let s = &run.summary;
    let header = [
        "strategy",
        "requests",
        "429 att",
        "429 req",
        "failed",
        "TTFT p50",
        "TTFT p95",
        "interactive p95",
        "e2e p95",
        "cost $",
        "$/1k req",
    ]
    .map(String::from)
    .to_vec();
    let rows = s
        .strategies
        .iter()
        .map(|st| {
            let m = |figure: Figure| Metric::overall(figure).value(st);
            let or_dash = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map(f).unwrap_or_else(|| "-".into());
            let count = |v: f64| format!("{v:.0}");
            vec![
                st.name.clone(),
                or_dash(m(Figure::Requests), &count),
                or_dash(m(Figure::Attempt429Rate), &percent),
                or_dash(m(Figure::Request429Rate), &percent),
                or_dash(m(Figure::Failed), &count),
                or_dash(m(Figure::Latency(Latency::Ttft, Stat::P50)), &seconds),
                or_dash(m(Figure::Latency(Latency::Ttft, Stat::P95)), &seconds),
                or_dash(Metric::headline_latency().value(st), &seconds),
                or_dash(m(Figure::Latency(Latency::E2e, Stat::P95)), &seconds),
                or_dash(m(Figure::CostUsd), &|v| format!("{v:.2}")),
                or_dash(m(Figure::CostPer1kRequestsUsd), &|v| format!("{v:.3}")),
            ]
        })
        .collect();
    Headline {
        title: format!("routesim report: scenario {} · seed {} · trace {}", s.scenario, s.seed, s.trace),
        header,
        rows,
        note: None,
        name_columns: 1,
    }
}

/// At most this many rows of a sweep go into the PR-sized table.
const SWEEP_TABLE_ROWS: usize = 30;

fn sweep_headline(sweep: &SweepResults) -> Headline {
    let t = &sweep.table;
    let keys: Vec<usize> = sweep.key_columns();
    let metrics: Vec<String> = sweep.metrics().into_iter().take(6).collect();
    let mut header: Vec<String> = keys.iter().map(|&c| t.header[c].clone()).collect();
    header.extend(metrics.iter().map(|m| format!("{m} (mean [95% CI])")));
    let mut rows = Vec::new();
    for r in 0..t.rows.len().min(SWEEP_TABLE_ROWS) {
        let mut row: Vec<String> = keys.iter().map(|&c| t.rows[r][c].clone()).collect();
        for m in &metrics {
            let cell = |suffix: &str| t.column(&format!("{m}{suffix}")).map(|c| t.rows[r][c].clone());
            row.push(match (cell("_mean"), cell("_ci95_lo"), cell("_ci95_hi")) {
                (Some(mean), Some(lo), Some(hi)) => format!("{mean} [{lo}, {hi}]"),
                (Some(mean), _, _) => mean,
                _ => "-".into(),
            });
        }
        rows.push(row);
    }
    let note = (t.rows.len() > SWEEP_TABLE_ROWS)
        .then(|| format!("first {SWEEP_TABLE_ROWS} of {} rows; all in {}", t.rows.len(), t.path.display()));
    Headline {
        title: format!("routesim sweep report: {}", t.path.display()),
        header,
        rows,
        note,
        name_columns: keys.len(),
    }
}

fn markdown(headline: &Headline, plots: &[PlotFile], notes: &[String]) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "## {}\n", headline.title);
    let escape = |c: &String| c.replace('|', "\\|");
    let _ = writeln!(text, "| {} |", headline.header.iter().map(escape).collect::<Vec<_>>().join(" | "));
    let _ = writeln!(
        text,
        "|{}",
        headline
            .header
            .iter()
            .enumerate()
            .map(|(i, _)| if i < headline.name_columns { "---|" } else { "---:|" })
            .collect::<String>()
    );
    for row in &headline.rows {
        let _ = writeln!(text, "| {} |", row.iter().map(escape).collect::<Vec<_>>().join(" | "));
    }
    if let Some(note) = &headline.note {
        let _ = writeln!(text, "\n_{note}_");
    }
    for note in notes {
        let _ = writeln!(text, "\n_{note}_");
    }
    for plot in plots {
        let file = plot.png.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        let svg = plot.svg.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        let _ = writeln!(text, "\n### {}\n\n![{}]({file})\n\n([SVG]({svg}))", plot.title, plot.title);
    }
    text
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn html(headline: &Headline, plots: &[PlotFile], notes: &[String]) -> Result<String, ReportError> {
    let mut text = String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    let _ = writeln!(text, "<title>{}</title>", html_escape(&headline.title));
    text.push_str(
        "<style>\nbody{font-family:sans-serif;max-width:1240px;margin:2em auto;padding:0 1em;color:#222}\n\
         table{border-collapse:collapse;margin:1em 0}th,td{padding:4px 10px;border-bottom:1px solid #ddd}\n\
         td{text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}\n\
         </style>\n</head>\n<body>\n",
    );
    let _ = writeln!(text, "<h1>{}</h1>\n<table>\n<tr>", html_escape(&headline.title));
    for h in &headline.header {
        let _ = write!(text, "<th>{}</th>", html_escape(h));
    }
    text.push_str("</tr>\n");
    for row in &headline.rows {
        text.push_str("<tr>");
        for cell in row {
            let _ = write!(text, "<td>{}</td>", html_escape(cell));
        }
        text.push_str("</tr>\n");
    }
    text.push_str("</table>\n");
    for note in headline.note.iter().chain(notes) {
        let _ = writeln!(text, "<p><em>{}</em></p>", html_escape(note));
    }
    for plot in plots {
        let bytes = std::fs::read(&plot.png)
            .map_err(|source| ReportError::Write { path: plot.png.display().to_string(), source })?;
        let data = base64::engine::general_purpose::STANDARD.encode(bytes);
        let _ = writeln!(
            text,
            "<h2>{t}</h2>\n<img alt=\"{t}\" src=\"data:image/png;base64,{data}\">",
            t = html_escape(&plot.title)
        );
    }
    text.push_str("</body>\n</html>\n");
    Ok(text)
}

/// Reads the results in `dir` (`sim run --out` or `sim sweep --out`) and writes the plots,
/// `report.md` and `report.html` into `out` (created if missing).
pub fn write_report(dir: &Path, out: &Path) -> Result<ReportFiles, ReportError> {
    let results = ResultsDir::load(dir)?;
    std::fs::create_dir_all(out)
        .map_err(|source| ReportError::Write { path: out.display().to_string(), source })?;
    let mut notes = Vec::new();
    let (headline, plots) = match &results {
        ResultsDir::Run(run) => {
            if run.latency.is_none() {
                notes.push(
                    "no latency.csv in the results (written by newer `sim run --out`): TTFT CDF skipped"
                        .into(),
                );
            }
            if run.incidents.is_none() {
                notes.push("no incidents.csv in the results: incident windows not shaded".into());
            }
            (run_headline(run), plot_run(run, out)?)
        }
        ResultsDir::Sweep(sweep) => {
            if sweep.parameters().is_empty() {
                notes.push("no swept parameter varies across rows: metric-vs-parameter plots skipped".into());
            }
            (sweep_headline(sweep), plot_sweep(sweep, out)?)
        }
    };
    let write = |path: PathBuf, text: String| -> Result<PathBuf, ReportError> {
        std::fs::write(&path, text)
            .map_err(|source| ReportError::Write { path: path.display().to_string(), source })?;
        Ok(path)
    };
    let markdown = write(out.join("report.md"), markdown(&headline, &plots, &notes))?;
    let html = write(out.join("report.html"), html(&headline, &plots, &notes)?)?;
    Ok(ReportFiles { markdown, html, plots })
}
